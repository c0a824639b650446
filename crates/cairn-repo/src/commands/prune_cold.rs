//! Prune and archival storage: which partly used packs it leaves as they
//! are because repacking them would mean restoring them first.

use std::collections::{HashMap, HashSet};

use cairn_core::Id;
use cairn_core::format::PackEntry;

use super::prune_lock::plan_packs_around_locks;
use crate::commands::prune_plan::{PackPlan, cold_decision, repack_candidates};
use crate::spool::Packs;
use crate::{PruneOptions, PruneReport, Repository, Result, WarmOptions};

/// Prune's plan for packs ([`plan_packs`]), with the repack candidates
/// in an archival class left out (see [`Repository::cold_packs`]), and
/// with `lock_aware`, the packs Object Lock retains held back (see
/// [`Repository::plan_packs_around_locks`]).
pub(crate) async fn plan_packs(
    repo: &Repository,
    lock_aware: bool,
    packs: &Packs<'_>,
    sizes: &HashMap<Id, u64>,
    // Sync, so that prune's future can move between threads.
    deletable: &(dyn Fn(&PackEntry, i64) -> bool + Sync),
    opts: &PruneOptions,
    report: &mut PruneReport,
) -> Result<PackPlan> {
    let candidates = repack_candidates(packs, sizes, deletable, opts)?;
    let cold = cold_packs(repo, &candidates, opts, report).await?;
    let plan = (packs, sizes, deletable, &cold);
    plan_packs_around_locks(repo, lock_aware, plan, opts, report).await
}

/// The repack candidates prune leaves as they are this run: those in
/// an archival class (with `repack_cold`, those not readable yet, and
/// a restore is asked for the archived ones, unless in a dry run).
/// Statuses are asked only on S3 stores whose data class setting is
/// archival, or with `repack_cold`: elsewhere no pack is cold, or
/// none is known to be (where a lifecycle rule moves packs, the
/// repack's read of one fails; `repack_cold` covers that case).
pub(crate) async fn cold_packs(
    repo: &Repository,
    candidates: &[Id],
    opts: &PruneOptions,
    report: &mut PruneReport,
) -> Result<HashSet<Id>> {
    let archival = repo
        .settings()
        .is_some_and(|s| cairn_store::is_archival_class(&s.data_class));
    if candidates.is_empty() || !repo.store().is_s3() || !(archival || opts.repack_cold) {
        return Ok(HashSet::new());
    }
    let states = repo.pack_states(candidates.to_vec()).await?;
    let d = cold_decision(&states, opts.repack_cold);
    if !opts.dry_run {
        repo.request_restores(&d.request, &WarmOptions::default())
            .await?;
    }
    report.cold_restores_requested = d.request.len();
    Ok(d.keep)
}
