//! A data pack in an archival storage class, not restored, read without a
//! warm-up: the restore stops at the first read that finds it archived,
//! with that error, instead of failing file after file; `data_packs` names
//! exactly the packs a path needs; a structure check counts the archived
//! pack's header instead of reporting damage. (Warm-ups themselves need S3:
//! tests/e2e/cold.rs runs them against moto.)

use cairn_repo::Maintenance;
use std::sync::Arc;

use cairn_core::format::{Source, Timestamp};
use cairn_fs::{BackupOptions, ParentChoice, Progress, RestoreOptions};
use cairn_repo::{ReadData, Repository};
use cairn_store::StoreError;
use cairn_testkit::{FaultPlan, MemoryRepository, noise};

const PASSWORD: &[u8] = b"pw";
/// Files of several chunks each (the test chunker averages 64 KiB).
const BIG_FILES: usize = 40;

/// A repository in memory with `big/` (files of several chunks) and
/// `small/` (files of one chunk), in one data pack.
async fn repository() -> (MemoryRepository, cairn_core::format::Snapshot) {
    let src = tempfile::tempdir().expect("tempdir");
    for (dir, n, len) in [("big", BIG_FILES, 256 * 1024), ("small", 50, 1000)] {
        std::fs::create_dir(src.path().join(dir)).expect("mkdir");
        for i in 0..n {
            let data = noise((i * 7 + len) as u64, len);
            std::fs::write(src.path().join(dir).join(format!("f{i}")), data).expect("write");
        }
    }
    let m = MemoryRepository::new(PASSWORD).await;
    let repo = m.repo.clone();
    let out = cairn_fs::backup(
        &repo,
        {
            let mut o = BackupOptions::default();
            o.paths = vec![src.path().to_owned()];
            o.hostname = "h".into();
            o.username = "u".into();
            o.parent = ParentChoice::None;
            o.source = Source::Filesystem;
            o.time = Timestamp { secs: 1, nanos: 0 };
            o.program_version = "test".into();
            o
        },
        Arc::new(Progress::default()),
    )
    .await
    .expect("backup");
    (m, out.snapshot)
}

/// The repository through a store whose reads under `prefix` fail as reads
/// of an archived object do.
async fn archived_under(m: &MemoryRepository, prefix: String) -> Repository {
    m.faulty(&FaultPlan::new().archived().under(prefix)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_stops_at_the_first_archived_pack_and_names_it() {
    let (m, snapshot) = repository().await;
    let plain = m.reopen().await;
    let packs = cairn_fs::data_packs(&plain, &snapshot, &[])
        .await
        .expect("packs");
    assert_eq!(packs.len(), 1, "one data pack: {packs:?}");
    let pack = *packs.iter().next().expect("a pack");
    let tree_pack = plain.locate(&snapshot.tree).expect("indexed").pack;
    assert!(!packs.contains(&tree_pack), "tree packs are not data packs");
    let path = format!("data/{}/{pack}", &pack.to_hex()[..2]);
    let small = cairn_fs::data_packs(&plain, &snapshot, &[b"small".to_vec()])
        .await
        .expect("packs");
    assert_eq!(small, packs, "small/ is in that pack too");

    // Files of one chunk go by pack (one read per range), larger ones
    // chunk by chunk: both stop.
    for dir in ["small", "big"] {
        let repo = archived_under(&m, path.clone()).await;
        let before = repo.store().metrics().range_gets;
        let dst = tempfile::tempdir().expect("tempdir");
        let r = cairn_fs::restore(
            &repo,
            &snapshot,
            {
                let mut o = RestoreOptions::default();
                o.target = dst.path().to_owned();
                o.path = dir.as_bytes().to_vec();
                o.owners = Some(false);
                o
            },
            Arc::new(Progress::default()),
        )
        .await;
        let e = r.expect_err("an archived pack ends the restore");
        let cairn_fs::Error::Repo(cairn_repo::Error::Store(StoreError::Archived { path: named })) =
            &e
        else {
            panic!("{dir}: not the archived error: {e}");
        };
        assert_eq!(*named, path);
        assert!(e.to_string().contains("cairn warm-up"), "{e}");
        // Without the stop, every chunk of every file would be asked for
        // (several per big file); with it, what was in flight.
        let reads = repo.store().metrics().range_gets - before;
        assert!(reads < BIG_FILES as u64, "{dir}: {reads} reads");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_structure_check_counts_archived_packs_instead_of_reporting_damage() {
    let (m, snapshot) = repository().await;
    let plain = m.reopen().await;
    let packs = cairn_fs::data_packs(&plain, &snapshot, &[])
        .await
        .expect("packs");
    let pack = packs.iter().next().expect("a pack");
    let repo = archived_under(&m, format!("data/{}/{pack}", &pack.to_hex()[..2])).await;
    let report = repo
        .check_using(ReadData::None, cairn_repo::MetadataSource::Repository)
        .await
        .expect("check");
    assert_eq!(report.packs_archived, 1, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
}
