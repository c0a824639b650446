//! Capturing metadata into tree nodes and applying it on restore.

use std::fs::{Metadata, Permissions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use cairn_core::format::{Node, NodeKind, Timestamp};
use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};

use crate::owners;

/// The node kind of an `lstat` result.
pub(crate) fn kind_of(m: &Metadata) -> NodeKind {
    let t = m.file_type();
    if t.is_dir() {
        NodeKind::Dir
    } else if t.is_symlink() {
        NodeKind::Symlink
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else if t.is_char_device() {
        NodeKind::CharDevice
    } else if t.is_block_device() {
        NodeKind::BlockDevice
    } else if t.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    }
}

fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: u32::try_from(nanos).unwrap_or(0).min(999_999_999),
    }
}

/// A node for `name` from its `lstat` metadata (content not filled in).
pub(crate) fn node_from(name: Vec<u8>, m: &Metadata) -> Node {
    let kind = kind_of(m);
    let mut n = Node::new(name, kind);
    n.mode = m.mode() & 0o7777;
    n.uid = m.uid();
    n.gid = m.gid();
    n.user = owners::user_name(n.uid);
    n.group = owners::group_name(n.gid);
    n.mtime = ts(m.mtime(), m.mtime_nsec());
    n.atime = ts(m.atime(), m.atime_nsec());
    n.ctime = ts(m.ctime(), m.ctime_nsec());
    n.size = if kind == NodeKind::File { m.size() } else { 0 };
    n.inode = m.ino();
    n.device = m.dev();
    n.links = m.nlink();
    n.rdev = m.rdev();
    n
}

/// True if a file's metadata shows it unchanged since `old` was recorded, so
/// its content need not be read again.
pub(crate) fn unchanged(old: &Node, new: &Node) -> bool {
    old.kind == NodeKind::File
        && new.kind == NodeKind::File
        && old.size == new.size
        && old.mtime == new.mtime
        && old.ctime == new.ctime
        && old.inode == new.inode
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
/// `path`, in the order that keeps each step from undoing another: chown
/// clears set-id bits and `security.capability`, so both come after it; an
/// ACL rewrites the permission bits, so mode comes after the attributes (and
/// agrees with the ACL, as both were recorded together); times come last.
pub(crate) fn apply(path: &Path, node: &Node, owners: bool) -> std::io::Result<()> {
    let a = crate::longpath::access(path)?;
    let path = a.path();
    let symlink = node.kind == NodeKind::Symlink;
    if owners {
        rustix::fs::chownat(
            CWD,
            path,
            Some(rustix::fs::Uid::from_raw(node.uid)),
            Some(rustix::fs::Gid::from_raw(node.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    crate::xattr::apply(path, &node.xattrs, rustix::process::geteuid().is_root())?;
    if !symlink {
        std::fs::set_permissions(path, Permissions::from_mode(node.mode))?;
    }
    let times = Timestamps {
        last_access: timespec(node.atime),
        last_modification: timespec(node.mtime),
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}
