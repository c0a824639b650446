//! Two prunes and four writers started together, round after round, on one
//! in-memory repository with a clock the test moves (fixed seeds, no
//! sleeping). Between rounds some snapshots are forgotten, so tombstones
//! ripen and packs are deleted and repacked while backups deduplicate
//! against them. One of the prunes decides against the index merged in a
//! table on disk, its entries spooled there and its referenced set going
//! there past a budget of a few blobs; the other in memory. Afterwards
//! `check --read-data` is clean and every surviving snapshot restores byte
//! for byte.

mod common;

use cairn_repo::Maintenance;
use std::collections::HashMap;
use std::sync::Arc;

use cairn_core::{FixedClock, Id, SeededRandom};
use cairn_repo::{CheckOptions, Error, OpenOptions, PruneOptions, Repository};
use common::*;

const ROUNDS: u64 = 50;
const WRITERS: u64 = 4;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A handle of its own (another process) with seeded randomness.
async fn handle(repo: &Repository, clock: Arc<FixedClock>, seed: u64) -> Repository {
    handle_in(repo, clock, seed, None).await
}

/// [`handle`] with its index on local disk in `index_dir`.
async fn handle_in(
    repo: &Repository,
    clock: Arc<FixedClock>,
    seed: u64,
    index_dir: Option<&std::path::Path>,
) -> Repository {
    let mut opts = OpenOptions::default();
    opts.index_dir = index_dir.map(std::path::Path::to_path_buf);
    opts.clock = clock;
    opts.rng = Arc::new(SeededRandom::new(seed));
    Repository::open(repo.store().clone(), PASSWORD, opts)
        .await
        .expect("open")
}

/// 6 files drawn from a pool of 40 contents, so writers share blobs with
/// each other and with forgotten snapshots.
fn dataset(rng: &mut Rng) -> Vec<(String, Vec<u8>)> {
    (0..6)
        .map(|i| {
            let n = rng.next() % 40;
            (format!("f{i}"), content(n, 6_000 + (n as usize) * 97))
        })
        .collect()
}

fn prune_opts() -> PruneOptions {
    let mut o = PruneOptions::default();
    o.grace = cairn_repo::MIN_GRACE;
    o.max_unused = 0.0;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prunes_and_four_writers_started_together_lose_nothing() {
    let (repo, clock) = repo().await;
    let mut rng = Rng(0x5eed_cafe_f00d);
    let mut alive: HashMap<Id, Vec<(String, Vec<u8>)>> = HashMap::new();
    let (mut deleted_total, mut both_ran) = (0, 0);
    let index_dir = tempfile::tempdir().expect("tempdir");
    for round in 0..ROUNDS {
        clock.set(T0 + round as i64 * 1000);
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let h = handle(&repo, clock.clone(), round * 100 + w).await;
            let files = dataset(&mut rng);
            writers.push(tokio::spawn(async move {
                let id = backup(&h, &format!("w{w}"), &files).await;
                (id, files)
            }));
        }
        let mut prunes = Vec::new();
        for p in 0..2 {
            let dir = (p == 1).then_some(index_dir.path());
            let h = handle_in(&repo, clock.clone(), round * 100 + 50 + p, dir).await;
            // One prune merges the index in memory, the other in a table
            // with its referenced set and ripe tombstones on disk (past a
            // budget of a few).
            let mut o = prune_opts();
            o.index_in_memory = p == 0;
            o.referenced_in_memory = if p == 0 { usize::MAX } else { 2 };
            o.ripe_in_memory = if p == 0 { usize::MAX } else { 2 };
            prunes.push(tokio::spawn(async move { h.prune(o).await }));
        }
        for w in writers {
            let (id, files) = w.await.expect("writer");
            alive.insert(id, files);
        }
        let mut ran = 0;
        for p in prunes {
            match p.await.expect("join") {
                Ok(r) => {
                    ran += 1;
                    deleted_total += r.blobs_deleted;
                }
                Err(Error::PruneRunning { .. } | Error::PruneConflict(_)) => {}
                Err(e) => panic!("round {round}: prune failed: {e}"),
            }
        }
        if ran == 2 {
            both_ran += 1;
        }
        // Forget about half of the older snapshots.
        let mut ids: Vec<Id> = alive.keys().copied().collect();
        ids.sort();
        for id in ids {
            if alive.len() > 4 && rng.next() % 2 == 0 {
                repo.store()
                    .delete(&format!("snapshots/{id}"))
                    .await
                    .expect("forget");
                alive.remove(&id);
            }
        }
    }
    println!(
        "{ROUNDS} rounds: {deleted_total} blob copies deleted, both prunes completed in {both_ran} rounds, {} snapshots left",
        alive.len()
    );
    assert!(deleted_total > 0, "prune must have deleted something");
    let reader = handle(&repo, clock.clone(), 7).await;
    let report = reader
        .check({
            let mut o = CheckOptions::default();
            o.read_data = true;
            o
        })
        .await
        .expect("check");
    assert!(report.is_ok(), "{:#?}", report.errors);
    for (id, files) in &alive {
        assert_eq!(&restore(&reader, id).await, files, "snapshot {id}");
    }
}
