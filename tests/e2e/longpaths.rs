//! Paths longer than `PATH_MAX` (4096 bytes): backed up, listed, dumped and
//! restored, with the file's metadata.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{CWD, Mode, OFlags};

use crate::common::Repo;

const LEVELS: usize = 40;

fn name(i: usize) -> String {
    format!("{i:02}{}", "n".repeat(150))
}

fn open_dir(at: Option<&OwnedFd>, rel: &str) -> OwnedFd {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match at {
        Some(fd) => rustix::fs::openat(fd, rel, flags, Mode::empty()),
        None => rustix::fs::openat(CWD, rel, flags, Mode::empty()),
    }
    .unwrap_or_else(|e| panic!("open {rel}: {e}"))
}

/// The deepest directory below `root`, opened one level at a time.
fn bottom(root: &Path) -> OwnedFd {
    let mut dir = open_dir(None, root.to_str().expect("utf-8"));
    for i in 0..LEVELS {
        dir = open_dir(Some(&dir), &name(i));
    }
    dir
}

fn read_at(dir: &OwnedFd, file: &str) -> (Vec<u8>, std::fs::Metadata) {
    let fd = rustix::fs::openat(dir, file, OFlags::RDONLY, Mode::empty()).expect("open");
    let f = std::fs::File::from(fd);
    let m = f.metadata().expect("stat");
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut &f, &mut data).expect("read");
    (data, m)
}

#[test]
fn paths_longer_than_path_max_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let mut dir = open_dir(None, src.to_str().expect("utf-8"));
    let mut rel = String::new();
    for i in 0..LEVELS {
        rustix::fs::mkdirat(&dir, name(i).as_str(), Mode::from(0o750)).expect("mkdir");
        dir = open_dir(Some(&dir), &name(i));
        rel.push('/');
        rel.push_str(&name(i));
    }
    let fd = rustix::fs::openat(
        &dir,
        "deep.txt",
        OFlags::WRONLY | OFlags::CREATE,
        Mode::from(0o640),
    )
    .expect("create");
    rustix::io::write(&fd, b"at the bottom of a very long path").expect("write");
    drop(fd);
    rustix::fs::symlinkat("deep.txt", &dir, "link").expect("symlink");
    assert!(src.as_os_str().len() + rel.len() > 6000);

    let repo = Repo::init(tmp.path().join("repo"));
    let summary = repo.backup_json(&src);
    assert_eq!(summary["warnings"], serde_json::json!([]), "{summary:#}");
    let ls = repo.run(["ls", "latest"]).success();
    let deep = format!("{rel}/deep.txt");
    assert!(ls.stdout.lines().any(|l| l == deep), "{deep} not listed");
    let dumped = repo
        .command([OsStr::new("dump"), OsStr::new(&format!("latest:{deep}"))])
        .output()
        .expect("dump");
    assert_eq!(dumped.stdout, b"at the bottom of a very long path");

    let target = tmp.path().join("restored");
    let out = repo
        .run([
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--target"),
            target.as_os_str(),
            OsStr::new("--json"),
        ])
        .success()
        .json();
    assert_eq!(out["outcome"]["errors"], serde_json::json!([]), "{out:#}");
    let (data, m) = read_at(&bottom(&target), "deep.txt");
    let (_, expected) = read_at(&bottom(&src), "deep.txt");
    assert_eq!(data, b"at the bottom of a very long path");
    assert_eq!(m.mode(), expected.mode());
    assert_eq!(
        (m.mtime(), m.mtime_nsec()),
        (expected.mtime(), expected.mtime_nsec())
    );
    let target_of = rustix::fs::readlinkat(bottom(&target), "link", Vec::new()).expect("readlink");
    assert_eq!(target_of.to_bytes(), b"deep.txt");
}
