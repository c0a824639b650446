//! What a tree holds, entry by entry, to compare a restored tree with its
//! source: kind, permission bits, size, content hash and symlink target
//! (and, when asked, modification times).

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
}

/// One entry of a tree, as [`tree_digest`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What it is.
    pub kind: EntryKind,
    /// Permission, set-id and sticky bits (`st_mode & 0o7777`); 0 for a
    /// symlink, whose own bits mean nothing on Linux.
    pub mode: u32,
    /// Length in bytes of a regular file; 0 for anything else (a
    /// directory's size depends on the file system).
    pub size: u64,
    /// BLAKE3 of a regular file's content, in hex.
    pub hash: Option<String>,
    /// A symlink's target, as stored.
    pub target: Option<PathBuf>,
    /// Modification time (seconds, nanoseconds), only from
    /// [`tree_digest_with_times`].
    pub mtime: Option<(i64, u32)>,
}

fn kind(m: &Metadata) -> EntryKind {
    let t = m.file_type();
    if t.is_file() {
        EntryKind::File
    } else if t.is_dir() {
        EntryKind::Dir
    } else if t.is_symlink() {
        EntryKind::Symlink
    } else if t.is_fifo() {
        EntryKind::Fifo
    } else if t.is_socket() {
        EntryKind::Socket
    } else if t.is_char_device() {
        EntryKind::CharDevice
    } else {
        EntryKind::BlockDevice
    }
}

fn hash(p: &Path) -> String {
    let f = std::fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = blake3::Hasher::new();
    h.update_reader(f)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    h.finalize().to_hex().to_string()
}

fn entry(p: &Path, times: bool) -> Entry {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    let kind = kind(&m);
    Entry {
        kind,
        mode: if kind == EntryKind::Symlink {
            0
        } else {
            m.mode() & 0o7777
        },
        size: if kind == EntryKind::File { m.len() } else { 0 },
        hash: (kind == EntryKind::File).then(|| hash(p)),
        target: (kind == EntryKind::Symlink).then(|| {
            std::fs::read_link(p).unwrap_or_else(|e| panic!("readlink {}: {e}", p.display()))
        }),
        mtime: times.then(|| (m.mtime(), m.mtime_nsec() as u32)),
    }
}

fn walk(root: &Path, rel: &Path, times: bool, out: &mut BTreeMap<PathBuf, Entry>) {
    let dir = root.join(rel);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
    for e in entries {
        let e = e.unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        let r = rel.join(e.file_name());
        let en = entry(&root.join(&r), times);
        let is_dir = en.kind == EntryKind::Dir;
        out.insert(r.clone(), en);
        if is_dir {
            walk(root, &r, times, out);
        }
    }
}

/// Every entry below `dir` (not `dir` itself), by path relative to it;
/// symlinks are not followed. Modification times are left out: see
/// [`tree_digest_with_times`].
pub fn tree_digest(dir: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(dir, Path::new(""), false, &mut out);
    out
}

/// [`tree_digest`] with every entry's modification time to the
/// nanosecond (symlinks' own). A directory's mtime changes whenever an
/// entry is added to it, so compare these only after a restore that
/// claims to keep times.
pub fn tree_digest_with_times(dir: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(dir, Path::new(""), true, &mut out);
    out
}

/// Every way `actual` differs from `expected`, one line each: entries
/// missing, unexpected, or with other fields.
pub fn differences(
    expected: &BTreeMap<PathBuf, Entry>,
    actual: &BTreeMap<PathBuf, Entry>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, e) in expected {
        match actual.get(p) {
            None => out.push(format!("{}: missing", p.display())),
            Some(a) if a != e => out.push(format!("{}: {a:?}, expected {e:?}", p.display())),
            Some(_) => {}
        }
    }
    for p in actual.keys().filter(|p| !expected.contains_key(*p)) {
        out.push(format!("{}: unexpected", p.display()));
    }
    out
}

/// Panics listing every difference between the trees under `expected` and
/// `actual` (kind, mode, size, content, symlink target), if there is any.
#[track_caller]
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let diffs = differences(&tree_digest(expected), &tree_digest(actual));
    assert!(
        diffs.is_empty(),
        "{} differs from {} in {} entries:\n  {}",
        actual.display(),
        expected.display(),
        diffs.len(),
        diffs.join("\n  ")
    );
}

/// The names below `dir` that share an inode with another name below it,
/// as groups of relative paths (each sorted, the groups by first name).
pub fn hard_link_groups(dir: &Path) -> Vec<Vec<PathBuf>> {
    fn visit(root: &Path, rel: &Path, out: &mut BTreeMap<(u64, u64), Vec<PathBuf>>) {
        let d = root.join(rel);
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display())) {
            let e = e.unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display()));
            let r = rel.join(e.file_name());
            let p = root.join(&r);
            let m = std::fs::symlink_metadata(&p)
                .unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
            if m.is_dir() {
                visit(root, &r, out);
            } else if m.nlink() > 1 {
                out.entry((m.dev(), m.ino())).or_default().push(r);
            }
        }
    }
    let mut by_inode = BTreeMap::new();
    visit(dir, Path::new(""), &mut by_inode);
    let mut groups: Vec<Vec<PathBuf>> = by_inode
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    groups
}
