//! Golden vectors: a tiny repository built with a seeded RNG, a fixed clock
//! and fixed inputs must come out byte-for-byte identical to the copy
//! committed under `tests/golden/v1` (a writer without bundles) and
//! `tests/golden/v2` (with them: its small blobs share one bundle, in a
//! pack header and index file of version 2), and both committed copies
//! must stay readable. An accidental change to any encoder, to sealing, key
//! derivation or chunking fails the first test; a change to a decoder fails
//! the second.
//!
//! After a deliberate format change (which needs a new format version, see
//! docs/FORMAT.md), regenerate with `CAIRN_UPDATE_GOLDEN=1 cargo test -p
//! cairn-repo --test golden`. A zstd upgrade that changes compressed bytes
//! also shows up here: then the reader test must still pass before the
//! vectors are regenerated.

use cairn_repo::Maintenance;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_core::format::{
    KdfParams, Node, NodeKind, RootLayout, Snapshot, SnapshotStats, Source, Timestamp, Tree,
};
use cairn_core::{FixedClock, Id, Kind, SeededRandom};
use cairn_repo::{BlobWriter, CheckOptions, InitOptions, OpenOptions, Repository};
use cairn_store::Store;
use cairn_testkit::XorShift;

const PASSWORD: &[u8] = b"golden vectors";
const TIME: i64 = 1_700_000_000;

/// The committed vectors of a writer with or without bundles.
fn golden_dir(bundles: bool) -> PathBuf {
    let v = if bundles { "v2" } else { "v1" };
    cairn_testkit::workspace_root().join(format!("crates/cairn-repo/tests/golden/{v}"))
}

/// The blobs: short text, compressible, incompressible.
fn contents() -> Vec<(&'static str, Vec<u8>)> {
    // Exactly the bytes the vectors were made from: one byte per step.
    let noise = XorShift::from_state(0x2545_F491_4F6C_DD1D).low_bytes(50_000);
    let text: Vec<u8> = b"cairn golden vector line\n".repeat(4000);
    vec![
        ("hello.txt", b"hello, cairn\n".to_vec()),
        ("text.txt", text),
        ("noise.bin", noise),
    ]
}

/// The v2 vectors use 4 MiB data packs, so every blob here is small
/// enough for a bundle (an eighth of a quarter of the pack size).
fn init_options(bundles: bool) -> InitOptions {
    let mut o = InitOptions::new("golden-host", "golden-user", TIME);
    o.kdf = KdfParams::INSECURE_FAST;
    o.compression_level = 3;
    o.chunk_sizes = Some((16 * 1024, 64 * 1024, 256 * 1024));
    o.data_pack_size = Some(if bundles { 4 << 20 } else { 64 * 1024 });
    o.rng = Arc::new(SeededRandom::new(2026));
    o.clock = Arc::new(FixedClock::new(TIME));
    o
}

fn file_node(name: &str, content: Vec<Id>, size: u64) -> Node {
    let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::File);
    n.mode = 0o644;
    n.uid = 1000;
    n.gid = 1000;
    n.user = b"alice".to_vec();
    n.group = b"staff".to_vec();
    n.mtime = Timestamp {
        secs: TIME - 60,
        nanos: 123_456_789,
    };
    n.size = size;
    n.links = 1;
    n.content = content;
    n
}

