//! Exit code 3: the backup finished, but a file could not be read.
//!
//! Permissions do not stop root from reading, so as root the backup runs as
//! user 65534 under `setpriv`, on a repository, source tree and copy of the
//! binary owned by that user.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{BIN, Repo, Run};

const NOBODY: u32 = 65534;

fn effective_uid() -> u32 {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self")
        .expect("stat /proc/self")
        .uid()
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn chown_tree(path: &Path) {
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if std::fs::symlink_metadata(path).expect("lstat").is_dir() {
        for e in std::fs::read_dir(path).expect("read_dir") {
            chown_tree(&e.expect("entry").path());
        }
    }
}

#[test]
fn unreadable_file_gives_exit_code_3_is_listed_and_the_rest_is_saved() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path();
    let src = base.join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("ok.txt"), b"readable\n").expect("write");
    std::fs::write(src.join("sub/also_ok.txt"), b"readable too\n").expect("write");
    let secret = src.join("secret");
    std::fs::write(&secret, b"nobody may read this\n").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let repo = Repo::init(base.join("repo"));

    // How to run cairn as a user that permissions apply to.
    let unprivileged = |args: &[&OsStr]| -> Command {
        if effective_uid() != 0 {
            return repo.command(args);
        }
        let setpriv = find_in_path("setpriv").expect("checked below");
        let mut c = Command::new(setpriv);
        c.arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            // The build directory may not be reachable by that user.
            .arg(base.join("cairn"));
        repo.command_from(c, &repo.password, args)
    };
    if effective_uid() == 0 {
        if find_in_path("setpriv").is_none() {
            eprintln!(
                "SKIP unreadable_file_gives_exit_code_3_is_listed_and_the_rest_is_saved: \
                 running as root and setpriv is not installed, so no file can be made unreadable"
            );
            return;
        }
        std::fs::copy(BIN, base.join("cairn")).expect("copy the binary");
        std::fs::set_permissions(base.join("cairn"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        chown_tree(base);
    }

    let r = Run::of(unprivileged(&[OsStr::new("backup"), src.as_os_str()])).expect_code(3);
    assert!(
        r.stderr.contains(&secret.display().to_string()),
        "the unreadable file is not listed:\n{}",
        r.stderr
    );
    let ls = repo.run(["ls", "latest"]).success();
    assert_eq!(ls.stdout, "/ok.txt\n/sub\n/sub/also_ok.txt\n");

    let r = Run::of(unprivileged(&[
        OsStr::new("backup"),
        src.as_os_str(),
        OsStr::new("--json"),
    ]))
    .expect_code(3);
    let summary = r.json();
    let warnings = summary["warnings"].as_array().expect("a warnings array");
    let paths: Vec<&str> = warnings
        .iter()
        .map(|w| w["path"].as_str().expect("a warning path"))
        .collect();
    assert_eq!(
        paths,
        [secret.to_str().expect("a UTF-8 temp path")],
        "{summary:#}"
    );
}
