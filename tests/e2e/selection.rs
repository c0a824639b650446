//! What a backup leaves out: `--exclude`, `--iexclude`, `--exclude-file`,
//! `.cairnignore`, `--exclude-caches`, `--one-file-system`, and sockets.

use std::ffi::OsStr;
use std::path::Path;

use crate::common::Repo;

/// Backs up `src` with `flags` (exit code 0) and lists the snapshot.
fn backup_and_list(repo: &Repo, src: &Path, flags: &[&str]) -> Vec<String> {
    let mut args = vec![OsStr::new("backup"), src.as_os_str()];
    args.extend(flags.iter().map(OsStr::new));
    repo.run(args).success();
    repo.run(["ls", "latest"])
        .success()
        .stdout
        .lines()
        .map(str::to_owned)
        .collect()
}

fn touch(root: &Path, rel: &str) {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(&p, rel.as_bytes()).expect("write");
}

fn setup(files: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, Repo) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    for f in files {
        touch(&src, f);
    }
    let repo = Repo::init(tmp.path().join("repo"));
    (tmp, src, repo)
}

#[test]
fn exclude_patterns_use_gitignore_syntax_on_absolute_paths() {
    let (_tmp, src, repo) = setup(&[
        "a.log",
        "sub/b.log",
        "sub/keep.txt",
        "skip/x",
        "other/skip/y",
    ]);
    let anchored = format!("{}/skip", src.display());
    let listed = backup_and_list(&repo, &src, &["--exclude", "*.log", "--exclude", &anchored]);
    assert_eq!(
        listed,
        [
            "/other",
            "/other/skip",
            "/other/skip/y",
            "/sub",
            "/sub/keep.txt"
        ]
    );
}

#[test]
fn iexclude_ignores_letter_case() {
    let (_tmp, src, repo) = setup(&["x.tmp", "Y.Tmp", "z.TMP", "keep"]);
    let listed = backup_and_list(&repo, &src, &["--iexclude", "*.tmp"]);
    assert_eq!(listed, ["/keep"]);
    // --exclude does not.
    let listed = backup_and_list(&repo, &src, &["--exclude", "*.tmp"]);
    assert_eq!(listed, ["/Y.Tmp", "/keep", "/z.TMP"]);
}

#[test]
fn exclude_file_holds_one_pattern_per_line() {
    let (tmp, src, repo) = setup(&["a.bak", "b/c.o", "b/d.c", "e"]);
    let list = tmp.path().join("excludes");
    std::fs::write(&list, "# build output\n*.o\n\n*.bak\n").expect("write");
    let listed = backup_and_list(
        &repo,
        &src,
        &["--exclude-file", list.to_str().expect("utf-8")],
    );
    assert_eq!(listed, ["/b", "/b/d.c", "/e"]);
    let r = repo.run([
        "backup",
        src.to_str().expect("utf-8"),
        "--exclude-file",
        "/no/such/file",
    ]);
    let r = r.expect_code(1);
    assert!(
        r.stderr.contains("cannot read exclude file"),
        "{}",
        r.stderr
    );
}

#[test]
fn cairnignore_files_apply_to_their_directory_and_below() {
    let (_tmp, src, repo) = setup(&[
        "top.o",
        "sub/a.o",
        "sub/keep.o",
        "sub/build/out",
        "sub/deeper/b.o",
        "sub/src.c",
    ]);
    std::fs::write(src.join("sub/.cairnignore"), "*.o\n!keep.o\nbuild/\n").expect("write");
    let listed = backup_and_list(&repo, &src, &[]);
    assert_eq!(
        listed,
        [
            "/sub",
            "/sub/.cairnignore",
            "/sub/deeper",
            "/sub/keep.o",
            "/sub/src.c",
            "/top.o"
        ]
    );
    let listed = backup_and_list(&repo, &src, &["--no-ignore-files"]);
    assert!(listed.contains(&"/sub/a.o".to_owned()), "{listed:?}");
    assert!(listed.contains(&"/sub/build/out".to_owned()), "{listed:?}");
}

#[test]
fn exclude_caches_keeps_only_the_tag_of_a_tagged_directory() {
    let (_tmp, src, repo) = setup(&["cache/data", "cache/sub/more", "fake/data", "keep"]);
    // The signature from the Cache Directory Tagging Specification.
    let mut tag = b"Signature: 8a477f597d28d172789f06886806bc55".to_vec();
    tag.extend_from_slice(b"\n# This file is a cache directory tag.\n");
    std::fs::write(src.join("cache/CACHEDIR.TAG"), &tag).expect("write");
    std::fs::write(
        src.join("fake/CACHEDIR.TAG"),
        b"Signature: not the right one",
    )
    .expect("write");
    let listed = backup_and_list(&repo, &src, &["--exclude-caches"]);
    assert_eq!(
        listed,
        [
            "/cache",
            "/cache/CACHEDIR.TAG",
            "/fake",
            "/fake/CACHEDIR.TAG",
            "/fake/data",
            "/keep"
        ]
    );
    let listed = backup_and_list(&repo, &src, &[]);
    assert!(listed.contains(&"/cache/sub/more".to_owned()), "{listed:?}");
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn one_file_system_keeps_mount_points_empty() {
    let (_tmp, src, repo) = setup(&["here"]);
    let mnt = src.join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "cairn-test"])
        .arg(&mnt)
        .output();
    match mounted {
        Ok(o) if o.status.success() => {}
        other => {
            eprintln!(
                "SKIP one_file_system_keeps_mount_points_empty: cannot mount a tmpfs: {other:?}"
            );
            return;
        }
    }
    let _guard = Mount(mnt.clone());
    touch(&mnt, "elsewhere");
    let listed = backup_and_list(&repo, &src, &["--one-file-system"]);
    assert_eq!(listed, ["/here", "/mnt"]);
    let listed = backup_and_list(&repo, &src, &[]);
    assert_eq!(listed, ["/here", "/mnt", "/mnt/elsewhere"]);
}

#[test]
fn sockets_are_left_out_without_a_warning() {
    let (_tmp, src, repo) = setup(&["file"]);
    let _listener = std::os::unix::net::UnixListener::bind(src.join("sock")).expect("bind");
    let listed = backup_and_list(&repo, &src, &[]);
    assert_eq!(listed, ["/file"]);
}