/// Builds the golden repository in `store` and returns the snapshot id.
async fn build(store: Store, bundles: bool) -> Id {
    let repo = Repository::init(store, PASSWORD, init_options(bundles))
        .await
        .expect("init");
    let writer = BlobWriter::with_bundles(&repo, bundles).expect("writer");
    let params = repo.config().chunker;
    let (writer, mut nodes) = tokio::task::spawn_blocking(move || {
        let mut nodes = Vec::new();
        for (name, data) in contents() {
            let ids: Vec<Id> = params
                .chunks(&data)
                .map(|(o, l)| writer.add_blob(Kind::Data, &data[o..o + l]).expect("add").0)
                .collect();
            nodes.push(file_node(name, ids, data.len() as u64));
        }
        let mut sub = Node::new(b"sub".to_vec(), NodeKind::Dir);
        sub.mode = 0o755;
        let empty = Tree::default().encode().expect("encode");
        sub.subtree = Some(writer.add_blob(Kind::Tree, &empty).expect("add").0);
        nodes.push(sub);
        let mut link = Node::new(b"link".to_vec(), NodeKind::Symlink);
        link.mode = 0o777;
        link.link_target = b"hello.txt".to_vec();
        nodes.push(link);
        (writer, nodes)
    })
    .await
    .expect("join");
    let mut root = Tree {
        nodes: std::mem::take(&mut nodes),
    };
    root.sort();
    let root_plain = root.encode().expect("encode");
    let (writer, root_id) = tokio::task::spawn_blocking(move || {
        let id = writer.add_blob(Kind::Tree, &root_plain).expect("add").0;
        (writer, id)
    })
    .await
    .expect("join");
    writer.finish().await.expect("finish");
    repo.save_snapshot(&snapshot_of(root_id))
        .await
        .expect("snapshot")
}

/// The golden snapshot of the tree `root_id`.
fn snapshot_of(root_id: Id) -> Snapshot {
    Snapshot {
        time: Timestamp {
            secs: TIME,
            nanos: 0,
        },
        tree: root_id,
        hostname: "golden-host".into(),
        username: "golden-user".into(),
        paths: vec![b"/srv/golden".to_vec()],
        root_layout: RootLayout::Directory,
        source: Source::Filesystem,
        tags: vec!["golden".into()],
        parent: None,
        stats: SnapshotStats {
            files_new: 3,
            ..Default::default()
        },
        program_version: "cairn golden".into(),
    }
}

/// Every file under `dir`, relative path -> bytes.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_reproduces_the_golden_repository_byte_for_byte() {
    reproduce(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_with_bundles_reproduces_the_v2_golden_repository_byte_for_byte() {
    reproduce(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_golden_repository_stays_readable() {
    read_committed(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_v2_golden_repository_with_a_bundle_stays_readable() {
    read_committed(true).await;
}

async fn reproduce(bundles: bool) {
    let tmp = tempfile::tempdir().expect("tempdir");
    build(
        Store::open(
            tmp.path().to_str().expect("utf8"),
            cairn_store::Create::IfMissing,
        )
        .expect("store"),
        bundles,
    )
    .await;
    let made = read_tree(tmp.path());
    if std::env::var_os("CAIRN_UPDATE_GOLDEN").is_some() {
        let dir = golden_dir(bundles);
        let _ = std::fs::remove_dir_all(&dir);
        for (rel, bytes) in &made {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, bytes).expect("write");
        }
        return;
    }
    let golden = read_tree(&golden_dir(bundles));
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&made), names(&golden), "the set of objects changed");
    // The done session holds the writer's process id: the reader test
    // checks the committed one instead.
    for (rel, bytes) in made.iter().filter(|(rel, _)| !rel.starts_with("sessions")) {
        assert!(
            golden[rel] == *bytes,
            "object {rel} changed: the format is frozen"
        );
    }
}

/// Opens a copy of a committed set, so nothing can touch the committed
/// files.
async fn open_copy(bundles: bool, tmp: &Path) -> Repository {
    for (rel, bytes) in read_tree(&golden_dir(bundles)) {
        let p = tmp.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, bytes).expect("write");
    }
    let store =
        Store::open(tmp.to_str().expect("utf8"), cairn_store::Create::Never).expect("store");
    Repository::open(store, PASSWORD, OpenOptions::default())
        .await
        .expect("open")
}

/// A repository written before bundles existed takes a backup that writes
/// them, then reads its old snapshot and the new one and passes check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_repository_takes_a_backup_with_bundles_and_reads_both_snapshots() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = open_copy(false, tmp.path()).await;
    let (old_id, _) = repo.find_snapshot("latest").await.expect("old snapshot");
    // Its packs are 64 KiB: bundles of 16 KiB, of blobs up to 2 KiB.
    let small: Vec<Vec<u8>> = (0..40)
        .map(|i| format!("small file {i}\n").repeat(40).into_bytes())
        .collect();
    let writer = BlobWriter::new(&repo).expect("writer");
    let files = small.clone();
    let (writer, root) = tokio::task::spawn_blocking(move || {
        let mut nodes = Vec::new();
        for (i, data) in files.iter().enumerate() {
            let id = writer.add_blob(Kind::Data, data).expect("add").0;
            nodes.push(file_node(&format!("s{i:02}"), vec![id], data.len() as u64));
        }
        let plain = Tree { nodes }.encode().expect("encode");
        let root = writer.add_blob(Kind::Tree, &plain).expect("add").0;
        (writer, root)
    })
    .await
    .expect("join");
    writer.finish().await.expect("finish");
    let new_id = repo.save_snapshot(&snapshot_of(root)).await.expect("save");
    assert_ne!(new_id, old_id);

    let repo = open_copy_again(&repo).await;
    for data in &small {
        let id = repo.keys().id_of(data);
        assert_eq!(repo.locate(&id).expect("indexed").kind, Kind::Bundle);
        assert_eq!(&repo.read_blob(Kind::Data, &id).await.expect("read"), data);
    }
    let old = repo.load_snapshot(&old_id).await.expect("old snapshot");
    let root = repo.load_tree(&old.tree).await.expect("old root");
    for (name, data) in contents() {
        let node = root.find(name.as_bytes()).expect("node");
        let mut got = Vec::new();
        for id in &node.content {
            assert_eq!(repo.locate(id).expect("indexed").kind, Kind::Data);
            got.extend(repo.read_blob(Kind::Data, id).await.expect("blob"));
        }
        assert!(got == data, "{name} content differs");
    }
    let mut o = CheckOptions::default();
    o.read_data = true;
    let report = repo.check(o).await.expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);
}

