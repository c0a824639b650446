//! Building source trees on disk: files with given or seeded content,
//! directories, symlinks, hard links, sparse files and FIFOs, with modes
//! and times applied last (writing a file clears its set-user-id bit,
//! creating an entry changes its directory's mtime, and a read-only
//! directory could not be filled).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, UTIME_OMIT};

use crate::noise::{XorShift, text};

/// A point in time as the file system keeps it: seconds since the epoch
/// (negative before 1970) and nanoseconds.
pub type Time = (i64, u32);

/// Mode and times to apply to one entry when the tree is finished.
#[derive(Debug, Default)]
struct Meta {
    mode: Option<u32>,
    mtime: Option<Time>,
    atime: Option<Time>,
}

/// Builds a tree under a directory. Entries are created at once (parents
/// as needed); modes and times are applied by [`finish`](Self::finish),
/// to every other entry first and then to directories, deepest first.
///
/// Paths are relative to the root and may be any bytes (`OsStr`), so
/// names that are not UTF-8 work. Every failure panics naming the path:
/// this is test code.
///
/// ```
/// # let tmp = tempfile::tempdir().unwrap();
/// use cairn_testkit::{TreeBuilder, tree_digest};
/// let mut t = TreeBuilder::new(tmp.path().join("src"));
/// t.file("a/hello.txt", "hello\n")
///     .noise_file("a/big.bin", 7, 1 << 20)
///     .symlink("link", "a/hello.txt")
///     .hard_link("a/again.txt", "a/hello.txt")
///     .sparse("disk.img", 8 << 20, &[(4 << 20, b"data".to_vec())])
///     .dir("empty")
///     .mode("a/hello.txt", 0o600)
///     .mtime("a", 1_000_000_000, 5);
/// let root = t.finish();
/// assert_eq!(tree_digest(&root).len(), 7);
/// ```
#[derive(Debug)]
#[must_use = "modes and times are applied by finish()"]
pub struct TreeBuilder {
    root: PathBuf,
    meta: Vec<(PathBuf, Meta)>,
    finished: bool,
}

fn fail(p: &Path, what: &str, e: impl std::fmt::Display) -> ! {
    panic!("{what} {}: {e}", p.display())
}

impl TreeBuilder {
    /// Builds under `root`, creating it (and its parents) if missing.
    pub fn new(root: impl Into<PathBuf>) -> TreeBuilder {
        let root = root.into();
        std::fs::create_dir_all(&root).unwrap_or_else(|e| fail(&root, "mkdir", e));
        TreeBuilder {
            root,
            meta: Vec::new(),
            finished: false,
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of `rel`, its parent directories created.
    fn place(&self, rel: &Path) -> PathBuf {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| fail(parent, "mkdir", e));
        }
        p
    }

    fn meta(&mut self, rel: &Path) -> &mut Meta {
        let i = match self.meta.iter().position(|(p, _)| p == rel) {
            Some(i) => i,
            None => {
                self.meta.push((rel.to_owned(), Meta::default()));
                self.meta.len() - 1
            }
        };
        &mut self.meta[i].1
    }

    /// A regular file holding `content`.
    pub fn file(&mut self, rel: impl AsRef<Path>, content: impl AsRef<[u8]>) -> &mut Self {
        let p = self.place(rel.as_ref());
        std::fs::write(&p, content).unwrap_or_else(|e| fail(&p, "write", e));
        self
    }

