//! `check`: is every snapshot fully restorable?
//!
//! Structure: every indexed pack exists, is long enough for its entries, and
//! its header (one suffix read) lists what the index places in it; every
//! snapshot's trees load and every blob they reference is indexed. Reading
//! data: every pack of the selected subset is downloaded, its header opened
//! from those bytes, and every blob the header or the index places in it
//! opened and re-hashed; bytes no blob covers are reported. Each problem
//! names the object and the snapshots it affects.
//!
//! By default check reads the repository's own objects, never the local
//! cache (cached index table, snapshots and trees), which it does not
//! trust: key files, the config and every index file are read and
//! verified too, so a damaged object is reported whatever the cache holds.
//! With [`MetadataSource::Cache`] it uses the cache, which is faster and checks only
//! what the cache does not hold.

mod objects;
mod verify;
mod walk;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_core::format::{PackEntry, pack_v1};
use cairn_core::{Id, Kind};
use cairn_store::Store;
use futures::StreamExt;

use crate::{BlobLocation, Index, Repository, Result, WarmOptions, WarmReport, paths};
pub use objects::check_in_memory_entries;
use objects::{check_config, check_keys, fresh_index};
use verify::verify_pack;
use walk::check_snapshots;
pub use walk::check_trees_in_memory;

/// Where `check` reads the index, snapshots and trees from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetadataSource {
    /// The repository itself: every copy is verified.
    #[default]
    Repository,
    /// The local cache where it holds them (faster; damage to the
    /// repository's copies can go unnoticed).
    Cache,
}

/// What to check.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct CheckOptions {
    /// Download and verify every blob.
    pub read_data: bool,
}

/// Which packs to download and verify.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ReadData {
    /// Structure only.
    #[default]
    None,
    /// Every pack.
    All,
    /// Part `n` of `m` (1-based): packs whose id, read as a number, is
    /// `n − 1` modulo `m`. Running 1/m … m/m covers every pack once.
    Part {
        /// Which part.
        n: u32,
        /// Of how many.
        m: u32,
    },
    /// A random share of the packs, in percent (0–100).
    Percent(f64),
}

impl ReadData {
    /// Parses `N/M` or `P%`.
    pub fn parse_subset(s: &str) -> Option<ReadData> {
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().ok()?;
            return (p > 0.0 && p <= 100.0).then_some(ReadData::Percent(p));
        }
        let (n, m) = s.split_once('/')?;
        let (n, m): (u32, u32) = (n.trim().parse().ok()?, m.trim().parse().ok()?);
        (n >= 1 && n <= m).then_some(ReadData::Part { n, m })
    }

    fn selects(&self, pack: &Id, rng: &dyn cairn_core::RandomSource) -> bool {
        match *self {
            ReadData::None => false,
            ReadData::All => true,
            ReadData::Part { n, m } => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&pack.as_bytes()[..4]);
                u32::from_le_bytes(b) % m == n - 1
            }
            ReadData::Percent(p) => {
                let mut b = [0u8; 8];
                rng.fill(&mut b);
                (u64::from_le_bytes(b) as f64 / u64::MAX as f64) * 100.0 < p
            }
        }
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckProblem {
    /// The object concerned, e.g. `data/ab/ab12…` or `snapshots/…`.
    pub object: String,
    /// What is wrong.
    pub message: String,
    /// Snapshots that cannot be fully restored because of it.
    pub snapshots: Vec<Id>,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: usize,
    /// Distinct trees loaded.
    pub trees: usize,
    /// Packs in the index.
    pub packs: usize,
    /// Packs downloaded and verified.
    pub packs_read: usize,
    /// Blobs opened and re-hashed.
    pub blobs_verified: u64,
    /// Packs whose header could not be read because they are in an
    /// archival storage class and not restored: not damage; `read_data`
    /// warms up the packs it reads (when the data class is archival, or
    /// asked to) and checks them whole.
    pub packs_archived: usize,
    /// What warming up the packs to read did, if they were warmed up.
    pub warm_up: Option<WarmReport>,
    /// Problems that make data unrestorable.
    pub errors: Vec<CheckProblem>,
    /// Harmless oddities (e.g. packs no index lists, left by an interrupted backup).
    pub warnings: Vec<CheckProblem>,
}

