//! `cairn copy` between a local repository and Garage and back: snapshots
//! restore byte-identical from every copy, a second copy uploads nothing,
//! and a copy that fails midway completes when run again, reusing what it
//! stored.

use std::path::Path;

use crate::common::compare::{assert_no_differences, tree_differences};
use crate::common::source::{TreeSpec, generate};
use crate::common::{CHEAP_KDF, Repo, Run, field_u64};
use crate::s3::s3_location;

/// `cairn copy` into `to` from `from`, with `extra` arguments and
/// environment.
fn copy(to: &Repo, from: &Repo, cache: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = to.command(["copy", "--json"].iter().chain(args));
    c.env("CAIRN_FROM_REPOSITORY", &from.path)
        .env("CAIRN_FROM_PASSWORD", &from.password)
        .env("CAIRN_CACHE_DIR", cache);
    for (k, v) in env {
        c.env(k, v);
    }
    Run::of(c)
}

/// Restores snapshot `id` of `repo` and compares it with `source`.
fn restores_as(repo: &Repo, cache: &Path, id: &str, source: &Path) {
    let out = tempfile::tempdir().expect("tempdir");
    let target = out.path().join("r");
    let mut c = repo.command(["restore", id, "--target", target.to_str().expect("utf-8")]);
    c.env("CAIRN_CACHE_DIR", cache);
    Run::of(c).success();
    assert_no_differences(
        &tree_differences(source, &target),
        &format!("{id} of {}", repo.path.display()),
    );
}

/// Ids of `repo`'s snapshots, ordered by their first path, then time.
fn snapshots_by_path(repo: &Repo, cache: &Path) -> Vec<(String, String)> {
    let mut c = repo.command(["snapshots", "--json"]);
    c.env("CAIRN_CACHE_DIR", cache);
    let list = Run::of(c).success().json();
    let mut out: Vec<(String, String, String)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|s| {
            let path = s["paths"][0].as_str().unwrap_or_default().to_owned();
            let time = format!("{:020}", field_u64(&s["time"], "secs"));
            (path, time, s["id"].as_str().expect("id").to_owned())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    out.sort();
    out.into_iter().map(|(p, _, id)| (p, id)).collect()
}

fn sum(v: &serde_json::Value, field: &str) -> u64 {
    v["copied"]
        .as_array()
        .expect("copied")
        .iter()
        .map(|c| field_u64(&c["writer"], field))
        .sum()
}

#[test]
fn copies_to_garage_and_back_restore_byte_identical_and_resume_after_a_failure() {
    let Some(url) = s3_location("copy") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (v1, v2) = (tmp.path().join("v1"), tmp.path().join("v2"));
    generate(&v1, TreeSpec::with_big_file(30_000_000));
    generate(
        &v2,
        TreeSpec {
            seed: 77,
            ..TreeSpec::with_big_file(2_000_000)
        },
    );
    let local = Repo::init(tmp.path().join("local"));
    local.backup_json(&v1);
    local.backup_json(&v2);
    let cache = tmp.path().join("cache");

    // Into Garage: once the first pack is stored, every request for a pack
    // is refused, so the copy stops; the second attempt completes and
    // reuses the stored pack.
    let s3 = Repo::at(url.as_str(), "other password");
    let mut init = s3.command(["init"].into_iter().chain(CHEAP_KDF));
    init.env("CAIRN_CACHE_DIR", &cache);
    Run::of(init).success();
    let faults = [(
        "CAIRN_TEST_HTTP_FAULTS",
        "fail-after-objects=1,fail-path=/data/",
    )];
    copy(&s3, &local, &cache, &[], &faults).expect_code(1);
    let resumed = copy(&s3, &local, &cache, &[], &[]).success().json();
    assert_eq!(resumed["rechunked"], true, "{resumed:#}");
    assert_eq!(
        resumed["copied"].as_array().map(Vec::len),
        Some(2),
        "{resumed:#}"
    );
    assert!(
        sum(&resumed, "bytes_added") < 30_000_000,
        "the stored pack is reused: {resumed:#}"
    );
    let again = copy(&s3, &local, &cache, &[], &[]).success().json();
    assert_eq!(
        again["copied"].as_array().map(Vec::len),
        Some(0),
        "{again:#}"
    );
    assert_eq!(
        again["skipped"].as_array().map(Vec::len),
        Some(2),
        "{again:#}"
    );
    assert_eq!(field_u64(&again["storage"], "puts"), 0, "{again:#}");
    for ((path, id), dir) in snapshots_by_path(&s3, &cache).iter().zip([&v1, &v2]) {
        assert!(path.ends_with("v1") || path.ends_with("v2"), "{path}");
        restores_as(&s3, &cache, id, dir);
    }

    // An incremental copy: a new backup of v1 whose parent was copied
    // reads only what changed from the source, not the big file again.
    std::fs::write(v1.join("changed"), b"a new file").expect("write");
    local.backup_json(&v1);
    let next = copy(&s3, &local, &cache, &[], &[]).success().json();
    assert_eq!(next["copied"].as_array().map(Vec::len), Some(1), "{next:#}");
    let read = field_u64(&next["source_storage"], "bytes_down");
    assert!(
        read < 1_000_000,
        "{read} bytes read from the source for a one-file change: {next:#}"
    );

    // Back to a local repository that cuts chunks as the Garage one does:
    // chunks are re-sealed, not cut again.
    let back = Repo::at(tmp.path().join("back"), "third password");
    let mut init = back.command(
        ["init", "--copy-chunker-params-from", url.as_str()]
            .into_iter()
            .chain(CHEAP_KDF),
    );
    init.env("CAIRN_FROM_PASSWORD", &s3.password)
        .env("CAIRN_CACHE_DIR", &cache);
    Run::of(init).success();
    let out = copy(&back, &s3, &cache, &[], &[]).success().json();
    assert_eq!(out["rechunked"], false, "{out:#}");
    assert_eq!(out["copied"].as_array().map(Vec::len), Some(3), "{out:#}");
    // The newer of the two v1 snapshots, and v2.
    let list = snapshots_by_path(&back, &cache);
    assert_eq!(list.len(), 3);
    restores_as(&back, &cache, &list[1].1, &v1);
    restores_as(&back, &cache, &list[2].1, &v2);
    assert_eq!(
        back.config()["chunker"],
        {
            let mut c = s3.command(["cat", "config"]);
            c.env("CAIRN_CACHE_DIR", &cache);
            Run::of(c).success().json()["chunker"].clone()
        },
        "the same chunker parameters, seed included"
    );
}

#[test]
fn copy_selects_by_id_and_filters_and_refuses_the_same_repository() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::with_big_file(100_000));
    let a = Repo::init(tmp.path().join("a"));
    a.backup_json(&src);
    a.run([
        "backup",
        src.to_str().expect("utf-8"),
        "--tag",
        "keep",
        "--json",
    ])
    .success();
    let b = Repo::init(tmp.path().join("b"));
    let cache = tmp.path().join("cache");
    let dry = copy(&b, &a, &cache, &["--tag", "keep", "--dry-run"], &[])
        .success()
        .json();
    assert_eq!(dry["to_copy"].as_array().map(Vec::len), Some(1), "{dry:#}");
    assert_eq!(
        b.run(["snapshots", "--json"])
            .success()
            .json()
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    let out = copy(&b, &a, &cache, &["latest"], &[]).success().json();
    assert_eq!(out["copied"].as_array().map(Vec::len), Some(1), "{out:#}");
    let same = copy(&a, &a, &cache, &[], &[]).expect_code(1);
    assert!(same.stderr.contains("same repository"), "{}", same.stderr);
    let wrong = {
        let mut c = b.command(["copy"]);
        c.env("CAIRN_FROM_REPOSITORY", &a.path)
            .env("CAIRN_FROM_PASSWORD", "wrong");
        Run::of(c).expect_code(1)
    };
    assert!(
        wrong.stderr.contains("source repository"),
        "{}",
        wrong.stderr
    );
}