    /// A regular file of `len` incompressible bytes: exactly
    /// [`noise(seed, len)`](crate::noise), written a MiB at a time.
    pub fn noise_file(&mut self, rel: impl AsRef<Path>, seed: u64, len: usize) -> &mut Self {
        let p = self.place(rel.as_ref());
        let mut f = File::create(&p).unwrap_or_else(|e| fail(&p, "create", e));
        let mut rng = XorShift::new(seed);
        // A multiple of 8, so the pieces join into the one stream.
        let mut buf = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len());
            rng.fill(&mut buf[..n]);
            f.write_all(&buf[..n])
                .unwrap_or_else(|e| fail(&p, "write", e));
            left -= n;
        }
        self
    }

    /// A regular file of `len` bytes of compressible text:
    /// [`text(seed, len)`](crate::text).
    pub fn text_file(&mut self, rel: impl AsRef<Path>, seed: u64, len: usize) -> &mut Self {
        self.file(rel, text(seed, len))
    }

    /// A directory (and its parents).
    pub fn dir(&mut self, rel: impl AsRef<Path>) -> &mut Self {
        let p = self.root.join(rel.as_ref());
        std::fs::create_dir_all(&p).unwrap_or_else(|e| fail(&p, "mkdir", e));
        self
    }

    /// A symlink to `target`, which is stored as given (relative,
    /// absolute or dangling).
    pub fn symlink(&mut self, rel: impl AsRef<Path>, target: impl AsRef<Path>) -> &mut Self {
        let p = self.place(rel.as_ref());
        std::os::unix::fs::symlink(target, &p).unwrap_or_else(|e| fail(&p, "symlink", e));
        self
    }

    /// Another name for the existing entry `existing` (relative to the root).
    pub fn hard_link(&mut self, rel: impl AsRef<Path>, existing: impl AsRef<Path>) -> &mut Self {
        let p = self.place(rel.as_ref());
        let from = self.root.join(existing.as_ref());
        std::fs::hard_link(&from, &p).unwrap_or_else(|e| fail(&p, "link", e));
        self
    }

    /// A sparse file of `size` bytes: `data` written at each offset,
    /// holes everywhere else (on file systems that keep holes).
    pub fn sparse(
        &mut self,
        rel: impl AsRef<Path>,
        size: u64,
        data: &[(u64, Vec<u8>)],
    ) -> &mut Self {
        let p = self.place(rel.as_ref());
        let f = File::create(&p).unwrap_or_else(|e| fail(&p, "create", e));
        f.set_len(size).unwrap_or_else(|e| fail(&p, "truncate", e));
        for (offset, bytes) in data {
            assert!(
                offset + bytes.len() as u64 <= size,
                "{}: data past the end",
                p.display()
            );
            f.write_all_at(bytes, *offset)
                .unwrap_or_else(|e| fail(&p, "write", e));
        }
        self
    }

    /// A named pipe.
    pub fn fifo(&mut self, rel: impl AsRef<Path>) -> &mut Self {
        let p = self.place(rel.as_ref());
        rustix::fs::mknodat(CWD, &p, FileType::Fifo, Mode::from_raw_mode(0o644), 0)
            .unwrap_or_else(|e| fail(&p, "mkfifo", e));
        self
    }

    /// The small tree most tests need: `files` files `d{i % 3}/f{i}.bin`
    /// of `size` bytes of [`noise`](crate::noise) from seed `i + 1`, an
    /// empty file `empty` and a symlink `link` to `d0/f0.bin`.
    pub fn sample(&mut self, files: usize, size: usize) -> &mut Self {
        for i in 0..files {
            self.noise_file(format!("d{}/f{i}.bin", i % 3), i as u64 + 1, size);
        }
        self.file("empty", b"").symlink("link", "d0/f0.bin")
    }

    /// Sets the permission bits (set-id and sticky bits included) when
    /// the tree is finished. Not for symlinks, which have none.
    pub fn mode(&mut self, rel: impl AsRef<Path>, mode: u32) -> &mut Self {
        self.meta(rel.as_ref()).mode = Some(mode);
        self
    }

    /// Sets the modification time when the tree is finished (symlinks'
    /// own, not their targets'). `secs` may be negative (before 1970).
    pub fn mtime(&mut self, rel: impl AsRef<Path>, secs: i64, nanos: u32) -> &mut Self {
        self.meta(rel.as_ref()).mtime = Some((secs, nanos));
        self
    }

    /// Sets the access time when the tree is finished.
    pub fn atime(&mut self, rel: impl AsRef<Path>, secs: i64, nanos: u32) -> &mut Self {
        self.meta(rel.as_ref()).atime = Some((secs, nanos));
        self
    }

    /// Applies the modes and times, and returns the root.
    pub fn finish(mut self) -> PathBuf {
        self.finished = true;
        let mut all = std::mem::take(&mut self.meta);
        // Directories after everything else, deepest first, so no later
        // step changes a time already set or meets a read-only directory.
        all.sort_by_cached_key(|(rel, _)| {
            let is_dir = std::fs::symlink_metadata(self.root.join(rel)).is_ok_and(|m| m.is_dir());
            (is_dir, std::cmp::Reverse(rel.components().count()))
        });
        for (rel, m) in &all {
            let p = self.root.join(rel);
            if let Some(mode) = m.mode {
                rustix::fs::chmod(&p, Mode::from_raw_mode(mode))
                    .unwrap_or_else(|e| fail(&p, "chmod", e));
            }
            if m.mtime.is_some() || m.atime.is_some() {
                let ts = |t: Option<Time>| match t {
                    Some((secs, nanos)) => Timespec {
                        tv_sec: secs,
                        tv_nsec: i64::from(nanos) as _,
                    },
                    None => Timespec {
                        tv_sec: 0,
                        tv_nsec: UTIME_OMIT,
                    },
                };
                let times = Timestamps {
                    last_access: ts(m.atime),
                    last_modification: ts(m.mtime),
                };
                rustix::fs::utimensat(CWD, &p, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .unwrap_or_else(|e| fail(&p, "set times of", e));
            }
        }
        self.root.clone()
    }
}

impl Drop for TreeBuilder {
    fn drop(&mut self) {
        // Forgetting finish() would silently leave modes and times unset.
        if !self.finished && !self.meta.is_empty() && !std::thread::panicking() {
            panic!(
                "TreeBuilder for {} dropped without finish(): modes and times not applied",
                self.root.display()
            );
        }
    }
}
