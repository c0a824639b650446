//! Reading a tree's metadata ahead of the backup walk.
//!
//! A backup cannot compare a file with its parent snapshot before the
//! repository is unlocked, and unlocking is a deliberately slow key
//! derivation (Argon2id, about 0.1 s of one core). On a cold cache the walk
//! that follows then waits on the disk for every directory block and inode.
//! [`MetadataReadahead`] lists and looks at the tree, in the walk's order,
//! on a thread of its own while the key is derived: by the time the walk
//! reaches an entry, the kernel has it in memory. What it reads is only a
//! hint to the page and inode caches; nothing it sees is used or kept, so
//! it changes no result of the backup.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use rustix::fs::{Mode, OFlags};

use crate::at;

/// How deep the readahead follows directories: each level holds one
/// descriptor open.
const MAX_DEPTH: usize = 128;

/// Entries looked at before the readahead gives up on its own: a bound on
/// its work, whatever the tree.
const MAX_ENTRIES: u64 = 4_000_000;

/// A thread reading the metadata of the trees under some paths, stopped
/// and joined by [`finish`](Self::finish), or stopped and left to end on
/// its own when dropped: a backup never waits for it, even if a `stat` of
/// a file system that stopped answering holds it.
#[derive(Debug)]
pub struct MetadataReadahead {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl MetadataReadahead {
    /// Starts reading the metadata under `paths`, depth first in name
    /// order, as the backup walk goes, without leaving the file system of
    /// each path (a mount below it may be one the walk excludes, or one
    /// that hangs). Errors (a path that vanished, a directory that cannot
    /// be read) only skip that part: the walk will meet and report them
    /// itself.
    pub fn start(paths: Vec<PathBuf>) -> MetadataReadahead {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-readahead".into())
            .spawn(move || {
                let mut seen = 0;
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
                for p in paths {
                    // A path that is not a directory has nothing to read ahead.
                    let Ok(dir) = rustix::fs::open(&p, flags, Mode::empty()) else {
                        continue;
                    };
                    if let Ok(m) = at::fstat(dir.as_fd()) {
                        visit(dir, m.dev(), 0, &flag, &mut seen);
                    }
                }
                seen
            })
            .ok();
        MetadataReadahead { stop, thread }
    }

    /// Stops the readahead and returns how many entries it looked at.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for MetadataReadahead {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Looks at every entry of `dir` and descends into its directories on the
/// device `dev`.
fn visit(dir: OwnedFd, dev: u64, depth: usize, stop: &AtomicBool, seen: &mut u64) {
    let Ok(names) = at::list(dir.as_fd()) else {
        return;
    };
    for name in names {
        if stop.load(Ordering::Relaxed) || *seen >= MAX_ENTRIES {
            return;
        }
        *seen += 1;
        let name = at::os(&name);
        let Ok(m) = at::stat(dir.as_fd(), name) else {
            continue;
        };
        if m.is_dir() && m.dev() == dev && depth < MAX_DEPTH {
            if let Ok(sub) = at::open_read(dir.as_fd(), name, true) {
                visit(sub, dev, depth + 1, stop, seen);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Let it get through the tree on its own before stopping it.
        while !r.thread.as_ref().is_some_and(|h| h.is_finished()) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // a, a/1, a/b, a/b/2, a/b/3, c, c/4, 5, link (not followed); the
        // missing path and the file given as a root add nothing.
        assert_eq!(r.finish(), 9);

        // Stopped, it looks at nothing more.
        let open = || at::open_read(rustix::fs::CWD, t.path().as_os_str(), true).expect("open");
        let dev = at::fstat(open().as_fd()).expect("fstat").dev();
        let (mut seen, stop) = (0, AtomicBool::new(true));
        visit(open(), dev, 0, &stop, &mut seen);
        assert_eq!(seen, 0);
        stop.store(false, Ordering::Relaxed);
        visit(open(), dev, 0, &stop, &mut seen);
        assert_eq!(seen, 9);
        // Directories of another device (a mount below the path) are not
        // entered: only the four entries at the top are looked at.
        let mut seen = 0;
        visit(open(), dev.wrapping_add(1), 0, &stop, &mut seen);
        assert_eq!(seen, 4);
    }

    /// Dropped, it is told to stop and not waited for.
    #[test]
    fn a_dropped_readahead_is_not_waited_for() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = MetadataReadahead::start(vec![t.path().to_owned()]);
        let stop = r.stop.clone();
        drop(r);
        assert!(stop.load(Ordering::Relaxed));
    }
}
