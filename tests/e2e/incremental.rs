//! Later backups store only what changed, and do not read unchanged files.

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use crate::common::compare::regular_files;
use crate::common::source::{BIG_FILE, TreeSpec, generate};
use crate::common::{Repo, field_str, field_u64, pack_path};

#[test]
fn second_backup_of_unchanged_tree_reads_nothing_and_adds_only_a_tree_pack() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    // Big enough for several chunks; the full 50 MB adds time, not coverage.
    generate(&src, TreeSpec::with_big_file(3_000_000));
    let files = regular_files(&src).len() as u64;
    let repo = Repo::init(tmp.path().join("repo"));

    let first = repo.backup_json(&src);
    assert_eq!(field_u64(&first, "files_new"), files, "{first:#}");
    let before = repo.objects();

    let second = repo.backup_json(&src);
    assert_eq!(field_u64(&second, "bytes_read"), 0, "{second:#}");
    assert_eq!(field_u64(&second, "data_packs_written"), 0, "{second:#}");
    assert_eq!(field_u64(&second, "data_blobs_added"), 0, "{second:#}");
    assert_eq!(field_u64(&second, "files_unchanged"), files, "{second:#}");
    assert_eq!(field_u64(&second, "files_new"), 0, "{second:#}");
    assert_eq!(field_u64(&second, "files_changed"), 0, "{second:#}");
    assert_eq!(
        field_str(&second, "parent"),
        field_str(&first, "snapshot_id")
    );

    let after = repo.objects();
    for (path, size) in &before {
        assert_eq!(after.get(path), Some(size), "{path} changed or vanished");
    }
    let new: BTreeSet<&String> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    let new_packs: Vec<&String> = new
        .iter()
        .copied()
        .filter(|p| p.starts_with("data/"))
        .collect();
    assert!(
        new_packs.len() <= 1,
        "more than one new pack: {new_packs:?}"
    );
    for pack in &new_packs {
        let id = pack.rsplit('/').next().expect("a pack id");
        assert_eq!(**pack, pack_path(id));
        for e in repo.pack_entries(id) {
            assert_eq!(
                e["kind"], "tree",
                "new pack {pack} holds a non-tree blob: {e}"
            );
        }
    }
    let snapshot = format!("snapshots/{}", field_str(&second, "snapshot_id"));
    for path in &new {
        assert!(
            path.starts_with("data/")
                || path.starts_with("index/")
                || path.starts_with("sessions/") // its done record
                || **path == snapshot,
            "unexpected new object {path}"
        );
    }
    assert!(
        new.contains(&snapshot),
        "the snapshot {snapshot} was not stored"
    );
}

#[test]
fn one_byte_change_in_big_file_adds_about_one_chunk() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::FULL);
    let files = regular_files(&src).len() as u64;
    let repo = Repo::init(tmp.path().join("repo"));
    let max_chunk = repo.config()["chunker"]["max_size"]
        .as_u64()
        .expect("chunker.max_size in the config");
    repo.backup_json(&src);

    // Same size, one byte different in the middle, newer mtime.
    let big = src.join(BIG_FILE);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&big)
        .expect("open the big file");
    let len = f.metadata().expect("stat").len();
    let mid = len / 2;
    let mut b = [0u8];
    f.read_exact_at(&mut b, mid).expect("read a byte");
    f.write_all_at(&[!b[0]], mid).expect("write a byte");
    let mtime = f.metadata().expect("stat").modified().expect("mtime");
    f.set_modified(mtime + Duration::from_secs(1))
        .expect("bump mtime");
    drop(f);

    let s = repo.backup_json(&src);
    let blobs = field_u64(&s, "data_blobs_added");
    assert!((1..=2).contains(&blobs), "{blobs} data blobs added: {s:#}");
    let added = field_u64(&s, "bytes_added");
    assert!(
        added < 2 * max_chunk,
        "{added} bytes added, expected below {}: {s:#}",
        2 * max_chunk
    );
    assert_eq!(field_u64(&s, "files_changed"), 1, "{s:#}");
    assert_eq!(field_u64(&s, "files_unchanged"), files - 1, "{s:#}");
    assert_eq!(
        field_u64(&s, "bytes_read"),
        len,
        "only the big file is read: {s:#}"
    );
}

