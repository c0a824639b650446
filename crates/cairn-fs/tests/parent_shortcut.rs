//! The parent-snapshot shortcut (an unchanged file's chunk list reused
//! unread) trusts only what the writer's session vouches for: chunks live
//! in the index reloaded after the session was announced, in packs that
//! exist. A long-lived repository handle whose index still lists a deleted
//! pack reads the file again instead of referencing the lost chunks.

use std::sync::Arc;

use cairn_core::format::{Source, Timestamp};
use cairn_fs::{BackupOptions, ParentChoice, Progress};
use cairn_repo::{InitOptions, Repository};
use cairn_store::Store;

fn options(dir: &std::path::Path, parent: ParentChoice) -> BackupOptions {
    let mut o = BackupOptions::default();
    o.paths = vec![dir.to_owned()];
    o.hostname = "h".into();
    o.username = "u".into();
    o.parent = parent;
    o.source = Source::Filesystem;
    o.time = Timestamp { secs: 1, nanos: 0 };
    o.program_version = "test".into();
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parent_shortcut_never_reuses_chunks_whose_pack_is_gone() {
    let src = tempfile::tempdir().expect("tempdir");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(src.path().join("f"), &data).expect("write");
    let repo = Repository::init(
        Store::memory(),
        b"pw",
        InitOptions::insecure_fast_for_tests(),
    )
    .await
    .expect("init");
    let first = cairn_fs::backup(
        &repo,
        options(src.path(), ParentChoice::None),
        Arc::new(Progress::default()),
    )
    .await
    .expect("first backup");

    // Every data pack goes (deleted by a prune this handle has not seen,
    // or lost); this handle's index still lists them.
    for o in repo.store().list("data").await.expect("list") {
        let id = o.path.rsplit('/').next().expect("name").to_owned();
        let entries = repo
            .index()
            .entries_by_pack()
            .expect("entries")
            .into_iter()
            .find(|(p, _)| p.to_hex() == id)
            .map(|(_, e)| e)
            .unwrap_or_default();
        if entries
            .iter()
            .all(|e| e.kind.content() == cairn_core::Kind::Data)
        {
            repo.store().delete(&o.path).await.expect("delete");
        }
    }

    let second = cairn_fs::backup(
        &repo,
        options(src.path(), ParentChoice::Snapshot(first.snapshot_id)),
        Arc::new(Progress::default()),
    )
    .await
    .expect("second backup");
    // Every chunk the new snapshot references has a copy that reads back
    // (through any copy an index file lists: this handle's index still
    // points at the deleted pack first).
    let root = repo.load_tree(&second.snapshot.tree).await.expect("root");
    let node = root.find(b"f").expect("f");
    let mut got = Vec::new();
    for c in &node.content {
        let blob = repo.read_blob(cairn_core::Kind::Data, c).await;
        got.extend(blob.expect("a chunk of the new snapshot is lost"));
    }
    assert!(got == data, "f differs");
    assert!(second.writer.data_blobs > 0, "f was read and stored again");
}
