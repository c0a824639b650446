//! Looking into a repository: `snapshots`, `ls`, `cat`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde_json::{Value, json};

use crate::common::source::{NON_UTF8_DIR, RELATIVE_LINK, TreeSpec, generate};
use crate::common::{Repo, field_str};

/// Names in a directory, sorted by their bytes as cairn sorts tree entries.
fn sorted_names(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().as_bytes().to_vec())
        .collect();
    names.sort();
    names
}

/// What `cairn ls` prints for a tree: every path, depth first in name order.
fn expected_ls(root: &Path, prefix: &[u8], out: &mut String) {
    for name in sorted_names(root) {
        let mut path = prefix.to_vec();
        path.push(b'/');
        path.extend_from_slice(&name);
        out.push_str(&String::from_utf8_lossy(&path));
        out.push('\n');
        let p = root.join(OsStr::from_bytes(&name));
        if std::fs::symlink_metadata(&p).expect("lstat").is_dir() {
            expected_ls(&p, &path, out);
        }
    }
}

/// A name as cairn renders bytes in JSON: a string, or hex when not UTF-8.
fn json_name(name: &[u8]) -> Value {
    match std::str::from_utf8(name) {
        Ok(s) => json!(s),
        Err(_) => {
            let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
            json!({ "hex": hex })
        }
    }
}

#[test]
fn snapshots_ls_and_cat_describe_what_was_backed_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::with_big_file(100_000));
    let repo = Repo::init(tmp.path().join("repo"));
    let tagged = repo
        .run([
            OsStr::new("backup"),
            src.as_os_str(),
            OsStr::new("--tag"),
            OsStr::new("a"),
            OsStr::new("--tag"),
            OsStr::new("b"),
            OsStr::new("--host"),
            OsStr::new("h"),
            OsStr::new("--json"),
        ])
        .success()
        .json();
    let plain = repo.backup_json(&src);
    let (id1, id2) = (
        field_str(&tagged, "snapshot_id"),
        field_str(&plain, "snapshot_id"),
    );

    let list = repo.run(["snapshots", "--json"]).success().json();
    let list = list.as_array().expect("snapshots --json is an array");
    let ids: Vec<&str> = list.iter().map(|s| field_str(s, "id")).collect();
    assert_eq!(ids, [id1, id2], "oldest first");
    let src_str = src.to_str().expect("a UTF-8 temp path");
    for s in list {
        assert_eq!(s["paths"], json!([src_str]), "{s:#}");
    }
    assert_eq!(list[0]["tags"], json!(["a", "b"]));
    assert_eq!(list[0]["hostname"], "h");
    assert_eq!(list[1]["tags"], json!([]));

    let mut want = String::new();
    expected_ls(&src, b"", &mut want);
    let ls = repo.run(["ls", "latest"]).success();
    assert_eq!(ls.stdout, want);

    let long = repo.run(["ls", "-l", "latest"]).success();
    let (link, target) = RELATIVE_LINK;
    let suffix = format!(" /{link} -> {target}");
    assert!(
        long.stdout
            .lines()
            .any(|l| l.starts_with('l') && l.ends_with(&suffix)),
        "no line ending in {suffix:?}:\n{}",
        long.stdout
    );

    let config = repo.run(["cat", "config"]).success().json();
    assert!(config["chunker"]["max_size"].is_u64(), "{config:#}");
    let snap = repo.run(["cat", "snapshot", "latest"]).success().json();
    assert_eq!(snap["id"], id2, "{snap:#}");
    let root = field_str(&snap, "tree");
    assert_eq!(root.len(), 64, "{snap:#}");
    let tree = repo.run(["cat", "tree", root]).success().json();
    let names: Vec<&Value> = tree["nodes"]
        .as_array()
        .expect("a tree has nodes")
        .iter()
        .map(|n| &n["name"])
        .collect();
    let expected: Vec<Value> = sorted_names(&src).iter().map(|n| json_name(n)).collect();
    assert_eq!(names, expected.iter().collect::<Vec<_>>());
    assert!(expected.contains(&json_name(NON_UTF8_DIR)));
}

/// A reader that stops early (`cairn snapshots --json | head -1`) ends
/// cairn quietly, as it does other tools, rather than with a panic about
/// a failed write.
#[test]
fn a_closed_output_pipe_ends_cairn_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"x").expect("write");
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);
    let mut cmd = repo.command(["snapshots", "--json"]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn cairn");
    // Closed before cairn has opened the repository, let alone written.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc_sigpipe()),
        "{:?}: {stderr}",
        out.status
    );
}

/// SIGPIPE's number on Linux.
fn libc_sigpipe() -> i32 {
    13
}
