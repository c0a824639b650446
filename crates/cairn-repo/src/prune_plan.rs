//! Prune's decisions, as functions of what it read: which tombstone files
//! are ripe, how the index files describe each pack, and which packs to
//! delete or repack. No I/O here.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use cairn_core::Id;
use cairn_core::format::{IndexFile, PackEntry, Session};

use crate::{PruneOptions, PruneReport};

/// One pack as the index files describe it.
pub(crate) struct PackView {
    pub(crate) entries: Vec<PackEntry>,
    /// Newest `created` of the files listing it.
    pub(crate) listed: i64,
}

/// Every pack the (not superseded) index files list.
pub(crate) fn pack_views(files: &[&(Id, IndexFile)]) -> HashMap<Id, PackView> {
    let mut packs: HashMap<Id, PackView> = HashMap::new();
    for (_, f) in files {
        for p in &f.packs {
            let v = packs.entry(p.pack).or_insert(PackView {
                entries: Vec::new(),
                listed: f.created,
            });
            v.listed = v.listed.max(f.created);
            for e in &p.blobs {
                if !v
                    .entries
                    .iter()
                    .any(|x| x.id == e.id && x.offset == e.offset)
                {
                    v.entries.push(*e);
                }
            }
        }
    }
    packs
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

/// Decides per pack: a pack of deletable copies only is deleted; one whose
/// deletable share exceeds `max_unused` is repacked, most wasteful first,
/// within `max_repack_size`. A pack in `held` (retained by Object Lock
/// until the date given) is neither: it stays, listed, its deletable
/// copies with it, until a run after that date.
pub(crate) fn plan_packs(
    packs: &HashMap<Id, PackView>,
    sizes: &HashMap<Id, u64>,
    deletable: &dyn Fn(&PackEntry, i64) -> bool,
    held: &HashMap<Id, SystemTime>,
    opts: &PruneOptions,
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
        let dead_bytes: u64 = dead.iter().map(|e| u64::from(e.length)).sum();
        if keep.is_empty() {
            plan.delete_packs.push(*pack);
            report.blobs_deleted += dead.len();
            report.bytes_deleted += size;
            continue;
        }
        let share = dead_bytes as f64 / size.max(1) as f64;
        if share > opts.max_unused {
            let keep_bytes = keep.iter().map(|e| u64::from(e.length)).sum();
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
        if keep_bytes > budget {
            report.bytes_unused_kept += dead.iter().map(|e| u64::from(e.length)).sum::<u64>();
            plan.left_dead.extend(dead.iter().map(|e| e.id));
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
