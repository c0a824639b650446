//! Reading a tree's metadata ahead of the backup walk.
//!
//! A backup cannot compare a file with its parent snapshot before the
//! repository is unlocked, and unlocking is a deliberately slow key
//! derivation (Argon2id, about 0.1 s of one core). On a cold cache the walk
//! that follows then waits on the disk for every directory block and inode.
//! [`MetadataReadahead`] lists and looks at the tree, roughly in the walk's
//! order, on a few threads of its own while the key is derived (several
//! keep several reads in flight): by the time the walk reaches an entry,
//! the kernel has it in memory. What it reads is only a
//! hint to the page and inode caches; nothing it sees is used or kept, so
//! it changes no result of the backup.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rustix::fs::{Mode, OFlags};

use crate::at;

/// How deep the readahead follows directories.
const MAX_DEPTH: usize = 128;

/// Entries looked at before the readahead gives up on its own: a bound on
/// its work, whatever the tree.
const MAX_ENTRIES: u64 = 4_000_000;

/// Threads looking at the tree at once. They spend their time waiting on
/// the disk, not computing: several keep several reads of directory
/// blocks and inodes in flight (a cold `find` of the PVC-like dataset's
/// 44k entries: 0.44 s alone, 0.25 s as four).
const THREADS: usize = 4;

/// A few threads reading the metadata of the trees under some paths,
/// stopped and joined by [`finish`](Self::finish), or stopped and left to
/// end on their own when dropped: a backup never waits for them, even if a
/// `stat` of a file system that stopped answering holds one.
#[derive(Debug)]
pub struct MetadataReadahead {
    work: Arc<Work>,
    threads: Vec<JoinHandle<()>>,
}

/// A directory still to look at: its parent, open, and its name there
/// (opened only when its turn comes, so the queue holds no descriptor
/// per directory), with the device it must be on.
struct Pending {
    parent: Arc<OwnedFd>,
    name: Vec<u8>,
    dev: u64,
    depth: usize,
}

#[derive(Debug, Default)]
struct Work {
    queue: Mutex<Queue>,
    more: Condvar,
    stop: AtomicBool,
    seen: AtomicU64,
}

#[derive(Default)]
struct Queue {
    /// Directories to look at, the next one last (depth first, in name
    /// order, as the walk goes).
    pending: Vec<Pending>,
    /// Threads looking at a directory now (each may add more).
    busy: usize,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("pending", &self.pending.len())
            .field("busy", &self.busy)
            .finish()
    }
}

impl MetadataReadahead {
    /// Starts reading the metadata under `paths`, depth first in name
    /// order, as the backup walk goes, without leaving the file system of
    /// each path (a mount below it may be one the walk excludes, or one
    /// that hangs). Errors (a path that vanished, a directory that cannot
    /// be read) only skip that part: the walk will meet and report them
    /// itself.
    pub fn start(paths: Vec<PathBuf>) -> MetadataReadahead {
        let work = Arc::new(Work::default());
        {
            let mut q = work.lock();
            for p in paths.iter().rev() {
                // A path that is not a directory has nothing to read ahead.
                let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                let Ok(dir) = rustix::fs::open(p, flags, Mode::empty()) else {
                    continue;
                };
                let Ok(m) = at::fstat(dir.as_fd()) else {
                    continue;
                };
                q.pending.push(Pending {
                    parent: Arc::new(dir),
                    name: b".".to_vec(),
                    dev: m.dev(),
                    depth: 0,
                });
            }
        }
        let threads = (0..THREADS)
            .filter_map(|_| {
                let w = work.clone();
                std::thread::Builder::new()
                    .name("cairn-readahead".into())
                    .spawn(move || w.run())
                    .ok()
            })
            .collect();
        MetadataReadahead { work, threads }
    }

    /// Stops the readahead and returns how many entries it looked at.
    pub fn finish(mut self) -> u64 {
        self.work.stop();
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
        self.work.seen.load(Ordering::Relaxed)
    }
}

impl Drop for MetadataReadahead {
    fn drop(&mut self) {
        self.work.stop();
    }
}

