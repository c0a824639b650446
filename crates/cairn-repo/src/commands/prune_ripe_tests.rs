//! Ripe tombstones in memory and on disk give the same answers.

use super::*;
use cairn_core::format::IndexFile;

use crate::spool::held;

fn id(n: u8) -> Id {
    Id::from_bytes([n; 32])
}

fn hashed(range: std::ops::Range<u32>) -> Vec<Id> {
    range
        .map(|i| Id::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes()))
        .collect()
}

fn tombstones(created: i64, ids: &[Id]) -> IndexFile {
    IndexFile {
        session: id(0),
        created,
        tombstones: ids.to_vec(),
        ..IndexFile::default()
    }
}

#[test]
fn a_blob_tombstoned_by_several_ripe_files_takes_the_newest_time() {
    let ripe = Ripe::of(vec![
        (id(3), 50),
        (id(1), 10),
        (id(3), 70),
        (id(2), 20),
        (id(3), 60),
        (id(1), 5),
    ]);
    assert_eq!(ripe.get(&id(1)), Some(10));
    assert_eq!(ripe.get(&id(2)), Some(20));
    assert_eq!(ripe.get(&id(3)), Some(70));
    assert_eq!(ripe.get(&id(4)), None);
    assert_eq!(ripe.count(|_| true), 3);
    assert_eq!(ripe.count(|b| *b == id(2)), 1);
}

/// Four files of 30,000 tombstones, each a third repeated from the file
/// before at another time (older or newer), as phase 1 of several runs
/// leaves them.
fn files() -> Vec<(Id, IndexFile)> {
    let ids = hashed(0..100_000);
    let times = [40, 10, 30, 20];
    (0..4)
        .map(|k| {
            let from = k * 20_000;
            let file = tombstones(times[k], &ids[from..from + 30_000]);
            (id(100 + k as u8), file)
        })
        .collect()
}

/// Runs `f` on [`files`] as prune holds them.
fn with_files(f: impl FnOnce(&[&HeldFile], &Spool)) {
    let (held_files, spool) = held(&files());
    let refs: Vec<&HeldFile> = held_files.iter().collect();
    f(&refs, &spool);
}

#[test]
fn tombstones_on_disk_answer_as_in_memory() {
    with_files(on_disk_as_in_memory);
}

fn on_disk_as_in_memory(refs: &[&HeldFile], spool: &Spool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let memory = Ripe::gather(refs, spool, None, 1000).expect("memory");
    assert!(!memory.on_disk());
    // A budget of 1,000: 120 runs, merged on the way.
    let disk = Ripe::gather(refs, spool, Some(dir.path()), 1000).expect("disk");
    assert!(disk.on_disk());
    let within = Ripe::gather(refs, spool, Some(dir.path()), 120_000).expect("within");
    assert!(!within.on_disk(), "within its budget it stays in memory");
    let all = hashed(0..90_000);
    for b in &all {
        assert_eq!(disk.get(b), memory.get(b), "{b}");
    }
    // Ids 20,000..30,000 are in the files of times 40 and 10: the newest.
    assert_eq!(memory.get(&all[25_000]), Some(40));
    assert_eq!(memory.get(&all[45_000]), Some(30));
    assert!(
        hashed(90_000..100_000)
            .iter()
            .all(|b| disk.get(b).is_none())
    );
    assert_eq!(disk.count(|_| true), 90_000);
    assert_eq!(disk.count(|b| all[..10].contains(b)), 10);
    disk.verify().expect("every read went well");
}

#[test]
fn a_lookup_that_cannot_read_the_tombstones_keeps_the_blob_and_fails_the_run() {
    with_files(unreadable);
}

fn unreadable(refs: &[&HeldFile], spool: &Spool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ripe = Ripe::gather(refs, spool, Some(dir.path()), 1000).expect("disk");
    let tombstoned = hashed(0..1)[0];
    assert_eq!(ripe.get(&tombstoned), Some(40));
    ripe.break_reads(dir.path());
    assert_eq!(ripe.get(&tombstoned), None, "not deletable");
    assert!(ripe.verify().is_err());
}

#[test]
fn a_directory_that_cannot_take_the_tombstones_leaves_them_in_memory() {
    with_files(no_directory);
}

fn no_directory(refs: &[&HeldFile], spool: &Spool) {
    let gone = tempfile::tempdir().expect("tempdir").path().to_path_buf();
    let ripe = Ripe::gather(refs, spool, Some(&gone), 1000).expect("memory");
    assert!(!ripe.on_disk());
    assert_eq!(ripe.get(&hashed(0..1)[0]), Some(40));
    assert_eq!(ripe.count(|_| true), 90_000);
}

#[test]
fn the_filter_holds_everything_added_and_little_else() {
    let ids = hashed(0..50_000);
    let mut f = Filter::new(ids.len());
    ids.iter().for_each(|b| f.insert(b));
    assert!(ids.iter().all(|b| f.may_hold(b)));
    let others = hashed(50_000..150_000);
    let passed = others.iter().filter(|b| f.may_hold(b)).count();
    // About 3% with a byte per id and three probes; the bound is loose.
    assert!(passed < others.len() / 10, "{passed} of {}", others.len());
}
