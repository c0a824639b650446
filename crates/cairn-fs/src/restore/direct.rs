//! Large files restored with direct I/O: their chunks, which arrive in
//! order but at any offset, are gathered into an aligned buffer and
//! written a whole number of blocks at a time with `O_DIRECT`, so the
//! kernel copies nothing into the page cache. On this project's machines a
//! buffered write of 1 GiB and its sync took 1.2–2.6 s of system time, a
//! direct one 0.16–0.39 s (`dd`, docs/PERFORMANCE.md, "Restore: large
//! files written directly"); a restore is mostly that kernel time. It also
//! leaves the page cache of the node to its workloads.
//!
//! Holes stay holes: a run of zeros of at least two blocks is skipped, the
//! block it starts in written with the zeros that belong there. The file's
//! last partial block is written without `O_DIRECT`. Only files on a local
//! disk's file system (ext4, XFS, btrfs) are written directly; others, and
//! one that refuses direct I/O (at `fcntl` or at a write), get the same
//! bytes through the page cache.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

pub(super) use cairn_store::direct_io::MIN_SIZE;
use cairn_store::direct_io::{Aligned, BLOCK, on_local_disk, refused, set_direct};

/// Bytes gathered before a write: 2 MiB.
pub(super) const STAGE: usize = 2 << 20;
/// Zeros at least this long are left as a hole.
const HOLE_MIN: u64 = 2 * BLOCK as u64;

/// Gathers one file's content, chunk after chunk, into aligned writes.
pub(super) struct Stager {
    buf: Aligned,
    /// Bytes gathered, and the file offset of the first (block-aligned).
    len: usize,
    start: u64,
    /// Direct I/O is on for the file.
    direct: bool,
    /// Zero runs may be left as holes (false for a block device, whose old
    /// bytes are not known).
    holes: bool,
    #[cfg(test)]
    writes: Vec<Write>,
}

/// A write made: offset, length, and whether it was direct.
#[cfg(test)]
type Write = (u64, usize, bool);

impl Stager {
    /// A stager for `file`, with direct I/O turned on where the file is
    /// on a local disk's file system and it allows it.
    pub(super) fn new(file: &File) -> Stager {
        Stager::with(file, on_local_disk(file), true)
    }

    /// A stager for a block device: direct I/O where the device allows it,
    /// and every zero written.
    pub(super) fn for_device(file: &File) -> Stager {
        Stager::with(file, true, false)
    }

    fn with(file: &File, try_direct: bool, holes: bool) -> Stager {
        let direct = try_direct && set_direct(file, true).is_ok();
        Stager {
            buf: Aligned::new(STAGE),
            len: 0,
            start: 0,
            direct,
            holes,
            #[cfg(test)]
            writes: Vec::new(),
        }
    }

    /// The file offset the next chunk must start at.
    fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    /// Adds the next chunk: `len` bytes at `offset`, `None` when they are
    /// all zeros.
    pub(super) fn add(
        &mut self,
        file: &File,
        offset: u64,
        data: Option<&[u8]>,
        len: u64,
    ) -> std::io::Result<()> {
        if offset != self.end() {
            return Err(std::io::Error::other(format!(
                "chunk at {offset}, expected at {}",
                self.end()
            )));
        }
        match data {
            Some(d) => self.append(file, d),
            None if self.holes && len >= HOLE_MIN => self.skip(file, offset + len),
            None => self.append_zeros(file, len),
        }
    }

    /// [`append`](Self::append) of `len` zeros, filled in place.
    fn append_zeros(&mut self, file: &File, mut len: u64) -> std::io::Result<()> {
        while len > 0 {
            let n = usize::try_from(len)
                .unwrap_or(usize::MAX)
                .min(STAGE - self.len);
            let at = self.len;
            self.buf.bytes_mut()[at..at + n].fill(0);
            self.len += n;
            len -= n as u64;
            if self.len == STAGE {
                self.write_blocks(file)?;
            }
        }
        Ok(())
    }

