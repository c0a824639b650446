//! forget, prune, check and repair through the CLI, on a clock the test sets
//! (`CAIRN_TEST_NOW`), so days pass without sleeping.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

use crate::common::source::xorshift;
use crate::common::{Repo, Run, field_str, field_u64};

const DAY: i64 = 86_400;
const T0: i64 = 1_800_000_000;

/// Runs cairn against `repo` at time `now`.
pub(crate) fn at<I, S>(repo: &Repo, now: &str, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = repo.command(args);
    c.env("CAIRN_TEST_NOW", now);
    Run::of(c)
}

/// Writes `n` files of pseudo-random content (a fresh version per `seed`).
pub(crate) fn write_files(dir: &Path, n: usize, size: usize, seed: u64) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..n {
        let mut rng = xorshift(seed * 1000 + i as u64);
        std::fs::write(dir.join(format!("f{i:03}")), rng.bytes(size)).expect("write");
    }
}

/// Every regular file below `root`, by relative path.
pub(crate) fn contents(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .expect("below")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

fn backup_at(repo: &Repo, now: i64, dir: &Path) -> String {
    let run = at(
        repo,
        &now.to_string(),
        [OsStr::new("backup"), dir.as_os_str(), OsStr::new("--json")],
    )
    .success();
    field_str(&run.json(), "snapshot_id").to_owned()
}

fn data_bytes(repo: &Repo) -> u64 {
    repo.objects()
        .iter()
        .filter(|(k, _)| k.starts_with("data/"))
        .map(|(_, v)| *v)
        .sum()
}

#[test]
fn forget_lists_kept_and_removed_snapshots_with_reasons_and_prune_reclaims_after_the_grace_period()
{
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = Repo::init(tmp.path().join("repo"));
    let src = tmp.path().join("src");
    let mut ids = Vec::new();
    for day in 0..4 {
        write_files(&src, 6, 40_000, day as u64);
        ids.push(backup_at(&repo, T0 + day * DAY, &src));
    }
    let before = data_bytes(&repo);

    let now = (T0 + 4 * DAY).to_string();
    let dry = at(
        &repo,
        &now,
        [
            "forget",
            "--keep-last",
            "1",
            "--keep-daily",
            "2",
            "--dry-run",
            "--json",
        ],
    )
    .success()
    .json();
    let group = &dry["forget"]["groups"][0];
    assert_eq!(group["keep"].as_array().map(Vec::len), Some(2), "{dry:#}");
    assert_eq!(group["remove"].as_array().map(Vec::len), Some(2), "{dry:#}");
    assert_eq!(group["keep"][0]["id"], serde_json::json!(ids[3]));
    assert_eq!(
        group["keep"][0]["reasons"],
        serde_json::json!(["last snapshot", "daily snapshot"])
    );
    assert_eq!(
        group["keep"][1]["reasons"],
        serde_json::json!(["daily snapshot"])
    );
    assert_eq!(
        repo.run(["snapshots", "--json"])
            .success()
            .json()
            .as_array()
            .map(Vec::len),
        Some(4),
        "dry run removed nothing"
    );

    let run = at(
        &repo,
        &now,
        [
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--grace",
            "1d",
            "--json",
        ],
    )
    .success()
    .json();
    assert_eq!(field_u64(&run["prune"], "blobs_deleted"), 0, "{run:#}");
    assert!(field_u64(&run["prune"], "blobs_tombstoned") > 0, "{run:#}");
    assert_eq!(data_bytes(&repo), before);

    let later = (T0 + 6 * DAY).to_string();
    let p = at(&repo, &later, ["prune", "--grace", "1d", "--json"])
        .success()
        .json();
    assert!(field_u64(&p, "blobs_deleted") > 0, "{p:#}");
    let after = data_bytes(&repo);
    println!("cli prune: data {before} -> {after} bytes");
    assert!(after * 3 < before, "{before} -> {after}");

    let check = at(&repo, &later, ["check", "--read-data", "--json"])
        .success()
        .json();
    assert_eq!(check["errors"], serde_json::json!([]), "{check:#}");
    let out = tmp.path().join("out");
    Run::of({
        let mut c = repo.command([
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--target"),
            out.as_os_str(),
        ]);
        c.env("CAIRN_TEST_NOW", &later);
        c
    })
    .success();
    assert_eq!(contents(&out), contents(&src));
}

#[test]
fn repair_index_rebuilds_a_deleted_index_object_and_check_names_the_affected_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = Repo::init(tmp.path().join("repo"));
    let src = tmp.path().join("src");
    write_files(&src, 10, 30_000, 7);
    let id = field_str(&repo.backup_json(&src), "snapshot_id").to_owned();
    let index: Vec<String> = repo
        .objects()
        .into_keys()
        .filter(|k| k.starts_with("index/"))
        .collect();
    assert!(!index.is_empty());
    for k in &index {
        std::fs::remove_file(repo.path.join(k)).expect("delete index object");
    }
    let broken = repo.run(["check", "--json"]).expect_code(1);
    let report = broken.json();
    let named = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .any(|e| {
            e["snapshots"]
                .as_array()
                .is_some_and(|s| s.contains(&serde_json::json!(id)))
        });
    assert!(named, "check does not name snapshot {id}: {report:#}");

    let r = repo.run(["repair", "index", "--json"]).success().json();
    assert_eq!(
        field_u64(&r, "packs"),
        repo.pack_ids().len() as u64,
        "{r:#}"
    );
    repo.run(["check", "--read-data"]).success();
    repo.run(["check", "--read-data-subset", "1/2"]).success();
    repo.run(["check", "--read-data-subset", "50%"]).success();
    repo.run(["check", "--read-data-subset", "3/2"])
        .expect_code(1);
    let out = tmp.path().join("out");
    repo.run([
        OsStr::new("restore"),
        OsStr::new(&id),
        OsStr::new("--target"),
        out.as_os_str(),
    ])
    .success();
    assert_eq!(contents(&out), contents(&src));
}
