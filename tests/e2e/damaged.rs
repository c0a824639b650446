//! A repository with a damaged index file, snapshot, tree and pack stays
//! usable: `snapshots`, `restore` of what is intact and `repair index`
//! work and name what is damaged, on stderr and in --json.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::common::compare::{MISSING, regular_files, tree_differences};
use crate::common::{Repo, field_str, field_u64, pack_path};

fn write(path: &Path, len: usize, seed: u64) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, cairn_testkit::noise(seed, len)).expect("write");
}

fn flip(repo: &Repo, object: &str, at: u64) {
    let path = repo.path.join(object);
    let mut b = std::fs::read(&path).expect("read object");
    b[at as usize] ^= 0x04;
    std::fs::write(&path, b).expect("write object");
}

/// Backs up `dir`; returns the snapshot id and the objects it added.
fn backup(repo: &Repo, dir: &Path) -> (String, BTreeSet<String>) {
    let before: BTreeSet<String> = repo.objects().into_keys().collect();
    let out = repo.backup_json(dir);
    let after: BTreeSet<String> = repo.objects().into_keys().collect();
    let id = field_str(&out, "snapshot_id").to_owned();
    (id, after.difference(&before).cloned().collect())
}

/// Where blob `id` lies: (pack object, offset of its middle).
fn locate(repo: &Repo, id: &str) -> (String, u64) {
    for p in repo.pack_ids() {
        if let Some(e) = repo.pack_entries(&p).into_iter().find(|e| e["id"] == id) {
            return (
                pack_path(&p),
                field_u64(&e, "offset") + field_u64(&e, "length") / 2,
            );
        }
    }
    panic!("blob {id} is in no pack")
}

fn node<'a>(tree: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    tree["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {tree:#}"))
}

fn restore(repo: &Repo, snap: &str, out: &Path) -> crate::common::Run {
    repo.run([
        OsStr::new("restore"),
        OsStr::new(snap),
        OsStr::new("--target"),
        out.as_os_str(),
    ])
}

/// Every file restored is identical to its source.
fn no_wrong_bytes(src: &Path, out: &Path) {
    for rel in regular_files(out) {
        assert!(
            std::fs::read(out.join(&rel)).ok() == std::fs::read(src.join(&rel)).ok(),
            "{} restored with wrong bytes",
            rel.display()
        );
    }
}

