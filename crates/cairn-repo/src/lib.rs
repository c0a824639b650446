//! # cairn-repo
//!
//! A cairn repository on top of a [`cairn_store::Store`]: `init` and `open`
//! with a password, key management, the merged blob index, a concurrent
//! [`BlobWriter`] that packs, seals and uploads blobs, blob and tree reads,
//! snapshots, and `check`.
//!
//! Objects are immutable and written in an order that keeps the repository
//! valid at every instant: packs, then the index files that list them, then
//! the snapshot that refers to their blobs.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), cairn_repo::Error> {
//! use cairn_core::Kind;
//! use cairn_repo::{BlobWriter, InitOptions, OpenOptions, Repository};
//!
//! let store = cairn_store::Store::memory();
//! let opts = InitOptions::insecure_fast_for_tests();
//! let repo = Repository::init(store.clone(), b"secret", opts).await?;
//! let writer = BlobWriter::new(&repo)?;
//! // add_blob may wait for uploads to catch up, so it runs off the async threads.
//! let writer = tokio::task::spawn_blocking(move || {
//!     writer.add_blob(Kind::Data, b"hello").map(|_| writer)
//! })
//! .await
//! .expect("join")?;
//! writer.finish().await?;
//!
//! let reopened = Repository::open(store, b"secret", OpenOptions::default()).await?;
//! let id = reopened.keys().id_of(b"hello");
//! assert_eq!(reopened.read_blob(Kind::Data, &id).await?, b"hello");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod bundles;
mod commands;
pub use commands::lock;
mod compact;
mod error;
mod index;
mod keyring;
mod leftovers;
mod levels;
mod options;
mod paths;
mod read;
mod referenced;
mod repack;
mod repository;
pub mod retention;
mod session_handle;
mod sessions;
mod settings;
mod skew;
mod snapshots;
mod sorted_disk;
mod spool;
mod visited;
pub mod warm;
mod windows;
mod writer;

pub use bundles::RangeOpener;
pub use commands::Maintenance;
pub use commands::check::{
    CheckOptions, CheckProblem, CheckReport, MetadataSource, ReadData, check_entries_per_share,
    check_in_memory_entries, check_trees_in_memory,
};
pub use commands::forget::{
    ForgetEntry, ForgetGroup, ForgetReport, GroupKey, hold_retained, plan as plan_forget,
};
pub use commands::lock::{ExtendProgress, ExtendReport, RecoverOptions, RecoverReport, Retained};
pub use commands::prune::{MIN_GRACE, PruneOptions, PruneReport, prune_tombstones_per_file};
pub use commands::repair::RepairReport;
pub use error::{Damaged, Error, Result};
pub use index::{BlobLocation, Index, IndexView};
pub use keyring::KeyInfo;
pub use leftovers::Leftovers;
pub use options::{DEFAULT_INDEX_TABLE_LIMIT, InitOptions, OpenOptions};
pub use repository::Repository;
pub use sessions::{
    REFRESH_INTERVAL, SELF_EXPIRY, SESSION_TIMEOUT, SessionInfo, SessionListing, hostname, username,
};
pub use settings::{SettingsChange, policy_of};
pub use skew::MAX_CLOCK_SKEW;
pub use visited::TreesVisited;
pub use warm::{Tier, WarmOptions, WarmReport, WarmTally, WarmWhen};
pub use writer::{BlobWriter, WriterStats};

/// Whether a maintenance call (`forget`, `repair_index`) changes the
/// repository or only reports what it would change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// Make the changes.
    Apply,
    /// Change nothing; the report says what `Apply` would do.
    DryRun,
}

impl RunMode {
    /// True for [`RunMode::DryRun`].
    pub fn is_dry_run(self) -> bool {
        self == RunMode::DryRun
    }

    /// `DryRun` when `dry_run` (a command-line flag), else `Apply`.
    pub fn dry_run_if(dry_run: bool) -> RunMode {
        if dry_run {
            RunMode::DryRun
        } else {
            RunMode::Apply
        }
    }
}