impl CheckReport {
    /// True when no error was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Problems keyed by the blob they make unreadable, so the snapshot walk
/// can name the snapshots they affect.
#[derive(Default)]
struct Damage {
    /// Problems not tied to a blob (and blob problems, once attributed).
    problems: BTreeMap<(String, String), BTreeSet<Id>>,
    /// Blob → (object, message).
    blobs: HashMap<Id, (String, String)>,
}

impl Damage {
    fn object(&mut self, object: String, message: String) {
        self.problems.entry((object, message)).or_default();
    }
    fn blob(&mut self, blob: Id, object: String, message: String) {
        self.problems
            .entry((object.clone(), message.clone()))
            .or_default();
        self.blobs.entry(blob).or_insert((object, message));
    }
    fn hit(&mut self, blob: &Id, snapshot: Id) {
        if let Some(key) = self.blobs.get(blob) {
            if let Some(s) = self.problems.get_mut(key) {
                s.insert(snapshot);
            }
        }
    }
}

/// Checks the repository. Problems are collected in the report, not
/// returned as errors; `Err` means the check itself could not run.
pub(crate) async fn check(repo: &Repository, opts: CheckOptions) -> Result<CheckReport> {
    let read = if opts.read_data {
        ReadData::All
    } else {
        ReadData::None
    };
    check_with(repo, read).await
}

/// [`check`](crate::Maintenance::check), reading the packs `read` selects, from the
/// repository itself (the local cache is not used).
pub(crate) async fn check_with(repo: &Repository, read: ReadData) -> Result<CheckReport> {
    check_using(repo, read, MetadataSource::Repository).await
}

/// [`check_with`](crate::Maintenance::check_with), with the index, snapshots and
/// trees read from `metadata`: from the local cache where it holds
/// them, damage to the repository's copies of those can go unnoticed.
pub(crate) async fn check_using(
    repo: &Repository,
    read: ReadData,
    metadata: MetadataSource,
) -> Result<CheckReport> {
    check_warming(repo, read, metadata, &WarmOptions::default()).await
}

/// [`check_using`](crate::Maintenance::check_using), warming up the packs it reads
/// (when `warm.when` says so; it always waits) before reading them or
/// their headers.
pub(crate) async fn check_warming(
    repo: &Repository,
    read: ReadData,
    metadata: MetadataSource,
    warm: &WarmOptions,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut damage = Damage::default();
    let view = if metadata == MetadataSource::Cache {
        for d in repo.damaged() {
            damage.object(d.object, d.problem);
        }
        View {
            store: repo.store().clone(),
            index: None,
            _table_dir: None,
        }
    } else {
        let store = Store::from_object_store(
            repo.store().object_store().clone(),
            repo.store().describe().to_owned(),
        );
        check_keys(&store, &mut damage).await?;
        check_config(repo, &store, &mut damage).await?;
        let (index, table_dir) = fresh_index(repo, &store, &mut damage).await?;
        View {
            store,
            index: Some(index),
            _table_dir: table_dir,
        }
    };
    let listed: HashMap<Id, u64> = repo.list_packs().await?;
    let selected = view.select(repo, read, &listed)?;
    if !selected.is_empty() && repo.should_warm(warm.when) {
        let packs: BTreeSet<Id> = selected.iter().copied().collect();
        let opts = WarmOptions {
            wait: true,
            ..warm.clone()
        };
        report.warm_up = Some(repo.warm_packs(&packs, &opts).await?);
    }
    // The packs a share at a time, so the entries held do not grow with
    // the index (ADR 0022); the walk needs none of them.
    let per_share = ENTRIES_PER_SHARE.load(Ordering::Relaxed);
    let shares = view.len(repo).div_ceil(per_share).max(1);
    let mut indexed: HashSet<Id> = HashSet::new();
    for share in 0..shares {
        let by_pack = view.entries_of_packs(repo, |p| share_of(p, shares) == share)?;
        indexed.extend(by_pack.keys().copied());
        let present = present_packs(&by_pack, &listed, &mut damage);
        check_packs(repo, &view, &present, &selected, &mut report, &mut damage).await;
    }
    report.packs = indexed.len();
    leftovers(repo, &indexed, &listed, &mut report).await?;
    drop(indexed);

    check_snapshots(repo, &view, &mut report, &mut damage).await?;
    report.errors = damage
        .problems
        .into_iter()
        .map(|((object, message), snaps)| CheckProblem {
            object,
            message,
            snapshots: snaps.into_iter().collect(),
        })
        .collect();
    Ok(report)
}

/// Index entries a check holds at once while it checks the packs: it
/// takes the packs in shares of about this many entries (a few MiB), each
/// share a pass over the index. Tests lower it ([`check_entries_per_share`]).
static ENTRIES_PER_SHARE: AtomicUsize = AtomicUsize::new(1 << 18);

/// Sets how many index entries a check takes the packs in shares of: for
/// tests, which have few.
#[doc(hidden)]
pub fn check_entries_per_share(n: usize) {
    ENTRIES_PER_SHARE.store(n.max(1), Ordering::Relaxed);
}

/// Which of `shares` shares `pack` falls in: its id's first 8 bytes
/// scaled to the number of shares (ids are keyed hashes, so the shares
/// are even).
fn share_of(pack: &Id, shares: usize) -> usize {
    let mut b = [0u8; 8];
    b.copy_from_slice(&pack.as_bytes()[..8]);
    ((u128::from(u64::from_be_bytes(b)) * shares as u128) >> 64) as usize
}

/// Indexed packs of one share against the listing (`listed`: every pack
/// with its size). Returns the packs that exist, with their entries.
fn present_packs<'a>(
    by_pack: &'a HashMap<Id, Vec<PackEntry>>,
    listed: &HashMap<Id, u64>,
    damage: &mut Damage,
) -> Vec<(Id, &'a Vec<PackEntry>)> {
    let mut present = Vec::new();
    for (pack, entries) in by_pack {
        let obj = paths::pack(pack);
        match listed.get(pack) {
            None => {
                for e in entries {
                    damage.blob(e.id, obj.clone(), "indexed pack is missing".into());
                }
            }
            Some(&size) => {
                for e in entries {
                    if e.end() + pack_v1::TRAILER_LEN as u64 > size {
                        damage.blob(
                            e.id,
                            obj.clone(),
                            format!(
                                "pack is {size} bytes but the index places a blob ending at {}",
                                e.end()
                            ),
                        );
                    }
                }
                present.push((*pack, entries));
            }
        }
    }
    present
}

