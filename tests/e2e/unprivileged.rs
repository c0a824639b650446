//! Restoring as an ordinary user: restore reaches every entry through
//! directory descriptors, and a directory the user may write and search
//! but not read (mode 0311) must still take files and get its metadata,
//! as it did when restore worked by path. As root, the restores run as
//! user 65534 under `setpriv` (skipped where it is missing).

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{BIN, Repo, Run};

const NOBODY: u32 = 65534;

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

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).expect("lstat").mode() & 0o7777
}

#[test]
fn an_unprivileged_restore_writes_into_a_directory_it_cannot_read() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: needs root to set up files owned by another user");
        return;
    }
    let Some(setpriv) = find_in_path("setpriv") else {
        eprintln!("SKIP: setpriv is not installed");
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path();
    let src = base.join("src");
    for (dir, m) in [("locked", 0o311), ("ro", 0o555)] {
        std::fs::create_dir_all(src.join(dir)).expect("mkdir");
        std::fs::write(src.join(dir).join("f"), dir).expect("write");
        std::fs::set_permissions(src.join(dir), std::fs::Permissions::from_mode(m)).expect("chmod");
    }
    std::fs::write(src.join("private"), b"mine").expect("write");
    std::fs::set_permissions(src.join("private"), std::fs::Permissions::from_mode(0o400))
        .expect("chmod");
    let repo = Repo::init(base.join("repo"));
    repo.backup_json(&src);
    std::fs::copy(BIN, base.join("cairn")).expect("copy the binary");
    std::fs::set_permissions(base.join("cairn"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    chown_tree(base);

    let out = base.join("out");
    let restore = |extra: &[&str]| {
        let mut c = Command::new(&setpriv);
        c.arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .arg(base.join("cairn"));
        let mut args = vec![
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--target"),
            out.as_os_str(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        Run::of(repo.command_from(c, &repo.password, args)).success()
    };
    restore(&[]);
    // Again over the first: `locked` now exists with mode 0311. (`ro`, mode
    // 0555, takes no new files from its owner either way: left out.)
    restore(&["--exclude", "ro"]);
    assert_eq!(mode(&out.join("locked")), 0o311);
    assert_eq!(mode(&out.join("ro")), 0o555);
    assert_eq!(mode(&out.join("private")), 0o400);
    assert_eq!(
        std::fs::read(out.join("locked/f")).expect("read"),
        b"locked"
    );
    assert_eq!(std::fs::read(out.join("ro/f")).expect("read"), b"ro");
    assert_eq!(
        std::fs::metadata(out.join("locked/f")).expect("stat").uid(),
        NOBODY
    );
}
