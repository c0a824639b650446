//! Large files read with direct I/O (ADR 0029): the device's data lands in
//! an aligned buffer of the backup's own, so the kernel neither copies it
//! out of the page cache nor fills the page cache with it. On this
//! project's machines a cold first backup spent more system time than
//! user time, most of it in that copy (docs/PERFORMANCE.md, "Backups:
//! large files read directly"); on a node, a backup that streams a
//! volume through the page cache also pushes the workloads' pages out.
//!
//! A file is read directly when it is at least [`MIN_SIZE`], on a local
//! disk's file system (or a block device), most of it is not in the page
//! cache already (a file in memory is read faster from there, and reading
//! it evicts nothing), and `O_DIRECT` can be turned on for it. Reads start
//! at block boundaries and are whole blocks; what is read past what the
//! caller asks stays in the buffer for the next call. A read the file
//! system refuses turns direct I/O off for the rest of the file.

use std::fs::File;
use std::os::unix::fs::FileExt;

use cairn_store::direct_io::{Aligned, BLOCK, MIN_SIZE, on_local_disk, refused, set_direct};

/// Bytes one direct read asks for: 2 MiB.
pub(super) const STAGE: usize = 2 << 20;

/// Whether `file` (`size` bytes, or read to its end for `u64::MAX`: a
/// block device) is to be read directly; if so, `O_DIRECT` is on for it
/// when this returns.
pub(super) fn read_directly(file: &File, size: u64) -> bool {
    let (size, device) = match size {
        u64::MAX => match device_size(file) {
            Some(n) => (n, true),
            None => return false,
        },
        n => (n, false),
    };
    size >= MIN_SIZE
        && (device || on_local_disk(file))
        && !mostly_cached(file, size)
        && set_direct(file, true).is_ok()
}

/// A block device's size; `None` for anything else.
fn device_size(file: &File) -> Option<u64> {
    use std::io::Seek;
    use std::os::unix::fs::FileTypeExt;
    let block = file.metadata().ok()?.file_type().is_block_device();
    // Reads are positional: the descriptor's own offset is not used.
    block.then(|| (&*file).seek(std::io::SeekFrom::End(0)).ok())?
}

/// True if at least half of `file`'s first `size` bytes are in the page
/// cache (`cachestat`, Linux 6.5); false where it cannot tell.
fn mostly_cached(file: &File, size: u64) -> bool {
    cached_bytes(file, size).is_some_and(|c| c >= size / 2)
}

/// The bytes of `file`'s first `size` in the page cache, by `cachestat`.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn cached_bytes(file: &File, size: u64) -> Option<u64> {
    use std::os::fd::AsRawFd;
    /// `cachestat`'s number on these architectures (the generic table).
    const SYS_CACHESTAT: libc::c_long = 451;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    let range = Range { off: 0, len: size };
    let mut stat = Stat::default();
    // SAFETY: cachestat reads `range` and writes one `Stat`, both live,
    // properly sized `repr(C)` values on this stack; the descriptor is
    // borrowed from `file` for the call. An older kernel answers ENOSYS.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    (r == 0).then(|| stat.nr_cache.saturating_mul(page_size()))
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn cached_bytes(_file: &File, _size: u64) -> Option<u64> {
    None
}

fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// Reads one file at any offsets, directly where it was turned on, each
/// read a whole number of blocks at a block boundary into [`STAGE`]
/// bytes of its own.
pub(super) struct DirectReader<'a> {
    file: &'a File,
    direct: bool,
    /// The next offset [`read`](std::io::Read::read) returns.
    pub(super) pos: u64,
    buf: Aligned,
    /// `buf` holds the file's bytes from `base`, `filled` of them.
    base: u64,
    filled: usize,
    #[cfg(test)]
    pub(super) reads: Vec<(u64, usize, bool)>,
}

impl<'a> DirectReader<'a> {
    /// A reader of `file`, direct if [`read_directly`] said so.
    pub(super) fn new(file: &'a File, direct: bool) -> DirectReader<'a> {
        DirectReader {
            file,
            direct,
            pos: 0,
            buf: Aligned::new(if direct { STAGE } else { 0 }),
            base: 0,
            filled: 0,
            #[cfg(test)]
            reads: Vec::new(),
        }
    }

    /// Copies what the buffer holds at `pos` into `out`.
    fn copy_out(&self, out: &mut [u8]) -> usize {
        let end = self.base + self.filled as u64;
        if self.pos < self.base || self.pos >= end {
            return 0;
        }
        let at = (self.pos - self.base) as usize;
        let n = out.len().min(self.filled - at);
        out[..n].copy_from_slice(&self.buf.bytes()[at..at + n]);
        n
    }

    /// Fills the buffer from the block `pos` is in; `false` once direct
    /// reads were refused (direct I/O is then off).
    fn refill(&mut self) -> std::io::Result<bool> {
        let base = self.pos / BLOCK as u64 * BLOCK as u64;
        #[cfg(test)]
        self.reads.push((base, STAGE, true));
        match self.file.read_at(self.buf.bytes_mut(), base) {
            Ok(n) => {
                (self.base, self.filled) = (base, n);
                Ok(true)
            }
            Err(e) if refused(&e) => {
                tracing::debug!("direct read refused ({e}), reading through the page cache");
                self.direct = false;
                self.filled = 0;
                set_direct(self.file, false)?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

impl std::io::Read for DirectReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.direct {
            let mut n = self.copy_out(out);
            if n == 0 && self.refill()? {
                n = self.copy_out(out);
            }
            // Still direct: nothing at `pos` after a refill is the end.
            if self.direct {
                self.pos += n as u64;
                return Ok(n);
            }
        }
        #[cfg(test)]
        self.reads.push((self.pos, out.len(), false));
        let n = self.file.read_at(out, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
#[path = "direct_tests.rs"]
mod tests;
