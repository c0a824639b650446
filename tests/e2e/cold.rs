//! Restores from archival storage (docs/ARCHIVAL.md, "Cold restores")
//! against moto (tests/e2e/moto.rs): data packs in GLACIER, everything
//! else hot; what does and does not ask for restores, and restores that
//! warm up exactly the packs they read, wait, resume and fail clearly.
//!
//! Which packs a path needs is worked out here from `cairn cat` (trees and
//! index files) and the bucket's listing (scripts/s3tool.py), not from the
//! code under test; what was asked for comes from moto's counts.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::compare::{assert_no_differences, tree_differences};
use crate::common::source::xorshift;
use crate::common::{CHEAP_KDF, Repo, Run, field_u64};
use crate::moto::{bucket_and_prefix, moto_endpoint, moto_location, restore_counts, s3tool};

/// Polls fast: moto restores in seconds, not hours.
pub(crate) const POLL: [&str; 2] = ["--poll-interval", "200ms"];

/// A repository in moto's plain bucket, with its own cache and work
/// directory (the source tree lives in `work/src`).
pub(crate) struct Cold {
    pub(crate) repo: Repo,
    cache: tempfile::TempDir,
    pub(crate) work: tempfile::TempDir,
    bucket: String,
    prefix: String,
}

impl Cold {
    /// A new repository whose data packs go to `data_class`.
    pub(crate) fn init(test: &str, data_class: &str) -> Option<Cold> {
        let url = moto_location(test, false)?;
        let (bucket, prefix) = bucket_and_prefix(&url);
        let cold = Cold {
            repo: Repo::at(url, "cold test password"),
            cache: tempfile::tempdir().expect("tempdir"),
            work: tempfile::tempdir().expect("tempdir"),
            bucket,
            prefix,
        };
        let mut args = vec!["init", "--json", "--data-storage-class", data_class];
        args.extend(CHEAP_KDF);
        let out = cold.run(args).success().json();
        assert_eq!(out["settings"]["data_storage_class"], data_class, "{out:#}");
        Some(cold)
    }

    /// A cairn command on this repository, on the clock `now` if given.
    pub(crate) fn command<I, S>(&self, args: I, now: Option<i64>) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.repo.command(args);
        c.env("CAIRN_CACHE_DIR", self.cache.path());
        if let Some(now) = now {
            c.env("CAIRN_TEST_NOW", now.to_string());
        }
        c
    }

    pub(crate) fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Run::of(self.command(args, None))
    }

    pub(crate) fn src(&self) -> PathBuf {
        self.work.path().join("src")
    }

    /// `backup work/src --json`; returns the snapshot id.
    pub(crate) fn backup(&self, now: Option<i64>) -> String {
        let src = self.src();
        let args = [OsStr::new("backup"), src.as_os_str(), OsStr::new("--json")];
        let out = Run::of(self.command(args, now)).success().json();
        out["snapshot_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no snapshot id in {out:#}"))
            .to_owned()
    }

    /// RestoreObject requests moto counted for this repository's objects,
    /// by path inside the repository (`data/ab/ab12…`). Other tests' keys
    /// are left out: the counts are shared.
    pub(crate) fn restores(&self) -> BTreeMap<String, u64> {
        let mine = format!("{}/{}/", self.bucket, self.prefix);
        restore_counts()
            .into_iter()
            .filter_map(|(k, n)| k.strip_prefix(&mine).map(|p| (p.to_owned(), n)))
            .collect()
    }

    /// The storage class of every object, by path inside the repository.
    pub(crate) fn classes(&self) -> BTreeMap<String, String> {
        let all = s3tool(["classes", &moto_endpoint(), &self.bucket, &self.prefix]);
        let all = all.as_object().expect("an object").clone();
        all.into_iter()
            .map(|(k, v)| {
                let path = k
                    .strip_prefix(&format!("{}/", self.prefix))
                    .unwrap_or_else(|| panic!("{k} outside {}", self.prefix));
                (path.to_owned(), v.as_str().expect("a class").to_owned())
            })
            .collect()
    }

    /// What `s3tool head` says of the restore of an object (empty if none).
    pub(crate) fn restore_header(&self, path: &str) -> String {
        let key = format!("{}/{path}", self.prefix);
        let head = s3tool(["head", &moto_endpoint(), &self.bucket, &key]);
        head["restore"].as_str().unwrap_or("").to_owned()
    }

    /// Every indexed blob and the pack holding it, from every index file
    /// the listing shows (`cairn cat index`), with each pack's blob kinds.
    pub(crate) fn blob_packs(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let (mut packs, mut kinds) = (BTreeMap::new(), BTreeMap::new());
        for path in self.classes().keys() {
            let Some(id) = path.strip_prefix("index/") else {
                continue;
            };
            let file = self.run(["cat", "index", id]).success().json();
            for p in file["packs"].as_array().expect("packs") {
                let pack = p["pack"].as_str().expect("pack id").to_owned();
                for b in p["blobs"].as_array().expect("blobs") {
                    let blob = b["id"].as_str().expect("blob id").to_owned();
                    packs.insert(blob, pack.clone());
                    // A pack is a data or a tree pack: the blobs of a
                    // bundle (kind "bundle") are data blobs.
                    let kind = match b["kind"].as_str().expect("kind") {
                        "bundle" => "data",
                        k => k,
                    };
                    kinds.insert(pack.clone(), kind.to_owned());
                }
            }
        }
        (packs, kinds)
    }

    /// The packs holding the content of every file under `path` of
    /// `snapshot`, walking the trees with `cairn cat`.
    pub(crate) fn packs_under(&self, snapshot: &str, path: &str) -> BTreeSet<String> {
        let snap = self.run(["cat", "snapshot", snapshot]).success().json();
        let mut tree = snap["tree"].as_str().expect("tree id").to_owned();
        for name in path.split('/').filter(|c| !c.is_empty()) {
            let t = self.run(["cat", "tree", &tree]).success().json();
            let node = t["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .find(|n| n["name"] == name)
                .unwrap_or_else(|| panic!("no {name} in {t:#}"));
            tree = node["subtree"].as_str().expect("a directory").to_owned();
        }
        let (blob_packs, _) = self.blob_packs();
        let mut out = BTreeSet::new();
        let mut stack = vec![tree];
        while let Some(id) = stack.pop() {
            let t = self.run(["cat", "tree", &id]).success().json();
            for n in t["nodes"].as_array().expect("nodes") {
                if let Some(sub) = n["subtree"].as_str() {
                    stack.push(sub.to_owned());
                }
                for blob in n["content"].as_array().expect("content") {
                    let blob = blob.as_str().expect("blob id");
                    out.insert(blob_packs[blob].clone());
                }
            }
        }
        out
    }
}

