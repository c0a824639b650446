//! Storage classes per object kind, chosen at `init` and changed later
//! with `cairn settings`, against moto (which records the class of every
//! object; Garage has none). Data packs take the data class; tree packs
//! and every other object the metadata class, so listings never need an
//! archived object.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{CHEAP_KDF, Repo, Run};
use crate::moto::{bucket_and_prefix, moto_endpoint, moto_location, s3tool};

/// Every object under the repository's prefix and its storage class.
fn classes(url: &str) -> BTreeMap<String, String> {
    let (bucket, prefix) = bucket_and_prefix(url);
    let v = s3tool(["classes", &moto_endpoint(), &bucket, &format!("{prefix}/")]);
    v.as_object()
        .expect("an object")
        .iter()
        .map(|(k, c)| {
            let rel = k
                .strip_prefix(&format!("{prefix}/"))
                .unwrap_or(k)
                .to_owned();
            (rel, c.as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// The pack ids holding tree blobs, from every index file (`cairn cat
/// index ID`) of the listing `objects`.
fn tree_packs(r: &Repo, cache: &Path, objects: &BTreeMap<String, String>) -> Vec<String> {
    let mut packs = Vec::new();
    for id in objects.keys().filter_map(|k| k.strip_prefix("index/")) {
        let file = run(r, cache, &["cat", "index", id]).json();
        for p in file["packs"].as_array().expect("packs") {
            let blobs = p["blobs"].as_array().expect("blobs");
            if blobs.iter().any(|b| b["kind"] == "tree") {
                packs.push(p["pack"].as_str().expect("pack id").to_owned());
            }
        }
    }
    packs
}

fn run(r: &Repo, cache: &Path, args: &[&str]) -> Run {
    let mut c = r.command(args);
    c.env("CAIRN_CACHE_DIR", cache);
    Run::of(c).success()
}

#[test]
fn data_and_metadata_take_their_classes_and_a_change_applies_to_later_objects() {
    let Some(url) = moto_location("classes", false) else {
        return;
    };
    let r = Repo::at(&url, "classes password");
    let cache = tempfile::tempdir().expect("tempdir");
    let mut init = vec![
        "init",
        "--json",
        "--data-storage-class",
        "STANDARD_IA",
        "--metadata-storage-class",
        "STANDARD",
    ];
    init.extend(CHEAP_KDF);
    let out = run(&r, cache.path(), &init).json();
    assert_eq!(
        out["settings"]["data_storage_class"], "STANDARD_IA",
        "{out}"
    );

    let src = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(src.path().join("sub")).expect("mkdir");
    std::fs::write(src.path().join("a"), vec![7u8; 300_000]).expect("write");
    std::fs::write(src.path().join("sub/b"), b"bee").expect("write");
    let dir = src.path().to_str().expect("utf-8");
    run(&r, cache.path(), &["backup", dir]);

    let first = classes(&url);
    let trees = tree_packs(&r, cache.path(), &first);
    assert!(!trees.is_empty());
    for (path, class) in &first {
        let is_data_pack =
            path.starts_with("data/") && !trees.iter().any(|t| path.ends_with(t.as_str()));
        let want = if is_data_pack {
            "STANDARD_IA"
        } else {
            "STANDARD"
        };
        assert_eq!(class, want, "{path}");
    }
    for prefix in [
        "config",
        "keys/",
        "settings/",
        "index/",
        "snapshots/",
        "data/",
    ] {
        assert!(
            first.keys().any(|k| k.starts_with(prefix)),
            "no {prefix} object in {first:?}"
        );
    }

    // A second client, with a cache of its own, writes by the changed
    // settings: only the objects written after the change take the class.
    run(
        &r,
        cache.path(),
        &["settings", "--data-storage-class", "GLACIER_IR"],
    );
    let other_cache = tempfile::tempdir().expect("tempdir");
    let shown = run(&r, other_cache.path(), &["settings", "--json"]).json();
    assert_eq!(shown["data_storage_class"], "GLACIER_IR", "{shown}");
    assert_eq!(shown["sequence"], 2, "{shown}");
    std::fs::write(src.path().join("c"), vec![9u8; 300_000]).expect("write");
    run(&r, other_cache.path(), &["backup", dir]);
    let second = classes(&url);
    let trees = tree_packs(&r, other_cache.path(), &second);
    let mut new_data_packs = 0;
    for (path, class) in &second {
        if let Some(old) = first.get(path) {
            assert_eq!(class, old, "{path} changed class");
            continue;
        }
        let is_data_pack =
            path.starts_with("data/") && !trees.iter().any(|t| path.ends_with(t.as_str()));
        if is_data_pack {
            new_data_packs += 1;
            assert_eq!(class, "GLACIER_IR", "{path}");
        } else {
            assert_eq!(class, "STANDARD", "{path}");
        }
    }
    assert!(new_data_packs > 0, "the second backup wrote no data pack");
}

#[test]
fn classes_and_locks_on_a_local_repository_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("repo");
    let r = Repo::at(&path, "pw");
    let mut args = vec!["init", "--data-storage-class", "GLACIER"];
    args.extend(CHEAP_KDF);
    let out = r.run(args).expect_code(1);
    assert!(
        out.stderr.contains("need an S3 repository"),
        "{}",
        out.stderr
    );
    let left = std::fs::read_dir(&path).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "init wrote objects before refusing");
}
