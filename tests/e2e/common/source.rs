//! Source trees with everything a backup must carry: deep nesting, empty
//! files and directories, many small files, one large pseudo-random file,
//! symlinks of every flavour, names that are not UTF-8 or hold spaces and
//! newlines, unusual modes and nanosecond mtimes (one before 1970).
//!
//! Everything derives from a fixed-seed xorshift generator, so a tree is the
//! same on every run and a failure can be reproduced.

use std::ffi::OsStr;
use std::fs::{File, FileTimes, Permissions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The large file, at the root of every generated tree.
pub(crate) const BIG_FILE: &str = "big.bin";
/// A directory three levels down, for sub-path restores.
pub(crate) const SUB_DIR: &str = "a/b";
/// A file inside [`SUB_DIR`], for single-file restores.
pub(crate) const SINGLE_FILE: &str = "a/b/c/deep.txt";
/// A relative symlink and its target.
pub(crate) const RELATIVE_LINK: (&str, &str) = ("links/relative", "../a/b/mid.txt");
/// The name of a directory that is not valid UTF-8.
pub(crate) const NON_UTF8_DIR: &[u8] = b"\xff\xfe dir";

pub(crate) use cairn_testkit::XorShift;

/// The kit's xorshift64 started as these tests always started theirs
/// (`seed | 1`), so every tree and file they generate stays the same.
pub(crate) fn xorshift(seed: u64) -> XorShift {
    XorShift::from_state(seed | 1)
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeSpec {
    /// Size of [`BIG_FILE`].
    pub(crate) big_file_len: usize,
    /// Number of small files in `many/`.
    pub(crate) small_files: usize,
    pub(crate) seed: u64,
}

impl TreeSpec {
    /// The full tree with a 50 MB big file.
    pub(crate) const FULL: TreeSpec = TreeSpec {
        big_file_len: 50_000_000,
        small_files: 200,
        seed: 0x5eed_ca1e_2026_0001,
    };

    /// The same shape with a big file of `len` bytes.
    pub(crate) const fn with_big_file(len: usize) -> TreeSpec {
        TreeSpec {
            big_file_len: len,
            ..TreeSpec::FULL
        }
    }
}

struct Gen {
    root: PathBuf,
    rng: XorShift,
    /// Directories and their times, applied last: creating entries in a
    /// directory changes its mtime.
    dirs: Vec<(PathBuf, FileTimes)>,
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

impl Gen {
    fn path(&self, rel: &[u8]) -> PathBuf {
        self.root.join(os(rel))
    }

    /// A time between 2001 and 2033 with random nanoseconds.
    fn random_time(&mut self) -> SystemTime {
        let secs = 1_000_000_000 + self.rng.below(1_000_000_000);
        let nanos = self.rng.below(1_000_000_000) as u32;
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn times(&mut self) -> FileTimes {
        let m = self.random_time();
        let a = self.random_time();
        FileTimes::new().set_modified(m).set_accessed(a)
    }

    fn dir(&mut self, rel: &[u8], mode: u32) {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        std::fs::set_permissions(&p, Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let t = self.times();
        self.dirs.push((p, t));
    }

    /// Writes a file, then its times, then its mode (writing would clear a
    /// set-user-id bit; the mode may forbid opening it later).
    fn file_with(&mut self, rel: &[u8], content: &[u8], mode: u32, times: FileTimes) {
        let p = self.path(rel);
        let mut f = File::create(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        f.write_all(content)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        f.set_times(times)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        drop(f);
        std::fs::set_permissions(&p, Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }

    fn file(&mut self, rel: &[u8], content: &[u8], mode: u32) {
        let t = self.times();
        self.file_with(rel, content, mode, t);
    }

    fn random_file(&mut self, rel: &[u8], len: usize, mode: u32) {
        let content = self.rng.bytes(len);
        self.file(rel, &content, mode);
    }

    /// The big file, written in pieces to keep memory small.
    fn big_file(&mut self, rel: &[u8], len: usize) {
        let p = self.path(rel);
        let mut f = std::io::BufWriter::with_capacity(
            1 << 20,
            File::create(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        );
        let mut buf = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len());
            self.rng.fill(&mut buf[..n]);
            f.write_all(&buf[..n])
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            left -= n;
        }
        let f = f
            .into_inner()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let t = self.times();
        f.set_times(t)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }

    fn symlink(&mut self, rel: &[u8], target: &[u8]) {
        let p = self.path(rel);
        std::os::unix::fs::symlink(os(target), &p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

/// Creates the tree described by `spec` at `root` (which must not exist).
pub(crate) fn generate(root: &Path, spec: TreeSpec) {
    let mut g = Gen {
        root: root.to_owned(),
        rng: xorshift(spec.seed),
        dirs: Vec::new(),
    };
    g.dir(b"", 0o755);

    g.big_file(BIG_FILE.as_bytes(), spec.big_file_len);
    g.file(b"empty_file", b"", 0o644);
    g.dir(b"empty_dir", 0o755);

    // Nesting: a/b/c/d, with files at every level.
    g.dir(b"a", 0o755);
    g.file(b"a/top.txt", b"top level\n", 0o644);
    g.dir(SUB_DIR.as_bytes(), 0o750);
    g.file(b"a/b/mid.txt", b"middle\n", 0o644);
    g.file(b"a/b/with space.txt", b"spaces in the name\n", 0o644);
    g.file(b"a/b/new\nline", b"a newline in the name\n", 0o644);
    g.dir(b"a/b/c", 0o755);
    g.file(SINGLE_FILE.as_bytes(), b"three levels down\n", 0o640);
    g.dir(b"a/b/c/d", 0o700);
    g.random_file(b"a/b/c/d/deeper.bin", 70_000, 0o644);
    g.dir(b"a/b/c/d/e", 0o755);

    // Names that are not UTF-8.
    g.file(b"a/name \xff\xfe", b"not utf-8\n", 0o644);
    g.dir(NON_UTF8_DIR, 0o755);
    g.file(
        b"\xff\xfe dir/inner \x80.txt",
        b"inside a non-utf-8 dir\n",
        0o644,
    );

    // Many small files, a few of them empty.
    g.dir(b"many", 0o755);
    for i in 0..spec.small_files {
        let len = g.rng.below(3000) as usize * usize::from(i % 17 != 0);
        g.random_file(format!("many/file_{i:04}").as_bytes(), len, 0o644);
    }

    // Modes.
    g.dir(b"modes", 0o755);
    g.file(b"modes/private", b"0600\n", 0o600);
    g.file(b"modes/script", b"#!/bin/sh\necho hi\n", 0o755);
    g.file(b"modes/setuid", b"set-user-id\n", 0o4755);
    g.file(b"modes/setgid", b"set-group-id\n", 0o2750);
    g.file(b"modes/readonly", b"read only\n", 0o444);
    g.dir(b"modes/sticky", 0o1777);
    g.file(b"modes/sticky/inside", b"in a sticky dir\n", 0o666);
    // Before 1970, with nanoseconds: timestamps are signed.
    let old = SystemTime::UNIX_EPOCH - Duration::new(12_345_678, 900_000_001);
    g.file_with(
        b"modes/ancient",
        b"older than the epoch\n",
        0o644,
        FileTimes::new().set_modified(old).set_accessed(old),
    );

    // Symlinks: relative, absolute, dangling, to a directory.
    g.dir(b"links", 0o755);
    g.symlink(RELATIVE_LINK.0.as_bytes(), RELATIVE_LINK.1.as_bytes());
    let absolute = root.join("a/top.txt");
    g.symlink(b"links/absolute", absolute.as_os_str().as_bytes());
    g.symlink(b"links/dangling", b"no/such/target");
    g.symlink(b"links/to_dir", b"../a");
    g.symlink(b"links/odd \xff target", b"\xfe\xff");

    for (p, t) in std::mem::take(&mut g.dirs) {
        File::open(&p)
            .and_then(|f| f.set_times(t))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}
