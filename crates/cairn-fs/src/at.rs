//! File-system calls relative to directory descriptors, never following a
//! symlink below the directory the run started from.
//!
//! A backup or restore running as root in a tree that another user can
//! change must not be led outside it: a directory swapped for a symlink
//! between two calls would otherwise take a path-based call elsewhere.
//! So every entry is reached from an open descriptor of its directory by
//! its one name, with `O_NOFOLLOW` (or `AT_SYMLINK_NOFOLLOW`), and a
//! directory below a [`Root`] is opened with `openat2` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`; where the kernel has no
//! `openat2` (before Linux 5.6, or a seccomp filter refusing it), one
//! `openat` with `O_NOFOLLOW` per component does the same.
//!
//! The same descriptors make paths of any length work: no call is given
//! more than one name, or a piece of a path well below `PATH_MAX`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};

/// Pieces of a path opened at once stay below this many bytes.
const LIMIT: usize = 2048;

/// Set once `openat2` turned out to be missing.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// The path through which the kernel reaches what `fd` refers to, for the
/// few calls that have no descriptor form (extended attributes and mode of
/// an `O_PATH` descriptor). The kernel resolves it to exactly that inode.
pub(crate) fn proc_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `rel`, a relative path of plain names, below `dir` with `flags`,
/// following no symlink on the way or at the end and never leaving `dir`.
/// An empty `rel` opens `dir` itself again.
pub(crate) fn open_beneath(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let mut pieces: Vec<PathBuf> = Vec::new();
    let mut piece = PathBuf::new();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a plain relative path", rel.display()),
            ));
        };
        if !piece.as_os_str().is_empty() && piece.as_os_str().len() + 1 + name.len() >= LIMIT {
            pieces.push(std::mem::take(&mut piece));
        }
        piece.push(name);
    }
    if !piece.as_os_str().is_empty() {
        pieces.push(piece);
    }
    let Some((last, between)) = pieces.split_last() else {
        return Ok(rustix::fs::openat(
            dir,
            ".",
            flags | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
    };
    let mut held: Option<OwnedFd> = None;
    let through = OFlags::PATH | OFlags::DIRECTORY;
    for p in between {
        let at = held.as_ref().map_or(dir, |f| f.as_fd());
        held = Some(open_piece(at, p, through)?);
    }
    let at = held.as_ref().map_or(dir, |f| f.as_fd());
    open_piece(at, last, flags)
}

/// One piece of a path: `openat2` where the kernel has it, else a step
/// per component.
fn open_piece(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(dir, rel, flags, Mode::empty(), resolve) {
            // Missing, or refused by a seccomp filter that predates it.
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) if openat2_missing(dir) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
            r => return Ok(r?),
        }
    }
    open_stepwise(dir, rel, flags)
}

/// Whether `openat2` fails even for `.`, which any kernel that has it
/// opens: tells "no openat2" from an error about the path.
fn openat2_missing(dir: BorrowedFd<'_>) -> bool {
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    matches!(
        rustix::fs::openat2(dir, ".", flags, Mode::empty(), ResolveFlags::BENEATH),
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM)
    )
}

/// `open_piece` without `openat2`: each directory on the way opened with
/// `O_NOFOLLOW` from the one before.
fn open_stepwise(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let names: Vec<&OsStr> = rel.iter().collect();
    let Some((last, between)) = names.split_last() else {
        return Ok(rustix::fs::openat(dir, ".", flags, Mode::empty())?);
    };
    let mut held: Option<OwnedFd> = None;
    let through = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for name in between {
        let at = held.as_ref().map_or(dir, |f| f.as_fd());
        held = Some(rustix::fs::openat(at, *name, through, Mode::empty())?);
    }
    let at = held.as_ref().map_or(dir, |f| f.as_fd());
    Ok(rustix::fs::openat(at, *last, flags, Mode::empty())?)
}

/// An entry's `lstat` metadata, as the kernel gave it: what the walk and
/// restore compare and record of an entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta(rustix::fs::Stat);

