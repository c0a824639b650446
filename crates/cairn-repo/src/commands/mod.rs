//! The maintenance commands, each as observe → plan → apply: what the
//! repository holds is read first, a pure function decides what to change
//! (table-tested without a store in each module's tests), and the changes
//! are applied in the order the module documents.
//!
//! - [`check`]: which objects and packs to verify; the report.
//! - [`forget`]: which snapshots a retention policy removes
//!   ([`forget::plan`], Object Lock holds in `hold_retained`).
//! - [`lock`]: Object Lock upkeep (`extend`, `recover`).
//! - [`prune`]: what to tombstone, repack and delete (`prune_plan`), with
//!   the safety checks against concurrent writers (`prune_checks`),
//!   archival packs (`prune_cold`) and Object Lock (`prune_lock`).
//! - [`repair`]: which index files a rebuilt index replaces and which packs
//!   it lists (`repair::plan`).
//!
//! [`Repository`] keeps the primitives (open, read, write, list, the
//! index, sessions, keys, settings); the commands are functions of a
//! repository built on those, and [`Maintenance`] is how callers reach
//! them, as `repo.prune(opts)` once the trait is in scope: the model is
//! object_store's `ObjectStore`/`ObjectStoreExt`.

pub(crate) mod check;
pub(crate) mod forget;
pub mod lock;
pub(crate) mod prune;
pub(crate) mod prune_changes;
pub(crate) mod prune_checks;
pub(crate) mod prune_cold;
pub(crate) mod prune_lock;
pub(crate) mod prune_plan;
pub(crate) mod prune_ripe;
pub(crate) mod repair;

use std::future::Future;

use crate::ForgetReport;
use crate::retention::Policy;
use crate::{
    CheckOptions, CheckReport, ExtendProgress, ExtendReport, MetadataSource, PruneOptions,
    PruneReport, ReadData, RepairReport, Repository, Result, RunMode, WarmOptions,
};
use cairn_core::Id;

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Repository {}
}

/// The maintenance commands of a [`Repository`]: check, forget, prune,
/// repair and the Object Lock upkeep. Each observes the repository through
/// its primitives, decides in a pure plan, and applies the plan in the
/// order its module documents. Bring the trait into scope
/// (`use cairn_repo::Maintenance`) to call them as methods. Sealed: only
/// [`Repository`] implements it.
pub trait Maintenance: sealed::Sealed {
    /// Checks the repository. Problems are collected in the report, not
    /// returned as errors; `Err` means the check itself could not run.
    fn check(&self, opts: CheckOptions) -> impl Future<Output = Result<CheckReport>> + Send;

    /// [`check`](Maintenance::check), reading the packs `read` selects,
    /// from the repository itself (the local cache is not used).
    fn check_with(&self, read: ReadData) -> impl Future<Output = Result<CheckReport>> + Send;

    /// [`check_with`](Maintenance::check_with), with the index, snapshots
    /// and trees read from `metadata`: from the local cache where it holds
    /// them, damage to the repository's copies of those can go unnoticed.
    fn check_using(
        &self,
        read: ReadData,
        metadata: MetadataSource,
    ) -> impl Future<Output = Result<CheckReport>> + Send;

    /// [`check_using`](Maintenance::check_using), warming up the packs it
    /// reads (when `warm.when` says so; it always waits) before reading
    /// them or their headers.
    fn check_warming(
        &self,
        read: ReadData,
        metadata: MetadataSource,
        warm: &WarmOptions,
    ) -> impl Future<Output = Result<CheckReport>> + Send;

    /// Applies a retention policy to every group of snapshots and, unless
    /// [`RunMode::DryRun`], deletes the snapshots it does not keep. An
    /// empty policy is refused: it would delete every snapshot. Under
    /// Object Lock, a snapshot whose retention has not ended is kept and
    /// reported ([`ForgetGroup::retained`](crate::ForgetGroup)); a later
    /// run removes it.
    fn forget(
        &self,
        policy: &Policy,
        mode: RunMode,
    ) -> impl Future<Output = Result<ForgetReport>> + Send;

    /// Forgets one snapshot: deletes it after checking it exists and opens
    /// with this repository's key (so a wrong id cannot delete anything
    /// else). Returns false if it was already gone. Its data is freed by a
    /// later [`prune`](Maintenance::prune).
    fn forget_snapshot(&self, id: &Id) -> impl Future<Output = Result<bool>> + Send;

    /// Runs prune (see [`prune`]'s module docs). Refuses a grace period
    /// below [`MIN_GRACE`](crate::MIN_GRACE), and refuses to run while
    /// another live prune session exists.
    fn prune(&self, opts: PruneOptions) -> impl Future<Output = Result<PruneReport>> + Send;

    /// Rebuilds the index from every pack's header (see [`repair`]'s
    /// module docs); with [`RunMode::DryRun`] only reports what it would
    /// change.
    fn repair_index(&self, mode: RunMode) -> impl Future<Output = Result<RepairReport>> + Send;

    /// Extends the retention of everything the repository needs (see
    /// [`lock`]'s module docs), calling `progress` after each object.
    /// Refuses a repository without a lock setting. An object that cannot
    /// be extended is counted and named in the report; the run goes on.
    fn extend_locks(
        &self,
        progress: &(dyn Fn(ExtendProgress) + Send + Sync),
    ) -> impl Future<Output = Result<ExtendReport>> + Send;
}

impl Maintenance for Repository {
    fn check(&self, opts: CheckOptions) -> impl Future<Output = Result<CheckReport>> + Send {
        check::check(self, opts)
    }

    fn check_with(&self, read: ReadData) -> impl Future<Output = Result<CheckReport>> + Send {
        check::check_with(self, read)
    }

    fn check_using(
        &self,
        read: ReadData,
        metadata: MetadataSource,
    ) -> impl Future<Output = Result<CheckReport>> + Send {
        check::check_using(self, read, metadata)
    }

    fn check_warming(
        &self,
        read: ReadData,
        metadata: MetadataSource,
        warm: &WarmOptions,
    ) -> impl Future<Output = Result<CheckReport>> + Send {
        check::check_warming(self, read, metadata, warm)
    }

    fn forget(
        &self,
        policy: &Policy,
        mode: RunMode,
    ) -> impl Future<Output = Result<ForgetReport>> + Send {
        forget::forget(self, policy, mode)
    }

    fn forget_snapshot(&self, id: &Id) -> impl Future<Output = Result<bool>> + Send {
        forget::forget_snapshot(self, id)
    }

    fn prune(&self, opts: PruneOptions) -> impl Future<Output = Result<PruneReport>> + Send {
        prune::prune(self, opts)
    }

    fn repair_index(&self, mode: RunMode) -> impl Future<Output = Result<RepairReport>> + Send {
        repair::repair_index(self, mode)
    }

    fn extend_locks(
        &self,
        progress: &(dyn Fn(ExtendProgress) + Send + Sync),
    ) -> impl Future<Output = Result<ExtendReport>> + Send {
        lock::extend_locks(self, progress)
    }
}
