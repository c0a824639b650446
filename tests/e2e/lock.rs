//! S3 Object Lock end to end, in moto's object-lock bucket (see moto.rs):
//! every object a backup writes is retained, forget and prune leave what is
//! retained and say until when, `lock extend` moves retentions forward, and
//! `lock recover` undoes a delete-everything attack. scripts/s3tool.py looks
//! at the bucket independently of cairn.
//!
//! Retentions are short (seconds) where a test must see them end; the test
//! then waits for that condition, with a bound. Where a step must come
//! before a retention ends and the machine was too slow for it, the check
//! is skipped with a note rather than failed: no wall-clock threshold.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::common::compare::{assert_no_differences, tree_differences};
use crate::common::{CHEAP_KDF, Repo, Run, field_str, field_u64};
use crate::json_schema::check_output;
use crate::maintenance::write_files;
use crate::moto::{boto3, bucket_and_prefix, moto_endpoint, moto_location, s3tool};

/// A repository in moto's lock bucket.
struct Locked {
    repo: Repo,
    bucket: String,
    prefix: String,
}

impl Locked {
    /// `init --object-lock compliance --lock-duration DURATION`, or `None`
    /// without moto.
    fn init(test: &str, duration: &str) -> Option<Locked> {
        let url = moto_location(test, true)?;
        let (bucket, prefix) = bucket_and_prefix(&url);
        let repo = Repo::at(&url, "lock test password");
        let lock = ["--object-lock", "compliance", "--lock-duration", duration];
        repo.run(["init"].into_iter().chain(lock).chain(CHEAP_KDF))
            .success();
        Some(Locked {
            repo,
            bucket,
            prefix,
        })
    }

    fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.repo.run(args)
    }

    /// cairn with the repository's clock at `now` (seconds since the epoch).
    fn run_at<I, S>(&self, now: i64, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.repo.command(args);
        c.env("CAIRN_TEST_NOW", now.to_string());
        Run::of(c)
    }

    fn backup(&self, dir: &Path) -> String {
        let run = self
            .run([OsStr::new("backup"), dir.as_os_str(), OsStr::new("--json")])
            .success();
        field_str(&run.json(), "snapshot_id").to_owned()
    }

    /// Every current object, by path relative to the repository.
    fn objects(&self) -> Vec<String> {
        let classes = s3tool(["classes", &moto_endpoint(), &self.bucket, &self.prefix]);
        let map = classes.as_object().expect("an object");
        map.keys().map(|k| self.relative(k)).collect()
    }

    fn relative(&self, key: &str) -> String {
        key.strip_prefix(&format!("{}/", self.prefix))
            .unwrap_or_else(|| panic!("{key} is outside {}", self.prefix))
            .to_owned()
    }

    /// s3tool's `head` of an object of the repository.
    fn head(&self, path: &str) -> serde_json::Value {
        let key = format!("{}/{path}", self.prefix);
        s3tool(["head", &moto_endpoint(), &self.bucket, &key])
    }

    /// When the object's retention ends, from s3tool (seconds).
    fn retain_until(&self, path: &str) -> i64 {
        let head = self.head(path);
        let date = head["retain_until"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} has no retention: {head:#}"));
        epoch_of(date)
    }

    /// Every version and delete marker under the prefix.
    fn versions(&self) -> Vec<serde_json::Value> {
        let v = s3tool(["versions", &moto_endpoint(), &self.bucket, &self.prefix]);
        v.as_array().expect("a list").clone()
    }

    /// Delete markers over objects that are not sessions or probes.
    fn markers_over_repository_objects(&self) -> Vec<String> {
        self.versions()
            .iter()
            .filter(|v| v["is_delete_marker"] == true)
            .map(|v| self.relative(v["key"].as_str().expect("a key")))
            .filter(|p| !volatile(p))
            .collect()
    }
}

