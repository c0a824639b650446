//! `cairn diff` and `cairn find`.

use std::os::unix::fs::PermissionsExt;

use crate::common::Repo;

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn diff_lists_added_removed_and_changed_entries_with_what_changed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    for d in ["same", "gone", "edit"] {
        std::fs::create_dir_all(src.join(d)).expect("mkdir");
    }
    std::fs::write(src.join("same/a"), b"unchanged").expect("write");
    std::fs::write(src.join("gone/b"), b"removed later").expect("write");
    std::fs::write(src.join("edit/c"), b"old content").expect("write");
    std::fs::write(src.join("edit/mode"), b"same content").expect("write");
    let repo = Repo::init(tmp.path().join("repo"));
    let first = repo.backup_json(&src)["snapshot_id"]
        .as_str()
        .expect("id")
        .to_owned();

    std::fs::remove_dir_all(src.join("gone")).expect("rm");
    std::fs::write(src.join("edit/c"), b"new content, longer").expect("write");
    std::fs::set_permissions(
        src.join("edit/mode"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    std::fs::create_dir(src.join("new")).expect("mkdir");
    std::fs::write(src.join("new/d"), b"added").expect("write");
    repo.backup_json(&src);

    let r = repo
        .run(["diff", &first[..8], "latest", "--json"])
        .success();
    let changes: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let find = |path: &str| {
        changes
            .iter()
            .find(|c| c["path"] == path)
            .unwrap_or_else(|| panic!("{path} not in {changes:#?}"))
    };
    assert_eq!(find("/gone")["change"], "removed");
    assert_eq!(find("/gone/b")["change"], "removed");
    assert_eq!(find("/new")["change"], "added");
    assert_eq!(find("/new/d")["change"], "added");
    assert_eq!(find("/edit/c")["change"], "changed");
    let what = find("/edit/c")["what"].clone();
    assert!(
        what.as_array()
            .is_some_and(|w| w.contains(&"content".into()) && w.contains(&"size".into())),
        "{what}"
    );
    assert_eq!(find("/edit/mode")["what"], serde_json::json!(["mode"]));
    // The identical directory is skipped whole.
    assert!(
        changes
            .iter()
            .all(|c| !c["path"].as_str().unwrap_or("").starts_with("/same")),
        "{changes:#?}"
    );

    let text = repo.run(["diff", &first[..8], "latest"]).success();
    assert!(
        text.stdout.contains("M /edit/c  (content, size, mtime)"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("- /gone/b\n"), "{}", text.stdout);
    assert!(text.stdout.contains("+ /new/d\n"), "{}", text.stdout);
}

#[test]
fn find_searches_names_and_paths_in_every_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("x/y")).expect("mkdir");
    std::fs::write(src.join("x/y/report.pdf"), b"1").expect("write");
    std::fs::write(src.join("x/notes.txt"), b"2").expect("write");
    let repo = Repo::init(tmp.path().join("repo"));
    let first = repo.backup_json(&src)["snapshot_id"]
        .as_str()
        .expect("id")
        .to_owned();
    std::fs::write(src.join("x/second.pdf"), b"3").expect("write");
    repo.backup_json(&src);

    let r = repo.run(["find", "*.pdf", "--json"]).success();
    let found: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let paths: Vec<&str> = found.iter().filter_map(|f| f["path"].as_str()).collect();
    assert_eq!(
        paths,
        ["/x/y/report.pdf", "/x/second.pdf", "/x/y/report.pdf"],
        "{found:#?}"
    );

    let r = repo
        .run(["find", "/x/*.txt", "--snapshot", &first[..8]])
        .success();
    assert_eq!(
        lines(&r.stdout).len(),
        2,
        "a header and one match:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("/x/notes.txt"));
    // `*` does not cross `/` in a path pattern.
    let r = repo.run(["find", "/x/*.pdf", "--json"]).success();
    assert_eq!(lines(&r.stdout).len(), 1, "{}", r.stdout);
}

#[test]
fn long_listing_shows_link_counts_and_device_numbers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("a"), b"linked").expect("write");
    std::fs::hard_link(src.join("a"), src.join("b")).expect("link");
    let root = rustix::process::geteuid().is_root();
    if root {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from(0o666),
            rustix::fs::makedev(1, 3),
        )
        .expect("mknod");
    } else {
        eprintln!("SKIP device numbers in ls -l: not running as root");
    }
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);
    let long = repo.run(["ls", "-l", "latest"]).success().stdout;
    let line = |name: &str| {
        long.lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{long}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(line(" /a")[1], "2", "{long}");
    if root {
        let null = line(" /null");
        assert!(null[0].starts_with('c'), "{long}");
        assert_eq!(null[4..6], ["1,", "3"], "{long}");
    }
}
