//! Shared helpers for cairn-repo's integration tests: a repository on a
//! fixed clock, and "backups" made of whole blobs (no file system needed).

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use cairn_core::format::{Node, NodeKind, Tree};
use cairn_core::{FixedClock, Id, Kind};
use cairn_repo::{BlobWriter, InitOptions, OpenOptions, Repository};
use cairn_store::Store;

pub mod gate;

pub const PASSWORD: &[u8] = b"maintenance";
pub const T0: i64 = 1_800_000_000;

/// A fresh in-memory repository whose clock the test moves.
pub async fn repo() -> (Repository, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(T0));
    let mut opts = InitOptions::insecure_fast_for_tests();
    opts.data_pack_size = Some(64 * 1024);
    opts.clock = clock.clone();
    let repo = Repository::init(Store::memory(), PASSWORD, opts)
        .await
        .expect("init");
    (repo, clock)
}

/// Opens `repo`'s store again (another process, as far as the repository
/// can tell) on `clock`.
pub async fn reopen(repo: &Repository, clock: Arc<FixedClock>) -> Repository {
    let mut opts = OpenOptions::default();
    opts.clock = clock;
    Repository::open(repo.store().clone(), PASSWORD, opts)
        .await
        .expect("open")
}

/// Deterministic, incompressible content of `len` bytes for file number `n`.
pub use cairn_testkit::noise as content;

/// Adds each file as one data blob and a root tree listing them; returns
/// the root tree id. Blocking: call it off the async threads.
pub fn add_tree(writer: &BlobWriter, files: &[(String, Vec<u8>)]) -> Id {
    let mut nodes = Vec::new();
    for (name, data) in files {
        let (id, _) = writer.add_blob(Kind::Data, data).expect("add");
        let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::File);
        n.size = data.len() as u64;
        n.content = vec![id];
        nodes.push(n);
    }
    let mut tree = Tree { nodes };
    tree.sort();
    let plain = tree.encode().expect("encode");
    writer.add_blob(Kind::Tree, &plain).expect("add tree").0
}

/// Saves a snapshot of `root` at the repository's time.
pub async fn commit(repo: &Repository, host: &str, root: Id) -> Id {
    let snap = cairn_testkit::snapshot_of(root, repo.clock().now(), host);
    repo.save_snapshot(&snap).await.expect("save snapshot")
}

/// Stores each file as one data blob under a root tree and saves a snapshot.
pub async fn backup(repo: &Repository, host: &str, files: &[(String, Vec<u8>)]) -> Id {
    backup_by(repo, BlobWriter::new(repo).expect("writer"), host, files).await
}

/// [`backup`] through `writer`.
pub async fn backup_by(
    repo: &Repository,
    writer: BlobWriter,
    host: &str,
    files: &[(String, Vec<u8>)],
) -> Id {
    let files = files.to_vec();
    let (writer, root) = tokio::task::spawn_blocking(move || {
        let root = add_tree(&writer, &files);
        (writer, root)
    })
    .await
    .expect("join");
    writer.finish().await.expect("finish");
    commit(repo, host, root).await
}

/// Reads every file of a snapshot back.
pub async fn restore(repo: &Repository, snap: &Id) -> Vec<(String, Vec<u8>)> {
    let s = repo.load_snapshot(snap).await.expect("snapshot");
    let tree = repo.load_tree(&s.tree).await.expect("tree");
    let mut out = Vec::new();
    for n in &tree.nodes {
        let mut data = Vec::new();
        for c in &n.content {
            data.extend(repo.read_blob(Kind::Data, c).await.expect("blob"));
        }
        out.push((String::from_utf8_lossy(&n.name).into_owned(), data));
    }
    out
}

/// Total bytes stored under `prefix`.
pub async fn size_of(repo: &Repository, prefix: &str) -> u64 {
    repo.store()
        .list(prefix)
        .await
        .expect("list")
        .iter()
        .map(|o| o.size)
        .sum()
}

/// Number of objects under `prefix`.
pub async fn count(repo: &Repository, prefix: &str) -> usize {
    repo.store().list(prefix).await.expect("list").len()
}

/// Makes a running writer refresh its session at the repository's current
/// time: adds a blob of pack size (content number `n`), so a pack is
/// uploaded and the uploader looks at the clock, then waits until the
/// session object shows the refresh. Returns the writer.
pub async fn keep_alive(repo: &Repository, writer: BlobWriter, n: u64) -> BlobWriter {
    let now = repo.clock().now();
    let id = writer.session();
    let writer = tokio::task::spawn_blocking(move || {
        writer
            .add_blob(Kind::Data, &content(n, 70 * 1024))
            .expect("add");
        writer
    })
    .await
    .expect("join");
    // A condition, not a deadline: the bound only stops a broken test.
    for _ in 0..10_000 {
        let s = repo.list_sessions(now).await.expect("sessions");
        if s.iter()
            .any(|s| s.session.id == id && s.session.refreshed >= now)
        {
            return writer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("session {id} was never refreshed at {now}");
}

/// A repository on a store a [`gate::Gate`] controls, whose server clock is
/// the test's clock, and a way to open the same objects without the gate.
pub struct Gated {
    pub repo: Repository,
    pub gate: Arc<gate::Gate>,
    pub clock: Arc<FixedClock>,
    pub plain: Store,
}

pub async fn gated_repo() -> Gated {
    let clock = Arc::new(FixedClock::new(T0));
    let mem: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let gate = Arc::new(gate::Gate::with_server_clock(clock.clone()));
    let gated = gate::GateStore {
        inner: mem,
        gate: gate.clone(),
    };
    let gated: Arc<dyn object_store::ObjectStore> = Arc::new(gated);
    let store = Store::from_object_store(gated.clone(), "gated".into());
    let mut opts = InitOptions::insecure_fast_for_tests();
    opts.data_pack_size = Some(64 * 1024);
    opts.clock = clock.clone();
    let repo = Repository::init(store.clone(), PASSWORD, opts)
        .await
        .expect("init");
    // Every handle goes through the gate (so the server clock stamps every
    // write); "plain" handles are simply not the ones a test pauses.
    Gated {
        repo,
        gate,
        clock,
        plain: store,
    }
}

/// Another handle on `store` (another process) on `clock`.
pub async fn open_on(store: &Store, clock: Arc<FixedClock>) -> Repository {
    let mut opts = OpenOptions::default();
    opts.clock = clock;
    Repository::open(store.clone(), PASSWORD, opts)
        .await
        .expect("open")
}

/// A store under a new prefix `name-PID` of the S3 server tests run
/// against (Garage, started by scripts/garage.sh); `None`, said, without
/// `CAIRN_TEST_S3_URL` (a failure if `CAIRN_REQUIRE_S3` is set).
pub fn garage(name: &str) -> Option<Store> {
    let Ok(base) = std::env::var("CAIRN_TEST_S3_URL") else {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_S3").is_none(),
            "CAIRN_REQUIRE_S3 is set but CAIRN_TEST_S3_URL is not"
        );
        eprintln!("SKIP: CAIRN_TEST_S3_URL is not set");
        return None;
    };
    let (head, query) = base.split_once('?').unwrap_or((&base, ""));
    let url = format!(
        "{}/{name}-{}?{query}",
        head.trim_end_matches('/'),
        std::process::id()
    );
    Some(Store::open(&url, cairn_store::Create::IfMissing).expect("store"))
}
