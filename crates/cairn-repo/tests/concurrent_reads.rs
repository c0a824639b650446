//! Readers racing with deleters: what a listing shows may be gone by the
//! time it is read.

use std::sync::Arc;

use cairn_repo::{InitOptions, OpenOptions, Repository};
use cairn_store::{FaultConfig, FaultStore, Store};
use object_store::memory::InMemory;

/// Regression: a `forget` deleting a snapshot between another process's
/// listing and its read made that process's backup fail with
/// "snapshots/<id>: not found" (seen in the four-writer concurrency test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_deleted_between_list_and_read_are_skipped() {
    let memory = Arc::new(InMemory::new());
    let plain = Store::from_object_store(memory.clone(), "memory".into());
    Repository::init(plain, b"pw", InitOptions::insecure_fast_for_tests())
        .await
        .expect("init");
    let ghost = format!("snapshots/{}", "ab".repeat(32));
    let racing = Store::from_object_store(
        Arc::new(FaultStore::new(
            memory,
            FaultConfig {
                ghosts: vec![ghost],
                ..Default::default()
            },
        )),
        "racing".into(),
    );
    let repo = Repository::open(racing, b"pw", OpenOptions::default())
        .await
        .expect("open");
    assert_eq!(
        repo.snapshot_ids().await.expect("ids").len(),
        1,
        "the ghost is listed"
    );
    assert!(repo.list_snapshots().await.expect("list").is_empty());
    assert!(repo.find_snapshot("latest").await.is_err());
}

/// An index file deleted between listing and reading (a concurrent prune
/// compacted it) must not fail the open, and must not hide entries: the
/// folder is listed again. Here the listing shows a ghost index file that
/// cannot be read; the repository opens with every real entry after one
/// more listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_files_deleted_between_list_and_read_do_not_fail_the_open() {
    use cairn_core::Kind;
    let memory = Arc::new(InMemory::new());
    let plain = Store::from_object_store(memory.clone(), "memory".into());
    let repo = Repository::init(plain, b"pw", InitOptions::insecure_fast_for_tests())
        .await
        .expect("init");
    let writer = cairn_repo::BlobWriter::new(&repo).expect("writer");
    let writer =
        tokio::task::spawn_blocking(move || writer.add_blob(Kind::Data, b"kept").map(|_| writer))
            .await
            .expect("join")
            .expect("add");
    writer.finish().await.expect("finish");

    let plain_again = Store::from_object_store(memory.clone(), "plain".into());
    Repository::open(plain_again.clone(), b"pw", OpenOptions::default())
        .await
        .expect("open");
    let racing = Store::from_object_store(
        Arc::new(FaultStore::new(
            memory,
            FaultConfig {
                ghosts: vec![format!("index/{}", "cd".repeat(32))],
                ..Default::default()
            },
        )),
        "racing".into(),
    );
    let repo = Repository::open(racing.clone(), b"pw", OpenOptions::default())
        .await
        .expect("a vanished index file must not fail the open");
    let id = repo.keys().id_of(b"kept");
    assert_eq!(
        repo.read_blob(Kind::Data, &id).await.expect("read"),
        b"kept"
    );
    // One more listing than a quiet open: the folder was listed again to
    // find the file that superseded the vanished one.
    assert_eq!(racing.metrics().lists, plain_again.metrics().lists + 1);
}
