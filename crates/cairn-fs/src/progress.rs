//! Live counters a front end can poll to draw progress.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Progress of a backup or restore, updated as work completes.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files finished.
    pub files: AtomicU64,
    /// Bytes finished (read for a backup, written for a restore).
    pub bytes: AtomicU64,
    /// Bytes expected in total, when known.
    pub total_bytes: AtomicU64,
    /// Files expected in total, when known.
    pub total_files: AtomicU64,
    current: Mutex<String>,
    cancelled: AtomicBool,
}

impl Progress {
    pub(crate) fn add(&self, files: u64, bytes: u64) {
        self.files.fetch_add(files, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn set_current(&self, path: &std::path::Path) {
        if let Ok(mut c) = self.current.try_lock() {
            c.clear();
            c.push_str(&path.to_string_lossy());
        }
    }
    /// Asks the run to stop. A backup stops within one read buffer, waits
    /// for the uploads in flight, indexes them (so the next backup reuses
    /// them) and returns [`crate::Error::Cancelled`]; a restore stops
    /// between chunks and returns the same error, leaving finished files.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
    /// Whether [`Progress::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
    pub(crate) fn check(&self) -> crate::Result<()> {
        if self.is_cancelled() {
            return Err(crate::Error::Cancelled);
        }
        Ok(())
    }
    /// The path most recently started.
    pub fn current(&self) -> String {
        self.current.lock().map(|c| c.clone()).unwrap_or_default()
    }
    /// (files, bytes, total files, total bytes).
    pub fn get(&self) -> (u64, u64, u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.total_files.load(Ordering::Relaxed),
            self.total_bytes.load(Ordering::Relaxed),
        )
    }
}
