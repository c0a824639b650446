//! Comparing a restored tree with its source: kinds, contents, symlink
//! targets, mode bits (`st_mode & 0o7777`) and mtimes to the nanosecond
//! (symlinks by `lstat`). Every difference is reported, not just the first.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One way in which the actual tree differs from the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Difference {
    /// Relative to the compared roots.
    pub(crate) path: PathBuf,
    pub(crate) what: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.path, self.what)
    }
}

/// What is missing from the actual tree.
pub(crate) const MISSING: &str = "missing";
/// What is in the actual tree but not in the expected one.
pub(crate) const UNEXPECTED: &str = "unexpected";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

fn kind(m: &Metadata) -> Kind {
    let t = m.file_type();
    if t.is_file() {
        Kind::File
    } else if t.is_dir() {
        Kind::Dir
    } else if t.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    }
}

struct Walk {
    diffs: Vec<Difference>,
}

impl Walk {
    fn differ(&mut self, rel: &Path, what: String) {
        self.diffs.push(Difference {
            path: rel.to_owned(),
            what,
        });
    }

    /// Compares two entries, their own metadata included.
    fn entry(&mut self, exp: &Path, act: &Path, rel: &Path) {
        let em =
            std::fs::symlink_metadata(exp).unwrap_or_else(|e| panic!("{}: {e}", exp.display()));
        let am = match std::fs::symlink_metadata(act) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return self.differ(rel, MISSING.to_owned());
            }
            Err(e) => panic!("{}: {e}", act.display()),
        };
        let (ek, ak) = (kind(&em), kind(&am));
        if ek != ak {
            return self.differ(rel, format!("kind {ak:?}, expected {ek:?}"));
        }
        if ek != Kind::Symlink && em.mode() & 0o7777 != am.mode() & 0o7777 {
            self.differ(
                rel,
                format!(
                    "mode {:o}, expected {:o}",
                    am.mode() & 0o7777,
                    em.mode() & 0o7777
                ),
            );
        }
        let (et, at) = ((em.mtime(), em.mtime_nsec()), (am.mtime(), am.mtime_nsec()));
        if et != at {
            self.differ(rel, format!("mtime {at:?}, expected {et:?}"));
        }
        match ek {
            Kind::File => self.content(exp, act, rel, &em, &am),
            Kind::Dir => self.dir(exp, act, rel),
            Kind::Symlink => {
                let read = |p: &Path| {
                    std::fs::read_link(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                };
                let (el, al) = (read(exp), read(act));
                if el != al {
                    self.differ(rel, format!("symlink target {al:?}, expected {el:?}"));
                }
            }
            Kind::Other => {}
        }
    }

    fn content(&mut self, exp: &Path, act: &Path, rel: &Path, em: &Metadata, am: &Metadata) {
        if em.len() != am.len() {
            return self.differ(rel, format!("size {}, expected {}", am.len(), em.len()));
        }
        if let Some(offset) = first_difference(exp, act) {
            self.differ(rel, format!("content differs at byte {offset}"));
        }
    }

    /// Compares the entries of two directories (not their own metadata).
    fn dir(&mut self, exp: &Path, act: &Path, rel: &Path) {
        let (en, an) = (names(exp), names(act));
        for name in en.union(&an) {
            let r = rel.join(name);
            match (en.contains(name), an.contains(name)) {
                (true, true) => self.entry(&exp.join(name), &act.join(name), &r),
                (true, false) => self.differ(&r, MISSING.to_owned()),
                _ => self.differ(&r, UNEXPECTED.to_owned()),
            }
        }
    }
}

fn names(dir: &Path) -> BTreeSet<OsString> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .file_name()
        })
        .collect()
}

/// The first offset at which two equally long files differ.
fn first_difference(a: &Path, b: &Path) -> Option<u64> {
    let open = |p: &Path| File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a), open(b));
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut fa, &mut ba, a);
        let m = read_full(&mut fb, &mut bb, b);
        if let Some(i) = ba[..n].iter().zip(&bb[..m]).position(|(x, y)| x != y) {
            return Some(offset + i as u64);
        }
        if n != m {
            return Some(offset + n.min(m) as u64);
        }
        if n == 0 {
            return None;
        }
        offset += n as u64;
    }
}