    fn append(&mut self, file: &File, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(STAGE - self.len);
            let len = self.len;
            self.buf.bytes_mut()[len..len + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == STAGE {
                self.write_blocks(file)?;
            }
        }
        Ok(())
    }

    /// Writes the whole blocks gathered and keeps the rest.
    fn write_blocks(&mut self, file: &File) -> std::io::Result<()> {
        let whole = self.len / BLOCK * BLOCK;
        if whole == 0 {
            return Ok(());
        }
        self.write(file, whole, self.start)?;
        let len = self.len;
        self.buf.bytes_mut().copy_within(whole..len, 0);
        self.len -= whole;
        self.start += whole as u64;
        Ok(())
    }

    /// Writes what is gathered, its last block filled with the zeros of
    /// the hole that follows, and goes on at `next`, the hole's end.
    fn skip(&mut self, file: &File, next: u64) -> std::io::Result<()> {
        let len = self.len;
        if !all_zeros(&self.buf.bytes()[..len]) {
            let padded = len.next_multiple_of(BLOCK);
            self.buf.bytes_mut()[len..padded].fill(0);
            self.write(file, padded, self.start)?;
        }
        // The hole's last partial block is gathered as zeros: its start
        // lies past the block just written, the hole being two blocks long.
        self.start = next / BLOCK as u64 * BLOCK as u64;
        self.len = usize::try_from(next - self.start).unwrap_or(0);
        let len = self.len;
        self.buf.bytes_mut()[..len].fill(0);
        Ok(())
    }

    /// Writes the rest, the file's last partial block, through the page
    /// cache. A trailing hole stays one.
    pub(super) fn finish(&mut self, file: &File) -> std::io::Result<()> {
        self.write_blocks(file)?;
        let len = self.len;
        if len == 0 || self.holes && all_zeros(&self.buf.bytes()[..len]) {
            return Ok(());
        }
        self.buffered(file)?;
        self.write(file, len, self.start)
    }

    /// Turns direct I/O off for the rest of the file.
    fn buffered(&mut self, file: &File) -> std::io::Result<()> {
        if self.direct {
            self.direct = false;
            set_direct(file, false)?;
        }
        Ok(())
    }

    /// Writes the first `n` gathered bytes at `offset`; a direct write the
    /// file system refuses is written again through the page cache.
    fn write(&mut self, file: &File, n: usize, offset: u64) -> std::io::Result<()> {
        #[cfg(test)]
        self.writes.push((offset, n, self.direct));
        let bytes = &self.buf.bytes()[..n];
        if self.direct {
            match file.write_all_at(bytes, offset) {
                Ok(()) => return Ok(()),
                Err(e) if refused(&e) => {
                    tracing::debug!("direct write refused ({e}), writing through the page cache");
                }
                Err(e) => return Err(e),
            }
            self.buffered(file)?;
        }
        let bytes = &self.buf.bytes()[..n];
        file.write_all_at(bytes, offset)?;
        // Through the page cache: its write-back starts now, as for the
        // chunks of other files (`writeback.rs`).
        super::writeback::start(file, offset, n as u64);
        Ok(())
    }
}

/// Whether `buf` is all zeros. Blocks of 64 bytes are or-ed together
/// without an early exit inside one, which the compiler turns into vector
/// instructions: about 30 times as fast as a byte-by-byte scan.
pub(super) fn all_zeros(buf: &[u8]) -> bool {
    let mut blocks = buf.chunks_exact(64);
    let zero = blocks.all(|b| b.iter().fold(0u8, |acc, &x| acc | x) == 0);
    zero && blocks.remainder().iter().all(|&x| x == 0)
}

