//! File attributes as the kernel sees them: recorded ones for snapshot
//! entries, made-up read-only ones for the layout.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn::{Node, NodeKind, Timestamp};
use fuser::{FileAttr, FileType, INodeNo};

/// Reads go to the kernel in pieces of this size at most; a large block
/// size makes `cp` and `cat` ask for large pieces.
const BLOCK_SIZE: u32 = 128 * 1024;

/// What a tree entry shows as. A block device backed up as a stream (its
/// content recorded) is shown as a regular file holding that content, so
/// it can be read; other special files are shown as what they are (the
/// mount is `nodev`, so a device node opens nothing).
pub(crate) fn file_type(node: &Node) -> FileType {
    match node.kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::CharDevice => FileType::CharDevice,
        NodeKind::BlockDevice if has_content(node) => FileType::RegularFile,
        NodeKind::BlockDevice => FileType::BlockDevice,
        NodeKind::Socket => FileType::Socket,
    }
}

/// Whether reads of `node` return recorded content.
pub(crate) fn has_content(node: &Node) -> bool {
    match node.kind {
        NodeKind::File => true,
        NodeKind::BlockDevice => !node.content.is_empty(),
        _ => false,
    }
}

/// A tree entry's attributes, as recorded.
pub(crate) fn of_node(ino: u64, node: &Node) -> FileAttr {
    let kind = file_type(node);
    let size = match kind {
        FileType::RegularFile => node.size,
        FileType::Symlink => node.link_target.len() as u64,
        _ => 0,
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: system_time(node.atime),
        mtime: system_time(node.mtime),
        ctime: system_time(node.ctime),
        crtime: system_time(node.mtime),
        kind,
        perm: (node.mode & 0o7777) as u16,
        nlink: u32::try_from(node.links).unwrap_or(u32::MAX).max(1),
        uid: node.uid,
        gid: node.gid,
        // The kernel's 32-bit device encoding, which matches glibc's
        // makedev for majors below 4096 and minors below 2^20.
        rdev: u32::try_from(node.rdev).unwrap_or(0),
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

/// Who owns the layout's directories and links: whoever mounted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl Owner {
    /// The user and group this process runs as.
    pub(crate) fn current() -> Owner {
        Owner {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
        }
    }

    /// A layout directory (`dir`) or link of `link_len` bytes, read-only,
    /// dated `time`.
    pub(crate) fn layout(self, ino: u64, link_len: Option<usize>, time: Timestamp) -> FileAttr {
        let (kind, perm, size) = match link_len {
            Some(n) => (FileType::Symlink, 0o777, n as u64),
            None => (FileType::Directory, 0o555, 0),
        };
        let t = system_time(time);
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm,
            nlink: 1,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLOCK_SIZE,
            flags: 0,
        }
    }
}

/// A recorded time as a `SystemTime` (before 1970 too).
pub(crate) fn system_time(t: Timestamp) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(t.nanos));
    if t.secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.secs.unsigned_abs()) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_1970_keep_their_nanoseconds() {
        let t = system_time(Timestamp {
            secs: -2,
            nanos: 500,
        });
        let before = UNIX_EPOCH.duration_since(t).expect("before the epoch");
        assert_eq!(before, Duration::from_nanos(2_000_000_000 - 500));
    }

    #[test]
    fn a_streamed_block_device_reads_as_a_file() {
        let mut dev = Node::new(b"sda".to_vec(), NodeKind::BlockDevice);
        assert_eq!(file_type(&dev), FileType::BlockDevice);
        dev.content = vec![cairn::Id::ZERO];
        dev.size = 10;
        assert_eq!(file_type(&dev), FileType::RegularFile);
        assert_eq!(of_node(7, &dev).size, 10);
    }
}
