//! `check` names every snapshot a problem reaches, also when snapshots
//! share trees: the walk keeps of each tree only its subtrees and its
//! damaged blobs, and walks that again for the next snapshot. Every check
//! here merges the index in a table of its own, as checks of large
//! repositories do.

mod common;

use cairn_repo::{CheckOptions, Maintenance};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_pack_is_charged_to_every_snapshot_sharing_its_tree_and_no_other() {
    cairn_repo::check_in_memory_entries(0);
    let (repo, clock) = repo().await;
    let files = |seed: u64| -> Vec<(String, Vec<u8>)> {
        (0..3)
            .map(|i| (format!("f{i}"), content(seed * 10 + i, 20_000)))
            .collect()
    };
    let first = backup(&repo, "a", &files(1)).await;
    let root = repo.load_snapshot(&first).await.expect("snapshot").tree;
    clock.set(T0 + 60);
    // A second snapshot of the same tree, as an unchanged backup makes.
    let second = commit(&repo, "b", root).await;
    clock.set(T0 + 120);
    let other = backup(&repo, "c", &files(2)).await;

    // Lose the data pack holding the first tree's first file.
    let tree = repo.load_tree(&root).await.expect("tree");
    let blob = tree.nodes[0].content[0];
    let pack = repo.index().get(&blob).expect("indexed").pack;
    let listed = repo.store().list("data").await.expect("list");
    let object = listed
        .iter()
        .find(|o| o.path.contains(&pack.to_hex()))
        .expect("the pack");
    repo.store().delete(&object.path).await.expect("delete");

    let report = repo.check(CheckOptions::default()).await.expect("check");
    assert!(!report.is_ok(), "a lost pack is a problem");
    let mut expect = vec![first, second];
    expect.sort();
    let charged: Vec<_> = report
        .errors
        .iter()
        .filter(|p| !p.snapshots.is_empty())
        .collect();
    assert!(!charged.is_empty(), "{:#?}", report.errors);
    for p in charged {
        let mut named = p.snapshots.clone();
        named.sort();
        assert_eq!(named, expect, "{p:#?}");
        assert!(!named.contains(&other));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_leaves_no_table_of_its_own_behind() {
    cairn_repo::check_in_memory_entries(0);
    let (repo, clock) = repo().await;
    backup(&repo, "a", &[("f".to_owned(), content(1, 20_000))]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = cairn_repo::OpenOptions::default();
    opts.clock = clock.clone();
    opts.index_dir = Some(dir.path().to_owned());
    let handle = cairn_repo::Repository::open(repo.store().clone(), PASSWORD, opts)
        .await
        .expect("open");
    let report = handle.check(CheckOptions::default()).await.expect("check");
    assert!(report.is_ok(), "{:#?}", report.errors);
    assert_eq!(report.snapshots, 1);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("index dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "index.table")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
