//! Prune and `repair index` on a repository whose clock the tests move:
//! days of schedule, no sleeping.

mod common;

use cairn_core::Kind;
use cairn_repo::Maintenance;
use std::path::Path;
use std::sync::Arc;

use cairn_core::FixedClock;
use cairn_repo::{BlobWriter, CheckOptions, OpenOptions, PruneOptions, Repository};
use common::*;

const GRACE: i64 = cairn_repo::MIN_GRACE;

fn opts() -> PruneOptions {
    let mut o = PruneOptions::default();
    o.grace = GRACE;
    o
}

async fn assert_clean(repo: &Repository) {
    let r = repo
        .check({
            let mut o = CheckOptions::default();
            o.read_data = true;
            o
        })
        .await
        .expect("check");
    assert!(r.is_ok(), "{:#?}", r.errors);
}

/// 40 files of 8 KiB; round `r` rewrites a third of them.
fn dataset(round: u64) -> Vec<(String, Vec<u8>)> {
    (0..40u64)
        .map(|i| {
            let version = if i % 3 == round % 3 {
                round
            } else {
                round / 3 * 3
            };
            (format!("f{i:02}"), content(i * 1000 + version, 8 * 1024))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_reclaims_space_after_forgetting_a_churned_history() {
    let (repo, clock) = repo().await;
    let mut last = None;
    for round in 0..12u64 {
        clock.set(T0 + round as i64 * 3600);
        last = Some(backup(&repo, "h", &dataset(round)).await);
    }
    let last = last.expect("a snapshot");
    let before = size_of(&repo, "data").await;
    let policy = cairn_repo::retention::Policy {
        last: 1,
        ..Default::default()
    };
    let forgot = repo
        .forget(&policy, cairn_repo::RunMode::Apply)
        .await
        .expect("forget");
    assert_eq!(forgot.removed().count(), 11);

    let first = repo.prune(opts()).await.expect("prune phase 1");
    assert!(first.blobs_tombstoned > 0, "{first:#?}");
    assert_eq!(
        first.blobs_deleted, 0,
        "nothing is deleted before the grace period"
    );
    assert_eq!(size_of(&repo, "data").await, before);

    clock.set(clock_now(&repo) + GRACE + 1);
    let second = repo.prune(opts()).await.expect("prune phase 2");
    assert!(second.blobs_deleted > 0, "{second:#?}");
    let after = size_of(&repo, "data").await;

    // A fresh repository holding only the last dataset.
    let (fresh, _) = repo_fresh().await;
    backup(&fresh, "h", &dataset(11)).await;
    let fresh_size = size_of(&fresh, "data").await;
    println!(
        "prune: data {before} -> {after} bytes; a fresh backup of the last dataset is {fresh_size} bytes; \
         {} packs deleted, {} repacked, index files {} -> {}",
        second.packs_deleted,
        second.packs_repacked,
        second.index_files_before,
        second.index_files_after
    );
    assert!(
        after as f64 <= fresh_size as f64 * (1.0 + opts().max_unused),
        "after prune {after} bytes, fresh backup {fresh_size}"
    );
    assert_eq!(restore(&repo, &last).await, dataset(11));
    assert_clean(&repo).await;
    // Compaction: one file listing packs, nothing else left over.
    assert_eq!(count(&repo, "index").await, 1);
    assert_eq!(count(&repo, "sessions").await, 0);
}

fn clock_now(repo: &Repository) -> i64 {
    repo.clock().now()
}

async fn repo_fresh() -> (Repository, std::sync::Arc<cairn_core::FixedClock>) {
    repo().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_running_across_prune_loses_nothing() {
    let (repo, clock) = repo().await;
    let a = content(1, 20_000);
    let b = content(2, 20_000);
    let old = backup(
        &repo,
        "old",
        &[("a".into(), a.clone()), ("b".into(), b.clone())],
    )
    .await;
    repo.store()
        .delete(&format!("snapshots/{old}"))
        .await
        .expect("forget");

    // A writer in another process starts and deduplicates against `a`,
    // which no snapshot references any more.
    let writer_repo = reopen(&repo, clock.clone()).await;
    let writer = BlobWriter::new(&writer_repo).expect("writer");
    let a2 = a.clone();
    let (writer, root) = tokio::task::spawn_blocking(move || {
        let (_, new) = writer.add_blob(Kind::Data, &a2).expect("add");
        assert!(!new, "deduplicated against the unreferenced blob");
        let root = add_tree(&writer, &[("a".to_owned(), a2)]);
        (writer, root)
    })
    .await
    .expect("join");

    clock.set(T0 + 10);
    let p1 = repo.prune(opts()).await.expect("phase 1");
    assert_eq!(p1.blobs_tombstoned, 3, "a, b and the old root tree");

    // The writer keeps its session fresh while it runs.
    clock.set(T0 + 1500);
    let writer = keep_alive(&repo, writer, 77).await;
    clock.set(T0 + 3000);
    let writer = keep_alive(&repo, writer, 78).await;

    // Past the grace period, but the writer started before the tombstones
    // took effect and is still running: phase 2 waits.
    clock.set(T0 + 10 + GRACE + 100);
    let p2 = repo.prune(opts()).await.expect("phase 2, deferred");
    assert_eq!(p2.blobs_deleted, 0, "{p2:#?}");
    assert_eq!(p2.blocking_sessions.len(), 1);

    // The writer finishes and stores a snapshot that needs `a`.
    writer.finish().await.expect("finish");
    let snap = commit(&writer_repo, "new", root).await;
    let p3 = repo.prune(opts()).await.expect("phase 2");
    // `a` is needed again; `b` and the old root tree go.
    assert_eq!(p3.blobs_resurrected, 1, "{p3:#?}");
    assert_eq!(p3.blobs_deleted, 2, "{p3:#?}");
    let reader = reopen(&repo, clock.clone()).await;
    assert_eq!(restore(&reader, &snap).await, vec![("a".to_owned(), a)]);
    assert_clean(&reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_starts_after_the_tombstones_stores_fresh_copies() {
    let (repo, clock) = repo().await;
    let a = content(5, 30_000);
    let old = backup(&repo, "old", &[("a".into(), a.clone())]).await;
    repo.store()
        .delete(&format!("snapshots/{old}"))
        .await
        .expect("forget");
    clock.set(T0 + 10);
    repo.prune(opts()).await.expect("phase 1");

    clock.set(T0 + 20);
    let writer_repo = reopen(&repo, clock.clone()).await;
    let writer = BlobWriter::new(&writer_repo).expect("writer");
    let a2 = a.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let (_, new) = writer.add_blob(Kind::Data, &a2).expect("add");
        assert!(new, "a tombstoned blob is stored again, not deduplicated");
        writer
    })
    .await
    .expect("join");
    writer.finish().await.expect("finish");
    writer_repo.end_finished_sessions().await.expect("end");
    let snap = backup(&writer_repo, "new", &[("renamed".into(), a.clone())]).await;

    clock.set(T0 + 10 + GRACE + 1);
    let p = repo.prune(opts()).await.expect("phase 2");
    // The old tree goes; `a` is referenced, its old copy stays (a duplicate).
    assert_eq!(p.blobs_deleted, 1, "{p:#?}");
    assert_eq!(p.packs_deleted, 1, "{p:#?}");
    let reader = reopen(&repo, clock.clone()).await;
    assert_eq!(
        restore(&reader, &snap).await,
        vec![("renamed".to_owned(), a)]
    );
    assert_clean(&reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_index_rebuilds_a_deleted_index_without_losing_data() {
    let (repo, clock) = repo().await;
    let files: Vec<(String, Vec<u8>)> = (0..30u64)
        .map(|i| (format!("f{i:02}"), content(i, 9_000)))
        .collect();
    let snap = backup(&repo, "h", &files).await;
    let index_files = repo.store().list("index").await.expect("list");
    assert!(!index_files.is_empty());
    for o in &index_files {
        repo.store().delete(&o.path).await.expect("delete");
    }
    let broken = reopen(&repo, clock.clone()).await;
    assert!(
        !broken
            .check(CheckOptions::default())
            .await
            .expect("check")
            .is_ok()
    );

    let report = broken
        .repair_index(cairn_repo::RunMode::Apply)
        .await
        .expect("repair");
    assert_eq!(report.packs, count(&repo, "data").await);
    assert!(report.unreadable_packs.is_empty());
    let fixed = reopen(&repo, clock).await;
    assert_eq!(restore(&fixed, &snap).await, files);
    assert_clean(&fixed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_changes_nothing_and_prune_ends_its_session() {
    let (repo, _clock) = repo().await;
    let old = backup(&repo, "h", &[("a".into(), content(9, 10_000))]).await;
    repo.store()
        .delete(&format!("snapshots/{old}"))
        .await
        .expect("forget");
    let before = repo.store().list("").await.expect("list");
    let dry = repo
        .prune({
            let mut o = opts();
            o.dry_run = true;
            o
        })
        .await
        .expect("dry run");
    assert_eq!(dry.blobs_tombstoned, 2, "a and its tree: {dry:#?}");
    assert_eq!(repo.store().list("").await.expect("list"), before);

    let real = repo.prune(opts()).await.expect("prune");
    assert_eq!(real.blobs_tombstoned, 2);
    assert!(real.tombstone_file.is_some());
    let left = repo
        .list_sessions(clock_now(&repo))
        .await
        .expect("sessions");
    assert!(
        left.iter()
            .all(|s| s.session.purpose != cairn_core::format::SessionPurpose::Prune),
        "prune ended its session: {left:?}"
    );
    assert_eq!(
        count(&repo, "sessions").await,
        1,
        "the backup's done record"
    );
}

/// `repo`'s store opened again with its merged index kept in `dir`, as the
/// CLI and the node agent open a repository.
async fn reopen_with_table(repo: &Repository, clock: &Arc<FixedClock>, dir: &Path) -> Repository {
    let mut opts = OpenOptions::default();
    opts.clock = clock.clone();
    opts.index_dir = Some(dir.to_owned());
    Repository::open(repo.store().clone(), PASSWORD, opts)
        .await
        .expect("open")
}

/// What is in `dir` besides the repository's own index table.
fn leftovers(dir: &Path) -> Vec<String> {
    let names = std::fs::read_dir(dir).expect("index dir");
    let mut out: Vec<String> = names
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "index.table")
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_with_an_index_directory_decides_as_one_in_memory_and_leaves_no_table() {
    // Prune decides against a table on local disk when the repository has
    // an index directory, so that its memory does not grow with the index,
    // and its referenced set and ripe tombstones go there too past their
    // budgets (here a blob or two: every tree the walk visits goes to disk
    // too): every decision must be the one the in-memory index, set and
    // tombstones give.
    let (repo, clock) = repo().await;
    let mut last = None;
    for round in 0..9u64 {
        clock.set(T0 + round as i64 * 3600);
        last = Some(backup(&repo, "h", &dataset(round)).await);
    }
    let policy = cairn_repo::retention::Policy {
        last: 2,
        ..Default::default()
    };
    let mode = cairn_repo::RunMode::Apply;
    repo.forget(&policy, mode).await.expect("forget");
    let dir = tempfile::tempdir().expect("tempdir");
    let on_disk = {
        let mut o = opts();
        o.referenced_in_memory = 1;
        o.ripe_in_memory = 2;
        o
    };
    let dry = {
        let mut o = on_disk;
        o.dry_run = true;
        o
    };
    let dry_in_memory = {
        let mut o = dry;
        o.index_in_memory = true;
        o.referenced_in_memory = usize::MAX;
        o.ripe_in_memory = usize::MAX;
        o
    };
    for phase in 0..2 {
        let memory = reopen(&repo, clock.clone()).await;
        let table = reopen_with_table(&repo, &clock, dir.path()).await;
        let expected = memory.prune(dry_in_memory).await.expect("dry run");
        assert!(
            expected.blobs_tombstoned + expected.blobs_deleted > 0,
            "phase {phase} decides something: {expected:#?}"
        );
        assert_eq!(table.prune(dry).await.expect("dry run"), expected);
        let done = table.prune(on_disk).await.expect("prune");
        assert_eq!(done.blobs_tombstoned, expected.blobs_tombstoned);
        assert_eq!(done.blobs_deleted, expected.blobs_deleted);
        assert_eq!(done.packs_deleted, expected.packs_deleted);
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
        clock.set(clock_now(&repo) + GRACE + 1);
    }
    let last = last.expect("a snapshot");
    assert_eq!(restore(&repo, &last).await, dataset(8));
    assert_clean(&repo).await;
}
