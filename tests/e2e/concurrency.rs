//! Many writers and prune at once: 4 `cairn backup` processes back up
//! overlapping data into one repository, round after round, while `forget`
//! and `prune` run again and again with the shortest grace period (1h). Every choice
//! (what changes, when the clock moves, when forget and prune run) comes from
//! a fixed seed; the processes share a clock file (`CAIRN_TEST_NOW=@FILE`)
//! that the test moves, so grace periods pass without sleeping. Afterwards
//! `check --read-data` is clean and every surviving snapshot restores
//! byte-identical.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::source::{XorShift, xorshift};
use crate::common::{Repo, Run};
use crate::maintenance::contents;

const WRITERS: usize = 4;
const ROUNDS: usize = 16;
const T0: i64 = 1_800_000_000;

struct Clock {
    file: PathBuf,
    now: i64,
    /// Cache directory shared by every process (remote repositories).
    cache: Option<PathBuf>,
}

impl Clock {
    fn advance(&mut self, secs: i64) {
        self.now += secs;
        // Written whole, then renamed, so a reader never sees half a number.
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, self.now.to_string()).expect("write clock");
        std::fs::rename(&tmp, &self.file).expect("publish clock");
    }
    fn env(&self) -> String {
        format!("@{}", self.file.display())
    }
}

fn command<I, S>(repo: &Repo, clock: &Clock, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = repo.command(args);
    c.env("CAIRN_TEST_NOW", clock.env());
    if let Some(cache) = &clock.cache {
        // Every process shares one cache, as agents on one node would.
        c.env("CAIRN_CACHE_DIR", cache);
    }
    c
}

/// A writer's content in round `round`: shared files every writer has
/// (changing every third round), and the writer's own, some of which change
/// each round.
fn write_source(dir: &Path, round: usize, rng: &mut XorShift) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..6u64 {
        let version = (round / 3) as u64;
        let mut r = xorshift(1 + i * 100 + version);
        std::fs::write(dir.join(format!("shared{i}")), r.bytes(24_000)).expect("write");
    }
    for i in 0..6u64 {
        let path = dir.join(format!("own{i}"));
        if round == 0 || rng.below(3) == 0 {
            let mut r = xorshift(rng.next_u64());
            let len = 4_000 + rng.below(40_000) as usize;
            std::fs::write(&path, r.bytes(len)).expect("write");
        }
    }
}

fn finish(child: Child, what: &str) -> Run {
    let out = child.wait_with_output().expect("wait");
    Run::from_output(what.to_owned(), out)
}

#[test]
fn four_writers_and_repeated_prune_lose_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = Repo::init(tmp.path().join("repo"));
    run(&tmp, repo, ROUNDS, None);
}

/// The same on a real S3 server (Garage), with every process sharing one
/// local cache; fewer rounds, as each costs more requests.
#[test]
fn four_writers_and_repeated_prune_lose_nothing_on_garage() {
    let Some(url) = crate::s3::s3_location("concurrency") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = tmp.path().join("cache");
    let repo = Repo::at(&url, "test password");
    let mut init = repo.command(["init"].into_iter().chain(crate::common::CHEAP_KDF));
    init.env("CAIRN_CACHE_DIR", &cache);
    Run::of(init).success();
    run(&tmp, repo, 6, Some(cache));
}

fn run(tmp: &tempfile::TempDir, repo: Repo, rounds: usize, cache: Option<PathBuf>) {
    let started = std::time::Instant::now();
    let mut clock = Clock {
        file: tmp.path().join("clock"),
        now: T0,
        cache,
    };
    clock.advance(0);
    let mut rng = xorshift(0x5eed_2026);
    let sources: Vec<PathBuf> = (0..WRITERS)
        .map(|w| tmp.path().join(format!("src{w}")))
        .collect();
    // Snapshot id -> what its source held.
    let mut expected: HashMap<String, std::collections::BTreeMap<String, Vec<u8>>> = HashMap::new();
    let (mut prunes, mut forgets, mut deleted) = (0, 0, 0u64);

    for round in 0..rounds {
        let mut children = Vec::new();
        let mut snapshots_of = Vec::new();
        for (w, src) in sources.iter().enumerate() {
            write_source(src, round, &mut rng);
            snapshots_of.push(contents(src));
            let host = format!("writer-{w}");
            let mut c = command(
                &repo,
                &clock,
                [
                    OsStr::new("backup"),
                    src.as_os_str(),
                    OsStr::new("--host"),
                    OsStr::new(&host),
                    OsStr::new("--json"),
                ],
            );
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            children.push(c.spawn().expect("spawn backup"));
        }
        // While the writers run: move the clock, forget and prune, in an
        // order and with pauses the seed decides.
        for _ in 0..(2 + rng.below(4)) {
            // At most 5 x 264 s per round: a running writer refreshes its
            // session well within SELF_EXPIRY (30 min).
            clock.advance(30 + 6 * rng.below(40) as i64);
            if rng.below(2) == 0 {
                Run::of(command(
                    &repo,
                    &clock,
                    ["forget", "--keep-last", "2", "--json"],
                ))
                .success();
                forgets += 1;
            }
            let p = Run::of(command(
                &repo,
                &clock,
                ["prune", "--grace", "1h", "--max-unused", "0%", "--json"],
            ))
            .success()
            .json();
            deleted += p["blobs_deleted"].as_u64().unwrap_or(0);
            prunes += 1;
        }
        for (w, child) in children.into_iter().enumerate() {
            let run = finish(child, &format!("backup by writer {w} in round {round}")).success();
            let id = run.json()["snapshot_id"]
                .as_str()
                .expect("snapshot id")
                .to_owned();
            expected.insert(id, snapshots_of[w].clone());
        }
    }
    // Let every tombstone ripen and act on it: each run is past the grace
    // period of the one before.
    for _ in 0..3 {
        clock.advance(3700);
        Run::of(command(&repo, &clock, ["forget", "--keep-last", "2"])).success();
        let p = Run::of(command(
            &repo,
            &clock,
            ["prune", "--grace", "1h", "--max-unused", "0%", "--json"],
        ))
        .success()
        .json();
        deleted += p["blobs_deleted"].as_u64().unwrap_or(0);
        prunes += 1;
    }

    let check = Run::of(command(&repo, &clock, ["check", "--read-data", "--json"]))
        .success()
        .json();
    assert_eq!(check["errors"], serde_json::json!([]), "{check:#}");
    let listed = Run::of(command(&repo, &clock, ["snapshots", "--json"]))
        .success()
        .json();
    let surviving: Vec<String> = listed
        .as_array()
        .expect("snapshot list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(surviving.len(), 2 * WRITERS, "keep-last 2 per writer");
    for id in &surviving {
        let out = tmp.path().join(format!("restore-{id}"));
        Run::of(command(
            &repo,
            &clock,
            [
                OsStr::new("restore"),
                OsStr::new(id),
                OsStr::new("--target"),
                out.as_os_str(),
            ],
        ))
        .success();
        let want = expected
            .get(id)
            .unwrap_or_else(|| panic!("snapshot {id} was not made by a writer"));
        assert!(
            contents(&out) == *want,
            "snapshot {id} does not restore byte-identical"
        );
    }
    assert!(
        deleted > 0,
        "prune never deleted anything: the test would prove nothing"
    );
    println!(
        "concurrency: {rounds} rounds x {WRITERS} writers, {forgets} forgets, {prunes} prunes, \
         {deleted} blobs deleted, {} snapshots checked, {:.1}s",
        surviving.len(),
        started.elapsed().as_secs_f64()
    );
}
