//! Faulty storage: a readable plan of what to break, over
//! [`cairn_store::FaultStore`].

use std::sync::Arc;
use std::time::Duration;

use cairn_repo::{OpenOptions, Repository};
use cairn_store::{FaultConfig, FaultStore, Store};

/// What to break, built up in words:
/// `FaultPlan::new().fail_writes_after(20).under("data/")`.
///
/// Faults sit above the backend (and its retries): they model permanent
/// failures and bad data. Read faults are drawn from a seeded generator,
/// so a plan breaks the same requests on every run.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    config: FaultConfig,
}

impl FaultPlan {
    /// Nothing broken yet.
    pub fn new() -> FaultPlan {
        FaultPlan::default()
    }

    /// Only requests for paths that start with `prefix` are affected
    /// (`"data/"` for packs, one pack's path for that pack).
    pub fn under(mut self, prefix: impl Into<String>) -> FaultPlan {
        self.config.prefix = prefix.into();
        self
    }

    /// The first `n` writes (puts, multipart uploads, copies) succeed;
    /// the next one and every one after it fail: a store that goes away
    /// for good mid-run. `fail_writes_after(0)` fails every write.
    pub fn fail_writes_after(mut self, n: u64) -> FaultPlan {
        self.config.fail_writes_after = Some(n);
        self
    }

    /// Every read fails outright.
    pub fn fail_reads(self) -> FaultPlan {
        self.fail_reads_sometimes(1.0)
    }

    /// A fraction (0.0–1.0) of reads fail outright.
    pub fn fail_reads_sometimes(mut self, rate: f64) -> FaultPlan {
        self.config.read_error_rate = rate;
        self
    }

    /// Every read returns one byte less than asked for.
    pub fn truncate_reads(self) -> FaultPlan {
        self.truncate_reads_sometimes(1.0)
    }

    /// A fraction (0.0–1.0) of reads come back one byte short.
    pub fn truncate_reads_sometimes(mut self, rate: f64) -> FaultPlan {
        self.config.truncate_rate = rate;
        self
    }

    /// Every read comes back with one bit flipped (the length is right:
    /// only authentication can tell).
    pub fn corrupt_reads(self) -> FaultPlan {
        self.corrupt_reads_sometimes(1.0)
    }

    /// A fraction (0.0–1.0) of reads come back with one bit flipped.
    pub fn corrupt_reads_sometimes(mut self, rate: f64) -> FaultPlan {
        self.config.corrupt_rate = rate;
        self
    }

    /// Every download breaks off with an error after `bytes` bytes (a
    /// dropped connection).
    pub fn break_reads_after(mut self, bytes: u64) -> FaultPlan {
        self.config.fail_reads_after_bytes = Some(bytes);
        self
    }

    /// Every read (not HEAD) fails as S3 answers for an object in an
    /// archival storage class that is not restored.
    pub fn archived(mut self) -> FaultPlan {
        self.config.archived = true;
        self
    }

    /// Every request waits `latency` first.
    pub fn latency(mut self, latency: Duration) -> FaultPlan {
        self.config.latency = latency;
        self
    }

    /// Listings also show these paths, which do not exist: what a reader
    /// sees when another process deletes objects between list and get.
    pub fn ghosts(mut self, paths: impl IntoIterator<Item = impl Into<String>>) -> FaultPlan {
        self.config.ghosts = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Seeds the generator that picks which reads fail (for the rates).
    pub fn seed(mut self, seed: u64) -> FaultPlan {
        self.config.seed = seed;
        self
    }

    /// The [`FaultConfig`] this plan stands for.
    pub fn config(&self) -> &FaultConfig {
        &self.config
    }
}

/// A store whose requests meet a [`FaultPlan`]'s faults.
#[derive(Debug, Clone)]
pub struct Faulty {
    /// The faulty store: open or init a repository on it.
    pub store: Store,
    /// The fault layer itself, for its counters ([`FaultStore::writes`]).
    pub faults: Arc<FaultStore>,
}

impl Faulty {
    /// The repository in the store, opened through the faults with
    /// default options.
    pub async fn open(&self, password: &[u8]) -> cairn_repo::Result<Repository> {
        self.open_with(password, OpenOptions::default()).await
    }

    /// The repository in the store, opened through the faults.
    pub async fn open_with(
        &self,
        password: &[u8],
        opts: OpenOptions,
    ) -> cairn_repo::Result<Repository> {
        Repository::open(self.store.clone(), password, opts).await
    }
}

/// `store`'s objects behind the faults of `plan`: requests go through a
/// [`FaultStore`] to the same backend, so what gets through is really
/// stored and what the plan breaks never reaches it.
pub fn faulty(store: &Store, plan: &FaultPlan) -> Faulty {
    let faults = Arc::new(FaultStore::new(
        store.object_store().clone(),
        plan.config.clone(),
    ));
    Faulty {
        store: Store::from_object_store(faults.clone(), format!("faulty {}", store.describe())),
        faults,
    }
}