fn volatile(path: &str) -> bool {
    path.starts_with("sessions/") || path.starts_with("probe/")
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Seconds since the epoch of an ISO date as boto3 prints it
/// (`2026-11-30T07:14:06+00:00`, fractions ignored, UTC).
fn epoch_of(date: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 {
        date.get(r)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a date: {date:?}"))
    };
    assert!(
        date.ends_with("+00:00") || date.ends_with('Z'),
        "not UTC: {date:?}"
    );
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from the civil date (proleptic Gregorian), as in cairn's output.rs.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// Waits, a second at a time, until this host's clock is past `t` (a
/// retention date the server set from the same clock), within `bound`.
fn wait_past(t: i64, bound: Duration) {
    let deadline = Instant::now() + bound;
    while now_secs() <= t {
        assert!(
            Instant::now() < deadline,
            "still before {t} after {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The files of `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    crate::maintenance::contents(dir)
}

fn restore_latest_and_compare(l: &Locked, src: &Path) {
    let out = tempfile::tempdir().expect("tempdir");
    let target = out.path().join("restored");
    let t = target.to_str().expect("utf-8");
    l.run(["restore", "latest", "--target", t]).success();
    assert_no_differences(&tree_differences(src, &target), "restore");
    assert_eq!(tree(src), tree(&target));
}

fn check_read_data_is_clean(l: &Locked) {
    let check = l.run(["check", "--read-data", "--json"]).success().json();
    assert_eq!(check["errors"], serde_json::json!([]), "{check:#}");
}

/// Item 1: keys, config, settings, packs, index files and snapshots are
/// retained in the mode and for the period set; sessions are not. A delete
/// of a retained version is refused.
#[test]
fn lock_every_object_a_backup_writes_is_retained_and_sessions_are_not() {
    let before = now_secs();
    let Some(l) = Locked::init("lock_objects", "1h") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    write_files(&src, 4, 300_000, 1);
    l.backup(&src);
    let after = now_secs();

    let objects = l.objects();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for path in &objects {
        let head = l.head(path);
        let folder = path.split('/').next().unwrap_or(path).to_owned();
        *seen.entry(folder).or_default() += 1;
        if volatile(path) {
            assert_eq!(
                head["retention_mode"],
                serde_json::Value::Null,
                "{path}: {head:#}"
            );
            continue;
        }
        assert_eq!(head["retention_mode"], "COMPLIANCE", "{path}: {head:#}");
        let until = l.retain_until(path);
        assert!(
            (before + 3600 - 1..=after + 3600 + 1).contains(&until),
            "{path}: retained until {until}, written between {before} and {after}"
        );
    }
    for folder in [
        "config",
        "keys",
        "settings",
        "data",
        "index",
        "snapshots",
        "sessions",
    ] {
        assert!(seen.contains_key(folder), "no {folder} in {objects:?}");
    }
    assert!(seen["data"] >= 2, "data and tree packs: {seen:?}");

    // A delete of the version itself, which is what destroys data.
    let config = format!("{}/config", l.prefix);
    let version = l.head("config")["version_id"]
        .as_str()
        .expect("a version id")
        .to_owned();
    let delete = r#"print(code_of(lambda: s3.delete_object(Bucket=sys.argv[1], Key=sys.argv[2], VersionId=sys.argv[3])))"#;
    assert_eq!(
        boto3(delete, &[&l.bucket, &config, &version]),
        "AccessDenied"
    );
    l.run(["snapshots"]).success();
}

/// `init --object-lock` at `repo` fails, saying why.
fn lock_init_is_refused(repo: &Repo) {
    let lock = ["--object-lock", "governance", "--lock-days", "7"];
    let run = repo
        .run(["init"].into_iter().chain(lock).chain(CHEAP_KDF))
        .expect_code(1);
    assert!(
        run.stderr.contains("does not have S3 Object Lock enabled"),
        "{}",
        run.stderr
    );
}

/// A bucket without Object Lock is refused before anything is written.
#[test]
fn lock_init_refuses_a_bucket_without_object_lock_before_writing() {
    let Some(url) = moto_location("lock_unlockable", false) else {
        return;
    };
    let (bucket, prefix) = bucket_and_prefix(&url);
    lock_init_is_refused(&Repo::at(&url, "pw"));
    let objects = s3tool(["classes", &moto_endpoint(), &bucket, &prefix]);
    assert_eq!(objects, serde_json::json!({}), "nothing written");
}

/// The same on a server that does not implement Object Lock (Garage).
#[test]
fn lock_init_refuses_a_server_without_object_lock_before_writing() {
    let Some(url) = crate::s3::s3_location("lock_garage") else {
        return;
    };
    let repo = Repo::at(&url, "pw");
    lock_init_is_refused(&repo);
    // Nothing was written: a plain init finds the location empty.
    repo.run(["init"].into_iter().chain(CHEAP_KDF)).success();
}

/// Two backups, the files of the first gone from the second; returns the
/// first snapshot's id.
fn two_backups(l: &Locked, src: &Path) -> String {
    write_files(src, 3, 400_000, 1);
    let first = l.backup(src);
    std::fs::remove_dir_all(src).expect("rm");
    write_files(src, 2, 200_000, 2);
    l.backup(src);
    first
}

/// forget --keep-last 1 keeps `first` while it is retained, saying until
/// when (exit 4), and removes it once that date has passed.
fn forget_waits_for_the_retention(l: &Locked, first: &str, period: i64) {
    let forget = l
        .run(["forget", "--keep-last", "1", "--json"])
        .expect_code(4);
    check_output("forget", &forget.stdout);
    let report = &forget.json()["forget"];
    let held = &report["groups"][0]["retained"];
    assert_eq!(held[0]["id"], first, "{report:#}");
    let until = held[0]["retained_until"].as_i64().expect("a date");
    assert_eq!(until, l.retain_until(&format!("snapshots/{first}")));
    let text = l.run(["forget", "--keep-last", "1"]).expect_code(4);
    assert!(text.stdout.contains("retained until"), "{}", text.stdout);
    let listed = l.run(["snapshots", "--json"]).success().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(2));

    wait_past(until, Duration::from_secs(period as u64 + 60));
    let forget = l
        .run(["forget", "--keep-last", "1", "--json"])
        .success()
        .json();
    assert_eq!(forget["forget"]["groups"][0]["remove"][0]["id"], first);
}

/// Item 3: forget keeps a retained snapshot and says until when (exit 4),
/// removes it once the retention ends; prune leaves retained packs and
/// index files in place, reports their dates, and deletes them once the
/// retention ends; the repository checks clean all along.
#[test]
fn lock_forget_and_prune_leave_retained_objects_until_their_retention_ends() {
    const PERIOD: i64 = 20;
    let Some(l) = Locked::init("lock_prune", "20s") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let first = two_backups(&l, &src);
    forget_waits_for_the_retention(&l, &first, PERIOD);

    // Every pack and index file is retained again, from now: prune must
    // plan around them.
    let extend = l.run(["lock", "extend", "--json"]).success();
    check_output("lock extend", &extend.stdout);
    let extend = extend.json();
    assert!(field_u64(&extend, "extended") >= 4, "{extend:#}");
    let extended_until = extend["earliest_until"].as_i64().expect("a date");

    // Phase 1 two hours on (the backups' done sessions have lapsed, so the
    // forgotten snapshot is no longer walked), phase 2 four hours on.
    let t = now_secs();
    let prune_at = |hours: i64| {
        let run = l
            .run_at(t + hours * 3600, ["prune", "--grace", "1h", "--json"])
            .success();
        check_output("prune", &run.stdout);
        run.json()
    };
    let p1 = prune_at(2);
    assert!(field_u64(&p1, "blobs_tombstoned") > 0, "{p1:#}");
    let in_time = now_secs() < extended_until;
    let p2 = prune_at(4);
    let dry = l
        .run_at(t + 4 * 3600, ["prune", "--grace", "1h", "--dry-run"])
        .success();
    if in_time && now_secs() < extended_until {
        prune_held_back(&l, &first, (&p1, &p2), &dry.stdout, extended_until);
    } else {
        eprintln!("prune ran after the retention ({PERIOD} s) ended: its holding back is not seen");
    }
    check_read_data_is_clean(&l);

    let latest = p2["retained_packs"]["latest_until"]
        .as_i64()
        .max(p1["retained_index_files"]["latest_until"].as_i64())
        .unwrap_or(0);
    wait_past(latest, Duration::from_secs(PERIOD as u64 + 60));
    let p3 = prune_at(6);
    assert_eq!(field_u64(&p3["retained_packs"], "objects"), 0, "{p3:#}");
    // Only index files written since (by the first prune) may still be.
    if let Some(first_left) = p3["retained_index_files"]["earliest_until"].as_i64() {
        assert!(first_left > latest, "{p3:#}");
    }
    assert!(
        field_u64(&p3, "packs_deleted") + field_u64(&p3, "packs_repacked") > 0,
        "{p3:#}"
    );
    check_read_data_is_clean(&l);
    restore_latest_and_compare(&l, &src);
}

/// What the two prunes (`p1` marks, `p2` would delete) and a dry run did
/// while every pack and index file was retained until `until`: nothing
/// retained was deleted or hidden, and the reports say until when.
fn prune_held_back(
    l: &Locked,
    first: &str,
    (p1, p2): (&serde_json::Value, &serde_json::Value),
    dry_run: &str,
    until: i64,
) {
    assert_eq!(field_u64(p2, "packs_deleted"), 0, "{p2:#}");
    assert_eq!(field_u64(p2, "packs_repacked"), 0, "{p2:#}");
    let packs = &p2["retained_packs"];
    assert!(field_u64(packs, "objects") >= 1, "{p2:#}");
    assert!(packs["earliest_until"].as_i64() >= Some(until), "{p2:#}");
    let files = &p1["retained_index_files"];
    assert!(field_u64(files, "objects") >= 1, "{p1:#}");
    // Only the forgotten snapshot, whose retention had ended, was deleted
    // (hidden behind a delete marker).
    assert_eq!(
        l.markers_over_repository_objects(),
        [format!("snapshots/{first}")]
    );
    assert!(
        dry_run.contains("retained by object lock until"),
        "{dry_run}"
    );
}

/// Item 4: ransomware with delete rights (plain deletes, then every
/// version by id with the governance bypass) destroys no retained version;
/// `lock recover` brings the repository back.
#[test]
fn lock_recover_undoes_a_delete_everything_attack() {
    let Some(l) = Locked::init("lock_attack", "1h") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    write_files(&src, 3, 300_000, 7);
    l.backup(&src);
    write_files(&src.join("more"), 2, 100_000, 8);
    l.backup(&src);
    let before: Vec<String> = l.objects().into_iter().filter(|p| !volatile(p)).collect();
    let data_versions = |volatile_ones: bool| {
        l.versions()
            .iter()
            .filter(|v| v["is_delete_marker"] == false)
            .filter(|v| volatile(&l.relative(v["key"].as_str().expect("key"))) == volatile_ones)
            .count() as u64
    };
    let (kept, unprotected) = (data_versions(false), data_versions(true));

    let attack = s3tool(["attack", &moto_endpoint(), &l.bucket, &l.prefix]);
    assert_eq!(field_u64(&attack, "refused_versions"), kept, "{attack:#}");
    assert_eq!(
        field_u64(&attack, "deleted_versions"),
        unprotected,
        "{attack:#}"
    );
    assert!(l.objects().is_empty(), "every object hidden");
    let gone = l.run(["snapshots"]).expect_code(1);
    assert!(
        gone.stderr.contains("not a cairn repository"),
        "{}",
        gone.stderr
    );

    let dry = l
        .run(["lock", "recover", "--dry-run", "--json"])
        .success()
        .json();
    assert_eq!(field_u64(&dry, "restored"), before.len() as u64, "{dry:#}");
    assert!(l.objects().is_empty(), "a dry run changes nothing");
    let done = l.run(["lock", "recover", "--json"]).success();
    check_output("lock recover", &done.stdout);
    let done = done.json();
    assert_eq!(
        field_u64(&done, "restored"),
        before.len() as u64,
        "{done:#}"
    );
    assert_eq!(field_u64(&done, "destroyed"), 0, "{done:#}");
    assert_eq!(done["restored_by_folder"]["config"], 1, "{done:#}");
    assert_eq!(l.objects(), before, "every retained object is back");
    let again = l.run(["lock", "recover", "--json"]).success().json();
    assert_eq!(field_u64(&again, "markers_removed"), 0, "{again:#}");

    restore_latest_and_compare(&l, &src);
    check_read_data_is_clean(&l);
}

/// Item 2: `lock extend` gives what has less than half the period left
/// `now + period`, leaves the rest, and locks snapshots only once.
#[test]
fn lock_extend_moves_retention_forward() {
    const PERIOD: i64 = 20;
    let Some(l) = Locked::init("lock_extend", "20s") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    write_files(&src, 2, 200_000, 3);
    let snapshot = l.backup(&src);
    let mut paths: Vec<String> = ["config", "keys/", "settings/", "index/", "data/"]
        .iter()
        .map(|prefix| {
            l.objects()
                .into_iter()
                .find(|p| p.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix}"))
        })
        .collect();
    let snapshot_path = format!("snapshots/{snapshot}");
    paths.push(snapshot_path.clone());
    let retentions =
        || -> BTreeMap<&String, i64> { paths.iter().map(|p| (p, l.retain_until(p))).collect() };
    let before = retentions();
    let soonest = before.values().copied().min().unwrap_or(0);

    // More than half the period left: nothing to do (unless this machine
    // was too slow to ask in time).
    let early = now_secs() + PERIOD / 2 < soonest;
    let r = l.run(["lock", "extend", "--json"]).success().json();
    if early && now_secs() + PERIOD / 2 < soonest {
        assert_eq!(field_u64(&r, "extended"), 0, "{r:#}");
    }
    // Read again: a late run above may have extended some.
    let first = retentions();
    let latest = first.values().copied().max().unwrap_or(0);

    // Then every one of them has less than half the period left.
    wait_past(latest - PERIOD / 2, Duration::from_secs(PERIOD as u64 + 60));
    let started = now_secs();
    let r = l.run(["lock", "extend", "--json"]).success().json();
    assert!(field_u64(&r, "extended") >= 5, "{r:#}");
    assert_eq!(field_u64(&r, "failed"), 0, "{r:#}");
    assert!(
        r["earliest_until"].as_i64() >= Some(started + PERIOD - 1),
        "{r:#}"
    );
    for p in &paths {
        let now = l.retain_until(p);
        if *p == snapshot_path {
            assert_eq!(now, first[p], "{p}: a snapshot keeps its retention");
        } else {
            assert!(now > first[p], "{p}: {} -> {now}", first[p]);
            assert!(now >= started + PERIOD - 1, "{p}: {now}");
        }
    }
    let text = l.run(["lock", "extend"]).success();
    assert!(
        text.stdout.contains("earliest retention left"),
        "{}",
        text.stdout
    );

    // An index file that does not open may list any pack: extend then
    // keeps every pack, and the file, and says why.
    let garbage = format!("{}/index/{}", l.prefix, "ab".repeat(32));
    let put = r#"s3.put_object(Bucket=sys.argv[1], Key=sys.argv[2], Body=b"not an index file")"#;
    boto3(put, &[&l.bucket, &garbage]);
    let r = l.run(["lock", "extend", "--json"]).success();
    check_output("lock extend", &r.stdout);
    let r = r.json();
    assert_eq!(field_u64(&r, "damaged_index_files"), 1, "{r:#}");
    assert_eq!(field_u64(&r, "failed"), 0, "{r:#}");
    let head = l.head(&format!("index/{}", "ab".repeat(32)));
    assert_eq!(head["retention_mode"], "COMPLIANCE", "{head:#}");
}

#[test]
fn iso_dates_from_s3tool_are_read_as_utc_seconds() {
    assert_eq!(epoch_of("1970-01-01T00:00:00+00:00"), 0);
    assert_eq!(epoch_of("2023-11-14T22:13:20+00:00"), 1_700_000_000);
    assert_eq!(epoch_of("2024-02-29T00:00:01.250000+00:00"), 1_709_164_801);
}