fn read_full(f: &mut File, buf: &mut [u8], p: &Path) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{}: {e}", p.display()),
        }
    }
    n
}

/// Differences between the contents of directories `expected` and `actual`
/// (their own metadata is not compared: a restore target is not the source).
pub(crate) fn tree_differences(expected: &Path, actual: &Path) -> Vec<Difference> {
    let mut w = Walk { diffs: Vec::new() };
    w.dir(expected, actual, Path::new(""));
    w.diffs
}

/// Differences between two entries of any kind, their own metadata included.
pub(crate) fn entry_differences(expected: &Path, actual: &Path) -> Vec<Difference> {
    let mut w = Walk { diffs: Vec::new() };
    let name = expected.file_name().map(PathBuf::from).unwrap_or_default();
    w.entry(expected, actual, &name);
    w.diffs
}

/// Panics listing every difference, if there is any.
pub(crate) fn assert_no_differences(diffs: &[Difference], context: &str) {
    if !diffs.is_empty() {
        let list: Vec<String> = diffs.iter().map(|d| format!("  {d}")).collect();
        panic!(
            "{context}: {} differences:\n{}",
            diffs.len(),
            list.join("\n")
        );
    }
}

/// Paths of the regular files below `root`, relative to it.
pub(crate) fn regular_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for name in names(&root.join(&rel)) {
            let r = rel.join(name);
            let p = root.join(&r);
            let m =
                std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            match kind(&m) {
                Kind::Dir => stack.push(r),
                Kind::File => out.push(r),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// The comparer must see every kind of difference, or the restore tests
/// built on it prove nothing.
#[test]
fn comparer_reports_every_kind_of_difference() {
    use std::fs::{FileTimes, Permissions};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use crate::common::source::{RELATIVE_LINK, TreeSpec, generate};

    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    generate(&a, TreeSpec::with_big_file(10_000));
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&a)
        .arg(&b)
        .status()
        .expect("run cp -a");
    assert!(cp.success());
    assert_no_differences(&tree_differences(&a, &b), "a copy");

    // One change of each kind. A directory whose entries change gets a new
    // mtime, which must be reported too.
    let mut content = std::fs::read(b.join("a/top.txt")).expect("read");
    content[0] ^= 1;
    let t = std::fs::metadata(b.join("a/top.txt"))
        .expect("stat")
        .modified()
        .expect("mtime");
    std::fs::write(b.join("a/top.txt"), &content).expect("write");
    std::fs::File::options()
        .write(true)
        .open(b.join("a/top.txt"))
        .and_then(|f| f.set_times(FileTimes::new().set_modified(t)))
        .expect("reset mtime");
    std::fs::set_permissions(b.join("modes/private"), Permissions::from_mode(0o640))
        .expect("chmod");
    let f = std::fs::File::open(b.join("modes/script")).expect("open");
    let t = f.metadata().expect("stat").modified().expect("mtime");
    f.set_modified(t + Duration::from_nanos(1)).expect("touch");
    std::fs::remove_file(b.join(RELATIVE_LINK.0)).expect("rm");
    std::os::unix::fs::symlink("elsewhere", b.join(RELATIVE_LINK.0)).expect("ln");
    std::fs::remove_file(b.join("many/file_0001")).expect("rm");
    std::fs::write(b.join("many/extra"), b"").expect("write");
    std::fs::remove_file(b.join("empty_file")).expect("rm");
    std::fs::create_dir(b.join("empty_file")).expect("mkdir");

    let diffs = tree_differences(&a, &b);
    let reported = |path: &str, what: &str| {
        diffs
            .iter()
            .any(|d| d.path == Path::new(path) && d.what.starts_with(what))
    };
    for (path, what) in [
        ("a/top.txt", "content differs at byte 0"),
        ("modes/private", "mode 640, expected 600"),
        ("modes/script", "mtime"),
        (RELATIVE_LINK.0, "symlink target"),
        ("many/file_0001", MISSING),
        ("many/extra", UNEXPECTED),
        ("many", "mtime"),
        ("empty_file", "kind Dir, expected File"),
    ] {
        assert!(
            reported(path, what),
            "{path}: {what} not reported in {diffs:#?}"
        );
    }
}
