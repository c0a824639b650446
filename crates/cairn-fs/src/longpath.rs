//! Paths longer than one system call accepts (`PATH_MAX`, 4096 bytes).
//!
//! A deep tree can hold paths of any length, but every path-taking call
//! fails on them with `ENAMETOOLONG`. [`access`] turns such a path into a
//! short one that names the same entry: the parent directory is opened in
//! pieces (`openat` with `O_PATH`, each piece well under the limit) and the
//! entry is then reached as `/proc/self/fd/<fd>/<name>`, which the kernel
//! resolves through the open descriptor. Short paths are used as they are.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, Mode, OFlags};

/// Paths at least this long go through `/proc/self/fd`; pieces opened on
/// the way stay below it.
const LIMIT: usize = 2048;

/// A path usable in one system call, and the directory descriptor it goes
/// through (kept open as long as the path is used).
#[derive(Debug)]
pub(crate) struct Access {
    _dir: Option<OwnedFd>,
    path: PathBuf,
}

impl Access {
    /// The short path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

fn open_dir(at: Option<&OwnedFd>, rel: &Path) -> std::io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(match at {
        Some(fd) => rustix::fs::openat(fd, rel, flags, Mode::empty())?,
        None => rustix::fs::openat(CWD, rel, flags, Mode::empty())?,
    })
}

/// A short path for `path` (itself when it is short).
pub(crate) fn access(path: &Path) -> std::io::Result<Access> {
    let short = || Access {
        _dir: None,
        path: path.to_owned(),
    };
    if path.as_os_str().len() < LIMIT {
        return Ok(short());
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(short());
    };
    let mut dir: Option<OwnedFd> = None;
    let mut piece = PathBuf::new();
    for comp in parent.components() {
        let c = comp.as_os_str();
        if !piece.as_os_str().is_empty() && piece.as_os_str().len() + 1 + c.len() >= LIMIT {
            dir = Some(open_dir(dir.as_ref(), &piece)?);
            piece = PathBuf::new();
        }
        piece.push(c);
    }
    if !piece.as_os_str().is_empty() {
        dir = Some(open_dir(dir.as_ref(), &piece)?);
    }
    let Some(fd) = dir else {
        return Ok(short());
    };
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    p.push(std::ffi::OsStr::from_bytes(name.as_bytes()));
    Ok(Access {
        _dir: Some(fd),
        path: p,
    })
}

/// `lstat` of a path of any length.
pub(crate) fn lstat(path: &Path) -> std::io::Result<std::fs::Metadata> {
    std::fs::symlink_metadata(access(path)?.path())
}

/// The target of a symlink at a path of any length.
pub(crate) fn read_link(path: &Path) -> std::io::Result<PathBuf> {
    std::fs::read_link(access(path)?.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_longer_than_path_max_is_reached_through_its_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut deep = tmp.path().to_owned();
        let mut dir = open_dir(None, tmp.path()).expect("open");
        for i in 0..40 {
            let name = format!("{i:02}{}", "x".repeat(150));
            rustix::fs::mkdirat(&dir, name.as_str(), Mode::from(0o755)).expect("mkdir");
            dir = open_dir(Some(&dir), Path::new(&name)).expect("open");
            deep.push(name);
        }
        let file = deep.join("file");
        assert!(file.as_os_str().len() > 6000);
        let a = access(&file).expect("access");
        std::fs::write(a.path(), b"far down").expect("write");
        let b = access(&file).expect("access");
        assert_eq!(std::fs::read(b.path()).expect("read"), b"far down");
        assert!(std::fs::read(&file).is_err(), "the long path itself fails");
    }
}
