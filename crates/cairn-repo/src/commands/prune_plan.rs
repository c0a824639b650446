//! Prune's decisions, as functions of what it read: which tombstone files
//! are ripe, how the index files describe each pack, and which packs to
//! delete or repack. No I/O here.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

use cairn_core::Id;
use cairn_core::format::{IndexFile, PackEntry, Session, pack_v1};
use cairn_store::{Availability, is_archival_class};

use crate::warm::PackState;
use crate::{PruneOptions, PruneReport};

/// One pack as the index files describe it.
pub(crate) struct PackView<'a> {
    /// Its distinct entries (id and offset), in the order first listed:
    /// borrowed from the one index file that lists the pack, as nearly
    /// every pack is listed, and copied only to merge several listings.
    pub(crate) entries: Cow<'a, [PackEntry]>,
    /// Newest `created` of the files listing it.
    pub(crate) listed: i64,
}

/// Every pack the (not superseded) index files list.
pub(crate) fn pack_views<'a>(files: &[&'a (Id, IndexFile)]) -> HashMap<Id, PackView<'a>> {
    let mut packs: HashMap<Id, PackView<'a>> = HashMap::new();
    for &file in files {
        let (_, f): &'a (Id, IndexFile) = file;
        for p in &f.packs {
            let Some(v) = packs.get_mut(&p.pack) else {
                let entries =
                    distinct(&p.blobs, &[]).map_or(Cow::Borrowed(&p.blobs[..]), Cow::Owned);
                let listed = f.created;
                packs.insert(p.pack, PackView { entries, listed });
                continue;
            };
            v.listed = v.listed.max(f.created);
            if let Some(merged) = distinct(&p.blobs, &v.entries) {
                v.entries = Cow::Owned(merged);
            }
        }
    }
    packs
}

/// `have` followed by the entries of `listing` it does not hold (by id and
/// offset), first occurrence kept; `None` when that is `listing` itself
/// (`have` empty and no entry repeated) or `have` itself (nothing new).
fn distinct(listing: &[PackEntry], have: &[PackEntry]) -> Option<Vec<PackEntry>> {
    let mut seen: HashSet<(Id, u32)> = have.iter().map(|e| (e.id, e.offset)).collect();
    let new: Vec<PackEntry> = listing
        .iter()
        .filter(|e| seen.insert((e.id, e.offset)))
        .copied()
        .collect();
    if new.is_empty() || (have.is_empty() && new.len() == listing.len()) {
        return None;
    }
    Some(have.iter().copied().chain(new).collect())
}

/// What keeps a tombstone file from ripening.
pub(crate) struct Waiting<'a> {
    /// Running backups.
    pub(crate) live: &'a [Session],
    /// Some session object cannot be read: it may be a writer that
    /// started at any time, so nothing ripens while it is there.
    pub(crate) unreadable: bool,
    pub(crate) now: i64,
    pub(crate) grace: i64,
}

impl Waiting<'_> {
    /// The newest ripe tombstone time per blob, and the ripe files.
    pub(crate) fn ripe_tombstones<'f>(
        &self,
        tomb_files: &[&'f (Id, IndexFile)],
        report: &mut PruneReport,
    ) -> (HashMap<Id, i64>, Vec<(Id, &'f IndexFile)>) {
        let mut ripe: HashMap<Id, i64> = HashMap::new();
        let mut blocking: HashSet<Id> = HashSet::new();
        let mut ripe_files = Vec::new();
        for (id, f) in tomb_files.iter().copied() {
            let effective = f.created.saturating_add(self.grace);
            let blockers: Vec<Id> = self
                .live
                .iter()
                .filter(|s| s.started <= effective)
                .map(|s| s.id)
                .collect();
            if self.now < effective || !blockers.is_empty() || self.unreadable {
                report.tombstone_files_waiting += 1;
                blocking.extend(blockers);
                continue;
            }
            ripe_files.push((*id, f));
            for t in &f.tombstones {
                let e = ripe.entry(*t).or_insert(f.created);
                *e = (*e).max(f.created);
            }
        }
        report.blocking_sessions = blocking.into_iter().collect();
        report.blocking_sessions.sort();
        (ripe, ripe_files)
    }
}