#[allow(clippy::unnecessary_cast)] // the field types differ between targets
impl Meta {
    pub(crate) fn mode(&self) -> u32 {
        self.0.st_mode as u32
    }
    pub(crate) fn file_type(&self) -> rustix::fs::FileType {
        rustix::fs::FileType::from_raw_mode(self.0.st_mode as _)
    }
    pub(crate) fn is_dir(&self) -> bool {
        self.file_type() == rustix::fs::FileType::Directory
    }
    pub(crate) fn uid(&self) -> u32 {
        self.0.st_uid as u32
    }
    pub(crate) fn gid(&self) -> u32 {
        self.0.st_gid as u32
    }
    pub(crate) fn size(&self) -> u64 {
        self.0.st_size as u64
    }
    pub(crate) fn blocks(&self) -> u64 {
        self.0.st_blocks as u64
    }
    pub(crate) fn ino(&self) -> u64 {
        self.0.st_ino as u64
    }
    pub(crate) fn dev(&self) -> u64 {
        self.0.st_dev as u64
    }
    pub(crate) fn rdev(&self) -> u64 {
        self.0.st_rdev as u64
    }
    pub(crate) fn nlink(&self) -> u64 {
        self.0.st_nlink as u64
    }
    pub(crate) fn mtime(&self) -> (i64, i64) {
        (self.0.st_mtime as i64, self.0.st_mtime_nsec as i64)
    }
    pub(crate) fn atime(&self) -> (i64, i64) {
        (self.0.st_atime as i64, self.0.st_atime_nsec as i64)
    }
    pub(crate) fn ctime(&self) -> (i64, i64) {
        (self.0.st_ctime as i64, self.0.st_ctime_nsec as i64)
    }
    /// Whether `other` describes the same inode, of the same file type.
    pub(crate) fn same_inode_as(&self, other: &Meta) -> bool {
        self.ino() == other.ino()
            && self.dev() == other.dev()
            && self.file_type() == other.file_type()
    }
}

/// The metadata of what `fd` refers to.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<Meta> {
    Ok(Meta(rustix::fs::fstat(fd)?))
}

/// The metadata of the entry `name` of `dir` (a symlink itself, not its
/// target), without opening it: one call, where [`pin`] takes three.
pub(crate) fn stat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Meta> {
    Ok(Meta(rustix::fs::statat(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
    )?))
}

/// An `O_PATH` descriptor of the entry `name` of `dir` (a symlink itself,
/// not its target) and its metadata. Later calls go through the descriptor
/// and so reach the inode that was looked at, whatever is renamed since.
pub(crate) fn pin(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<(OwnedFd, Meta)> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    let m = fstat(fd.as_fd())?;
    Ok((fd, m))
}

/// Pins the entry `name` of `dir` (see [`pin`]), which was looked at as
/// `m` without opening it: an error if it is another inode now.
pub(crate) fn pin_same(dir: BorrowedFd<'_>, name: &OsStr, m: &Meta) -> io::Result<(OwnedFd, Meta)> {
    let (fd, now) = pin(dir, name)?;
    if !now.same_inode_as(m) {
        return Err(io::Error::other(
            "replaced by another file during the backup",
        ));
    }
    Ok((fd, now))
}

/// Opens the entry `name` of `dir` for reading, without following a
/// symlink, without updating its access time when the kernel allows it
/// (owner or CAP_FOWNER), and without blocking on a FIFO.
pub(crate) fn open_read(dir: BorrowedFd<'_>, name: &OsStr, directory: bool) -> io::Result<OwnedFd> {
    let mut flags =
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::NOCTTY;
    if directory {
        flags |= OFlags::DIRECTORY;
    }
    match rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?),
        r => Ok(r?),
    }
}

/// Whether `fd` is the inode (and file type) `m` describes: a check that an entry
/// opened by name is the one looked at before.
pub(crate) fn same_inode(fd: BorrowedFd<'_>, m: &Meta) -> io::Result<bool> {
    Ok(fstat(fd)?.same_inode_as(m))
}

/// The names in the directory `fd`, sorted, `.` and `..` left out.
pub(crate) fn list(fd: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(fd)? {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

/// Removes the entry `name` of `dir` unless it is a directory and
/// `want_dir`; a directory goes with everything in it, and no symlink met
/// on the way is followed.
pub(crate) fn clear(dir: BorrowedFd<'_>, name: &OsStr, want_dir: bool) -> io::Result<()> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st)
            if rustix::fs::FileType::from_raw_mode(st.st_mode)
                == rustix::fs::FileType::Directory =>
        {
            if want_dir {
                return Ok(());
            }
            // std's remove_dir_all opens each level with O_NOFOLLOW from
            // the one above; the path reaches `dir` through its descriptor.
            std::fs::remove_dir_all(proc_path(dir).join(name))
        }
        Ok(_) => Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?),
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Makes the entries of the directory `fd` durable. A file system that
/// cannot sync a directory (`EINVAL`, as some network and FUSE file
/// systems answer) has nothing more to offer, and is not an error.
pub(crate) fn sync_dir(fd: BorrowedFd<'_>) -> io::Result<()> {
    match rustix::fs::fsync(fd) {
        Ok(()) | Err(rustix::io::Errno::INVAL) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The directory a restore writes into: every entry below it is reached
/// from this descriptor.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens the directory `path` (named by the caller, so symlinks in it
    /// are followed, as the caller meant).
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Ok(Root {
            fd: rustix::fs::open(path, flags, Mode::empty())?,
            path: path.to_owned(),
        })
    }

    /// The root's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the root's entries durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        sync_dir(self.fd.as_fd())
    }

    /// The path below the root, or an error for one outside it.
    fn relative<'p>(&self, path: &'p Path) -> io::Result<&'p Path> {
        path.strip_prefix(&self.path).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not below {}", path.display(), self.path.display()),
            )
        })
    }

    /// Opens the directory `path` (below the root, or the root itself)
    /// with `flags`, following no symlink.
    pub(crate) fn dir(&self, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let rel = self.relative(path)?;
        open_beneath(self.fd.as_fd(), rel, flags | OFlags::DIRECTORY)
    }

    /// The directory holding `path` (an `O_PATH` descriptor, which is all
    /// the `*at` calls need and asks for no read permission; opened without
    /// following a symlink) and the last name of `path`.
    pub(crate) fn parent(&self, path: &Path) -> io::Result<(OwnedFd, OsString)> {
        let rel = self.relative(path)?;
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: no name below {}", path.display(), self.path.display()),
            ));
        };
        let fd = open_beneath(self.fd.as_fd(), parent, OFlags::PATH | OFlags::DIRECTORY)?;
        Ok((fd, name.to_owned()))
    }
}

