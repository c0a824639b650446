//! Prune's decisions, as functions of what it read: which tombstone files
//! are ripe, how the index files describe each pack, and which packs to
//! delete or repack. No I/O here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

use cairn_core::Id;
use cairn_core::format::{PackEntry, Session, pack_v1};
use cairn_store::{Availability, is_archival_class};

use crate::spool::{HeldFile, Packs};
use crate::warm::PackState;
use crate::{PruneOptions, PruneReport, Result};

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
    /// The tombstone files that are ripe.
    pub(crate) fn ripe_files<'f>(
        &self,
        tomb_files: &[&'f HeldFile],
        report: &mut PruneReport,
    ) -> Vec<&'f HeldFile> {
        let mut blocking: HashSet<Id> = HashSet::new();
        let mut ripe_files = Vec::new();
        for f in tomb_files.iter().copied() {
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
            ripe_files.push(f);
        }
        report.blocking_sessions = blocking.into_iter().collect();
        report.blocking_sessions.sort();
        ripe_files
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
    packs: &Packs<'_>,
    sizes: &HashMap<Id, u64>,
    deletable: &dyn Fn(&PackEntry, i64) -> bool,
    opts: &PruneOptions,
) -> Result<Vec<Id>> {
    let unbounded = PruneOptions {
        max_repack_size: None,
        ..*opts
    };
    let mut scratch = PruneReport::default();
    let plan = plan_packs(
        packs,
        sizes,
        deletable,
        &unbounded,
        &HashSet::new(),
        &HashMap::new(),
        &mut scratch,
    )?;
    Ok(plan.repack.into_iter().map(|(pack, _)| pack).collect())
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
    packs: &Packs<'_>,
    sizes: &HashMap<Id, u64>,
    deletable: &dyn Fn(&PackEntry, i64) -> bool,
    opts: &PruneOptions,
    cold: &HashSet<Id>,
    held: &HashMap<Id, SystemTime>,
    report: &mut PruneReport,
) -> Result<PackPlan> {
    let mut plan = PackPlan {
        delete_packs: Vec::new(),
        repack: Vec::new(),
        left_dead: HashSet::new(),
    };
    // Of each candidate only how wasteful it is and what it keeps: its
    // entries are read again if it is repacked.
    let mut candidates: Vec<(f64, Id, u64)> = Vec::new();
    for (pack, v) in &packs.views {
        let Some(&size) = sizes.get(pack) else {
            continue; // missing: check reports it; nothing to delete
        };
        let entries = packs.entries(v)?;
        let (dead, keep): (Vec<&PackEntry>, Vec<&PackEntry>) =
            entries.iter().partition(|e| deletable(e, v.listed));
        if dead.is_empty() {
            continue;
        }
        if let Some(until) = held.get(pack) {
            plan.left_dead.extend(dead.iter().map(|e| e.id));
            report.retained_packs.add(*until, size);
            continue;
        }
        let dead_bytes = dead_bytes(dead.iter().copied(), keep.iter().copied());
        if keep.is_empty() {
            plan.delete_packs.push(*pack);
            report.blobs_deleted += dead.len();
            report.bytes_deleted += size;
            continue;
        }
        let share = dead_bytes as f64 / size.max(1) as f64;
        if share > opts.max_unused {
            let keep_bytes = pack_v1::occupied_bytes(keep.iter().copied());
            candidates.push((share, *pack, keep_bytes));
        } else {
            report.bytes_unused_kept += dead_bytes;
            plan.left_dead.extend(dead.iter().map(|e| e.id));
        }
    }
    // Most wasteful first, within the budget.
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut budget = opts.max_repack_size.unwrap_or(u64::MAX);
    for (_, pack, keep_bytes) in candidates {
        let v = &packs.views[&pack];
        let (dead, keep): (Vec<PackEntry>, Vec<PackEntry>) = packs
            .entries(v)?
            .into_iter()
            .partition(|e| deletable(e, v.listed));
        let cold_pack = cold.contains(&pack);
        if cold_pack || keep_bytes > budget {
            report.bytes_unused_kept += dead_bytes(&dead, &keep);
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
    Ok(plan)
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
pub(crate) fn live_files(all: &[HeldFile]) -> (HashSet<Id>, Vec<&HeldFile>) {
    let superseded: HashSet<Id> = all
        .iter()
        .flat_map(|f| f.supersedes.iter().copied())
        .collect();
    let files = all.iter().filter(|f| !superseded.contains(&f.id)).collect();
    (superseded, files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::spooled;
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
        let (spool, views) = spooled(vec![
            (id(10), vec![entry(1, 0, 100), entry(2, 100, 100)]),
            (id(11), vec![entry(3, 0, 100)]),
        ]);
        let packs = Packs {
            views,
            spool: &spool,
        };
        let sizes = HashMap::from([(id(10), 250), (id(11), 150)]);
        let dead = |e: &PackEntry, _: i64| e.id != id(1);
        let opts = PruneOptions::default();
        let candidates = repack_candidates(&packs, &sizes, &dead, &opts).expect("plan");
        assert_eq!(candidates, [id(10)]);

        let mut report = PruneReport::default();
        let plan = plan_packs(
            &packs,
            &sizes,
            &dead,
            &opts,
            &HashSet::new(),
            &HashMap::new(),
            &mut report,
        )
        .expect("plan");
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
        )
        .expect("plan");
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
