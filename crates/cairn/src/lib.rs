//! # cairn
//!
//! A deduplicating, encrypted, content-addressed backup engine. This crate
//! is the small API meant for embedding cairn in other tools; the `cairn`
//! command-line tool is built on exactly this API.
//!
//! - [`Store`] opens storage from a URL (a local path, `file://`, `memory://`).
//! - [`Repository`] creates ([`Repository::init`]) or unlocks
//!   ([`Repository::open`]) a repository with a password.
//! - [`backup()`] turns paths into a [`Snapshot`]; [`restore()`] writes one back.
//! - [`warm_up()`] asks S3 to restore the archived packs (`GLACIER`,
//!   `DEEP_ARCHIVE`) a restore will read; [`restore()`] does it by itself
//!   when the repository's data storage class is archival.
//! - [`Maintenance`] holds the commands beside the repository's
//!   primitives: [`Maintenance::check`] verifies that every snapshot can be
//!   restored; `forget`, `prune` and `repair_index` keep the repository in
//!   shape. `use cairn::Maintenance` to call them as methods.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use cairn::{BackupOptions, InitOptions, Progress, Repository, RestoreOptions, Store};
//!
//! let source = tempfile::tempdir()?;
//! std::fs::write(source.path().join("hello.txt"), "hello, volume")?;
//!
//! let store = Store::memory();
//! let repo = Repository::init(store, b"correct horse", InitOptions::insecure_fast_for_tests()).await?;
//!
//! let mut options = BackupOptions::new(&repo, vec![source.path().to_owned()]);
//! options.tags = vec!["example".into()];
//! let outcome = cairn::backup(&repo, options, Arc::new(Progress::default())).await?;
//! assert_eq!(outcome.snapshot.stats.files_new, 1);
//!
//! let target = tempfile::tempdir()?;
//! let mut options = RestoreOptions::new(target.path());
//! options.owners = Some(false);
//! let restored = cairn::restore(&repo, &outcome.snapshot, options, Arc::new(Progress::default())).await?;
//! assert!(restored.errors.is_empty());
//! assert_eq!(std::fs::read_to_string(target.path().join("hello.txt"))?, "hello, volume");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub use cairn_core::format::{
    Config, IndexFile, KdfParams, Lock, LockMode, Node, NodeKind, RootLayout, Settings, Snapshot,
    SnapshotStats, Source, Timestamp, Tree,
};
pub use cairn_core::{Id, Kind};
pub use cairn_fs::{
    BackupOptions, BackupOutcome, Change, ChangeDetection, ChangeKind, Entry, Overwrite,
    ParentChoice, Progress, RestoreOptions, RestoreOutcome, Selection, Warning, backup,
    backup_stream, diff, dump, find, human_bytes, resolve, restore, select_parent, walk,
};
pub use cairn_fs::{
    CopyMemo, CopyOutcome, CopyPlan, copy_snapshot, execute_copies, learn_copied, plan_copies,
    same_backup, same_chunking,
};
pub use cairn_fs::{MetadataReadahead, data_packs, warm_for_copy, warm_up};
pub use cairn_repo::{
    BlobLocation, CheckOptions, CheckProblem, CheckReport, IndexView, InitOptions, KeyInfo,
    Maintenance, MetadataSource, OpenOptions, Repository, RunMode, WriterStats,
};
pub use cairn_repo::{
    ForgetReport, PruneOptions, PruneReport, ReadData, RepairReport, SessionInfo, SettingsChange,
    retention,
};
pub use cairn_repo::{Tier, WarmOptions, WarmReport, WarmTally, WarmWhen};
pub use cairn_store::{
    Availability, Cache, Create, HttpFaults, ObjectStatus, Store, StoreError, StoreOptions,
};

/// Tunes the C allocator for cairn's workload; binaries call it first
/// thing in `main`, before starting threads. It changes the whole process,
/// so the library never calls it itself.
///
/// glibc gives threads that contend for the heap arenas of their own (up
/// to eight per core), and each arena keeps what is freed into it. Backups
/// and restores free buffers of a few MiB on many threads (rayon, tokio's
/// blocking pool), which left the resident set at two to three times the
/// memory in use; with one arena it stays close to it, and measured no
/// slower (docs/PERFORMANCE.md). Does nothing with other C libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets a tuning parameter of glibc's allocator; it
    // is thread-safe and has no memory-safety preconditions.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Has the C allocator map allocations of 256 KiB and more (chunks, sealed
/// blobs, bundles, large trees) on their own and unmap them when freed; the
/// `backup`, `prune` and `check` commands call it, as do `cairn-controller
/// maintain` and cairn-agent at its start (a long-running process keeps a
/// bounded resident set for the restores' extra page faults). glibc's
/// default moves that threshold up to the largest block freed so far, so
/// after the first freed chunk every chunk-sized buffer came from the heap,
/// which kept what fragmentation left behind. A cold backup of the
/// PVC-like dataset peaked at 87–89 MiB with the default and at 76–77 MiB
/// with the fixed threshold, in the same time (160k more page faults). A
/// restore also went from 86–94 to 79–81 MiB, but with 477k more page
/// faults (the opened chunks of 2.6 GiB faulted in afresh): about half a
/// second of system time, so restores keep the default. A check of ten
/// million blobs whose trees list a million chunks each peaked at 116 MiB
/// with the default and 75 MiB with it, a prune at 102 and 74 MiB (ADR
/// 0023). Process-wide, and never undone; does nothing with other C
/// libraries.
pub fn unmap_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: as in `tune_allocator`.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Gives back to the system the read windows backups keep for reuse (up
/// to one per reading thread and one more, 12 MiB each by default) and the
/// memory the C allocator holds free. A long-running process calls it when
/// a backup or restore ends (cairn-agent does, after every job): glibc
/// returns freed heap memory only from the top of the heap, so what a
/// job's many buffers left free below stayed resident until the next job
/// reused it. The trimming does nothing with other C libraries.
pub fn release_free_memory() {
    cairn_fs::release_windows();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only returns free memory to the system; it is
    // thread-safe and has no memory-safety preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Lets a closed standard output end the process quietly, as it does
/// other command-line tools (`cairn snapshots --json | head`): Rust
/// programs ignore SIGPIPE, so a write to a closed pipe fails and
/// `println!` panics. Binaries call it first thing in `main`; the library
/// never does.
pub fn default_sigpipe() {
    #[cfg(unix)]
    #[allow(unsafe_code)]
    // SAFETY: called before any thread starts; it only restores the
    // default disposition of one signal, with no handler involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub mod error;
pub use error::{Error, ErrorKind};

/// Lower layers, for tools that need more than the facade offers.
pub mod layers {
    pub use cairn_core as core;
    pub use cairn_fs as fs;
    pub use cairn_repo as repo;
    pub use cairn_store as store;
}
