//! Prune under Object Lock: before deleting anything, prune asks which of
//! the objects it would delete are still retained, and plans around them
//! so that the repository stays as consistent as if it had not planned to
//! delete them at all (docs/MAINTENANCE.md, "Object Lock"):
//!
//! - a retained pack is neither deleted nor repacked: it stays listed by
//!   the index, its deletable copies stay covered by their tombstones, and
//!   the tombstone file that covers them stays until a later run deletes
//!   it; repacking it would copy its live blobs for nothing, the old pack
//!   staying where it is;
//! - a retained index file is superseded as planned, which makes readers
//!   ignore it, but stays in `index/` until a run after its date deletes
//!   it (every compaction supersedes such leftovers again).
//!
//! Only the objects a run would delete are asked about, with one HEAD
//! each; a repository without Object Lock is never asked about.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use cairn_core::Id;
use cairn_core::format::PackEntry;

use super::lock::retained_until;
use crate::commands::prune_plan::{PackPlan, plan_packs};
use crate::spool::{HeldFile, Packs};
use crate::{PruneOptions, PruneReport, Repository, Result, paths};

/// What [`plan_packs`] plans from: the packs the index lists, their sizes,
/// which copies are deletable, and the packs left cold.
pub(crate) type PlanInputs<'a> = (
    &'a Packs<'a>,
    &'a HashMap<Id, u64>,
    &'a (dyn Fn(&PackEntry, i64) -> bool + Sync),
    &'a HashSet<Id>,
);

/// [`plan_packs`], holding back the packs that are retained: asks
/// about every pack a plan deletes or rewrites and plans again without
/// those retained, until a plan touches no pack not asked about (a
/// pack held back frees repack budget for others).
pub(crate) async fn plan_packs_around_locks(
    repo: &Repository,
    lock_aware: bool,
    (packs, sizes, deletable, cold): PlanInputs<'_>,
    opts: &PruneOptions,
    report: &mut PruneReport,
) -> Result<PackPlan> {
    let mut held: HashMap<Id, SystemTime> = HashMap::new();
    let mut asked: HashSet<Id> = HashSet::new();
    loop {
        let mut r = report.clone();
        let plan = plan_packs(packs, sizes, deletable, opts, cold, &held, &mut r)?;
        let fresh: Vec<Id> = plan
            .touched()
            .copied()
            .filter(|p| asked.insert(*p))
            .collect();
        if !lock_aware || fresh.is_empty() {
            *report = r;
            return Ok(plan);
        }
        let found = retained_until(repo, fresh.iter().map(paths::pack).collect()).await?;
        held.extend(
            fresh
                .iter()
                .filter_map(|p| found.get(&paths::pack(p)).map(|u| (*p, *u))),
        );
    }
}

/// Which of the index files in `ids` are retained, and until when
/// (nothing asked without Object Lock).
pub(crate) async fn retained_index_files(
    repo: &Repository,
    lock_aware: bool,
    ids: &[Id],
) -> Result<HashMap<Id, SystemTime>> {
    if !lock_aware {
        return Ok(HashMap::new());
    }
    let found = retained_until(repo, ids.iter().map(paths::index).collect()).await?;
    Ok(ids
        .iter()
        .filter_map(|id| found.get(&paths::index(id)).map(|u| (*id, *u)))
        .collect())
}

/// The index files this run deletes, and which of them are retained.
pub(crate) async fn index_deletions(
    repo: &Repository,
    lock_aware: bool,
    listing_files: &[&HeldFile],
    resolved: &[Id],
    all: &[HeldFile],
    superseded: &HashSet<Id>,
) -> Result<IndexDeletions> {
    let lingering = lingering(all, superseded);
    let supersedes = supersede_list(listing_files, resolved, &lingering);
    let retained = retained_index_files(repo, lock_aware, &supersedes).await?;
    Ok(IndexDeletions {
        supersedes,
        lingering,
        retained,
    })
}

/// The index files a run deletes: all it supersedes if it compacts, the
/// superseded files still present if not; those retained stay.
pub(crate) struct IndexDeletions {
    /// What a compaction supersedes (and then deletes).
    pub(crate) supersedes: Vec<Id>,
    /// Superseded files still present.
    pub(crate) lingering: Vec<Id>,
    /// Those of `supersedes` still retained, until when.
    pub(crate) retained: HashMap<Id, SystemTime>,
}

impl IndexDeletions {
    /// The files of `ids` that are not retained.
    pub(crate) fn unretained(&self, ids: &[Id]) -> Vec<Id> {
        ids.iter()
            .filter(|id| !self.retained.contains_key(id))
            .copied()
            .collect()
    }

