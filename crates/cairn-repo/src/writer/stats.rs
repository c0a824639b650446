//! What a writer added, counted as it goes.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a writer added to the repository.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WriterStats {
    /// New data blobs.
    pub data_blobs: u64,
    /// New tree blobs.
    pub tree_blobs: u64,
    /// Plaintext bytes of the new blobs.
    pub bytes_added: u64,
    /// Sealed bytes of the new blobs.
    pub bytes_stored: u64,
    /// Data packs uploaded.
    pub data_packs: u64,
    /// Tree packs uploaded.
    pub tree_packs: u64,
    /// Index files written.
    pub index_files: u64,
}

/// The counters behind [`WriterStats`], bumped by every thread.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) data_blobs: AtomicU64,
    pub(super) tree_blobs: AtomicU64,
    pub(super) bytes_added: AtomicU64,
    pub(super) bytes_stored: AtomicU64,
    pub(super) data_packs: AtomicU64,
    pub(super) tree_packs: AtomicU64,
    pub(super) index_files: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> WriterStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WriterStats {
            data_blobs: g(&self.data_blobs),
            tree_blobs: g(&self.tree_blobs),
            bytes_added: g(&self.bytes_added),
            bytes_stored: g(&self.bytes_stored),
            data_packs: g(&self.data_packs),
            tree_packs: g(&self.tree_packs),
            index_files: g(&self.index_files),
        }
    }
}
