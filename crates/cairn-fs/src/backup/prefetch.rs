//! Reading small files ahead of a first backup's walk.
//!
//! On a cold cache the walk waits on the disk for every small file: one
//! read at a time per thread, with the CPU idle meanwhile (the kernel's
//! own readahead helps only within a file). [`ContentPrefetch`] goes
//! through the tree in the walk's order on a thread of its own and asks
//! the kernel to start reading each small regular file
//! (`posix_fadvise(WILLNEED)`, which queues the reads and does not wait
//! for them), so many reads are in flight and the walk finds the pages in
//! memory.
//!
//! It runs only for a backup without a parent snapshot, where every file
//! is read (in a later backup most files are unchanged and never opened,
//! so reading them ahead would only waste the disk). It holds no buffer:
//! what it reads goes to the page cache, and it stays at most
//! [`DISTANCE`] bytes of files ahead of what the walk has read, so it does
//! not push out of the cache what it read before the walk gets there. It
//! keeps nothing it sees and changes no result of the backup.

use std::ffi::OsStr;
use std::num::NonZeroU64;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::fs::{Advice, FileType, Mode, OFlags};

use super::walk::open_same;
use crate::{Progress, at};

/// Files up to this size are read ahead; the kernel reads larger ones
/// ahead by itself once the walk starts reading them.
pub(super) const SMALL: u64 = 1 << 20;

/// How many bytes of files the prefetch may be ahead of the walk.
pub(super) const DISTANCE: u64 = 64 << 20;

/// How deep it follows directories (each level holds a descriptor open).
const MAX_DEPTH: usize = 128;

/// How long it sleeps when it is [`DISTANCE`] ahead, before it looks at
/// the walk again.
const PAUSE: Duration = Duration::from_millis(1);

/// What the prefetch did, for tests and logs.
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// Small files whose reading was started.
    pub(super) files: AtomicU64,
    /// Their bytes.
    pub(super) bytes: AtomicU64,
    /// Times it waited for the walk.
    pub(super) waits: AtomicU64,
}

/// The prefetch thread, told to stop (and not waited for) when dropped:
/// a backup never waits for it, even if a file system stopped answering.
#[derive(Debug)]
pub(super) struct ContentPrefetch {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    thread: Option<JoinHandle<()>>,
}

/// Starts reading ahead for the backup walk of `paths` (stopped when
/// dropped).
pub(super) fn start(paths: &[PathBuf], progress: &Arc<Progress>) -> ContentPrefetch {
    ContentPrefetch::start(paths.to_vec(), progress.clone(), DISTANCE)
}

impl ContentPrefetch {
    /// Starts reading ahead the small files under `paths`, depth first in
    /// name order as the walk goes, without leaving each path's file
    /// system, paced by `progress` (the walk's bytes and current path).
    pub(super) fn start(
        paths: Vec<PathBuf>,
        progress: Arc<Progress>,
        distance: u64,
    ) -> ContentPrefetch {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let mut state = State {
            progress,
            distance,
            stop: stop.clone(),
            counts: counts.clone(),
            ahead: 0,
        };
        let thread = std::thread::Builder::new()
            .name("cairn-prefetch".into())
            .spawn(move || {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
                for p in paths {
                    let Ok(dir) = rustix::fs::open(&p, flags, Mode::empty()) else {
                        continue;
                    };
                    if let Ok(m) = at::fstat(dir.as_fd()) {
                        let mut path = p;
                        state.visit(dir, &mut path, m.dev(), 0);
                    }
                }
            })
            .ok();
        ContentPrefetch {
            stop,
            counts,
            thread,
        }
    }

    /// Stops the prefetch, waits for it, and returns what it did.
    #[cfg(test)]
    pub(super) fn finish(mut self) -> Arc<Counts> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.counts.clone()
    }

    /// Whether the thread has ended on its own.
    #[cfg(test)]
    fn done(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for ContentPrefetch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Detached, not joined: it ends at its next entry.
        drop(self.thread.take());
        tracing::debug!(
            files = self.counts.files.load(Ordering::Relaxed),
            bytes = self.counts.bytes.load(Ordering::Relaxed),
            waits = self.counts.waits.load(Ordering::Relaxed),
            "small files read ahead"
        );
    }
}

struct State {
    progress: Arc<Progress>,
    distance: u64,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    /// Bytes of regular files passed so far, read ahead or not: where the
    /// prefetch is, counted as the walk counts what it has read.
    ahead: u64,
}

impl State {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Every entry of `dir` (at `path`), directories on `dev` entered.
    fn visit(&mut self, dir: OwnedFd, path: &mut PathBuf, dev: u64, depth: usize) {
        let Ok(names) = at::list(dir.as_fd()) else {
            return;
        };
        for name in names {
            if self.stopped() {
                return;
            }
            let name = at::os(&name);
            let Ok(m) = at::stat(dir.as_fd(), name) else {
                continue;
            };
            path.push(name);
            match m.file_type() {
                FileType::Directory if m.dev() == dev && depth < MAX_DEPTH => {
                    if let Ok(sub) = open_same(dir.as_fd(), name, &m, true) {
                        self.visit(sub, path, dev, depth + 1);
                    }
                }
                FileType::RegularFile => {
                    if self.pace(path) {
                        self.file(dir.as_fd(), name, &m);
                    }
                    self.ahead += m.size();
                }
                _ => {}
            }
            path.pop();
        }
    }

    /// Waits until the walk is within the distance of the file at `path`;
    /// false if told to stop meanwhile.
    fn pace(&mut self, path: &Path) -> bool {
        let mut waited = false;
        loop {
            if self.stopped() {
                return false;
            }
            let read = self.progress.bytes.load(Ordering::Relaxed);
            if self.ahead <= read.saturating_add(self.distance) {
                break;
            }
            // The walk has gone past this file without reading as much as
            // was counted (files it excludes, or a hard link read once):
            // count from where it is.
            if Path::new(&self.progress.current()) >= path {
                self.ahead = read;
                break;
            }
            waited = true;
            std::thread::sleep(PAUSE);
        }
        if waited {
            self.counts.waits.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Starts reading the small file `name` of `dir`, looked at as `m`.
    fn file(&self, dir: BorrowedFd<'_>, name: &OsStr, m: &at::Meta) {
        let Some(len) = NonZeroU64::new(m.size()).filter(|n| n.get() <= SMALL) else {
            return;
        };
        // Opened as the walk opens files (no symlink followed, no FIFO
        // waited on), and only if it is still the file looked at.
        let Ok(fd) = open_same(dir, name, m, false) else {
            return;
        };
        if rustix::fs::fadvise(&fd, 0, Some(len), Advice::WillNeed).is_ok() {
            self.counts.files.fetch_add(1, Ordering::Relaxed);
            self.counts.bytes.fetch_add(len.get(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
#[path = "prefetch_tests.rs"]
mod tests;