/// An unchanged entry keeps the extended attributes its parent snapshot
/// recorded without reading them again; changing one (which updates the
/// ctime, not the mtime) is still seen by the next backup.
#[test]
fn an_xattr_change_alone_is_backed_up() {
    use rustix::fs::XattrFlags;
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d")).expect("mkdir");
    let file = src.join("f");
    std::fs::write(&file, b"content").expect("write");
    if let Err(e) = rustix::fs::lsetxattr(&file, "user.k", b"one", XattrFlags::empty()) {
        eprintln!("skipped: user xattrs not supported here: {e}");
        return;
    }
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);
    let mtime = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .expect("mtime");
    rustix::fs::lsetxattr(&file, "user.k", b"two", XattrFlags::empty()).expect("setxattr");
    rustix::fs::lsetxattr(src.join("d"), "user.d", b"dir", XattrFlags::empty()).expect("setxattr");
    assert_eq!(
        std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .expect("mtime"),
        mtime
    );
    repo.backup_json(&src);
    let out = tmp.path().join("out");
    repo.run([
        std::ffi::OsStr::new("restore"),
        std::ffi::OsStr::new("latest"),
        std::ffi::OsStr::new("--target"),
        out.as_os_str(),
    ])
    .success();
    let mut value = [0u8; 16];
    let n = rustix::fs::lgetxattr(out.join("f"), "user.k", &mut value).expect("getxattr");
    assert_eq!(&value[..n], b"two");
    let n = rustix::fs::lgetxattr(out.join("d"), "user.d", &mut value).expect("getxattr");
    assert_eq!(&value[..n], b"dir");
}

/// A copy of the tree (new inodes and ctimes, the same sizes and mtimes, as
/// after a restore, on NFS, or in a volume cloned from a snapshot) is read
/// again in full unless `--ignore-inode` says size and mtime suffice.
#[test]
fn ignore_inode_takes_a_copied_tree_as_unchanged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::with_big_file(3_000_000));
    let repo = Repo::init(tmp.path().join("repo"));
    let first = repo.backup_json(&src);
    let parent = field_str(&first, "snapshot_id").to_owned();
    let copy = tmp.path().join("copy");
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&copy)
        .status()
        .expect("cp")
        .success();
    assert!(ok, "cp -a");
    let copy_arg = copy.to_str().expect("utf-8");
    let strict = repo
        .run(["backup", copy_arg, "--parent", &parent, "--json"])
        .success()
        .json();
    assert!(field_u64(&strict, "bytes_read") >= 3_000_000, "{strict:#}");
    let loose = repo
        .run([
            "backup",
            copy_arg,
            "--parent",
            &parent,
            "--ignore-inode",
            "--json",
        ])
        .success()
        .json();
    assert_eq!(field_u64(&loose, "bytes_read"), 0, "{loose:#}");
}

/// A file only read since the last backup (its access time alone changed)
/// keeps the parent's record and stores no tree; `--exact-atime` records
/// the read.
#[test]
fn a_read_alone_stores_no_tree_unless_exact_atime_is_asked_for() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d")).expect("mkdir");
    std::fs::write(src.join("d/f"), b"read later").expect("write");
    // A day-old access time, so the kernel (relatime) updates it on a read.
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    let f = std::fs::File::open(src.join("d/f")).expect("open");
    f.set_times(std::fs::FileTimes::new().set_accessed(old))
        .expect("set atime");
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);
    std::fs::read(src.join("d/f")).expect("read");
    let atime = std::fs::metadata(src.join("d/f")).expect("stat").atime();
    assert!(atime > 1_000_000_000, "reads must update access times here");
    let src_arg = src.to_str().expect("utf-8");
    let plain = repo.run(["backup", src_arg, "--json"]).success().json();
    assert_eq!(field_u64(&plain, "tree_blobs_added"), 0, "{plain:#}");
    assert_eq!(field_u64(&plain, "dirs_changed"), 0, "{plain:#}");
    let exact = repo
        .run(["backup", src_arg, "--exact-atime", "--json"])
        .success()
        .json();
    assert_eq!(field_u64(&exact, "dirs_changed"), 1, "{exact:#}");
    assert_eq!(field_u64(&exact, "tree_blobs_added"), 2, "{exact:#}");
}
