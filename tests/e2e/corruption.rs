//! A damaged pack is found by `check --read-data`, and a restore never
//! writes wrong bytes: the damaged file is absent, everything else intact.

use std::ffi::OsStr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::common::compare::{Difference, MISSING, tree_differences};
use crate::common::source::{BIG_FILE, TreeSpec, generate};
use crate::common::{Repo, field_str, field_u64, pack_path};

/// The chunk ids of the file `name` in the snapshot's root directory.
fn root_file_chunks(repo: &Repo, name: &str) -> Vec<String> {
    let snap = repo.run(["cat", "snapshot", "latest"]).success().json();
    let tree = repo
        .run(["cat", "tree", field_str(&snap, "tree")])
        .success()
        .json();
    let nodes = tree["nodes"].as_array().expect("a tree has nodes");
    let node = nodes
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in the root tree: {tree:#}"));
    node["content"]
        .as_array()
        .expect("a file node has content")
        .iter()
        .map(|c| c.as_str().expect("a chunk id").to_owned())
        .collect()
}

#[test]
fn flipped_byte_in_data_blob_fails_read_data_check_and_restore_writes_no_wrong_bytes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::FULL);
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);

    // Find a chunk from the middle of the big file, and where it is stored.
    let chunks = root_file_chunks(&repo, BIG_FILE);
    assert!(chunks.len() >= 3, "50 MB in only {} chunks", chunks.len());
    let victim = &chunks[chunks.len() / 2];
    let (pack, entry) = repo
        .pack_ids()
        .into_iter()
        .find_map(|p| {
            let e = repo
                .pack_entries(&p)
                .into_iter()
                .find(|e| e["id"] == victim.as_str())?;
            Some((p, e))
        })
        .unwrap_or_else(|| panic!("chunk {victim} is in no pack"));
    assert_eq!(entry["kind"], "data", "{entry}");
    let at = field_u64(&entry, "offset") + field_u64(&entry, "length") / 2;

    let object = pack_path(&pack);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(repo.path.join(&object))
        .expect("open the pack");
    let mut b = [0u8];
    file.read_exact_at(&mut b, at).expect("read a byte");
    file.write_all_at(&[b[0] ^ 0x01], at).expect("write a byte");
    drop(file);

    // The structural check does not read blobs: it may pass, but not crash.
    let quick = repo.run(["check"]);
    assert!(
        matches!(quick.code, Some(0 | 1)) && !quick.stderr.contains("panicked"),
        "{quick:?}"
    );

    let full = repo.run(["check", "--read-data"]).expect_code(1);
    assert!(
        full.stderr.contains(&object),
        "check --read-data does not name {object}:\n{}",
        full.stderr
    );

    let out = tmp.path().join("out");
    let r = repo
        .run([
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--target"),
            out.as_os_str(),
        ])
        .expect_code(1);
    assert!(
        r.stderr.contains(BIG_FILE),
        "restore does not name {BIG_FILE}:\n{}",
        r.stderr
    );
    // Every other file is restored and identical; the damaged one is absent
    // (not there with wrong bytes, and no temporary file is left behind).
    assert_eq!(
        tree_differences(&src, &out),
        [Difference {
            path: PathBuf::from(BIG_FILE),
            what: MISSING.to_owned(),
        }]
    );
}

#[test]
fn check_reports_a_damaged_index_file_that_the_local_index_table_still_covers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), vec![7u8; 10_000]).expect("write");
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);
    // The local index table now covers every index file.
    repo.run(["check"]).success();
    let index = repo
        .objects()
        .into_keys()
        .find(|o| o.starts_with("index/"))
        .expect("an index file");
    let path = repo.path.join(&index);
    let mut b = std::fs::read(&path).expect("read");
    b[30] ^= 0x80;
    std::fs::write(&path, b).expect("write");

    let r = repo.run(["check"]).expect_code(1);
    assert!(r.stderr.contains(&index), "{}", r.stderr);
    let json = repo.run(["check", "--json"]).expect_code(1).json();
    assert!(
        json["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .any(|e| e["object"] == index.as_str()),
        "{json:#}"
    );
}
