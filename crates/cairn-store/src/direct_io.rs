//! What direct I/O on local files needs, for the backup's reads (ADR 0029),
//! the restore's writes (ADR 0027) and a local repository's packs: the
//! alignment, which file systems get it, turning `O_DIRECT` on and off for
//! an open file, and a buffer aligned for it. Not a stable interface: it
//! is public for cairn's own crates.

use std::fs::File;

use rustix::fs::OFlags;

/// Files at least this large are read and written directly.
pub const MIN_SIZE: u64 = 8 << 20;
/// The alignment direct I/O needs: the largest logical block size in use.
pub const BLOCK: usize = 4096;
/// File systems on a local block device, where direct I/O goes to the
/// device as it is: ext2/3/4, XFS and btrfs. Elsewhere it is refused
/// (tmpfs, most FUSE), or costs a round trip to a server per call (NFS,
/// CephFS) that the page cache would have saved: those keep it.
const DIRECT_FILE_SYSTEMS: [i64; 3] = [0xEF53, 0x5846_5342, 0x9123_683E];

/// True if `file` is on a file system of [`DIRECT_FILE_SYSTEMS`].
pub fn on_local_disk(file: &File) -> bool {
    #[allow(clippy::unnecessary_cast)] // the word's type depends on the target
    rustix::fs::fstatfs(file).is_ok_and(|s| DIRECT_FILE_SYSTEMS.contains(&(s.f_type as i64)))
}

/// Turns `O_DIRECT` on or off for `file` (its open file description).
pub fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags.difference(OFlags::DIRECT)
    };
    Ok(rustix::fs::fcntl_setfl(file, flags)?)
}

/// True if a call failed because direct I/O was refused for it.
pub fn refused(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

/// `len` bytes starting at a [`BLOCK`] boundary in memory.
pub struct Aligned {
    raw: Vec<u8>,
    at: usize,
    len: usize,
}

impl std::fmt::Debug for Aligned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aligned").field("len", &self.len).finish()
    }
}

impl Aligned {
    /// A buffer of `len` zeros whose first byte is block-aligned.
    pub fn new(len: usize) -> Aligned {
        let raw = vec![0u8; len + BLOCK];
        let at = raw.as_ptr().align_offset(BLOCK).min(BLOCK);
        Aligned { raw, at, len }
    }

    /// A buffer of `len` bytes one byte past a block boundary, which
    /// direct I/O refuses: for tests of the refusal.
    #[doc(hidden)]
    pub fn misaligned(len: usize) -> Aligned {
        let mut a = Aligned::new(len + 1);
        (a.at, a.len) = (a.at + 1, len);
        a
    }

    /// The aligned bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.raw[self.at..self.at + self.len]
    }

    /// The aligned bytes, to fill.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.at..self.at + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aligned_buffer_starts_on_a_block_and_has_its_length() {
        for len in [0, 1, BLOCK, 3 * BLOCK + 5] {
            let mut a = Aligned::new(len);
            assert_eq!(a.bytes().len(), len);
            assert_eq!(a.bytes_mut().as_ptr() as usize % BLOCK, 0);
        }
    }
}