/// Packs to delete and to repack (with the entries to keep), and blobs
/// left deletable in place.
pub(crate) struct PackPlan {
    pub(crate) delete_packs: Vec<Id>,
    pub(crate) repack: Vec<(Id, Vec<PackEntry>)>,
    pub(crate) left_dead: HashSet<Id>,
}

impl PackPlan {
    /// The packs the plan deletes or rewrites: what it would delete.
    pub(crate) fn touched(&self) -> impl Iterator<Item = &Id> {
        self.delete_packs
            .iter()
            .chain(self.repack.iter().map(|(p, _)| p))
    }
}

/// The packs [`plan_packs`] would repack with no budget and no pack left
/// cold: those whose archival status matters.
pub(crate) fn repack_candidates(
    packs: &HashMap<Id, PackView<'_>>,
    sizes: &HashMap<Id, u64>,
    deletable: &dyn Fn(&PackEntry, i64) -> bool,
    opts: &PruneOptions,
) -> Vec<Id> {
    let unbounded = PruneOptions {
        max_repack_size: None,
        ..*opts
    };
    let mut scratch = PruneReport::default();
    plan_packs(
        packs,
        sizes,
        deletable,
        &unbounded,
        &HashSet::new(),
        &HashMap::new(),
        &mut scratch,
    )
    .repack
    .into_iter()
    .map(|(pack, _)| pack)
    .collect()
}

/// What prune does about repack candidates in an archival class.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ColdDecision {
    /// Left as they are by this run.
    pub(crate) keep: HashSet<Id>,
    /// Archived, to be restored so a later run can repack them.
    pub(crate) request: Vec<Id>,
}

/// Archival candidates are kept as they are; with `repack_cold`, only
/// those not readable yet are, and of those the archived ones (no restore
/// under way) get a restore asked for.
pub(crate) fn cold_decision(states: &BTreeMap<Id, PackState>, repack_cold: bool) -> ColdDecision {
    let mut d = ColdDecision::default();
    for (id, state) in states {
        let PackState::Present {
            class,
            availability,
            ..
        } = state
        else {
            continue; // missing: plan_packs leaves it alone
        };
        if !is_archival_class(class) {
            continue;
        }
        match (repack_cold, availability) {
            (true, Availability::Readable) => {}
            (true, Availability::Archived) => {
                d.keep.insert(*id);
                d.request.push(*id);
            }
            _ => {
                d.keep.insert(*id);
            }
        }
    }
    d
}

/// Decides per pack: a pack of deletable copies only is deleted; one whose
/// deletable share exceeds `max_unused` is repacked, most wasteful first,
/// within `max_repack_size`, unless it is in `cold` (an archival class:
/// left as it is, counted). A pack in `held` (retained by Object Lock
/// until the date given) is neither deleted nor repacked: it stays,
/// listed, its deletable copies with it, until a run after that date.
pub(crate) fn plan_packs(
    packs: &HashMap<Id, PackView<'_>>,
    sizes: &HashMap<Id, u64>,
    deletable: &dyn Fn(&PackEntry, i64) -> bool,
    opts: &PruneOptions,
    cold: &HashSet<Id>,
    held: &HashMap<Id, SystemTime>,
    report: &mut PruneReport,
) -> PackPlan {
    let mut plan = PackPlan {
        delete_packs: Vec::new(),
        repack: Vec::new(),
        left_dead: HashSet::new(),
    };
    let mut candidates: Vec<(f64, Id, Vec<PackEntry>, u64)> = Vec::new();
    for (pack, v) in packs {
        let Some(&size) = sizes.get(pack) else {
            continue; // missing: check reports it; nothing to delete
        };
        let (dead, keep): (Vec<PackEntry>, Vec<PackEntry>) =
            v.entries.iter().partition(|e| deletable(e, v.listed));
        if dead.is_empty() {
            continue;
        }
        if let Some(until) = held.get(pack) {
            plan.left_dead.extend(dead.iter().map(|e| e.id));
            report.retained_packs.add(*until, size);
            continue;
        }
        let dead_bytes = dead_bytes(&dead, &keep);
        if keep.is_empty() {
            plan.delete_packs.push(*pack);
            report.blobs_deleted += dead.len();
            report.bytes_deleted += size;
            continue;
        }
        let share = dead_bytes as f64 / size.max(1) as f64;
        if share > opts.max_unused {
            let keep_bytes = pack_v1::occupied_bytes(&keep);
            candidates.push((share, *pack, keep, keep_bytes));
        } else {
            report.bytes_unused_kept += dead_bytes;
            plan.left_dead.extend(dead.iter().map(|e| e.id));
        }
    }
    // Most wasteful first, within the budget.
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut budget = opts.max_repack_size.unwrap_or(u64::MAX);
    for (_, pack, keep, keep_bytes) in candidates {
        let v = &packs[&pack];
        let dead: Vec<&PackEntry> = v
            .entries
            .iter()
            .filter(|e| deletable(e, v.listed))
            .collect();
        let cold_pack = cold.contains(&pack);
        if cold_pack || keep_bytes > budget {
            report.bytes_unused_kept += dead_bytes(dead.iter().copied(), &keep);
            plan.left_dead.extend(dead.iter().map(|e| e.id));
            if cold_pack {
                report.packs_cold_kept += 1;
                report.bytes_cold_kept += sizes.get(&pack).copied().unwrap_or(0);
                report.bytes_cold_live += keep_bytes;
            }
            continue;
        }
        budget -= keep_bytes;
        report.blobs_deleted += dead.len();
        report.bytes_deleted += sizes.get(&pack).copied().unwrap_or(0);
        plan.repack.push((pack, keep));
    }
    report.packs_deleted = plan.delete_packs.len();
    report.packs_repacked = plan.repack.len();
    plan
}