    /// Counts in `report` the retained files a run leaves: of those it
    /// supersedes if `compacting`, of the lingering ones if not.
    pub(crate) fn note_retained(&self, compacting: bool, report: &mut PruneReport) {
        let deleting = if compacting {
            &self.supersedes
        } else {
            &self.lingering
        };
        for id in deleting {
            if let Some(until) = self.retained.get(id) {
                report.retained_index_files.add(*until, 0);
            }
        }
    }
}

/// The index files a compaction supersedes: those listing packs, the
/// tombstone files fully acted on, and superseded files still present
/// (left by a run that could not delete them), sorted.
pub(crate) fn supersede_list(
    listing_files: &[&HeldFile],
    resolved: &[Id],
    lingering: &[Id],
) -> Vec<Id> {
    let mut out: Vec<Id> = listing_files.iter().map(|f| f.id).collect();
    out.extend(resolved.iter().copied());
    out.extend(lingering.iter().copied());
    out.sort();
    out.dedup();
    out
}

/// Superseded index files still present, sorted.
pub(crate) fn lingering(all: &[HeldFile], superseded: &HashSet<Id>) -> Vec<Id> {
    let mut out: Vec<Id> = all
        .iter()
        .map(|f| f.id)
        .filter(|id| superseded.contains(id))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::spooled;
    use cairn_core::Kind;
    use std::time::Duration;

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 32])
    }

    fn entry(n: u8, length: u32) -> PackEntry {
        PackEntry {
            kind: Kind::Data,
            id: id(n),
            offset: 0,
            length,
            raw_length: length,
        }
    }

    #[test]
    fn retained_packs_are_neither_deleted_nor_repacked_and_keep_their_dead_copies() {
        // 100: all dead; 101: mostly dead (repack); 102: all dead, held;
        // 103: mostly dead, held; 104: nothing dead.
        let (spool, views) = spooled(vec![
            (id(100), vec![entry(1, 10)]),
            (id(101), vec![entry(2, 90), entry(3, 10)]),
            (id(102), vec![entry(4, 10)]),
            (id(103), vec![entry(5, 90), entry(6, 10)]),
            (id(104), vec![entry(7, 10)]),
        ]);
        let packs = Packs {
            views,
            spool: &spool,
        };
        let sizes: HashMap<Id, u64> = packs.views.keys().map(|p| (*p, 100)).collect();
        let dead = [id(1), id(2), id(4), id(5)];
        let deletable = |e: &PackEntry, _: i64| dead.contains(&e.id);
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let held = HashMap::from([(id(102), t(2000)), (id(103), t(1000))]);
        let mut report = PruneReport::default();
        let plan = plan_packs(
            &packs,
            &sizes,
            &deletable,
            &PruneOptions::default(),
            &HashSet::new(),
            &held,
            &mut report,
        )
        .expect("plan");
        assert_eq!(plan.delete_packs, vec![id(100)]);
        assert_eq!(plan.repack.len(), 1);
        assert_eq!(plan.repack[0].0, id(101));
        assert_eq!(plan.left_dead, HashSet::from([id(4), id(5)]));
        assert_eq!(report.retained_packs.objects, 2);
        assert_eq!(report.retained_packs.bytes, 200);
        assert_eq!(report.retained_packs.earliest_until, Some(1000));
        assert_eq!(report.retained_packs.latest_until, Some(2000));
        assert_eq!((report.packs_deleted, report.packs_repacked), (1, 1));
        assert_eq!(report.blobs_deleted, 2, "1, and 2 by repacking");
        let touched: Vec<Id> = plan.touched().copied().collect();
        assert_eq!(touched, vec![id(100), id(101)]);
    }

    #[test]
    fn compactions_supersede_leftover_superseded_files_again() {
        let f = |n: u8| HeldFile {
            id: id(n),
            session: id(0),
            created: 0,
            packs: Vec::new(),
            tombstones: Default::default(),
            supersedes: Vec::new(),
        };
        let all = [f(53), f(50), f(51), f(52)];
        // 52 names 50 and 49 (gone already); 51 supersedes nothing.
        let superseded = HashSet::from([id(50), id(49)]);
        let left = lingering(&all, &superseded);
        assert_eq!(left, vec![id(50)]);
        let listing = [&all[2], &all[1]];
        assert_eq!(
            supersede_list(&listing, &[id(53)], &left),
            vec![id(50), id(51), id(53)]
        );
    }
}
