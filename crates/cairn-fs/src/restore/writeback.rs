//! Write-back started as chunks are written, so that the device writes
//! while the restore goes on, and the sync that makes each file durable
//! before its rename finds less left to write.
//!
//! Measured on the PVC-like dataset (docs/PERFORMANCE.md, "Restore: the
//! write-back started early"): the restore's syncs cost 0.5–2 s, and
//! starting write-back per chunk of a large file took 6–7% off its wall
//! time. Starting it per small file too was slower (one small
//! write-out per file instead of the batch sync's), so small files, which
//! one `syncfs` covers in batches, are left to that.

use std::num::NonZeroU64;

/// The page size write-back works in. On a system with larger pages the
/// range is still inside the written bytes, only less well aligned.
const PAGE: u64 = 4096;

/// Asks the kernel to start writing the whole pages of `offset..offset +
/// len` of `file` to its device, without waiting for them. Pages at the
/// edges of the range are left alone: a neighbouring chunk, written
/// concurrently, may not have filled them yet. Advice only: a file system
/// that does not act on it (FUSE, some network file systems) restores the
/// same, with all the writing left to the sync.
pub(super) fn start(file: &std::fs::File, offset: u64, len: u64) {
    if let Some((start, n)) = whole_pages(offset, len) {
        // POSIX_FADV_DONTNEED starts write-back of the dirty pages in the
        // range, then drops those already clean: the pages just written
        // are dirty, so they stay cached until written.
        let _ = rustix::fs::fadvise(file, start, Some(n), rustix::fs::Advice::DontNeed);
    }
}

/// The whole pages inside `offset..offset + len`: their start and length,
/// or `None` when the range holds no whole page.
fn whole_pages(offset: u64, len: u64) -> Option<(u64, NonZeroU64)> {
    let start = offset.checked_next_multiple_of(PAGE)?;
    let end = offset.checked_add(len)? / PAGE * PAGE;
    NonZeroU64::new(end.checked_sub(start)?).map(|n| (start, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(offset: u64, len: u64) -> Option<(u64, u64)> {
        whole_pages(offset, len).map(|(s, n)| (s, n.get()))
    }

    #[test]
    fn only_whole_pages_inside_the_written_range_are_named() {
        assert_eq!(pages(0, 8192), Some((0, 8192)));
        assert_eq!(pages(0, 8191), Some((0, 4096)));
        assert_eq!(pages(1, 8192), Some((4096, 4096)));
        assert_eq!(pages(4095, 4098), Some((4096, 4096)));
        assert_eq!(pages(100, 1 << 20), Some((4096, (1 << 20) - 4096)));
        assert_eq!(pages(4096, 1 << 20), Some((4096, 1 << 20)));
    }

    #[test]
    fn a_range_without_a_whole_page_names_none() {
        assert_eq!(pages(0, 0), None);
        assert_eq!(pages(0, 4095), None);
        assert_eq!(pages(1, 4095), None);
        assert_eq!(pages(4095, 4096), None);
        assert_eq!(pages(u64::MAX - 10, 5), None);
        assert_eq!(pages(u64::MAX - 10, 20), None);
    }

    #[test]
    fn advice_on_a_written_file_leaves_its_bytes_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let file = std::fs::File::create(&path).expect("create");
        let data: Vec<u8> = (0..3 * PAGE + 123).map(|i| (i % 251) as u8).collect();
        std::os::unix::fs::FileExt::write_all_at(&file, &data, 7).expect("write");
        start(&file, 7, data.len() as u64);
        start(&file, 0, 0);
        drop(file);
        let back = std::fs::read(&path).expect("read");
        assert_eq!(&back[7..], &data[..]);
        assert_eq!(&back[..7], &[0u8; 7]);
    }
}