/// Warnings for packs no index lists (`indexed`: every pack that holds an
/// indexed blob) and for leftovers of interrupted runs.
async fn leftovers(
    repo: &Repository,
    indexed: &HashSet<Id>,
    listed: &HashMap<Id, u64>,
    report: &mut CheckReport,
) -> Result<()> {
    for pack in listed.keys().filter(|p| !indexed.contains(*p)) {
        report.warnings.push(CheckProblem {
            object: paths::pack(pack),
            message: "pack is not in any index (left by an interrupted backup? \
                      `cairn repair index` adopts it, and prune after the grace period)"
                .into(),
            snapshots: Vec::new(),
        });
    }
    let staging = repo
        .staging_files()?
        .into_iter()
        .map(|(path, _, age)| (path, age));
    for (object, _) in repo.stray_objects(0).await?.into_iter().chain(staging) {
        let message = "leftover of an interrupted run; prune deletes it after the grace period";
        let (message, snapshots) = (message.into(), Vec::new());
        report.warnings.push(CheckProblem {
            object,
            message,
            snapshots,
        });
    }
    Ok(())
}

/// The headers of the `present` packs of one share, and the data of
/// those among them `selected` for reading.
async fn check_packs(
    repo: &Repository,
    view: &View,
    present: &[(Id, &Vec<PackEntry>)],
    selected: &HashSet<Id>,
    report: &mut CheckReport,
    damage: &mut Damage,
) {
    check_headers(repo, present, report, damage).await;
    let reading: Vec<(Id, &Vec<PackEntry>)> = present
        .iter()
        .filter(|(p, _)| selected.contains(p))
        .copied()
        .collect();
    report.packs_read += reading.len();
    // By index: a closure over borrowed items would be higher-ranked over
    // their lifetime, and the future would no longer prove `Send`.
    let mut results = futures::stream::iter(0..reading.len())
        .map(|i| verify_pack(repo, &view.store, reading[i].0, reading[i].1))
        .buffer_unordered(2);
    while let Some((verified, problems)) = results.next().await {
        report.blobs_verified += verified;
        for (blob, object, message) in problems {
            match blob {
                Some(b) => damage.blob(b, object, message),
                None => damage.object(object, message),
            }
        }
    }
}