/// Writes `n` files of `size` pseudo-random bytes into `dir` (`seed`
/// makes each set different, so nothing deduplicates by accident).
pub(crate) fn write_files(dir: &Path, n: usize, size: usize, seed: u64) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..n {
        let mut rng = xorshift(seed * 1000 + i as u64);
        std::fs::write(dir.join(format!("f{i:02}")), rng.bytes(size)).expect("write");
    }
}

/// The object path of a pack id.
pub(crate) fn pack_path(id: &str) -> String {
    format!("data/{}/{id}", &id[..2])
}

/// Three backups, each adding a directory, so each adds its own data pack:
/// `a/` (small files), then `b/`, then `c/`, which holds new files, one
/// file of several chunks and a copy of a file of `a/` (stored in the
/// first backup's pack). Restoring `c/` needs the first and third packs,
/// not the second. Returns the snapshot ids.
pub(crate) fn three_backups(cold: &Cold) -> Vec<String> {
    let src = cold.src();
    write_files(&src.join("a"), 8, 20_000, 1);
    let mut ids = vec![cold.backup(None)];
    write_files(&src.join("b"), 8, 20_000, 2);
    ids.push(cold.backup(None));
    write_files(&src.join("c"), 6, 30_000, 3);
    write_files(&src.join("c/deep"), 1, 3_000_000, 4);
    std::fs::copy(src.join("a/f00"), src.join("c/copy-of-a")).expect("copy");
    ids.push(cold.backup(None));
    ids
}

/// The restore counts of `packs`, each asked for once.
fn once_each(packs: &BTreeSet<String>) -> BTreeMap<String, u64> {
    packs.iter().map(|p| (pack_path(p), 1)).collect()
}

