//! Phase 1 writes its tombstones in index files of a bounded size (an
//! index file's plaintext limit holds about two million; a forgotten
//! snapshot of a few TiB tombstones more in one run): a run that
//! tombstones more than one file holds splits them, and phase 2 acts on
//! every part. The share per file is lowered to 3 for the test.

mod common;

use cairn_repo::{CheckOptions, Maintenance, PruneOptions};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_beyond_one_file_s_share_go_to_several_files_and_all_take_effect() {
    cairn_repo::prune_tombstones_per_file(3);
    let (repo, clock) = repo().await;
    let kept = vec![("k".to_owned(), content(1, 5_000))];
    let keep = backup(&repo, "h", &kept).await;
    let files: Vec<(String, Vec<u8>)> = (0..10u64)
        .map(|i| (format!("f{i}"), content(100 + i, 300_000 + i as usize)))
        .collect();
    let old = backup(&repo, "h", &files).await;
    repo.store()
        .delete(&format!("snapshots/{old}"))
        .await
        .expect("forget");

    let mut o = PruneOptions::default();
    o.grace = cairn_repo::MIN_GRACE;
    let first = repo.prune(o).await.expect("phase 1");
    assert!(first.blobs_tombstoned > 6, "{first:#?}");
    assert_eq!(
        first.tombstone_files_written,
        first.blobs_tombstoned.div_ceil(3),
        "{first:#?}"
    );
    assert!(first.tombstone_file.is_some());
    assert!(count(&repo, "index").await >= first.tombstone_files_written);

    clock.set(repo.clock().now() + cairn_repo::MIN_GRACE + 1);
    let second = repo.prune(o).await.expect("phase 2");
    assert_eq!(second.blobs_deleted, first.blobs_tombstoned, "{second:#?}");
    assert_eq!(second.tombstone_files_waiting, 0, "{second:#?}");
    assert_eq!(second.blobs_tombstoned, 0, "{second:#?}");

    let check = repo
        .check({
            let mut c = CheckOptions::default();
            c.read_data = true;
            c
        })
        .await
        .expect("check");
    assert!(check.is_ok(), "{:#?}", check.errors);
    assert_eq!(restore(&repo, &keep).await, kept);
}
