//! # cairn-fs
//!
//! The file-system side of cairn: the backup pipeline (walk, skip unchanged
//! files, read, chunk, hash, deduplicate, seal, pack), the restore engine
//! (parallel ranged reads, positional writes, metadata), and browsing of
//! snapshot trees.

#![warn(missing_docs)]

mod backup;
mod browse;
mod chunking;
mod error;
mod meta;
mod owners;
mod progress;
mod restore;
mod xattr;

pub use backup::{
    BackupOptions, BackupOutcome, CACHEDIR_SIGNATURE, ParentChoice, Selection, backup,
    select_parent,
};
pub use browse::{Entry, resolve, walk};
pub use error::{Error, Result, Warning};
pub use progress::Progress;
pub use restore::{RestoreOptions, RestoreOutcome, restore};