/// A copy killed (SIGKILL) after its first index file is written completes
/// when run again, uploading only what that index file does not list.
#[test]
fn a_killed_copy_completes_when_run_again_and_reuses_what_was_indexed() {
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let mut rng = crate::common::source::xorshift(77);
    // 10 data packs: the writer indexes every 8.
    for i in 0..10 {
        std::fs::write(src.join(format!("f{i}")), rng.bytes(16 << 20)).expect("write");
    }
    let from = Repo::init(tmp.path().join("from"));
    from.backup_json(&src);
    let to = Repo::init(tmp.path().join("to"));
    let cache = tmp.path().join("cache");

    let mut cmd = to.command(["--limit-upload", "40960", "copy"]);
    cmd.env("CAIRN_FROM_REPOSITORY", &from.path)
        .env("CAIRN_FROM_PASSWORD", &from.password)
        .env("CAIRN_CACHE_DIR", &cache)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    let index = to.path.join("index");
    let start = Instant::now();
    // An index file is complete once renamed into place: its temporary
    // name (`NAME#N`, synced before the rename) does not count, or the
    // kill could land between the two and leave no index.
    let complete = |d: std::fs::ReadDir| {
        d.flatten()
            .filter(|e| !e.file_name().to_string_lossy().contains('#'))
            .count()
    };
    while std::fs::read_dir(&index).map_or(0, complete) == 0 {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the copy ended before it wrote an index file"
        );
        assert!(start.elapsed() < Duration::from_secs(300), "no index file");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let listed = to.run(["snapshots", "--json"]).success().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "no snapshot yet");

    let again = copy(&to, &from, &cache, &[], &[]).success().json();
    assert_eq!(
        again["copied"].as_array().map(Vec::len),
        Some(1),
        "{again:#}"
    );
    let added = sum(&again, "bytes_added");
    assert!(
        added < 10 * (16 << 20) - 100_000_000,
        "the indexed packs are reused: {added} bytes added"
    );
    let out = tmp.path().join("out");
    to.run([
        std::ffi::OsStr::new("restore"),
        std::ffi::OsStr::new("latest"),
        std::ffi::OsStr::new("--target"),
        out.as_os_str(),
    ])
    .success();
    assert_no_differences(&tree_differences(&src, &out), "restore of the resumed copy");
}
