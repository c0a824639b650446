//! The blobs added past the in-memory budget go to disk and answer every
//! question as they did in memory (ADR 0026).

use std::collections::{HashMap, HashSet};

use cairn_core::format::{IndexFile, IndexPack, PackEntry};
use cairn_core::{Id, Kind};

use super::{Index, MemIndex};

fn id(n: u32) -> Id {
    Id::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

/// File `f` (created at `10 * f`) lists 40 blobs in pack `f`: blobs
/// `30f .. 30f + 40`, so each file lists ten of the previous file's again,
/// in another pack. Every fifth file tombstones three older blobs.
fn files(n: u32) -> Vec<(Id, IndexFile)> {
    (0..n)
        .map(|f| {
            let blobs = (30 * f..30 * f + 40)
                .map(|b| PackEntry {
                    kind: if b % 7 == 0 { Kind::Tree } else { Kind::Data },
                    id: id(b),
                    offset: b * 100,
                    length: 41 + b,
                    raw_length: b,
                })
                .collect();
            let tombstones = match f % 5 {
                4 => vec![id(30 * f - 100), id(30 * f - 99), id(30 * f + 5)],
                _ => Vec::new(),
            };
            let file = IndexFile {
                created: 10 * i64::from(f),
                packs: vec![IndexPack {
                    pack: id(1_000_000 + f),
                    blobs,
                }],
                tombstones,
                ..IndexFile::default()
            };
            (id(2_000_000 + f), file)
        })
        .collect()
}

/// Every location each id is listed at.
fn copies(files: &[(Id, IndexFile)]) -> HashMap<Id, HashSet<(Id, u32)>> {
    let mut m: HashMap<Id, HashSet<(Id, u32)>> = HashMap::new();
    for (_, f) in files {
        for p in &f.packs {
            for e in &p.blobs {
                m.entry(e.id).or_default().insert((p.pack, e.offset));
            }
        }
    }
    m
}

fn sorted(m: HashMap<Id, Vec<PackEntry>>) -> Vec<(Id, Id)> {
    let mut v: Vec<(Id, Id)> = m
        .into_iter()
        .flat_map(|(p, es)| es.into_iter().map(move |e| (e.id, p)))
        .collect();
    v.sort_unstable();
    v
}

fn spilling(dir: &std::path::Path, budget: usize, files: &[(Id, IndexFile)]) -> MemIndex {
    let mut spilled = MemIndex::default()
        .with_budget(budget)
        .spilling_to(dir.to_path_buf());
    for (i, f) in files {
        spilled.add_file(*i, f);
    }
    spilled
}

#[test]
fn blobs_on_disk_answer_as_in_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The last file's blobs stay in memory, ten of them on disk too.
    let files = files(61);
    let memory = MemIndex::from_files(files.iter().map(|(i, f)| (*i, f)));
    let spilled = spilling(dir.path(), 50, &files);
    assert!(spilled.files_on_disk() > 1, "merged files, several left");
    assert_eq!(spilled.in_memory(), 40);
    let copies = copies(&files);
    for n in 0..30 * 61 + 100 {
        // The first location, as in memory; the newest listing.
        assert_eq!(memory.record(&id(n)), spilled.record(&id(n)), "blob {n}");
        assert_eq!(
            memory.contains(&id(n)),
            spilled.contains(&id(n)),
            "blob {n}"
        );
        assert_eq!(memory.get(&id(n)), spilled.get(&id(n)), "blob {n}");
    }
    assert_eq!(memory.count(|_| false), spilled.count(|_| false));
    assert_eq!(spilled.count(|_| false), copies.len());
    let every = |m: &MemIndex| {
        let mut out = HashMap::new();
        m.entries_by_pack_into(&mut out, |i| *i == id(7), |p| *p != id(1_000_003));
        out
    };
    let (a, b) = (sorted(every(&memory)), sorted(every(&spilled)));
    assert!(a.len() > 1500, "{}", a.len());
    assert_eq!(a, b);
    assert!(spilled.failed().is_none());
    // Nothing named in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

#[test]
fn without_a_directory_the_blobs_stay_in_memory() {
    let files = files(20);
    let mut m = MemIndex::default().with_budget(10);
    for (i, f) in &files {
        m.add_file(*i, f);
    }
    assert_eq!(m.files_on_disk(), 0);
    assert_eq!(m.in_memory(), copies(&files).len());
    let dir = tempfile::tempdir().expect("tempdir");
    let gone = spilling(&dir.path().join("gone"), 10, &files);
    assert_eq!(gone.files_on_disk(), 0);
    assert_eq!(gone.in_memory(), copies(&files).len());
}

#[test]
fn blobs_on_a_disk_that_fails_are_not_deduplicated_and_fail_a_full_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = files(10);
    let mut spilled = spilling(dir.path(), 50, &files);
    spilled.break_reads(dir.path());
    // The first file's blobs 0..30 are listed once, long spilled.
    assert!(
        !spilled.contains(&id(1)),
        "stored again rather than trusted"
    );
    assert_eq!(spilled.get(&id(1)), None);
    let index = Index::with_table(None, spilled);
    let e = index.entries_by_pack().expect_err("a read failed");
    assert!(e.to_string().contains("local disk"), "{e}");
}
