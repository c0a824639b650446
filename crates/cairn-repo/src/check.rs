//! `check`: is every snapshot fully restorable?
//!
//! Structure: every indexed pack exists, is long enough for its entries, and
//! its header (one suffix read) lists what the index places in it; every
//! snapshot's trees load and every blob they reference is indexed. Reading
//! data: every pack of the selected subset is downloaded and every blob the
//! index places in it opened and re-hashed. Each problem names the object
//! and the snapshots it affects.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use cairn_core::format::{NodeKind, PackEntry, Tree, pack_v1};
use cairn_core::{Id, Kind};
use futures::StreamExt;

use crate::{Repository, Result, paths};

/// What to check.
#[derive(Debug, Clone, Copy, Default)]
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

impl Repository {
    /// Checks the repository. Problems are collected in the report, not
    /// returned as errors; `Err` means the check itself could not run.
    pub async fn check(&self, opts: CheckOptions) -> Result<CheckReport> {
        let read = if opts.read_data {
            ReadData::All
        } else {
            ReadData::None
        };
        self.check_with(read).await
    }

    /// [`check`](Self::check), reading the packs `read` selects.
    pub async fn check_with(&self, read: ReadData) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let mut damage = Damage::default();
        let by_pack = self.index().entries_by_pack()?;
        report.packs = by_pack.len();

        let listed: HashMap<Id, u64> = self.list_packs().await?;
        let mut present = Vec::new();
        for (pack, entries) in &by_pack {
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
        for pack in listed.keys().filter(|p| !by_pack.contains_key(*p)) {
            report.warnings.push(CheckProblem {
                object: paths::pack(pack),
                message: "pack is not in any index (left by an interrupted backup? \
                          `cairn repair index` adopts it)"
                    .into(),
                snapshots: Vec::new(),
            });
        }
        for (object, _) in self.stray_objects(0).await? {
            let message = "leftover of an interrupted run; prune deletes it after the grace period";
            let (message, snapshots) = (message.into(), Vec::new());
            report.warnings.push(CheckProblem {
                object,
                message,
                snapshots,
            });
        }

        // Pack headers against the index, one suffix read per pack.
        let mut headers =
            futures::stream::iter(present.iter())
                .map(|(pack, entries)| async move {
                    (*pack, *entries, self.read_pack_header(pack).await)
                })
                .buffer_unordered(crate::repository::LOAD_CONCURRENCY);
        while let Some((pack, entries, header)) = headers.next().await {
            let obj = paths::pack(&pack);
            match header {
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

        let selected: Vec<(Id, &Vec<PackEntry>)> = present
            .iter()
            .filter(|(p, _)| read.selects(p, self.rng()))
            .map(|(p, e)| (*p, *e))
            .collect();
        report.packs_read = selected.len();
        let mut results = futures::stream::iter(selected)
            .map(|(pack, entries)| self.verify_pack(pack, entries))
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
        drop(results);

        self.check_snapshots(&mut report, &mut damage).await?;
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

    async fn check_snapshots(&self, report: &mut CheckReport, damage: &mut Damage) -> Result<()> {
        let ids = self.snapshot_ids().await?;
        report.snapshots = ids.len();
        let mut trees: HashMap<Id, Option<Tree>> = HashMap::new();
        for sid in ids {
            let obj = paths::snapshot(&sid);
            let snap = match self.load_snapshot(&sid).await {
                Ok(s) => s,
                Err(e) => {
                    damage
                        .problems
                        .entry((obj, e.to_string()))
                        .or_default()
                        .insert(sid);
                    continue;
                }
            };
            let mut seen: HashSet<Id> = HashSet::new();
            let mut stack = vec![snap.tree];
            while let Some(tid) = stack.pop() {
                if !seen.insert(tid) {
                    continue;
                }
                damage.hit(&tid, sid);
                if let std::collections::hash_map::Entry::Vacant(slot) = trees.entry(tid) {
                    let t = match self.load_tree(&tid).await {
                        Ok(t) => {
                            report.trees += 1;
                            Some(t)
                        }
                        Err(e) => {
                            let key = (format!("tree {tid}"), e.to_string());
                            damage.problems.entry(key.clone()).or_default();
                            damage.blobs.entry(tid).or_insert(key);
                            damage.hit(&tid, sid);
                            None
                        }
                    };
                    slot.insert(t);
                }
                let Some(Some(tree)) = trees.get(&tid) else {
                    continue;
                };
                for node in &tree.nodes {
                    match node.kind {
                        NodeKind::Dir => stack.extend(node.subtree),
                        NodeKind::File | NodeKind::BlockDevice => {
                            for c in &node.content {
                                if self.index().get(c).is_none() {
                                    damage.blobs.entry(*c).or_insert((
                                        format!("data blob {c}"),
                                        "referenced but not indexed".into(),
                                    ));
                                    damage
                                        .problems
                                        .entry((
                                            format!("data blob {c}"),
                                            "referenced but not indexed".into(),
                                        ))
                                        .or_default();
                                }
                                damage.hit(c, sid);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Downloads one pack and verifies every blob the index places in it.
    /// Returns the number of blobs verified and (blob, object, problem).
    async fn verify_pack(
        &self,
        pack: Id,
        indexed: &[PackEntry],
    ) -> (u64, Vec<(Option<Id>, String, String)>) {
        let obj = paths::pack(&pack);
        let bytes = match self.store().get(&obj).await {
            Ok(b) => b,
            Err(e) => {
                let m = format!("cannot read: {e}");
                return (
                    0,
                    indexed
                        .iter()
                        .map(|x| (Some(x.id), obj.clone(), m.clone()))
                        .collect(),
                );
            }
        };
        let repo = self.clone();
        let indexed = indexed.to_vec();
        let o = obj.clone();
        let r = tokio::task::spawn_blocking(move || {
            let mut problems = Vec::new();
            let mut verified = 0;
            for e in &indexed {
                let range = e.offset as usize..e.end() as usize;
                let Some(sealed) = bytes.get(range) else {
                    problems.push((
                        Some(e.id),
                        o.clone(),
                        "blob lies beyond the end of the pack".into(),
                    ));
                    continue;
                };
                let loc = crate::BlobLocation {
                    pack,
                    kind: e.kind,
                    offset: e.offset,
                    length: e.length,
                    raw_length: e.raw_length,
                };
                match repo.open_blob(&loc, &e.id, sealed) {
                    Ok(plain) => {
                        verified += 1;
                        if e.kind == Kind::Tree {
                            if let Err(err) = Tree::decode(&plain) {
                                problems.push((
                                    Some(e.id),
                                    o.clone(),
                                    format!("tree blob {}: {err}", e.id),
                                ));
                            }
                        }
                    }
                    Err(err) => problems.push((Some(e.id), o.clone(), err.to_string())),
                }
            }
            (verified, problems)
        })
        .await;
        match r {
            Ok(x) => x,
            Err(e) => (
                0,
                vec![(None, obj, format!("verification task failed: {e}"))],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
