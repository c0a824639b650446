//! Capturing metadata into tree nodes and applying it on restore.

use std::os::fd::BorrowedFd;

use cairn_core::format::{Node, NodeKind, Timestamp};
use rustix::fs::{AtFlags, CWD, Mode, Timespec, Timestamps};

use crate::at::Meta;
use crate::owners;

/// The node kind of an `lstat` result.
pub(crate) fn kind_of(m: &Meta) -> NodeKind {
    use rustix::fs::FileType;
    match m.file_type() {
        FileType::Directory => NodeKind::Dir,
        FileType::Symlink => NodeKind::Symlink,
        FileType::Fifo => NodeKind::Fifo,
        FileType::CharacterDevice => NodeKind::CharDevice,
        FileType::BlockDevice => NodeKind::BlockDevice,
        FileType::Socket => NodeKind::Socket,
        _ => NodeKind::File,
    }
}

fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: u32::try_from(nanos).unwrap_or(0).min(999_999_999),
    }
}

/// A node for `name` from its `lstat` metadata (content not filled in).
pub(crate) fn node_from(name: Vec<u8>, m: &Meta) -> Node {
    let kind = kind_of(m);
    let mut n = Node::new(name, kind);
    n.mode = m.mode() & 0o7777;
    n.uid = m.uid();
    n.gid = m.gid();
    n.user = owners::user_name(n.uid);
    n.group = owners::group_name(n.gid);
    n.mtime = ts(m.mtime().0, m.mtime().1);
    n.atime = ts(m.atime().0, m.atime().1);
    n.ctime = ts(m.ctime().0, m.ctime().1);
    n.size = if kind == NodeKind::File { m.size() } else { 0 };
    n.inode = m.ino();
    n.device = m.dev();
    n.links = m.nlink();
    n.rdev = m.rdev();
    n
}

/// True if a file's metadata shows it unchanged since `old` was recorded, so
/// its content need not be read again.
pub(crate) fn unchanged(old: &Node, new: &Node, how: crate::ChangeDetection) -> bool {
    let strict = how == crate::ChangeDetection::Strict;
    old.kind == NodeKind::File
        && new.kind == NodeKind::File
        && old.size == new.size
        && old.mtime == new.mtime
        && (!strict || (old.ctime == new.ctime && old.inode == new.inode))
}

/// Gives `node` the access time `old` recorded when that is all that
/// differs between them: an entry only read since the parent snapshot (by
/// another backup tool, a web server, a `grep`) is recorded as it was, so
/// its tree, and every tree above it, stays the parent's.
pub(crate) fn keep_parent_atime(node: &mut Node, old: &Node) {
    if node.atime == old.atime {
        return;
    }
    let now = std::mem::replace(&mut node.atime, old.atime);
    if node != old {
        node.atime = now;
    }
}

/// True when `new` must have the extended attributes `old` recorded:
/// setting or removing one updates the inode's ctime, so the same inode
/// with the same ctime has not had them changed. Saves reading them again
/// for every unchanged entry of an incremental backup.
pub(crate) fn same_xattrs(old: &Node, new: &Node) -> bool {
    old.kind == new.kind
        && old.inode == new.inode
        && old.device == new.device
        && old.ctime == new.ctime
}

fn timespec(t: Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.secs,
        tv_nsec: i64::from(t.nanos) as _,
    }
}

/// Applies ownership (when `owners`), extended attributes, mode and times to
/// the entry open as `fd` (an `O_PATH` descriptor when `pinned`, as for a
/// symlink, FIFO or device node), in the order that keeps each step from
/// undoing another: chown clears set-id bits and `security.capability`, so
/// both come after it; an ACL rewrites the permission bits, so mode comes
/// after the attributes (and agrees with the ACL, as both were recorded
/// together); times come last. Every call goes through the descriptor, so
/// a name swapped for something else meanwhile is never touched.
pub(crate) fn apply(
    fd: BorrowedFd<'_>,
    pinned: bool,
    node: &Node,
    owners: bool,
) -> std::io::Result<()> {
    if owners {
        rustix::fs::chownat(
            fd,
            "",
            Some(rustix::fs::Uid::from_raw(node.uid)),
            Some(rustix::fs::Gid::from_raw(node.gid)),
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    // Asked once: the process never changes its user.
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let privileged = *ROOT.get_or_init(|| rustix::process::geteuid().is_root());
    crate::xattr::apply(fd, pinned, &node.xattrs, privileged)?;
    let mode = Mode::from_raw_mode(node.mode);
    let times = Timestamps {
        last_access: timespec(node.atime),
        last_modification: timespec(node.mtime),
    };
    if pinned {
        // No descriptor form takes an O_PATH descriptor for these; its
        // /proc path resolves to exactly the inode it holds (for a
        // symlink, the link itself, which has no mode of its own).
        let path = crate::at::proc_path(fd);
        if node.kind != NodeKind::Symlink {
            rustix::fs::chmod(&path, mode)?;
        }
        rustix::fs::utimensat(CWD, &path, &times, AtFlags::empty())?;
    } else {
        rustix::fs::fchmod(fd, mode)?;
        rustix::fs::futimens(fd, &times)?;
    }
    Ok(())
}
