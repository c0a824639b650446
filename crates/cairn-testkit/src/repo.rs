//! Repositories in memory on a fixed clock, with the fast test KDF: the
//! least powerful repository that proves a point about the repository.

use std::sync::Arc;

use cairn_core::FixedClock;
use cairn_repo::{InitOptions, OpenOptions, Repository};
use cairn_store::Store;
use object_store::memory::InMemory;

use crate::fault::{FaultPlan, faulty};

/// Where a test repository's clock starts: 2027-01-15, 08:00 UTC. Any
/// fixed time would do; one in the future of every test's writing keeps
/// "older than now" meaning what it says.
pub const T0: i64 = 1_800_000_000;

/// An in-memory repository on a [`FixedClock`] at [`T0`], made with
/// [`InitOptions::insecure_fast_for_tests`] (cheap KDF, small chunks).
pub async fn memory_repository(password: &[u8]) -> Repository {
    MemoryRepository::new(password).await.repo
}

/// An in-memory repository with what a test needs around it: the clock it
/// runs on, the bytes it is stored in, and other handles on them.
#[derive(Debug)]
pub struct MemoryRepository {
    /// The repository, as initialised.
    pub repo: Repository,
    /// Its clock, shared by every handle [`reopen`](Self::reopen) makes:
    /// move it to let time pass (`clock.set(T0 + 86_400)`).
    pub clock: Arc<FixedClock>,
    /// The objects, shared by every handle; damage or inspect them here.
    pub memory: Arc<InMemory>,
    password: Vec<u8>,
}

impl MemoryRepository {
    /// A new repository protected by `password`; see [`memory_repository`].
    pub async fn new(password: &[u8]) -> MemoryRepository {
        MemoryRepository::with(password, |_| {}).await
    }

    /// A new repository whose init options `adjust` changes first (they
    /// already hold the clock, at [`T0`]):
    /// `MemoryRepository::with(pw, |o| o.data_pack_size = Some(64 << 10))`.
    pub async fn with(password: &[u8], adjust: impl FnOnce(&mut InitOptions)) -> MemoryRepository {
        let clock = Arc::new(FixedClock::new(T0));
        let memory = Arc::new(InMemory::new());
        let mut opts = InitOptions::insecure_fast_for_tests();
        opts.now = T0;
        opts.clock = clock.clone();
        adjust(&mut opts);
        let store = Store::from_object_store(memory.clone(), "memory".into());
        let repo = Repository::init(store, password, opts)
            .await
            .unwrap_or_else(|e| panic!("init an in-memory repository: {e}"));
        MemoryRepository {
            repo,
            clock,
            memory,
            password: password.to_vec(),
        }
    }

    /// A plain store on the same objects (its own request counters).
    pub fn store(&self) -> Store {
        Store::from_object_store(self.memory.clone(), "memory".into())
    }

    /// Options that open the repository on the shared clock.
    pub fn open_options(&self) -> OpenOptions {
        let mut o = OpenOptions::default();
        o.clock = self.clock.clone();
        o
    }

    /// Another handle on the same objects and clock: as far as the
    /// repository can tell, another process.
    pub async fn reopen(&self) -> Repository {
        Repository::open(self.store(), &self.password, self.open_options())
            .await
            .unwrap_or_else(|e| panic!("reopen the in-memory repository: {e}"))
    }

    /// A handle whose requests meet the faults of `plan` (see
    /// [`faulty`]); the objects themselves are not changed.
    pub async fn faulty(&self, plan: &FaultPlan) -> Repository {
        faulty(&self.store(), plan)
            .open_with(&self.password, self.open_options())
            .await
            .unwrap_or_else(|e| panic!("open through {plan:?}: {e}"))
    }

    /// Moves the shared clock `secs` forward (backward if negative).
    pub fn advance(&self, secs: i64) {
        use cairn_core::Clock;
        self.clock.set(self.clock.now() + secs);
    }
}

/// A snapshot of the tree `root` taken at `secs` on `host`, of `/data`,
/// its other fields empty: for tests and benchmarks that store trees
/// without a backup.
pub fn snapshot_of(root: cairn_core::Id, secs: i64, host: &str) -> cairn_core::format::Snapshot {
    use cairn_core::format::{RootLayout, Snapshot, SnapshotStats, Source, Timestamp};
    Snapshot {
        time: Timestamp { secs, nanos: 0 },
        tree: root,
        hostname: host.into(),
        username: "test".into(),
        paths: vec![b"/data".to_vec()],
        root_layout: RootLayout::Directory,
        source: Source::Filesystem,
        tags: vec![],
        parent: None,
        stats: SnapshotStats::default(),
        program_version: "test".into(),
    }
}