/// Bytes of a pack that deleting `dead` frees: a bundle's bytes only if
/// none of its blobs is among `keep`, which a repack copies it whole for.
fn dead_bytes<'a>(
    dead: impl IntoIterator<Item = &'a PackEntry>,
    keep: impl IntoIterator<Item = &'a PackEntry>,
) -> u64 {
    let kept: HashSet<(u32, u32)> = keep.into_iter().map(PackEntry::range).collect();
    pack_v1::occupied_bytes(dead.into_iter().filter(|e| !kept.contains(&e.range())))
}

/// The index files that count, and the ids of those another supersedes.
pub(crate) fn live_files(all: &[(Id, IndexFile)]) -> (HashSet<Id>, Vec<&(Id, IndexFile)>) {
    let superseded: HashSet<Id> = all
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let files = all
        .iter()
        .filter(|(id, _)| !superseded.contains(id))
        .collect();
    (superseded, files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::Kind;

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 32])
    }

    fn entry(n: u8, offset: u32, length: u32) -> PackEntry {
        PackEntry {
            kind: Kind::Data,
            id: id(n),
            offset,
            length,
            raw_length: length,
        }
    }

    fn listing(created: i64, pack: u8, blobs: Vec<PackEntry>) -> (Id, IndexFile) {
        let file = IndexFile {
            session: id(0),
            created,
            packs: vec![cairn_core::format::IndexPack {
                pack: id(pack),
                blobs,
            }],
            tombstones: Vec::new(),
            supersedes: Vec::new(),
        };
        (id(created as u8), file)
    }

    #[test]
    fn a_pack_listed_once_is_borrowed_and_several_listings_merge_their_distinct_entries() {
        let a = listing(1, 10, vec![entry(1, 0, 10), entry(2, 10, 10)]);
        let b = listing(3, 10, vec![entry(2, 10, 10), entry(3, 20, 10)]);
        let c = listing(2, 11, vec![entry(4, 0, 10), entry(5, 10, 10)]);
        let twice = listing(
            4,
            12,
            vec![entry(6, 0, 10), entry(6, 0, 10), entry(6, 10, 10)],
        );
        let views = pack_views(&[&a, &b, &c, &twice]);
        let merged = &views[&id(10)];
        let expect = [entry(1, 0, 10), entry(2, 10, 10), entry(3, 20, 10)];
        assert_eq!(&merged.entries[..], &expect);
        assert_eq!(merged.listed, 3);
        let once = &views[&id(11)];
        assert!(
            matches!(once.entries, Cow::Borrowed(_)),
            "listed once: not copied"
        );
        assert_eq!(&once.entries[..], &c.1.packs[0].blobs[..]);
        // One listing naming an entry twice keeps it once.
        let expect = [entry(6, 0, 10), entry(6, 10, 10)];
        assert_eq!(&views[&id(12)].entries[..], &expect);
        // Listed again with nothing new: unchanged.
        let views = pack_views(&[&a, &a]);
        assert_eq!(&views[&id(10)].entries[..], &a.1.packs[0].blobs[..]);
    }

    #[test]
    fn a_bundle_frees_its_bytes_once_and_only_when_all_its_blobs_are_dead() {
        let bundled = |n| PackEntry {
            kind: Kind::Bundle,
            ..entry(n, 100, 900)
        };
        let plain = entry(9, 0, 100);
        // Both blobs of the bundle dead: its 900 bytes, once.
        assert_eq!(dead_bytes(&[bundled(1), bundled(2), plain], &[]), 1000);
        // One still live: a repack copies the bundle whole, nothing freed.
        assert_eq!(dead_bytes(&[bundled(1), plain], &[bundled(2)]), 100);
    }

    #[test]
    fn archival_candidates_are_kept_unless_asked_and_readable() {
        use Availability::*;
        let state = |class: &str, availability| PackState::Present {
            size: 10,
            class: class.into(),
            availability,
        };
        // (state, repack_cold, kept, restore asked for)
        let table = [
            (state("STANDARD", Readable), false, false, false),
            (state("GLACIER_IR", Readable), false, false, false),
            (state("GLACIER", Archived), false, true, false),
            (state("GLACIER", Restoring), false, true, false),
            // A restored copy is still an archival pack: repacking it costs
            // a new upload and the early deletion of the old one.
            (state("GLACIER", Readable), false, true, false),
            (state("DEEP_ARCHIVE", Archived), false, true, false),
            (state("GLACIER", Archived), true, true, true),
            (state("DEEP_ARCHIVE", Restoring), true, true, false),
            (state("GLACIER", Readable), true, false, false),
            (state("STANDARD", Readable), true, false, false),
            (PackState::Missing, true, false, false),
        ];
        for (s, repack_cold, kept, asked) in table {
            let d = cold_decision(&BTreeMap::from([(id(1), s.clone())]), repack_cold);
            assert_eq!(
                (d.keep.contains(&id(1)), d.request.contains(&id(1))),
                (kept, asked),
                "{s:?} repack_cold={repack_cold}"
            );
        }
    }

    #[test]
    fn a_cold_candidate_is_left_with_its_dead_blobs_and_counted() {
        // Pack 10: blob 1 live, 2 dead (half unused). Pack 11: only dead.
        let packs = HashMap::from([
            (
                id(10),
                PackView {
                    entries: vec![entry(1, 0, 100), entry(2, 100, 100)].into(),
                    listed: 0,
                },
            ),
            (
                id(11),
                PackView {
                    entries: vec![entry(3, 0, 100)].into(),
                    listed: 0,
                },
            ),
        ]);
        let sizes = HashMap::from([(id(10), 250), (id(11), 150)]);
        let dead = |e: &PackEntry, _: i64| e.id != id(1);
        let opts = PruneOptions::default();
        assert_eq!(repack_candidates(&packs, &sizes, &dead, &opts), [id(10)]);

        let mut report = PruneReport::default();
        let plan = plan_packs(
            &packs,
            &sizes,
            &dead,
            &opts,
            &HashSet::new(),
            &HashMap::new(),
            &mut report,
        );
        assert_eq!(plan.repack.len(), 1);
        assert_eq!(report.packs_cold_kept, 0);

        let mut report = PruneReport::default();
        let cold = HashSet::from([id(10)]);
        let plan = plan_packs(
            &packs,
            &sizes,
            &dead,
            &opts,
            &cold,
            &HashMap::new(),
            &mut report,
        );
        assert!(plan.repack.is_empty(), "left as it is");
        assert_eq!(plan.delete_packs, [id(11)], "deleting needs no read");
        assert!(
            plan.left_dead.contains(&id(2)),
            "its dead blob stays tombstoned"
        );
        assert_eq!(
            (
                report.packs_cold_kept,
                report.bytes_cold_kept,
                report.bytes_cold_live
            ),
            (1, 250, 100)
        );
        assert_eq!(report.bytes_unused_kept, 100);
        assert_eq!((report.packs_repacked, report.packs_deleted), (0, 1));
    }
}