#[test]
fn damaged_index_snapshot_tree_and_pack_leave_the_rest_usable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src: Vec<PathBuf> = ["one", "two", "three", "four"]
        .iter()
        .map(|d| tmp.path().join("src").join(d))
        .collect();
    write(&src[0].join("x1"), 30_000, 1);
    write(&src[0].join("x2"), 9_000, 2);
    // Too large for a bundle (over 128 KiB) and too small to be cut (under
    // the 512 KiB least chunk): one blob of its own, whatever the
    // repository's chunker key. (600 KB was cut in two for some keys, its
    // tail small enough for the bundle.)
    write(&src[0].join("x3"), 400_000, 7);
    write(&src[1].join("y1"), 20_000, 3);
    write(&src[2].join("z1"), 25_000, 4);
    write(&src[2].join("sub/z2"), 7_000, 5);
    write(&src[3].join("w1"), 12_000, 6);
    let repo = Repo::init(tmp.path().join("repo"));
    let (one, _) = backup(&repo, &src[0]);
    let (two, added) = backup(&repo, &src[1]);
    let (three, _) = backup(&repo, &src[2]);
    let (four, _) = backup(&repo, &src[3]);

    // Find the objects to damage while everything is readable: x1's data
    // in one, snapshot two and its index file, sub's tree in three.
    let index = added
        .iter()
        .find(|o| o.starts_with("index/"))
        .expect("backup two wrote an index file")
        .clone();
    let snap = format!("snapshots/{two}");
    let root_of = |id: &str| {
        let s = repo.run(["cat", "snapshot", id]).success().json();
        repo.run(["cat", "tree", field_str(&s, "tree")])
            .success()
            .json()
    };
    let x1 = node(&root_of(&one), "x1")["content"][0]
        .as_str()
        .expect("chunk")
        .to_owned();
    let x2 = node(&root_of(&one), "x2")["content"][0]
        .as_str()
        .expect("chunk")
        .to_owned();
    let sub = field_str(node(&root_of(&three), "sub"), "subtree").to_owned();
    let (data_pack, data_at) = locate(&repo, &x1);
    // x1 and x2 are small: their chunks share a bundle (FORMAT.md §7.1),
    // and a damaged bundle takes out every file whose bytes it holds.
    assert_eq!(
        locate(&repo, &x2),
        (data_pack.clone(), data_at),
        "x1 and x2 share a bundle"
    );
    let x3 = node(&root_of(&one), "x3")["content"]
        .as_array()
        .expect("chunks")
        .clone();
    assert_eq!(x3.len(), 1, "x3 is one chunk");
    let x3_at = locate(&repo, x3[0].as_str().expect("chunk"));
    assert_ne!(
        x3_at,
        (data_pack.clone(), data_at),
        "x3 is not in the bundle"
    );
    let (tree_pack, tree_at) = locate(&repo, &sub);
    flip(&repo, &index, 30);
    flip(&repo, &snap, 30);
    flip(&repo, &data_pack, data_at);
    flip(&repo, &tree_pack, tree_at);

    // snapshots: the intact ones are listed, the damaged one named.
    let listed = repo.run(["snapshots", "--json"]).success();
    assert!(listed.stderr.contains(&index), "{}", listed.stderr);
    assert!(listed.stderr.contains(&snap), "{}", listed.stderr);
    let list = listed.json();
    let list = list.as_array().expect("array");
    let usable: BTreeSet<&str> = list
        .iter()
        .filter(|s| s.get("damaged").is_none())
        .map(|s| field_str(s, "id"))
        .collect();
    assert_eq!(
        usable,
        BTreeSet::from([one.as_str(), three.as_str(), four.as_str()])
    );
    let bad: Vec<&str> = list
        .iter()
        .filter(|s| s.get("damaged").is_some())
        .map(|s| field_str(s, "id"))
        .collect();
    assert_eq!(bad, [two.as_str()]);

    // restore of an unaffected snapshot works before any repair, and
    // names the damaged index file.
    let out = tmp.path().join("out-four");
    let r = restore(&repo, &four, &out).success();
    assert!(r.stderr.contains(&index), "{}", r.stderr);
    assert_eq!(tree_differences(&src[3], &out), []);

    // repair index rebuilds without the damaged index file, naming it.
    let repaired = repo.run(["repair", "index", "--json"]).success();
    assert!(repaired.stderr.contains(&index), "{}", repaired.stderr);
    let report = repaired.json();
    assert!(
        report["unreadable_index_files"]
            .as_array()
            .expect("list")
            .iter()
            .any(|e| e[0] == index.as_str()),
        "{report:#}"
    );
    let after = repo.run(["snapshots"]).success();
    assert!(!after.stderr.contains(&index), "{}", after.stderr);

    // A damaged bundle: the files of its blobs are named and left out,
    // the rest is restored right.
    let out = tmp.path().join("out-one");
    let r = restore(&repo, &one, &out).expect_code(1);
    assert!(r.stderr.contains("x1"), "{}", r.stderr);
    assert!(r.stderr.contains("x2"), "{}", r.stderr);
    no_wrong_bytes(&src[0], &out);
    let diffs = tree_differences(&src[0], &out);
    assert!(
        diffs
            .iter()
            .all(|d| d.what == MISSING && (d.path == Path::new("x1") || d.path == Path::new("x2"))),
        "{diffs:?}\n{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(out.join("x3")).ok(),
        std::fs::read(src[0].join("x3")).ok(),
        "a file outside the damaged bundle"
    );

    // A damaged tree: the restore names it, writes nothing wrong, and
    // still restores the files outside its directory.
    let out = tmp.path().join("out-three");
    let r = restore(&repo, &three, &out).expect_code(1);
    assert!(r.stderr.contains(&sub), "{}", r.stderr);
    no_wrong_bytes(&src[2], &out);
    assert_eq!(
        std::fs::read(out.join("z1")).ok(),
        std::fs::read(src[2].join("z1")).ok(),
        "a file outside the damaged directory"
    );
    let out = tmp.path().join("out-three-outside");
    repo.run([
        OsStr::new("restore"),
        OsStr::new(&three),
        OsStr::new("--target"),
        out.as_os_str(),
        OsStr::new("--exclude"),
        OsStr::new("sub"),
    ])
    .success();
    assert_eq!(
        std::fs::read(out.join("z1")).ok(),
        std::fs::read(src[2].join("z1")).ok()
    );

    // The damaged snapshot is refused by name, and check names the rest.
    let r = restore(&repo, &two, &tmp.path().join("out-two")).expect_code(1);
    assert!(r.stderr.contains(&two), "{}", r.stderr);
    let check = repo.run(["check", "--read-data"]).expect_code(1);
    for object in [&snap, &data_pack, &tree_pack] {
        assert!(
            check.stderr.contains(object.as_str()),
            "{object}: {}",
            check.stderr
        );
    }
}

/// A backup looks its blobs up in the local index table while the table's
/// checksum is still being verified (ADR 0028). Over a table damaged on
/// local disk it stores no snapshot and says why; the table is removed, and
/// the next backup builds a new one and succeeds.
#[test]
fn a_damaged_index_table_fails_one_backup_clearly_and_the_next_rebuilds_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    for i in 0..4 {
        write(&src.join(format!("f{i}")), 300_000, i);
    }
    let repo = Repo::init(tmp.path().join("repo"));
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().expect("utf-8 path");
    let src_arg = src.to_str().expect("utf-8 path");
    repo.run(["--cache-dir", cache, "backup", src_arg, "--quiet"])
        .success();
    // The next open builds the table from the index files.
    repo.run(["--cache-dir", cache, "snapshots"]).success();
    let table = Path::new(cache).join("index/index.table");
    let mut bytes = std::fs::read(&table).expect("an open left a table");
    // The pack id of the first record.
    bytes[64 + 40] ^= 0x04;
    std::fs::write(&table, &bytes).expect("damage the table");
    write(&src.join("new"), 1000, 9);

    let failed = repo
        .run(["--cache-dir", cache, "backup", src_arg, "--quiet"])
        .expect_code(1);
    assert!(
        failed.stderr.contains("index table") && failed.stderr.contains("no snapshot was stored"),
        "{failed:?}"
    );
    assert!(!failed.stderr.contains("panicked"), "{failed:?}");
    assert!(!table.exists(), "the damaged table is still there");
    let listed = |repo: &Repo| repo.run(["snapshots", "--json"]).success().json();
    assert_eq!(listed(&repo).as_array().map(Vec::len), Some(1));

    repo.run(["--cache-dir", cache, "backup", src_arg, "--quiet"])
        .success();
    assert_eq!(listed(&repo).as_array().map(Vec::len), Some(2));
    assert!(table.exists(), "the next backup built no table");
    repo.run(["check", "--read-data"]).success();
    let out = tmp.path().join("out");
    restore(&repo, "latest", &out).success();
    assert_eq!(tree_differences(&src, &out), []);
}