impl Work {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.more.notify_all();
    }

    /// Takes directories until none is left and no thread may add one.
    fn run(&self) {
        while let Some(dir) = self.next() {
            let found = self.visit(&dir);
            let mut q = self.lock();
            // Pushed in reverse, so the first name is taken first.
            q.pending.extend(found.into_iter().rev());
            q.busy -= 1;
            drop(q);
            self.more.notify_all();
        }
    }

    /// The next directory to look at; `None` when the work is done or
    /// stopped.
    fn next(&self) -> Option<Pending> {
        let mut q = self.lock();
        loop {
            if self.stopped() {
                return None;
            }
            if let Some(p) = q.pending.pop() {
                q.busy += 1;
                return Some(p);
            }
            if q.busy == 0 {
                return None;
            }
            q = self.more.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Looks at every entry of the directory `p`; returns its
    /// subdirectories on the same device.
    fn visit(&self, p: &Pending) -> Vec<Pending> {
        let mut subdirs = Vec::new();
        let Ok(dir) = at::open_read(p.parent.as_fd(), at::os(&p.name), true) else {
            return subdirs;
        };
        let Ok(names) = at::list(dir.as_fd()) else {
            return subdirs;
        };
        let dir = Arc::new(dir);
        for name in names {
            if self.stopped() || self.seen.fetch_add(1, Ordering::Relaxed) >= MAX_ENTRIES {
                break;
            }
            let Ok(m) = at::stat(dir.as_fd(), at::os(&name)) else {
                continue;
            };
            if m.is_dir() && m.dev() == p.dev && p.depth < MAX_DEPTH {
                subdirs.push(Pending {
                    parent: dir.clone(),
                    name,
                    dev: p.dev,
                    depth: p.depth + 1,
                });
            }
        }
        subdirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue holding the directory `path` as a root, its device moved
    /// by `dev_offset`, run on the calling thread.
    fn run_on(path: &std::path::Path, dev_offset: u64, stop: bool) -> u64 {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = rustix::fs::open(path, flags, Mode::empty()).expect("open");
        let dev = at::fstat(dir.as_fd()).expect("fstat").dev();
        let work = Work::default();
        work.lock().pending.push(Pending {
            parent: Arc::new(dir),
            name: b".".to_vec(),
            dev: dev.wrapping_add(dev_offset),
            depth: 0,
        });
        work.stop.store(stop, Ordering::Relaxed);
        work.run();
        work.seen.load(Ordering::Relaxed)
    }

    #[test]
    fn it_looks_at_every_entry_and_stops_when_asked() {
        let t = tempfile::tempdir().expect("tempdir");
        for d in ["a", "a/b", "c"] {
            std::fs::create_dir(t.path().join(d)).expect("mkdir");
        }
        for f in ["a/1", "a/b/2", "a/b/3", "c/4", "5"] {
            std::fs::write(t.path().join(f), b"x").expect("write");
        }
        std::os::unix::fs::symlink("a", t.path().join("link")).expect("symlink");
        let paths = vec![
            t.path().to_owned(),
            t.path().join("missing"),
            t.path().join("5"),
        ];
        let r = MetadataReadahead::start(paths);
        assert_eq!(r.threads.len(), THREADS);
        // Let the threads get through the tree on their own.
        while !r.threads.iter().all(|h| h.is_finished()) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // a, a/1, a/b, a/b/2, a/b/3, c, c/4, 5, link (not followed); the
        // missing path and the file given as a root add nothing.
        assert_eq!(r.finish(), 9);

        // Stopped, it looks at nothing more.
        assert_eq!(run_on(t.path(), 0, true), 0);
        assert_eq!(run_on(t.path(), 0, false), 9);
        // Directories of another device (a mount below the path) are not
        // entered: only the four entries at the top are looked at.
        assert_eq!(run_on(t.path(), 1, false), 4);
    }

    /// A tree wider and deeper than the threads: every entry is looked at
    /// once, whichever thread takes which directory.
    #[test]
    fn the_threads_share_the_tree_and_look_at_each_entry_once() {
        let t = tempfile::tempdir().expect("tempdir");
        let mut expected = 0;
        for i in 0..20 {
            let d = t.path().join(format!("d{i}/e{i}"));
            std::fs::create_dir_all(&d).expect("mkdir");
            for j in 0..i {
                std::fs::write(d.join(format!("f{j}")), b"x").expect("write");
            }
            expected += 2 + i;
        }
        let r = MetadataReadahead::start(vec![t.path().to_owned()]);
        while !r.threads.iter().all(|h| h.is_finished()) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(r.finish(), expected as u64);
    }

    /// Dropped, it is told to stop and not waited for.
    #[test]
    fn a_dropped_readahead_is_not_waited_for() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = MetadataReadahead::start(vec![t.path().to_owned()]);
        let work = r.work.clone();
        drop(r);
        assert!(work.stopped());
    }
}
