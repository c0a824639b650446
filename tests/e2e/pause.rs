//! A backup paused (SIGSTOP) past its session's lifetime while prune runs,
//! then resumed (SIGCONT): it aborts, or stores a snapshot that restores;
//! never a snapshot of deleted data. The processes share a clock file
//! (`CAIRN_TEST_NOW=@FILE`) that the test moves while the writer is
//! stopped.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::compare::{assert_no_differences, tree_differences};
use crate::common::source::xorshift;
use crate::common::{Repo, Run};

const T0: i64 = 1_800_000_000;
const HOUR: i64 = 3600;

fn set_clock(file: &Path, now: i64) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, now.to_string()).expect("write clock");
    std::fs::rename(&tmp, file).expect("publish clock");
}

fn at<I, S>(repo: &Repo, clock: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = repo.command(args);
    c.env("CAIRN_TEST_NOW", format!("@{}", clock.display()));
    c
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill {sig} {pid}");
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_backup_paused_past_its_session_lifetime_never_stores_deleted_data() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clock: PathBuf = tmp.path().join("clock");
    set_clock(&clock, T0);
    let repo = Repo::init(tmp.path().join("repo"));
    let sessions = tmp.path().join("repo").join("sessions");

    // S0 holds `shared`; the paused writer deduplicates against it.
    let mut rng = xorshift(77);
    let old = tmp.path().join("old");
    std::fs::create_dir(&old).expect("mkdir");
    let shared = rng.bytes(600_000);
    std::fs::write(old.join("shared"), &shared).expect("write");
    let s0 = Run::of(at(
        &repo,
        &clock,
        [OsStr::new("backup"), old.as_os_str(), OsStr::new("--json")],
    ))
    .success()
    .json();
    let s0 = s0["snapshot_id"].as_str().expect("id").to_owned();
    let before = count(&sessions);

    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("shared"), &shared).expect("write");
    for i in 0..4 {
        std::fs::write(src.join(format!("new{i}")), rng.bytes(1 << 20)).expect("write");
    }
    // Slow uploads keep the writer busy long enough to stop it mid-run.
    let mut w = at(
        &repo,
        &clock,
        [
            OsStr::new("--limit-upload"),
            OsStr::new("512"),
            OsStr::new("backup"),
            src.as_os_str(),
            OsStr::new("--json"),
        ],
    );
    w.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = w.spawn().expect("spawn writer");
    // Wait for its session (a condition, not a delay).
    let mut waited = 0;
    while count(&sessions) <= before {
        std::thread::sleep(Duration::from_millis(10));
        waited += 1;
        assert!(waited < 6000, "the writer never announced its session");
    }
    signal(child.id(), "-STOP");

    // While it is stopped: S0 is forgotten, prune tombstones its blobs,
    // the writer's session goes stale and a later prune deletes them.
    std::fs::remove_file(tmp.path().join("repo").join("snapshots").join(&s0)).expect("forget S0");
    set_clock(&clock, T0 + 10);
    Run::of(at(&repo, &clock, ["prune", "--grace", "1h", "--json"])).success();
    set_clock(&clock, T0 + 10 + HOUR + 100);
    let p = Run::of(at(&repo, &clock, ["prune", "--grace", "1h", "--json"]))
        .success()
        .json();
    assert!(p["blobs_deleted"].as_u64().unwrap_or(0) > 0, "{p:#}");

    signal(child.id(), "-CONT");
    let run = Run::from_output(
        "paused backup".into(),
        child.wait_with_output().expect("wait"),
    );
    let listed = Run::of(at(&repo, &clock, ["snapshots", "--json"]))
        .success()
        .json();
    let snaps = listed.as_array().expect("list").len();
    println!(
        "paused backup: exit {:?}, {snaps} snapshots; {}",
        run.code,
        run.stderr.trim()
    );
    if run.code == Some(0) {
        // It stored a snapshot: it must restore completely.
        assert_eq!(snaps, 1, "{listed:#}");
        let dst = tmp.path().join("dst");
        Run::of(at(
            &repo,
            &clock,
            [
                OsStr::new("restore"),
                OsStr::new("latest"),
                OsStr::new("--target"),
                dst.as_os_str(),
            ],
        ))
        .success();
        assert_no_differences(&tree_differences(&src, &dst), "paused backup");
    } else {
        assert_eq!(
            snaps, 0,
            "an aborted backup stores no snapshot: {listed:#}\n{}",
            run.stderr
        );
    }
    let check = Run::of(at(&repo, &clock, ["check", "--read-data", "--json"]))
        .success()
        .json();
    assert_eq!(check["errors"], serde_json::json!([]), "{check:#}");
}
