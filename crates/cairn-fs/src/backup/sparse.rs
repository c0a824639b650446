//! Finding the holes of a sparse file with `SEEK_DATA`/`SEEK_HOLE`, so they
//! are neither read nor chunked as data (ADR 0005).

use std::fs::File;

use rustix::fs::SeekFrom;

/// A stretch of a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Bytes to read; `len` is `u64::MAX` for "to the end of the file".
    Data { start: u64, len: u64 },
    /// A hole: zeros that occupy no space.
    Hole { len: u64 },
}

/// The data and holes of `file`, which was `size` bytes long and had
/// `blocks` 512-byte blocks allocated when it was listed. A file with as
/// many blocks as bytes has no holes worth looking for and is one data
/// segment read to its end, as is a file on a file system that cannot tell
/// (and a device, whose size is given as `u64::MAX`).
pub(crate) fn segments(file: &File, size: u64, blocks: u64) -> std::io::Result<Vec<Segment>> {
    let whole = vec![Segment::Data {
        start: 0,
        len: u64::MAX,
    }];
    if size == 0 || size == u64::MAX || blocks.saturating_mul(512) >= size {
        return Ok(whole);
    }
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(d) => d.min(size),
            // No data after pos: the rest is a hole.
            Err(rustix::io::Errno::NXIO) => size,
            // The file system cannot tell holes from data.
            Err(rustix::io::Errno::INVAL) if out.is_empty() => return Ok(whole),
            Err(e) => return Err(e.into()),
        };
        if data > pos {
            out.push(Segment::Hole { len: data - pos });
        }
        if data >= size {
            break;
        }
        let hole = match rustix::fs::seek(file, SeekFrom::Hole(data)) {
            Ok(h) => h.min(size),
            Err(rustix::io::Errno::NXIO) => size,
            Err(e) => return Err(e.into()),
        };
        // A file that shrank to below `data` in between: stop here.
        if hole <= data {
            break;
        }
        out.push(Segment::Data {
            start: data,
            len: hole - data,
        });
        pos = hole;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileExt, MetadataExt};

    #[test]
    fn holes_and_data_are_found_in_a_sparse_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sparse");
        let f = File::create(&path).expect("create");
        let mib = 1u64 << 20;
        f.set_len(16 * mib).expect("set_len");
        f.write_all_at(&[7u8; 4096], 4 * mib).expect("write");
        f.write_all_at(&[9u8; 8192], 10 * mib).expect("write");
        f.sync_all().expect("sync");
        let m = f.metadata().expect("stat");
        let segs = segments(&f, m.len(), m.blocks()).expect("segments");
        let data: Vec<(u64, u64)> = segs
            .iter()
            .filter_map(|s| match *s {
                Segment::Data { start, len } => Some((start, len)),
                Segment::Hole { .. } => None,
            })
            .collect();
        let total: u64 = segs
            .iter()
            .map(|s| match *s {
                Segment::Data { len, .. } | Segment::Hole { len } => len,
            })
            .sum();
        assert_eq!(total, 16 * mib);
        if data.len() == 1 && data[0] == (0, 16 * mib) {
            eprintln!("SKIP: this file system reports no holes");
            return;
        }
        assert_eq!(data, [(4 * mib, 4096), (10 * mib, 8192)]);
    }

    #[test]
    fn a_dense_file_is_one_segment_read_to_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dense");
        std::fs::write(&path, vec![1u8; 100_000]).expect("write");
        let f = File::open(&path).expect("open");
        let m = f.metadata().expect("stat");
        assert_eq!(
            segments(&f, m.len(), m.blocks()).expect("segments"),
            [Segment::Data {
                start: 0,
                len: u64::MAX
            }]
        );
    }
}