/// [`Stager::add`] on a blocking thread: the stager goes there and back.
/// `data` is checked for zeros there too (a chunk is up to 8 MiB); returns
/// whether it was all zeros (or `None`), and so not data to write.
pub(super) async fn add_blocking(
    stager: &mut Option<Stager>,
    file: &Arc<File>,
    offset: u64,
    data: Option<Vec<u8>>,
    len: u64,
) -> std::io::Result<bool> {
    let (mut s, f) = (stager.take(), file.clone());
    let (s, r) = tokio::task::spawn_blocking(move || {
        let data = data.filter(|d| !all_zeros(d));
        let r = match s.as_mut() {
            Some(s) => s.add(&f, offset, data.as_deref(), len),
            None => Err(std::io::Error::other("the stager is gone")),
        };
        (s, r.map(|()| data.is_none()))
    })
    .await
    .map_err(|e| std::io::Error::other(format!("restore task failed: {e}")))?;
    *stager = s;
    r
}

/// [`Stager::finish`] on a blocking thread.
pub(super) async fn finish_blocking(
    stager: Option<Stager>,
    file: &Arc<File>,
) -> std::io::Result<()> {
    let f = file.clone();
    tokio::task::spawn_blocking(move || stager.map_or(Ok(()), |mut s| s.finish(&f)))
        .await
        .map_err(|e| std::io::Error::other(format!("restore task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// What restoring `chunks` (lengths, and whether each is zeros) wrote:
    /// the file, the expected content, the writes made and the bytes the
    /// file has allocated.
    fn restore_in(
        parent: &std::path::Path,
        chunks: &[(u64, bool)],
        device: bool,
    ) -> (Vec<u8>, Vec<u8>, Vec<Write>, u64) {
        let dir = tempfile::tempdir_in(parent).expect("dir");
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .expect("create");
        let size: u64 = chunks.iter().map(|c| c.0).sum();
        file.set_len(size).expect("size");
        let mut stager = if device {
            Stager::for_device(&file)
        } else {
            Stager::new(&file)
        };
        let mut expected = Vec::new();
        let mut offset = 0u64;
        for (i, &(len, zero)) in chunks.iter().enumerate() {
            let data: Vec<u8> = if zero {
                vec![0; len as usize]
            } else {
                (0..len).map(|j| (j as u8 ^ i as u8) | 1).collect()
            };
            stager
                .add(&file, offset, (!zero).then_some(&data[..]), len)
                .expect("add");
            expected.extend_from_slice(&data);
            offset += len;
        }
        stager.finish(&file).expect("finish");
        let got = std::fs::read(&path).expect("read");
        let blocks = std::fs::metadata(&path).expect("meta").blocks();
        (got, expected, stager.writes, blocks * 512)
    }

    /// Lengths that are not multiples of a block, past several stages,
    /// with short zero runs (written) and long ones (holes).
    const CHUNKS: [(u64, bool); 10] = [
        (1_000_003, false),
        (700_001, false),
        (5_000, true),
        (3_333_333, false),
        (3 << 20, true),
        (1_234_567, false),
        (4_097, false),
        (8_191, true),
        (2_500_000, false),
        (1 << 20, true),
    ];

    #[test]
    fn a_file_on_tmpfs_is_written_through_the_page_cache() {
        // tmpfs is not a local disk's file system: nothing is written
        // directly, and the file is the same.
        let (got, expected, writes, _) =
            restore_in(std::path::Path::new("/dev/shm"), &CHUNKS, false);
        assert!(got == expected, "the file differs from its chunks");
        assert!(
            !writes.is_empty() && writes.iter().all(|w| !w.2),
            "{writes:?}"
        );
    }

    #[test]
    fn chunks_at_any_offset_are_written_in_whole_aligned_blocks() {
        let (got, expected, writes, allocated) = restore_in(&std::env::temp_dir(), &CHUNKS, false);
        assert!(got == expected, "the file differs from its chunks");
        // The project's temporary directories are on file systems with
        // direct I/O (ext4 here): a test that wrote nothing directly
        // would prove nothing.
        assert!(writes.iter().any(|w| w.2), "no direct write: {writes:?}");
        let last = writes.len() - 1;
        for (i, &(offset, n, direct)) in writes.iter().enumerate() {
            if direct {
                assert_eq!(offset % BLOCK as u64, 0, "write {i} at {offset}");
                assert_eq!(n % BLOCK, 0, "write {i} of {n}");
            } else {
                assert_eq!(i, last, "only the tail is written buffered: {writes:?}");
            }
        }
        // The holes of 3 MiB and 1 MiB stay unallocated.
        let data: u64 = CHUNKS.iter().filter(|c| !c.1).map(|c| c.0).sum();
        assert!(
            allocated < data + (1 << 20),
            "{allocated} bytes allocated for {data} bytes of data"
        );
    }

    #[test]
    fn a_device_gets_every_zero_written() {
        // A block device's old bytes are not known: no hole is left, the
        // writes are still aligned (a regular file stands in for it).
        let (got, expected, writes, allocated) = restore_in(&std::env::temp_dir(), &CHUNKS, true);
        assert!(got == expected, "the file differs from its chunks");
        let size = got.len() as u64;
        let direct: u64 = writes.iter().filter(|w| w.2).map(|w| w.1 as u64).sum();
        assert!(
            direct + BLOCK as u64 > size,
            "{direct} of {size} bytes written directly"
        );
        assert!(
            writes
                .iter()
                .filter(|w| w.2)
                .all(|w| w.0 % BLOCK as u64 == 0 && w.1 % BLOCK == 0)
        );
        assert!(allocated >= size, "{allocated} bytes allocated of {size}");
    }

    #[test]
    fn one_byte_that_is_not_zero_is_found_anywhere() {
        // Every length up to three blocks of 64 and past them, so that the
        // blocks, the remainder and an empty buffer are all covered.
        for len in (0..=200).chain([4095, 4096, 4097]) {
            let mut buf = vec![0u8; len];
            assert!(all_zeros(&buf), "{len} zeros");
            for at in 0..len {
                for bit in [0x01, 0x80] {
                    buf[at] = bit;
                    assert!(!all_zeros(&buf), "{bit:#x} at {at} of {len}");
                }
                buf[at] = 0;
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_chunk_of_zeros_handed_over_as_data_stays_a_hole() {
        let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("dir");
        let path = dir.path().join("f");
        let file = Arc::new(File::create(&path).expect("create"));
        let size = 3 * HOLE_MIN + 100;
        file.set_len(size).expect("size");
        let mut stager = Some(Stager::new(&file));
        let data = vec![7u8; HOLE_MIN as usize];
        let chunks = [
            (0, data.clone()),
            (HOLE_MIN, vec![0; 2 * HOLE_MIN as usize]),
        ];
        let mut zeros = Vec::new();
        for (offset, d) in chunks {
            let len = d.len() as u64;
            let zero = add_blocking(&mut stager, &file, offset, Some(d), len)
                .await
                .expect("add");
            zeros.push(zero);
        }
        let tail = add_blocking(&mut stager, &file, 3 * HOLE_MIN, Some(vec![9; 100]), 100)
            .await
            .expect("add");
        zeros.push(tail);
        finish_blocking(stager, &file).await.expect("finish");
        assert_eq!(zeros, [false, true, false]);
        let got = std::fs::read(&path).expect("read");
        let mut expected = data;
        expected.resize(3 * HOLE_MIN as usize, 0);
        expected.extend_from_slice(&[9; 100]);
        assert!(got == expected, "the file differs from its chunks");
        let allocated = std::fs::metadata(&path).expect("meta").blocks() * 512;
        assert!(
            allocated < size - HOLE_MIN,
            "{allocated} bytes allocated: the zeros were written"
        );
    }

    #[test]
    fn a_chunk_out_of_order_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let file = File::create(dir.path().join("f")).expect("create");
        let mut stager = Stager::new(&file);
        assert!(stager.add(&file, 5, Some(b"x"), 1).is_err());
    }
}
