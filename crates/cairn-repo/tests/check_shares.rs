//! `check` takes the packs a share at a time, so the entries it holds do
//! not grow with the index: whatever the number of shares, it finds the
//! same problems, charges them to the same snapshots and reads the same
//! packs as a check that takes every pack at once.

mod common;

use bytes::Bytes;
use cairn_core::Id;
use cairn_repo::{CheckOptions, CheckReport, Maintenance, Repository};
use common::*;

/// The data pack holding the first blob of snapshot `snap`'s first file.
async fn pack_of(repo: &Repository, snap: &Id) -> String {
    let root = repo.load_snapshot(snap).await.expect("snapshot").tree;
    let tree = repo.load_tree(&root).await.expect("tree");
    let pack = repo
        .index()
        .get(&tree.nodes[0].content[0])
        .expect("indexed")
        .pack;
    let hex = pack.to_hex();
    format!("data/{}/{hex}", &hex[..2])
}

/// What a check found, in an order that does not depend on how it went.
fn findings(r: &CheckReport) -> impl PartialEq + std::fmt::Debug {
    let mut errors: Vec<_> = r
        .errors
        .iter()
        .map(|p| (p.object.clone(), p.message.clone(), p.snapshots.clone()))
        .collect();
    errors.sort();
    let mut warnings: Vec<_> = r
        .warnings
        .iter()
        .map(|p| (p.object.clone(), p.message.clone()))
        .collect();
    warnings.sort();
    let counts = (
        r.snapshots,
        r.trees,
        r.packs,
        r.packs_read,
        r.blobs_verified,
    );
    (errors, warnings, counts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_in_shares_finds_what_a_check_of_every_pack_at_once_finds() {
    cairn_repo::check_in_memory_entries(0);
    let (repo, clock) = repo().await;
    let mut snaps = Vec::new();
    for b in 0..8u64 {
        clock.set(T0 + 60 * b as i64);
        let files: Vec<(String, Vec<u8>)> = (0..3)
            .map(|i| (format!("f{i}"), content(b * 10 + i, 30_000)))
            .collect();
        snaps.push(backup(&repo, &format!("h{b}"), &files).await);
    }
    let store = repo.store().clone();
    // A lost pack, a truncated one, one with a flipped byte, and a copy
    // no index lists.
    let lost = pack_of(&repo, &snaps[1]).await;
    store.delete(&lost).await.expect("delete");
    let short = pack_of(&repo, &snaps[3]).await;
    let bytes = store.get(&short).await.expect("get");
    store
        .put(&short, bytes.slice(..bytes.len() / 2))
        .await
        .expect("truncate");
    let flipped = pack_of(&repo, &snaps[5]).await;
    let mut bytes = store.get(&flipped).await.expect("get").to_vec();
    bytes[40] ^= 1;
    store.put(&flipped, Bytes::from(bytes)).await.expect("flip");
    let copy = format!("data/77/{}", "77".repeat(32));
    let bytes = store.get(&pack_of(&repo, &snaps[6]).await).await;
    store.put(&copy, bytes.expect("get")).await.expect("copy");

    let mut opts = CheckOptions::default();
    opts.read_data = true;
    cairn_repo::check_entries_per_share(1 << 20);
    let whole = repo.check(opts).await.expect("check");
    let objects: Vec<&str> = whole.errors.iter().map(|p| p.object.as_str()).collect();
    for damaged in [&lost, &short, &flipped] {
        assert!(
            objects.contains(&damaged.as_str()),
            "{damaged}: {objects:?}"
        );
    }
    assert!(whole.warnings.iter().any(|w| w.object == copy));
    assert!(whole.packs > 8, "{} packs", whole.packs);
    for per_share in [1, 2, 5, 40] {
        cairn_repo::check_entries_per_share(per_share);
        let shared = repo.check(opts).await.expect("check");
        assert_eq!(findings(&shared), findings(&whole), "{per_share} per share");
    }
}
