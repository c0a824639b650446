//! A large file not in the page cache is backed up with direct reads
//! (ADR 0029): the backup leaves none of its pages in the page cache, the
//! snapshot restores it byte for byte with its hole, and a backup of the
//! same file read through the page cache cuts exactly the same chunks.

use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use cairn_core::format::{Source, Timestamp};
use cairn_fs::{BackupOptions, ParentChoice, Progress, RestoreOptions};
use cairn_testkit::{MemoryRepository, noise};
use rustix::fs::Advice;

const MIB: u64 = 1 << 20;

/// A 24 MiB file: 4 MiB of data, an 8 MiB hole, then 12 MiB and 123 bytes
/// of data (its last block partial), written out and dropped from the
/// page cache. Returns its bytes.
fn cold_image(path: &Path) -> Vec<u8> {
    let head = noise(1, 4 * MIB as usize);
    let tail = noise(2, 12 * MIB as usize + 123);
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(&head).expect("head");
    f.write_all_at(&tail, 12 * MIB).expect("tail");
    f.sync_all().expect("sync");
    rustix::fs::fadvise(&f, 0, None, Advice::DontNeed).expect("fadvise");
    let mut all = head;
    all.resize(12 * MIB as usize, 0);
    all.extend_from_slice(&tail);
    all
}

/// Bytes of `path` in the page cache, as `fincore` (util-linux) counts
/// them: it asks the kernel (`mincore`), reading nothing.
fn cached_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux)");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().expect("a number of bytes")
}

fn options(dir: &Path) -> BackupOptions {
    let mut o = BackupOptions::default();
    o.paths = vec![dir.to_owned()];
    o.hostname = "h".into();
    o.username = "u".into();
    o.parent = ParentChoice::None;
    o.source = Source::Filesystem;
    o.time = Timestamp { secs: 1, nanos: 0 };
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_large_file_is_read_directly_and_restored_the_same() {
    // On this machine's disk (ext4): tmpfs is never read directly.
    let src = tempfile::tempdir_in(std::env::temp_dir()).expect("tempdir");
    let img = src.path().join("disk.img");
    let content = cold_image(&img);
    assert_eq!(cached_bytes(&img), 0, "dropped from the page cache");
    let m = MemoryRepository::new(b"pw").await;
    let first = cairn_fs::backup(&m.repo, options(src.path()), Arc::new(Progress::default()))
        .await
        .expect("backup");
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    assert_eq!(
        cached_bytes(&img),
        0,
        "read directly: nothing of it left in the page cache"
    );

    // Read through the page cache now (the file is in it), the same file
    // is cut into the same chunks: nothing new to store.
    std::fs::read(&img).expect("read into the page cache");
    let second = cairn_fs::backup(&m.repo, options(src.path()), Arc::new(Progress::default()))
        .await
        .expect("second backup");
    assert_eq!(
        second.snapshot.stats.bytes_read,
        content.len() as u64 - 8 * MIB
    );
    assert_eq!(second.writer.data_blobs, 0, "{:?}", second.writer);

    let dst = tempfile::tempdir_in(std::env::temp_dir()).expect("dst");
    let mut o = RestoreOptions::default();
    o.target = dst.path().to_owned();
    o.owners = Some(false);
    cairn_fs::restore(&m.repo, &first.snapshot, o, Arc::new(Progress::default()))
        .await
        .expect("restore");
    let restored = dst.path().join("disk.img");
    assert!(std::fs::read(&restored).expect("read") == content);
    let allocated = std::fs::metadata(&restored).expect("stat").blocks() * 512;
    assert!(
        allocated < content.len() as u64 - 4 * MIB,
        "the hole stays one: {allocated}"
    );
}