/// `name` as the bytes of an `OsStr`.
pub(crate) fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, OwnedFd) {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("a/b")).expect("mkdir");
        std::fs::create_dir_all(tmp.path().join("outside")).expect("mkdir");
        std::os::unix::fs::symlink(tmp.path().join("outside"), tmp.path().join("a/link"))
            .expect("symlink");
        let fd = rustix::fs::open(tmp.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .expect("open");
        (tmp, fd)
    }

    #[test]
    fn a_symlinked_directory_component_is_refused_by_both_ways_of_opening() {
        let (_tmp, fd) = tree();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        for rel in ["a/link/x", "a/link"] {
            assert!(
                open_piece(fd.as_fd(), Path::new(rel), flags).is_err(),
                "{rel}"
            );
            assert!(
                open_stepwise(fd.as_fd(), Path::new(rel), flags).is_err(),
                "{rel}"
            );
        }
        assert!(open_piece(fd.as_fd(), Path::new("a/b"), flags).is_ok());
        assert!(open_stepwise(fd.as_fd(), Path::new("a/b"), flags).is_ok());
        assert!(open_beneath(fd.as_fd(), Path::new("a/../a"), flags).is_err());
    }

    #[test]
    fn a_path_longer_than_path_max_is_opened_in_pieces() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = Root::open(tmp.path()).expect("root");
        let mut deep = tmp.path().to_owned();
        let mut dir = rustix::fs::open(tmp.path(), OFlags::PATH, Mode::empty()).expect("open");
        for i in 0..40 {
            let name = format!("{i:02}{}", "x".repeat(150));
            rustix::fs::mkdirat(&dir, name.as_str(), Mode::from(0o755)).expect("mkdir");
            dir =
                rustix::fs::openat(&dir, name.as_str(), OFlags::PATH, Mode::empty()).expect("open");
            deep.push(name);
        }
        let file = deep.join("file");
        assert!(file.as_os_str().len() > 6000);
        let (parent, name) = root.parent(&file).expect("parent");
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&parent, &name, flags, Mode::from(0o600)).expect("create");
        rustix::io::write(&fd, b"far down").expect("write");
        let (pinned, m) = pin(parent.as_fd(), &name).expect("pin");
        assert_eq!(m.size(), 8);
        assert!(same_inode(pinned.as_fd(), &m).expect("fstat"));
        assert!(std::fs::read(&file).is_err(), "the long path itself fails");
    }

    #[test]
    fn an_entry_replaced_after_it_was_looked_at_is_not_pinned() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a"), b"first").expect("write");
        std::fs::write(dir.path().join("b"), b"second").expect("write");
        let fd = rustix::fs::open(dir.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .expect("open");
        let looked = stat(fd.as_fd(), "a".as_ref()).expect("stat");
        let (pinned, m) = pin_same(fd.as_fd(), "a".as_ref(), &looked).expect("the same file");
        assert_eq!((m.ino(), m.size()), (looked.ino(), 5));
        assert!(same_inode(pinned.as_fd(), &looked).expect("fstat"));
        std::fs::rename(dir.path().join("b"), dir.path().join("a")).expect("rename");
        let err = pin_same(fd.as_fd(), "a".as_ref(), &looked).expect_err("another inode");
        assert!(err.to_string().contains("replaced"), "{err}");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("c")).expect("symlink");
        let link = stat(fd.as_fd(), "c".as_ref()).expect("stat");
        assert_eq!(
            link.file_type(),
            rustix::fs::FileType::Symlink,
            "not followed"
        );
    }
}
