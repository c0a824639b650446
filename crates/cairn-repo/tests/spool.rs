//! A writer into a local repository writes its data packs into their files
//! as they fill (`cairn_store::Spool`) instead of holding them in memory:
//! the repository it leaves is the one an in-memory writer leaves, and a
//! writer that stops early leaves no temporary file.

mod common;

use std::sync::Arc;

use cairn_core::{FixedClock, Kind};
use cairn_repo::{BlobWriter, CheckOptions, InitOptions, Maintenance, OpenOptions, Repository};
use cairn_store::{Create, Store};
use common::*;

async fn local_repo(dir: &std::path::Path) -> (Repository, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(T0));
    let mut opts = InitOptions::insecure_fast_for_tests();
    opts.data_pack_size = Some(64 * 1024);
    opts.clock = clock.clone();
    let store = Store::open(dir.to_str().expect("utf8"), Create::IfMissing).expect("store");
    let repo = Repository::init(store, PASSWORD, opts).await.expect("init");
    (repo, clock)
}

/// Files of a mix of sizes: bundled, single and larger than a pack.
fn files() -> Vec<(String, Vec<u8>)> {
    (0..120u64)
        .map(|i| {
            let len = match i % 4 {
                0 => 100_000,
                1 => 3_000 + i as usize * 11,
                2 => 20_000,
                _ => 40_000,
            };
            (format!("f{i:03}"), content(i, len))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_writer_streams_its_packs_and_they_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, clock) = local_repo(dir.path()).await;
    assert!(repo.store().spool("data").is_some(), "a local store spools");
    let files = files();
    let snap = backup(&repo, "h", &files).await;
    // Nothing is left under a temporary name.
    assert_eq!(repo.store().staging_files().expect("staging"), []);
    let packs = repo.list_packs().await.expect("list");
    assert!(packs.len() >= 40, "{} packs", packs.len());
    let repo = {
        let mut opts = OpenOptions::default();
        opts.clock = clock;
        let store = Store::open(dir.path().to_str().expect("utf8"), Create::Never).expect("store");
        Repository::open(store, PASSWORD, opts).await.expect("open")
    };
    assert_eq!(restore(&repo, &snap).await, files);
    let mut o = CheckOptions::default();
    o.read_data = true;
    let report = repo.check(o).await.expect("check");
    assert!(report.is_ok(), "{:#?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_writer_dropped_before_it_finishes_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, _clock) = local_repo(dir.path()).await;
    let writer = BlobWriter::new(&repo).expect("writer");
    let writer = tokio::task::spawn_blocking(move || {
        // Less than a pack: it is still filling when the writer goes.
        writer
            .add_blob(Kind::Data, &content(1, 30_000))
            .expect("add");
        writer
    })
    .await
    .expect("join");
    let staged = repo.store().staging_files().expect("staging");
    assert_eq!(staged.len(), 1, "the filling pack's file: {staged:?}");
    drop(writer);
    // The uploader task lets go of the pack once it sees the writer gone.
    for _ in 0..500 {
        if repo.store().staging_files().expect("staging").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(repo.store().staging_files().expect("staging"), []);
    assert!(repo.list_packs().await.expect("list").is_empty());
}

/// `load_tree_now` (the backup walk's read of the parent's trees) reads in
/// a local repository what `load_tree` reads, and leaves everything else,
/// errors included, to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_read_now_is_the_tree_load_tree_reads_and_errors_are_left_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, _clock) = local_repo(dir.path()).await;
    let files = files();
    let writer = BlobWriter::new(&repo).expect("writer");
    let (root, writer) = tokio::task::spawn_blocking(move || (add_tree(&writer, &files), writer))
        .await
        .expect("join");
    writer.finish().await.expect("finish");
    let now = tokio::task::block_in_place(|| repo.load_tree_now(&root)).expect("read now");
    assert_eq!(now, repo.load_tree(&root).await.expect("load"));
    assert_eq!(now.nodes.len(), 120);

    // Not in memory stores: the caller reads through the store.
    let (memory, _clock) = common::repo().await;
    assert!(memory.load_tree_now(&root).is_none());

    // A damaged tree: nothing now, and load_tree says why.
    let loc = repo.locate(&root).expect("indexed");
    let hex = loc.pack.to_string();
    let path = dir.path().join(format!("data/{}/{hex}", &hex[..2]));
    let mut pack = std::fs::read(&path).expect("read pack");
    pack[loc.offset as usize + 30] ^= 1;
    std::fs::write(&path, pack).expect("write pack");
    assert!(tokio::task::block_in_place(|| repo.load_tree_now(&root)).is_none());
    assert!(repo.load_tree(&root).await.is_err());
}