/// The headers of the packs that exist against the index (one suffix
/// read each; packs are never cached). A pack in an archival class,
/// not restored, is counted, not damaged.
async fn check_headers(
    repo: &Repository,
    present: &[(Id, &Vec<PackEntry>)],
    report: &mut CheckReport,
    damage: &mut Damage,
) {
    // By index, as in `check_warming`.
    let mut headers = futures::stream::iter(0..present.len())
        .map(|i| {
            let (pack, entries) = present[i];
            async move { (pack, entries, repo.read_pack_header(&pack).await) }
        })
        .buffer_unordered(crate::repository::LOAD_CONCURRENCY);
    while let Some((pack, entries, header)) = headers.next().await {
        let obj = paths::pack(&pack);
        match header {
            Err(crate::Error::Store(cairn_store::StoreError::Archived { .. })) => {
                report.packs_archived += 1;
            }
            Err(e) => {
                for x in entries {
                    damage.blob(x.id, obj.clone(), format!("header: {e}"));
                }
            }
            Ok((header, _)) => {
                let in_header: HashSet<(Id, Kind, u32, u32)> = header
                    .iter()
                    .map(|e| (e.id, e.kind, e.offset, e.length))
                    .collect();
                for e in entries.iter() {
                    if !in_header.contains(&(e.id, e.kind, e.offset, e.length)) {
                        damage.blob(
                            e.id,
                            obj.clone(),
                            "index entry disagrees with the pack header".into(),
                        );
                    }
                }
            }
        }
    }
    drop(headers);
}

/// Where a check reads from: the repository's own objects and an index
/// merged from its index files, or (with the cache) the handle's store and
/// index.
struct View {
    store: Store,
    index: Option<Index>,
    /// Where `index`'s table lies, removed when the check ends.
    _table_dir: Option<tempfile::TempDir>,
}

impl View {
    fn locate(&self, repo: &Repository, id: &Id) -> Option<BlobLocation> {
        match &self.index {
            Some(i) => i.get(id),
            None => repo.index().get(id),
        }
    }

    fn entries_of_packs(
        &self,
        repo: &Repository,
        keep: impl Fn(&Id) -> bool,
    ) -> Result<HashMap<Id, Vec<PackEntry>>> {
        match &self.index {
            Some(i) => i.entries_of_packs(keep),
            None => repo.index().entries_of_packs(keep),
        }
    }

    fn len(&self, repo: &Repository) -> usize {
        match &self.index {
            Some(i) => i.len(),
            None => repo.index().len(),
        }
    }

    /// The indexed packs that exist (in `listed`) and `read` selects.
    fn select(
        &self,
        repo: &Repository,
        read: ReadData,
        listed: &HashMap<Id, u64>,
    ) -> Result<HashSet<Id>> {
        if read == ReadData::None {
            return Ok(HashSet::new());
        }
        let packs = match &self.index {
            Some(i) => i.packs()?,
            None => repo.index().packs()?,
        };
        Ok(packs
            .into_iter()
            .filter(|p| listed.contains_key(p) && read.selects(p, repo.rng()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_fall_in_one_share_each_and_the_shares_are_even() {
        let ids: Vec<Id> = (0..4000u32)
            .map(|i| Id::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .collect();
        for shares in [1, 3, 8, 64] {
            let mut counts = vec![0usize; shares];
            for id in &ids {
                counts[share_of(id, shares)] += 1;
            }
            let even = ids.len() / shares;
            for (share, &n) in counts.iter().enumerate() {
                assert!(n > even / 2 && n < even * 2, "share {share}/{shares}: {n}");
            }
        }
        assert_eq!(share_of(&Id::from_bytes([0xff; 32]), 7), 6);
        assert_eq!(share_of(&Id::ZERO, 7), 0);
    }

    #[test]
    fn subsets_parse_and_parts_cover_every_pack_once() {
        assert_eq!(
            ReadData::parse_subset("2/5"),
            Some(ReadData::Part { n: 2, m: 5 })
        );
        assert_eq!(ReadData::parse_subset("10%"), Some(ReadData::Percent(10.0)));
        for bad in ["0/3", "4/3", "x/3", "0%", "101%", "5", ""] {
            assert_eq!(ReadData::parse_subset(bad), None, "{bad}");
        }
        let rng = cairn_core::SeededRandom::new(1);
        for i in 0..200u8 {
            let pack = Id::from_bytes([i.wrapping_mul(37); 32]);
            let hits = (1..=4)
                .filter(|&n| ReadData::Part { n, m: 4 }.selects(&pack, &rng))
                .count();
            assert_eq!(hits, 1);
        }
        let all = (0..1000u32)
            .filter(|_| ReadData::Percent(100.0).selects(&Id::ZERO, &rng))
            .count();
        assert_eq!(all, 1000);
    }
}
