//! Prune's decisions about the index (`prune.rs`): which blobs phase 1
//! tombstones, which packs and tombstone files a run removes, and which
//! index files a compaction rewrites. Pure, from what the run read.

use std::collections::{HashMap, HashSet};

use cairn_core::Id;
use cairn_core::format::PackEntry;

use super::prune_plan::PackPlan;
use crate::Result;
use crate::referenced::Referenced;
use crate::spool::{HeldFile, PackView, Packs};

/// What a run changes in the index, decided from what it observed.
pub(crate) struct IndexChanges<'a> {
    /// Phase 1: indexed, live blobs no snapshot references, sorted.
    pub(crate) new_tombstones: Vec<Id>,
    /// Packs phase 2 deletes or rewrites.
    pub(crate) removed: HashSet<Id>,
    /// Tombstone files fully acted on: every blob they name is either
    /// referenced or has no copy left that a ripe tombstone applies to.
    pub(crate) resolved: Vec<Id>,
    /// Packs phase 2 rewrites, with the entries they keep.
    pub(crate) repack: Vec<(Id, Vec<PackEntry>)>,
    /// Index files that list packs and are rewritten (superseded) if the
    /// run compacts: every one but the stable files.
    pub(crate) listing_files: Vec<&'a HeldFile>,
    /// Packs listed by stable files: files of at least [`STABLE_ENTRIES`]
    /// entries that list no removed pack, which a compaction leaves as
    /// they are, so clients need not download them again.
    pub(crate) kept_packs: HashSet<Id>,
    /// Whether the index files are rewritten.
    pub(crate) compact: bool,
}

/// Index files with at least this many entries, and no removed pack, are
/// left alone by a compaction (tiered compaction): a compaction writes
/// files of up to [`crate::repack::MAX_ENTRIES_PER_FILE`] entries, so all
/// but the last of each run's files are stable, and a prune rewrites only
/// the small files and those that list packs it deletes or repacks.
pub(crate) const STABLE_ENTRIES: usize = crate::repack::MAX_ENTRIES_PER_FILE / 2;

/// Some of the index files a run read.
type Files<'a> = Vec<&'a HeldFile>;

impl IndexChanges<'_> {
    /// How many of `live` index files stay as they are, with or without a
    /// compaction.
    pub(crate) fn kept(&self, compacting: bool, live: usize) -> usize {
        if !compacting {
            return live;
        }
        live.saturating_sub(self.listing_files.len() + self.resolved.len())
    }
}

/// Whether `f` is a stable file (at least `least` entries), given the
/// packs a run removes.
pub(crate) fn stable(f: &HeldFile, least: usize, removed: &HashSet<Id>) -> bool {
    f.tombstones.is_empty()
        && f.entries() >= least
        && f.packs.iter().all(|l| !removed.contains(&l.pack))
}

/// Decides [`IndexChanges`]: pure, from the index before any change
/// (`indexed` says whether a blob is live in it), the blobs snapshots
/// reference, the ripe tombstone files, the plan for packs and the size
/// from which an index file is stable.
pub(crate) fn index_changes<'a>(
    files: &[&'a HeldFile],
    packs: &Packs<'_>,
    referenced: &Referenced,
    indexed: impl Fn(&Id) -> bool,
    ripe_files: &[&HeldFile],
    plan: PackPlan,
    stable_entries: usize,
) -> Result<IndexChanges<'a>> {
    // Sorted and deduplicated at the end: 32 bytes per blob, not a hash
    // set's 70 (a forgotten snapshot of a million chunks tombstones them
    // all in one run).
    let mut new_tombstones: Vec<Id> = Vec::new();
    for v in packs.views.values() {
        let entries = packs.entries(v)?;
        let ids = entries.iter().map(|e| e.id);
        new_tombstones.extend(ids.filter(|b| !referenced.contains(b) && indexed(b)));
    }
    new_tombstones.sort_unstable();
    new_tombstones.dedup();
    new_tombstones.shrink_to_fit();
    let removed: HashSet<Id> = plan
        .delete_packs
        .iter()
        .chain(plan.repack.iter().map(|(p, _)| p))
        .copied()
        .collect();
    let mut resolved: Vec<Id> = Vec::new();
    for f in ripe_files {
        let tombstones = packs.spool.tombstones(&f.tombstones)?;
        if tombstones.iter().all(|t| !plan.left_dead.contains(t)) {
            resolved.push(f.id);
        }
    }
    let (kept, listing_files): (Files<'a>, Files<'a>) = files
        .iter()
        .copied()
        .filter(|f| !f.packs.is_empty())
        .partition(|f| stable(f, stable_entries, &removed));
    let kept_packs = kept
        .iter()
        .flat_map(|f| f.packs.iter().map(|l| l.pack))
        .collect();
    let compact = !removed.is_empty() || !resolved.is_empty() || listing_files.len() > 1;
    Ok(IndexChanges {
        new_tombstones,
        removed,
        resolved,
        repack: plan.repack,
        listing_files,
        kept_packs,
        compact,
    })
}

/// The packs that stay, with when they were listed and their entries.
pub(crate) fn still_listed<'a>(
    packs: &'a Packs<'a>,
    removed: &HashSet<Id>,
    kept: &HashSet<Id>,
) -> HashMap<Id, &'a PackView> {
    packs
        .views
        .iter()
        .filter(|(p, _)| !removed.contains(p) && !kept.contains(p))
        .map(|(p, v)| (*p, v))
        .collect()
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
