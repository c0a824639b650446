//! Tiered compaction: prune leaves large index files that list nothing it
//! removes as they are, so a client that read them downloads only the
//! files that changed; a file that lists a removed pack is rewritten.

mod common;

use std::collections::BTreeMap;

use cairn_repo::Maintenance;
use cairn_repo::{CheckOptions, PruneOptions, Repository};
use common::*;

const GRACE: i64 = cairn_repo::MIN_GRACE;

/// Index files of at least 100 entries are stable in these tests (each
/// backup below writes one file of about 40 entries).
fn opts() -> PruneOptions {
    let mut o = PruneOptions::default();
    o.grace = GRACE;
    o.stable_index_entries = 100;
    o
}

/// 40 files of 4 KiB, new in every round.
fn dataset(round: u64) -> Vec<(String, Vec<u8>)> {
    (0..40u64)
        .map(|i| (format!("f{i:02}"), content(round * 1000 + i, 4 * 1024)))
        .collect()
}

/// The index files, by id, with their sizes.
async fn index_files(repo: &Repository) -> BTreeMap<String, u64> {
    let listed = repo.store().list("index").await.expect("list");
    listed.iter().map(|o| (o.path.clone(), o.size)).collect()
}

async fn assert_clean(repo: &Repository) {
    let mut o = CheckOptions::default();
    o.read_data = true;
    let r = repo.check(o).await.expect("check");
    assert!(r.is_ok(), "{:#?}", r.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_rewrites_only_small_files_and_those_listing_removed_packs() {
    let (repo, clock) = repo().await;
    let mut snaps = Vec::new();
    for round in 0..6u64 {
        clock.set(T0 + round as i64 * 60);
        snaps.push(backup(&repo, "h", &dataset(round)).await);
    }
    // When each pack was first listed: its backup's index file.
    let mut age = std::collections::HashMap::new();
    for (_, f) in repo.read_index_files().await.expect("index") {
        for p in &f.packs {
            age.insert(p.pack, f.created);
        }
    }
    // The first prune merges the six small files into large ones, packs
    // oldest first, so that packs retired together sit together.
    let first = repo.prune(opts()).await.expect("prune");
    assert_eq!(first.index_files_kept, 0, "{first:#?}");
    let merged = index_files(&repo).await;
    assert!(!merged.is_empty());
    let mut order = Vec::new();
    for (_, f) in repo.read_index_files().await.expect("index") {
        order.extend(f.packs.iter().map(|p| age[&p.pack]));
    }
    assert!(order.len() >= 6, "{order:?}");
    assert!(order.is_sorted(), "packs are not oldest first: {order:?}");

    // Two more backups add two small files; the next prune merges those
    // and leaves every file of the first compaction alone.
    for round in 6..8u64 {
        clock.set(T0 + round as i64 * 60);
        snaps.push(backup(&repo, "h", &dataset(round)).await);
    }
    let second = repo.prune(opts()).await.expect("prune");
    assert_eq!(second.index_files_kept, merged.len(), "{second:#?}");
    let after = index_files(&repo).await;
    for (path, size) in &merged {
        assert_eq!(after.get(path), Some(size), "{path} was rewritten");
    }
    let new_bytes: u64 = after
        .iter()
        .filter(|(p, _)| !merged.contains_key(*p))
        .map(|(_, n)| n)
        .sum();
    let kept_bytes: u64 = merged.values().sum();
    assert!(
        new_bytes < kept_bytes,
        "a client downloads {new_bytes} bytes again, the kept files hold {kept_bytes}"
    );
    assert_clean(&repo).await;
    // A client that opens now reads the same index.
    let fresh = reopen(&repo, clock.clone()).await;
    assert_eq!(fresh.index().len(), repo.index().len());

    // Forgetting the first round's snapshot removes packs that the kept
    // files list: those files are rewritten, and nothing is lost.
    repo.forget_snapshot(&snaps[0]).await.expect("forget");
    clock.set(repo.clock().now() + 60);
    repo.prune(opts()).await.expect("prune phase 1");
    clock.set(repo.clock().now() + GRACE + 1);
    let fourth = repo.prune(opts()).await.expect("prune phase 2");
    assert!(
        fourth.packs_deleted + fourth.packs_repacked > 0,
        "{fourth:#?}"
    );
    let last = index_files(&repo).await;
    assert!(
        merged.keys().any(|p| !last.contains_key(p)),
        "a file listing a removed pack must be rewritten"
    );
    assert_clean(&repo).await;
    for (i, snap) in snaps.iter().enumerate().skip(1) {
        let want = dataset(i as u64);
        assert_eq!(restore(&repo, snap).await, want, "snapshot {i}");
    }
}