/// Data packs GLACIER, everything else STANDARD, and nothing a backup, a
/// listing or forget does asks for a restore.
#[test]
fn cold_data_packs_are_archived_and_browsing_asks_for_no_restore() {
    let Some(cold) = Cold::init("cold_browse", "GLACIER") else {
        return;
    };
    let ids = three_backups(&cold);
    let classes = cold.classes();
    let (_, kinds) = cold.blob_packs();
    for (path, class) in &classes {
        let pack_kind = path
            .strip_prefix("data/")
            .and_then(|p| p.rsplit('/').next())
            .map(|id| kinds.get(id).map_or("unindexed", String::as_str));
        let want = if pack_kind == Some("data") {
            "GLACIER"
        } else {
            "STANDARD"
        };
        assert_eq!(class, want, "{path} ({pack_kind:?})");
    }
    for prefix in ["config", "keys/", "index/", "snapshots/", "settings/"] {
        assert!(
            classes.keys().any(|k| k.starts_with(prefix)),
            "no {prefix} in {classes:#?}"
        );
    }
    let data = kinds.values().filter(|k| *k == "data").count();
    assert!(
        data >= 3 && kinds.len() > data,
        "data and tree packs: {kinds:?}"
    );

    cold.run(["snapshots"]).success();
    cold.run(["ls", "-l", "latest"]).success();
    cold.run(["ls", "latest", "c"]).success();
    cold.run(["diff", &ids[0], &ids[2]]).success();
    let found = cold.run(["find", "f0*", "--json"]).success();
    assert!(found.stdout.contains("c/f00"), "{}", found.stdout);
    cold.run(["forget", "--keep-last", "1", "--dry-run"])
        .success();
    // The structure check reads pack headers: those of archived packs are
    // counted, not reported as damage, and not restored.
    let check = cold.run(["check", "--json"]).success().json();
    assert_eq!(
        field_u64(&check, "packs_archived"),
        data as u64,
        "{check:#}"
    );
    assert_eq!(cold.restores(), BTreeMap::new());
}

/// A restore of one directory asks for exactly the packs of its files,
/// shows where the wait stands, waits for moto's delay and restores the
/// files byte for byte.
#[test]
fn cold_restore_of_a_directory_asks_for_exactly_its_packs_and_waits() {
    let Some(cold) = Cold::init("cold_restore", "GLACIER") else {
        return;
    };
    three_backups(&cold);
    let want = cold.packs_under("latest", "c");
    let (_, kinds) = cold.blob_packs();
    let data: BTreeSet<String> = kinds
        .iter()
        .filter(|(_, k)| *k == "data")
        .map(|(p, _)| p.clone())
        .collect();
    assert!(
        !want.is_empty() && want.len() < data.len() && want.is_subset(&data),
        "c/ needs some data packs, not all: {want:?} of {data:?}"
    );

    let target = cold.work.path().join("restored");
    let t = target.to_str().expect("utf-8");
    let mut args = vec!["restore", "latest:c", "--target", t, "--json"];
    args.extend(POLL);
    let run = cold.run(args).success();
    crate::json_schema::check_output("restore", &run.stdout);
    let warm = &run.json()["outcome"]["warm_up"];
    assert_eq!(field_u64(warm, "planned"), want.len() as u64, "{warm:#}");
    assert_eq!(field_u64(warm, "requested"), want.len() as u64, "{warm:#}");
    assert_eq!(warm["complete"], true, "{warm:#}");
    assert_eq!(cold.restores(), once_each(&want));
    // Progress on stderr: first none readable, at last all of them.
    let n = want.len();
    let first = format!("warm-up: 0/{n} packs readable");
    let last = format!("warm-up: {n}/{n} packs readable");
    assert!(run.stderr.contains(&first), "{}", run.stderr);
    assert!(run.stderr.contains(&last), "{}", run.stderr);
    assert!(
        run.stderr.contains("typically take 3–5 hours"),
        "{}",
        run.stderr
    );
    assert_no_differences(&tree_differences(&cold.src().join("c"), &target), "c/");
}

/// With patterns, which only the walk of the trees resolves, a restore
/// plans every file before it warms up: it still asks for exactly the
/// packs of the files it writes (without patterns it finds them with a
/// walk that keeps only the packs, and writes in rounds: the test above).
#[test]
fn cold_restore_with_patterns_asks_for_exactly_the_packs_of_what_they_select() {
    let Some(cold) = Cold::init("cold_patterns", "GLACIER") else {
        return;
    };
    three_backups(&cold);
    let want = cold.packs_under("latest", "c");
    let target = cold.work.path().join("restored");
    let t = target.to_str().expect("utf-8");
    let mut args = vec![
        "restore",
        "latest",
        "--include",
        "/c",
        "--target",
        t,
        "--json",
    ];
    args.extend(POLL);
    let run = cold.run(args).success();
    let warm = &run.json()["outcome"]["warm_up"];
    assert_eq!(field_u64(warm, "planned"), want.len() as u64, "{warm:#}");
    assert_eq!(cold.restores(), once_each(&want));
    assert_no_differences(
        &tree_differences(&cold.src().join("c"), &target.join("c")),
        "c/",
    );
    assert!(!target.join("a").exists() && !target.join("b").exists());
}

