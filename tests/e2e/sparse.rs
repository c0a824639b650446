//! Sparse files: a 1 GiB image holding 64 MiB of data is backed up by
//! reading only its data, and restored with its holes as holes.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use crate::common::source::xorshift;
use crate::common::{Repo, field_u64};

pub(crate) const GIB: u64 = 1 << 30;
pub(crate) const MIB: u64 = 1 << 20;

/// A 1 GiB sparse image at `path` with 16 data extents of 4 MiB, at
/// scattered block-aligned offsets; returns the bytes of data written.
pub(crate) fn sparse_image(path: &Path, seed: u64) -> u64 {
    let f = std::fs::File::create(path).expect("create");
    f.set_len(GIB).expect("set_len");
    let mut rng = xorshift(seed);
    let mut block = vec![0u8; (4 * MIB) as usize];
    for i in 0..16u64 {
        rng.fill(&mut block);
        let offset = i * 64 * MIB + (rng.below(1000) * 4096);
        f.write_all_at(&block, offset).expect("write");
    }
    f.sync_all().expect("sync");
    16 * 4 * MIB
}

/// Whether two files hold the same bytes (holes read as zeros).
pub(crate) fn same_content(a: &Path, b: &Path) -> bool {
    let open = |p: &Path| std::fs::File::open(p).expect("open");
    let (mut fa, mut fb) = (open(a), open(b));
    let (mut ba, mut bb) = (vec![0u8; 4 << 20], vec![0u8; 4 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba);
        let m = read_full(&mut fb, &mut bb);
        if n != m || ba[..n] != bb[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).expect("read") {
            0 => break,
            k => n += k,
        }
    }
    n
}

#[test]
fn sparse_image_reads_only_its_data_and_restores_with_its_holes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let image = src.join("disk.img");
    let data = sparse_image(&image, 2026);
    let source_blocks = std::fs::metadata(&image).expect("stat").blocks() * 512;
    if source_blocks >= GIB {
        eprintln!("SKIP sparse test: this file system does not keep holes");
        return;
    }
    let repo = Repo::init(tmp.path().join("repo"));
    let summary = repo.backup_json(&src);
    assert_eq!(field_u64(&summary, "bytes_total"), GIB, "{summary:#}");
    assert_eq!(
        field_u64(&summary, "bytes_read"),
        data,
        "only the data extents are read: {summary:#}"
    );
    // Holes are zero chunks (one blob per distinct length), which
    // compress to almost nothing.
    assert!(
        field_u64(&summary, "bytes_stored") < data + 2 * MIB,
        "{summary:#}"
    );

    let target = tmp.path().join("restored");
    repo.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
    ])
    .success();
    let restored = target.join("disk.img");
    let m = std::fs::metadata(&restored).expect("stat");
    assert_eq!(m.len(), GIB);
    let allocated = m.blocks() * 512;
    eprintln!(
        "sparse: source allocates {} KiB, restored {} KiB, data {} KiB",
        source_blocks / 1024,
        allocated / 1024,
        data / 1024
    );
    assert!(
        allocated >= data && allocated <= source_blocks + MIB,
        "restored image allocates {allocated} bytes for {data} bytes of data"
    );
    assert!(same_content(&restored, &image), "restored image differs");
}