/// The same store opened afresh, as another process would.
async fn open_copy_again(repo: &Repository) -> Repository {
    Repository::open(repo.store().clone(), PASSWORD, OpenOptions::default())
        .await
        .expect("reopen")
}

async fn read_committed(bundles: bool) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = open_copy(bundles, tmp.path()).await;
    assert_eq!(repo.config().chunker.min_size, 16 * 1024);
    let (snap_id, snap) = repo.find_snapshot("latest").await.expect("snapshot");
    // The writer's session ended with a done record (session format v2)
    // naming the snapshot.
    let sessions = repo.list_sessions(TIME).await.expect("sessions");
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].session.done, Some(snap_id));
    assert_eq!(sessions[0].session.started, TIME);
    assert_eq!(snap.tags, vec!["golden".to_owned()]);
    assert_eq!(snap.time.secs, TIME);
    let root = repo.load_tree(&snap.tree).await.expect("root tree");
    let names: Vec<&[u8]> = root.nodes.iter().map(|n| n.name.as_slice()).collect();
    assert_eq!(
        names,
        [
            &b"hello.txt"[..],
            b"link",
            b"noise.bin",
            b"sub",
            b"text.txt"
        ]
    );
    for (name, data) in contents() {
        let node = root.find(name.as_bytes()).expect("node");
        assert_eq!(node.mtime.nanos, 123_456_789);
        let mut got = Vec::new();
        for id in &node.content {
            // Every chunk is small: in v2, each lies in the one bundle.
            let kind = repo.locate(id).expect("indexed").kind;
            assert_eq!(kind, if bundles { Kind::Bundle } else { Kind::Data });
            got.extend(repo.read_blob(Kind::Data, id).await.expect("blob"));
        }
        assert!(got == data, "{name} content differs");
    }
    let report = repo
        .check({
            let mut o = CheckOptions::default();
            o.read_data = true;
            o
        })
        .await
        .expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);
    assert!(report.blobs_verified >= 5);
}
