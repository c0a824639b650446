//! Restoring over an existing tree (`--overwrite`, `--delete`, `--verify`),
//! partial restores by pattern (`--include`, `--exclude`) and `cairn dump`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::common::compare::{assert_no_differences, tree_differences};
use crate::common::source::xorshift;
use crate::common::{Repo, field_u64};

const FILES: usize = 200;
const FILE_LEN: usize = 20_000;

/// 200 files of 20 000 pseudo-random bytes in 10 directories, a few `.txt`.
fn source(root: &Path) {
    let mut rng = xorshift(77);
    for i in 0..FILES {
        let dir = root.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let ext = if i % 50 == 0 { "txt" } else { "bin" };
        std::fs::write(dir.join(format!("f{i:03}.{ext}")), rng.bytes(FILE_LEN)).expect("write");
    }
}

fn restore(repo: &Repo, target: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
        OsStr::new("--json"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    repo.run(args).success().json()["outcome"].clone()
}

/// Rewrites a file with other bytes, keeping its length and mtime, so only
/// a content check can tell.
fn tamper(path: &Path) {
    let m = std::fs::metadata(path).expect("stat");
    let mut data = std::fs::read(path).expect("read");
    for b in data.iter_mut().step_by(1000) {
        *b ^= 0x5a;
    }
    std::fs::write(path, &data).expect("write");
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    f.set_modified(m.modified().expect("mtime"))
        .expect("set mtime");
}

#[test]
fn in_place_restore_rewrites_only_the_changed_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    source(&src);
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);
    let target = tmp.path().join("target");
    let first = restore(&repo, &target, &[]);
    assert_eq!(field_u64(&first, "files"), FILES as u64);
    assert_eq!(
        field_u64(&first, "bytes_written"),
        (FILES * FILE_LEN) as u64
    );

    // 1% of the files change: one in place, one shorter.
    tamper(&target.join("d3/f013.bin"));
    std::fs::write(target.join("d7/f177.bin"), b"short now").expect("write");
    let out = restore(&repo, &target, &["--overwrite", "if-changed", "--verify"]);
    eprintln!("in-place restore: {out}");
    assert_eq!(field_u64(&out, "files"), 2, "{out:#}");
    assert_eq!(field_u64(&out, "unchanged"), (FILES - 2) as u64, "{out:#}");
    assert_eq!(
        field_u64(&out, "bytes_written"),
        2 * FILE_LEN as u64,
        "{out:#}"
    );
    assert_eq!(field_u64(&out, "verified"), FILES as u64, "{out:#}");
    assert_no_differences(&tree_differences(&src, &target), "after if-changed");

    // Nothing changed: nothing written.
    let again = restore(&repo, &target, &["--overwrite", "if-changed"]);
    assert_eq!(field_u64(&again, "bytes_written"), 0, "{again:#}");
}

#[test]
fn in_place_restore_of_a_large_file_copies_the_chunks_it_still_holds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let big = xorshift(12).bytes(6 << 20);
    std::fs::write(src.join("big"), &big).expect("write");
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);
    let target = tmp.path().join("target");
    restore(&repo, &target, &[]);

    // One byte near the end changes: every chunk before it still matches.
    tamper_at(&target.join("big"), big.len() - 10);
    let out = restore(&repo, &target, &["--overwrite", "if-changed"]);
    eprintln!("large file in place: {out}");
    assert_eq!(field_u64(&out, "files"), 1, "{out:#}");
    let reused = field_u64(&out, "bytes_reused");
    assert!(reused >= 512 * 1024 && reused < big.len() as u64, "{out:#}");
    assert!(std::fs::read(target.join("big")).expect("read") == big);
}

/// Flips one byte at `at`, keeping the length and mtime.
fn tamper_at(path: &Path, at: usize) {
    let m = std::fs::metadata(path).expect("stat");
    let mut data = std::fs::read(path).expect("read");
    data[at] ^= 1;
    std::fs::write(path, &data).expect("write");
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    f.set_modified(m.modified().expect("mtime"))
        .expect("set mtime");
}

#[test]
fn overwrite_never_keeps_existing_files_and_delete_removes_extra_ones() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    source(&src);
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);
    let target = tmp.path().join("target");
    restore(&repo, &target, &[]);

    std::fs::write(target.join("d1/f001.bin"), b"mine").expect("write");
    std::fs::write(target.join("d2/extra"), b"not in the snapshot").expect("write");
    std::fs::create_dir(target.join("extra_dir")).expect("mkdir");
    std::fs::write(target.join("extra_dir/x"), b"x").expect("write");
    let out = restore(&repo, &target, &["--overwrite", "never"]);
    assert_eq!(field_u64(&out, "skipped"), FILES as u64, "{out:#}");
    assert_eq!(field_u64(&out, "bytes_written"), 0, "{out:#}");
    assert_eq!(
        std::fs::read(target.join("d1/f001.bin")).expect("read"),
        b"mine"
    );
    assert!(target.join("d2/extra").exists());

    let out = restore(&repo, &target, &["--delete"]);
    assert_eq!(field_u64(&out, "deleted"), 2, "{out:#}");
    assert!(!target.join("d2/extra").exists());
    assert!(!target.join("extra_dir").exists());
    assert_no_differences(&tree_differences(&src, &target), "after --delete");
}

fn files_below(root: &Path) -> Vec<PathBuf> {
    crate::common::compare::regular_files(root)
}

#[test]
fn include_and_exclude_patterns_select_what_is_restored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    source(&src);
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);

    let only_txt = tmp.path().join("only_txt");
    let out = restore(&repo, &only_txt, &["--include", "*.txt"]);
    assert_eq!(field_u64(&out, "files"), 4, "{out:#}");
    assert_eq!(
        files_below(&only_txt),
        ["d0/f000.txt", "d0/f050.txt", "d0/f100.txt", "d0/f150.txt"]
            .map(PathBuf::from)
            .to_vec()
    );
    // Only the directory leading to them was created.
    assert!(!only_txt.join("d1").exists());

    let no_d0 = tmp.path().join("no_d0");
    let out = restore(
        &repo,
        &no_d0,
        &["--exclude", "/d0", "--exclude", "d9/*.bin"],
    );
    assert_eq!(
        field_u64(&out, "files"),
        (FILES - 20 - 20) as u64,
        "{out:#}"
    );
    assert!(!no_d0.join("d0").exists());
    assert!(no_d0.join("d9").is_dir());

    let sub = tmp.path().join("sub");
    let r = repo.run([
        OsStr::new("restore"),
        OsStr::new("latest:/d5"),
        OsStr::new("--target"),
        sub.as_os_str(),
        OsStr::new("--include"),
        OsStr::new("/d5/f1*"),
    ]);
    r.success();
    assert_eq!(files_below(&sub).len(), 10);
}

#[test]
fn dump_writes_one_file_to_stdout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    source(&src);
    let big = xorshift(3).bytes(3 << 20);
    std::fs::write(src.join("big"), &big).expect("write");
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);
    let out = repo
        .command(["dump", "latest:/big"])
        .output()
        .expect("run dump");
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout == big, "dump differs from the file");
    let out = repo
        .command(["dump", "latest:d4/f004.bin"])
        .output()
        .expect("run dump");
    assert_eq!(
        out.stdout,
        std::fs::read(src.join("d4/f004.bin")).expect("read")
    );
    let r = repo.run(["dump", "latest:/d4"]).expect_code(1);
    assert!(r.stderr.contains("not a file"), "{}", r.stderr);
}
