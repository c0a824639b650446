use std::io::{Read, Write};

use rustix::fs::{Advice, OFlags};

use super::*;

/// A file of `len` bytes of noise in a directory on this machine's disk
/// (ext4), its pages written out and dropped from the page cache.
fn cold_file(dir: &std::path::Path, len: usize) -> (File, Vec<u8>) {
    let data = cairn_testkit::noise(7, len);
    let path = dir.join("f");
    let mut f = File::create(&path).expect("create");
    f.write_all(&data).expect("write");
    f.sync_all().expect("sync");
    drop(f);
    let f = File::open(&path).expect("open");
    rustix::fs::fadvise(&f, 0, None, Advice::DontNeed).expect("fadvise");
    (f, data)
}

fn direct_on(f: &File) -> bool {
    rustix::fs::fcntl_getfl(f)
        .expect("getfl")
        .contains(OFlags::DIRECT)
}

/// Reads `len` bytes from `start` through `r` in reads of `step` bytes.
fn read_through(r: &mut DirectReader<'_>, start: u64, len: u64, step: usize) -> Vec<u8> {
    r.pos = start;
    let mut out = Vec::new();
    let mut buf = vec![0u8; step];
    let mut taken = r.take(len);
    loop {
        let n = taken.read(&mut buf).expect("read");
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_cold_large_file_on_disk_is_read_directly_and_a_cached_one_is_not() {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("dir");
    let (f, _) = cold_file(dir.path(), MIN_SIZE as usize + 12_345);
    assert!(read_directly(&f, MIN_SIZE + 12_345), "cold, on ext4");
    assert!(direct_on(&f));

    // The same file read once through the page cache is then in memory.
    set_direct(&f, false).expect("off");
    let mut all = Vec::new();
    (&f).read_to_end(&mut all).expect("read");
    if cached_bytes(&f, all.len() as u64).is_none() {
        eprintln!("no cachestat on this kernel: the cached case is not tested");
        return;
    }
    assert!(!read_directly(&f, all.len() as u64), "in the page cache");
    assert!(!direct_on(&f));
}

#[test]
fn small_files_and_files_on_tmpfs_are_read_through_the_page_cache() {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("dir");
    let (f, _) = cold_file(dir.path(), MIN_SIZE as usize - 2);
    assert!(!read_directly(&f, MIN_SIZE - 2));
    assert!(!direct_on(&f));
    let shm = tempfile::tempdir_in("/dev/shm").expect("shm");
    let (f, _) = cold_file(shm.path(), MIN_SIZE as usize);
    assert!(
        !read_directly(&f, MIN_SIZE),
        "tmpfs takes O_DIRECT but gains nothing"
    );
    assert!(!direct_on(&f));
}

#[test]
fn reads_from_any_offset_in_any_steps_return_the_files_bytes_in_aligned_blocks() {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("dir");
    let len = 4 * STAGE + 5_000;
    let (f, data) = cold_file(dir.path(), len);
    assert!(read_directly(&f, len as u64));
    let cases: [(u64, u64, usize); 7] = [
        (0, u64::MAX, 1 << 20),
        (0, u64::MAX, 8 << 20),
        (1, 10_000, 333),
        (4_095, STAGE as u64 + 2, 4_096),
        (STAGE as u64 - 1, 3, 7),
        (len as u64 - 10, u64::MAX, 4_096),
        (len as u64 + 10, u64::MAX, 4_096),
    ];
    for (start, take, step) in cases {
        let mut r = DirectReader::new(&f, true);
        let got = read_through(&mut r, start, take, step);
        let from = (start as usize).min(len);
        let to = from.saturating_add(take.min(len as u64) as usize).min(len);
        assert!(
            got == data[from..to],
            "from {start}, {take} bytes, steps of {step}"
        );
        assert!(!r.reads.is_empty());
        for &(at, n, direct) in &r.reads {
            assert!(direct, "every read direct: {:?}", r.reads);
            assert_eq!((at % BLOCK as u64, n % BLOCK), (0, 0), "{:?}", r.reads);
        }
    }
    // One pass over the file reads each block once, and the last block
    // again to find the end.
    let mut r = DirectReader::new(&f, true);
    read_through(&mut r, 0, u64::MAX, 1 << 20);
    let starts: Vec<u64> = r.reads.iter().map(|r| r.0).collect();
    let s = STAGE as u64;
    assert_eq!(starts, [0, s, 2 * s, 3 * s, 4 * s, 4 * s + 4_096]);
}

#[test]
fn a_direct_read_refused_is_made_through_the_page_cache_for_the_rest() {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("dir");
    let len = MIN_SIZE as usize + 77;
    let (f, data) = cold_file(dir.path(), len);
    assert!(read_directly(&f, len as u64));
    let mut r = DirectReader::new(&f, true);
    // A buffer one byte off its block: the kernel refuses the read.
    r.buf = cairn_store::direct_io::Aligned::misaligned(STAGE);
    let got = read_through(&mut r, 100, u64::MAX, 1 << 20);
    assert!(got == data[100..]);
    assert!(!direct_on(&f), "direct I/O turned off");
    assert!(r.reads[0].2, "the first read tried directly: {:?}", r.reads);
    assert!(r.reads[1..].iter().all(|r| !r.2), "{:?}", r.reads);
}
