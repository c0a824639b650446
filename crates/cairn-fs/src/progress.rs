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

    /// Counts the regular files and bytes under `paths` into the totals,
    /// so a front end can show a percentage and an estimate; stops early
    /// (leaving the totals unset) once `stop` says so or the run is
    /// cancelled. Exclusions are not applied: the totals are an upper
    /// bound. Meant for a thread of its own, beside the run.
    pub fn estimate_totals(
        &self,
        paths: &[std::path::PathBuf],
        one_file_system: bool,
        stop: impl Fn() -> bool,
    ) {
        let (mut files, mut bytes) = (0u64, 0u64);
        for p in paths {
            for e in walkdir::WalkDir::new(p)
                .same_file_system(one_file_system)
                .into_iter()
                .flatten()
            {
                if stop() || self.is_cancelled() {
                    return;
                }
                if e.file_type().is_file() {
                    files += 1;
                    bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
        }
        self.total_files.store(files, Ordering::Relaxed);
        self.total_bytes.store(bytes, Ordering::Relaxed);
    }
}

/// `1536` → `1.5 KiB`: sizes for people, in binary units.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(
            human_bytes(u64::MAX),
            "16384.0 PiB",
            "PiB is the largest unit"
        );
    }

    #[test]
    fn totals_count_regular_files_and_stop_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a"), [0u8; 100]).expect("write");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::fs::write(dir.path().join("d/b"), [0u8; 23]).expect("write");
        std::os::unix::fs::symlink("a", dir.path().join("link")).expect("symlink");
        let p = Progress::default();
        p.estimate_totals(&[dir.path().to_owned()], true, || false);
        assert_eq!(p.get(), (0, 0, 2, 123));
        let q = Progress::default();
        q.estimate_totals(&[dir.path().to_owned()], true, || true);
        assert_eq!(q.get(), (0, 0, 0, 0), "stopped: no totals");
    }
}