/// A restore killed while it waits, run again, asks for nothing twice
/// (the server knows what is being restored) and completes.
#[test]
fn cold_restore_killed_while_waiting_resumes_without_asking_twice() {
    let Some(cold) = Cold::init("cold_resume", "GLACIER") else {
        return;
    };
    three_backups(&cold);
    let want = cold.packs_under("latest", "c");
    let target = cold.work.path().join("restored");
    let t = target.to_str().expect("utf-8");
    let mut args = vec!["restore", "latest:c", "--target", t];
    args.extend(POLL);
    let mut c = cold.command(&args, None);
    c.stderr(Stdio::piped()).stdout(Stdio::null());
    let mut child = c.spawn().expect("start restore");
    let stderr = child.stderr.take().expect("stderr");
    // The first progress line comes once every restore was asked for.
    let mut seen = Vec::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.expect("stderr line");
        let waiting = line.starts_with("warm-up: 0/");
        seen.push(line);
        if waiting {
            break;
        }
    }
    child.kill().expect("kill");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed while waiting: {seen:#?}");
    assert_eq!(cold.restores(), once_each(&want), "{seen:#?}");

    args.push("--json");
    let again = cold.run(args).success().json();
    let warm = &again["outcome"]["warm_up"];
    assert_eq!(field_u64(warm, "requested"), 0, "{warm:#}");
    let known = field_u64(warm, "already_restoring") + field_u64(warm, "already_readable");
    assert_eq!(known, want.len() as u64, "{warm:#}");
    assert_eq!(cold.restores(), once_each(&want), "nothing asked twice");
    assert_no_differences(&tree_differences(&cold.src().join("c"), &target), "c/");
}

/// `cairn warm-up` asks, `--wait` waits, and a restore after it asks for
/// nothing more.
#[test]
fn cold_warm_up_asks_then_restore_reads_without_asking_again() {
    let Some(cold) = Cold::init("cold_warm_up", "GLACIER") else {
        return;
    };
    three_backups(&cold);
    let want = cold.packs_under("latest", "c");
    let n = want.len() as u64;
    let asked = cold.run(["warm-up", "latest", "c", "--json"]).success();
    crate::json_schema::check_output("warm-up", &asked.stdout);
    let w = &asked.json()["warm_up"];
    assert_eq!(
        (field_u64(w, "planned"), field_u64(w, "requested")),
        (n, n),
        "{w:#}"
    );
    assert!(field_u64(w, "requested_bytes") > 3_000_000, "{w:#}");
    assert_eq!(cold.restores(), once_each(&want));

    let mut args = vec!["warm-up", "latest", "c", "--wait", "--json"];
    args.extend(POLL);
    let waited = cold.run(args).success().json();
    let w = &waited["warm_up"];
    assert_eq!(field_u64(w, "requested"), 0, "{w:#}");
    assert_eq!(
        (w["complete"].clone(), field_u64(w, "readable_at_end")),
        (true.into(), n)
    );

    let target = cold.work.path().join("restored");
    let t = target.to_str().expect("utf-8");
    let out = cold
        .run(["restore", "latest:c", "--target", t, "--json"])
        .success()
        .json();
    let w = &out["outcome"]["warm_up"];
    assert_eq!(field_u64(w, "already_readable"), n, "{w:#}");
    assert_eq!(cold.restores(), once_each(&want), "nothing asked twice");
    assert_no_differences(&tree_differences(&cold.src().join("c"), &target), "c/");
}

/// Where the settings do not say the data is archival (packs a lifecycle
/// rule moved), a restore stops at the first archived pack and says how to
/// warm up; with `--warm-up` it asks, waits and restores.
#[test]
fn cold_restore_without_warm_up_stops_at_an_archived_pack_and_says_what_to_do() {
    let Some(cold) = Cold::init("cold_no_warm_up", "GLACIER") else {
        return;
    };
    write_files(&cold.src(), 4, 50_000, 7);
    cold.backup(None);
    // Later packs go to the bucket's default class; the first stays
    // GLACIER, like a pack a lifecycle rule moved.
    cold.run(["settings", "--data-storage-class", ""]).success();
    let target = cold.work.path().join("restored");
    let t = target.to_str().expect("utf-8");
    let failed = cold
        .run(["restore", "latest", "--target", t])
        .expect_code(1);
    for hint in [
        "archival storage class",
        "--warm-up",
        "cairn warm-up latest",
    ] {
        assert!(failed.stderr.contains(hint), "{hint}: {}", failed.stderr);
    }
    assert_eq!(cold.restores(), BTreeMap::new());

    let mut args = vec!["restore", "latest", "--target", t, "--warm-up"];
    args.extend(POLL);
    cold.run(args).success();
    let want = cold.packs_under("latest", "");
    assert_eq!(cold.restores(), once_each(&want));
    assert_no_differences(&tree_differences(&cold.src(), &target), "restore");
}
