//! Repositories written before 2026-12-02 hold bundles of tiny files over
//! the 2 MiB readers keep opened (the bundle's directory did not count
//! toward its target): a restore opens each such bundle once per read, not
//! once per blob, and reads it once, though it is longer than a read.

use std::sync::Arc;

use cairn_core::Kind;
use cairn_core::format::{Node, NodeKind, Tree};
use cairn_fs::{Progress, RESTORE_ROUND, RestoreOptions};
use cairn_repo::BlobWriter;
use cairn_testkit::MemoryRepository;

const FILES: usize = 70_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_over_the_cache_is_opened_once_per_read() {
    let m = MemoryRepository::new(b"pw").await;
    let repo = m.repo.clone();
    // 70,000 files of 8 bytes in one bundle of 3 MiB of plaintext, as a
    // 1 MiB target counting the blobs alone made it.
    let writer = BlobWriter::with_bundle_target(&repo, 4 << 20).expect("writer");
    let (writer, root) = tokio::task::spawn_blocking(move || {
        let mut nodes = Vec::new();
        for i in 0..FILES as u64 {
            let (id, _) = writer.add_blob(Kind::Data, &i.to_le_bytes()).expect("add");
            let mut n = Node::new(format!("f{i:05}").into_bytes(), NodeKind::File);
            n.mode = 0o644;
            n.size = 8;
            n.content = vec![id];
            nodes.push(n);
        }
        let mut tree = Tree { nodes };
        tree.sort();
        let root = writer
            .add_blob(Kind::Tree, &tree.encode().expect("encode"))
            .expect("tree")
            .0;
        (writer, root)
    })
    .await
    .expect("join");
    writer.finish().await.expect("finish");
    let first = repo.keys().blob_id(Kind::Data, &0u64.to_le_bytes());
    let loc = repo.locate(&first).expect("indexed");
    assert_eq!(loc.kind, Kind::Bundle);
    assert!(
        loc.length > 2 << 20,
        "a bundle longer than a read: {}",
        loc.length
    );
    let snapshot = cairn_testkit::snapshot_of(root, 1, "h");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dst = tmp.path().join("dst");
    let mut o = RestoreOptions::new(&dst);
    o.owners = Some(false);
    let before = repo.bundles_opened();
    let out = cairn_fs::restore(&repo, &snapshot, o, Arc::new(Progress::default()))
        .await
        .expect("restore");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.files, FILES as u64);
    for i in [0u64, 1, 12_345, FILES as u64 - 1] {
        let got = std::fs::read(dst.join(format!("f{i:05}"))).expect("restored");
        assert_eq!(got, i.to_le_bytes());
    }
    // Once per round's read; opening it for each blob took 70,000.
    let opened = repo.bundles_opened() - before;
    let rounds = FILES.div_ceil(RESTORE_ROUND) as u64;
    assert!(opened <= rounds, "{opened} opens in {rounds} rounds");
}
