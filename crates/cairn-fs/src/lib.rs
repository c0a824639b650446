//! # cairn-fs
//!
//! The file-system side of cairn: the backup pipeline (walk, skip unchanged
//! files, read, chunk, hash, deduplicate, seal, pack), the restore engine
//! (parallel ranged reads, positional writes, metadata), and browsing of
//! snapshot trees.

#![warn(missing_docs)]

mod at;
mod backup;
mod browse;
mod chunking;
mod diff;
mod dump;
mod error;
mod meta;
mod owners;
mod progress;
mod readahead;
mod restore;
mod warm;
mod xattr;

pub use backup::copy::{
    CopyMemo, CopyOutcome, CopyPlan, copy_snapshot, execute_copies, learn_copied, plan_copies,
    same_backup, same_chunking,
};
pub use backup::{
    BackupOptions, BackupOutcome, CACHEDIR_SIGNATURE, ChangeDetection, ParentChoice, Selection,
    backup, backup_stream, select_parent,
};
pub use browse::{Entry, resolve, walk};
pub use chunking::release_windows;
pub use diff::{Change, ChangeKind, diff, find};
pub use dump::dump;
pub use error::{Error, Result, Warning};
pub use progress::{Progress, human_bytes};
pub use readahead::MetadataReadahead;
pub use restore::{Overwrite, RESTORE_ROUND, RestoreOptions, RestoreOutcome, restore};
pub use warm::{data_packs, warm_for_copy, warm_up};
