//! A restore that reported success survives a power cut: every file's
//! content is durable before it is renamed to its real name (its own
//! `fsync`, or for small files one `syncfs` after their last write), and
//! every directory that received a file is synced after its last rename
//! (its own `fsync`, or a `syncfs` of its file system).
//! Watched with `strace` (skipped where it is missing or cannot trace).

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::process::Command;

use crate::common::{BIN, Repo, Run};

/// The text inside the first `<...>` after `from` in `line`: the path
/// `strace -y` prints after a descriptor.
fn fd_path(line: &str, from: usize) -> Option<&str> {
    let start = from + line[from..].find('<')? + 1;
    let end = start + line[start..].find('>')?;
    Some(&line[start..end])
}

/// The quoted names of a `renameat(dirfd<dir>, "from", dirfd<dir>, "to")`.
fn quoted(line: &str) -> Vec<&str> {
    line.split('"').skip(1).step_by(2).collect()
}

fn strace_works() -> bool {
    Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn restored_files_are_synced_before_they_are_renamed_and_their_directories_after() {
    if !strace_works() {
        eprintln!("SKIP: strace is missing or cannot trace here");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).expect("mkdir");
    for (i, dir) in ["", "sub", "sub/deeper"].iter().enumerate() {
        for f in 0..5 {
            std::fs::write(src.join(dir).join(format!("small{f}")), format!("{i} {f}"))
                .expect("write");
        }
    }
    // Several chunks: restored on its own, not with the small files.
    let big: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("sub/big"), &big).expect("write");
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);

    let out = tmp.path().join("out");
    let log = tmp.path().join("strace.log");
    let mut strace = Command::new("strace");
    strace
        .args([
            "-f",
            "-y",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,syncfs,rename,renameat,renameat2,write,pwrite64,ftruncate",
        ])
        .arg("-o")
        .arg(&log)
        .arg(BIN);
    let args = [
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        out.as_os_str(),
    ];
    Run::of(repo.command_from(strace, &repo.password, args)).success();

    let text = std::fs::read_to_string(&log).expect("strace log");
    let mut synced: HashSet<String> = HashSet::new();
    // The line of the last write to each file, and of every `syncfs`.
    let mut last_write: BTreeMap<String, usize> = BTreeMap::new();
    let mut syncfs: Vec<usize> = Vec::new();
    // Per directory: the line of the last rename into it, and of its last sync.
    let mut last_rename: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_sync: BTreeMap<String, usize> = BTreeMap::new();
    let mut renames = 0;
    for (n, line) in text.lines().enumerate() {
        if line.contains("resumed>") {
            continue;
        }
        if line.starts_with("syncfs(") || line.contains(" syncfs(") {
            syncfs.push(n);
        } else if let Some(at) = ["write(", "pwrite64(", "ftruncate("]
            .iter()
            .find_map(|c| line.find(c))
        {
            if let Some(path) = fd_path(line, at) {
                last_write.insert(path.to_owned(), n);
            }
        } else if let Some(at) = line.find("fsync(").or_else(|| line.find("fdatasync(")) {
            let path = fd_path(line, at).expect("strace -y path").to_owned();
            last_sync.insert(path.clone(), n);
            synced.insert(path);
        } else if let Some(at) = line
            .find("rename")
            .filter(|_| line.contains(".cairn-restore-"))
        {
            let names = quoted(line);
            let [from, to] = names[..] else {
                panic!("unexpected rename line: {line}");
            };
            // renameat(dirfd<dir>, "name", ...) or rename("/path", ...).
            let (dir, tmp_path) = match fd_path(line, at) {
                Some(dir) => (dir, format!("{dir}/{from}")),
                None => {
                    let dir = from.rsplit_once('/').map_or("", |(d, _)| d);
                    (dir, from.to_owned())
                }
            };
            let written = last_write.get(&tmp_path).copied().unwrap_or(0);
            assert!(
                synced.contains(&tmp_path) || syncfs.iter().any(|&s| s > written && s < n),
                "{to} was renamed into place before its content was synced"
            );
            last_rename.insert(dir.to_owned(), n);
            renames += 1;
        }
    }
    assert_eq!(renames, 16, "every file is written under a temporary name");
    // Its own `fsync`, or a `syncfs` of its file system (one per round
    // covers every directory of the round), after the last rename into it.
    for (dir, renamed) in &last_rename {
        assert!(
            last_sync.get(dir).is_some_and(|s| s > renamed) || syncfs.iter().any(|s| s > renamed),
            "{dir} was not synced after its last rename"
        );
    }
    assert_eq!(std::fs::read(out.join("sub/big")).expect("read"), big);
}
