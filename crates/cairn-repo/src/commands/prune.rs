//! `prune`: remove blobs no snapshot references, without locks, while
//! backups run. docs/MAINTENANCE.md gives the protocol and why it is safe.
//!
//! Every run does both phases:
//!
//! - **Phase 2** acts on tombstones written by *earlier* runs. A tombstone
//!   file created at T is *ripe* once `now ≥ T + grace` and no live session
//!   started at or before `T + grace`. A copy of a blob is deleted when a
//!   ripe tombstone applies to it (the tombstone is at least as new as the
//!   index files listing the copy) and no snapshot listed now references the
//!   blob. Packs holding only such copies are deleted; packs whose deletable
//!   share exceeds `max_unused` are repacked (within `max_repack_size`).
//!   Index files are then compacted into few files that supersede the old.
//! - **Phase 1** tombstones, in new index files (at most 200,000 each, all
//!   created at the run's time), every indexed blob that
//!   is live (not yet tombstoned) and that no snapshot references.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_core::Id;
use cairn_core::format::{IndexFile, IndexPack, PackEntry, SessionPurpose};

use super::lock::lock_aware;
use super::prune_checks::{SessionView, prune_sessions, recheck_before_writes};
use super::prune_cold::plan_packs;
use super::prune_lock::index_deletions;
use crate::commands::lock::Retained;
pub(crate) use crate::commands::prune_changes::STABLE_ENTRIES;
use crate::commands::prune_changes::{IndexChanges, index_changes, still_listed};
pub use crate::commands::prune_checks::MIN_GRACE;
use crate::commands::prune_lock::IndexDeletions;
use crate::commands::prune_plan::{PackPlan, Waiting, live_files};
use crate::commands::prune_ripe::Ripe;
use crate::compact::Compaction;
use crate::referenced::Referenced;
use crate::repack::{MAX_ENTRIES_PER_FILE, PackBuilders};
use crate::session_handle::SessionHandle;
use crate::spool::{HeldFile, Packs};
use crate::{Error, Repository, Result, paths};

/// Settings for [`Maintenance::prune`](crate::Maintenance::prune).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Seconds a tombstone waits before phase 2 may act on it, and a done
    /// session protects its snapshot. At least [`MIN_GRACE`]: it must
    /// exceed the clock difference between hosts and the time an object
    /// takes to be listed everywhere.
    pub grace: i64,
    /// Repack a pack when more than this fraction (0–1) of its bytes can go.
    pub max_unused: f64,
    /// At most this many bytes of live blobs are rewritten per run.
    pub max_repack_size: Option<u64>,
    /// Decide and report, change nothing.
    pub dry_run: bool,
    /// Repack partly used packs in an archival storage class too, once
    /// readable (archived ones get a restore asked for); else they are
    /// left as they are (see `prune_cold.rs`).
    pub repack_cold: bool,
    /// Index files of at least this many entries that list nothing the
    /// run removes are left as they are (tiered compaction, see
    /// `compact.rs`); the rest are merged. Default [`STABLE_ENTRIES`].
    pub stable_index_entries: usize,
    /// Decide against the index files read merged in memory even when the
    /// repository has an index directory (where prune builds a table of
    /// them on local disk, ADR 0021): for tests that compare the two.
    #[doc(hidden)]
    pub index_in_memory: bool,
    /// Data blobs the referenced set holds in memory before it goes to
    /// local disk beside the spool (ADR 0023): for tests that make it go.
    #[doc(hidden)]
    pub referenced_in_memory: usize,
    /// Ripe tombstones held in memory before they go to local disk beside
    /// the spool (ADR 0024): for tests that make them go.
    #[doc(hidden)]
    pub ripe_in_memory: usize,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            grace: 24 * 3600,
            max_unused: 0.05,
            max_repack_size: None,
            dry_run: false,
            repack_cold: false,
            stable_index_entries: STABLE_ENTRIES,
            index_in_memory: false,
            referenced_in_memory: crate::referenced::IN_MEMORY,
            ripe_in_memory: super::prune_ripe::IN_MEMORY,
        }
    }
}

/// What a prune run did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PruneReport {
    /// True if nothing was changed.
    pub dry_run: bool,
    /// Snapshots whose trees were walked.
    pub snapshots: usize,
    /// Distinct blobs they reference.
    pub blobs_referenced: usize,
    /// Phase 1: blobs newly tombstoned.
    pub blobs_tombstoned: usize,
    /// Phase 1: the first index file holding the new tombstones.
    pub tombstone_file: Option<Id>,
    /// Phase 1: index files holding the new tombstones, at most 200,000
    /// each (an index file's plaintext limit holds about two million).
    pub tombstone_files_written: usize,
    /// Tombstone files not ripe yet (too recent, or a live session may
    /// not have seen them).
    pub tombstone_files_waiting: usize,
    /// Live sessions that started before a waiting tombstone file ripens.
    pub blocking_sessions: Vec<Id>,
    /// Tombstoned blobs that a snapshot references again (a backup that ran
    /// concurrently deduplicated against them): kept, tombstone dropped.
    pub blobs_resurrected: usize,
    /// Blob copies deleted.
    pub blobs_deleted: usize,
    /// Packs deleted because they held only deletable blobs.
    pub packs_deleted: usize,
    /// Packs rewritten without their deletable blobs.
    pub packs_repacked: usize,
    /// New packs written by repacking.
    pub packs_written: usize,
    /// Bytes of packs removed.
    pub bytes_deleted: u64,
    /// Bytes of new packs.
    pub bytes_written: u64,
    /// Bytes of deletable blobs left in place (below `max_unused`, over
    /// the repack budget, or in a pack left cold).
    pub bytes_unused_kept: u64,
    /// Packs worth repacking left as they are because they are in an
    /// archival storage class (see [`PruneOptions::repack_cold`]).
    pub packs_cold_kept: usize,
    /// Their bytes: what repacking them would have restored and
    /// downloaded.
    pub bytes_cold_kept: u64,
    /// Their live bytes: what repacking them would have uploaded again.
    pub bytes_cold_live: u64,
    /// Restores of archived packs asked for so that a later run can
    /// repack them ([`PruneOptions::repack_cold`]; in a dry run, what
    /// would be asked for).
    pub cold_restores_requested: usize,
    /// Index files before and after.
    pub index_files_before: usize,
    /// See `index_files_before`.
    pub index_files_after: usize,
    /// Index files left as they are: large, and listing nothing removed
    /// (the rest are rewritten when the run compacts). Clients that
    /// already read them download only the others again.
    pub index_files_kept: usize,
    /// Stale sessions, and done sessions older than the grace period, removed.
    pub stale_sessions_removed: usize,
    /// Session objects that cannot be read: deletions wait while they exist.
    pub unreadable_sessions: Vec<Id>,
    /// Snapshots named by recently ended sessions, walked whether or not
    /// the listing of `snapshots/` showed them.
    pub snapshots_from_sessions: usize,
    /// Packs that index files list but `data/` does not hold: left out of
    /// the compacted index (`check` reports the blobs that go missing).
    pub packs_missing: usize,
    /// Packs no index file listed, older than the grace period, re-indexed
    /// from their headers.
    pub packs_adopted: usize,
    /// Leftovers of interrupted runs deleted: stray probes, temporary
    /// files, and multipart uploads aborted.
    pub stray_objects_deleted: usize,
    /// Packs that would be deleted or repacked but are retained by Object
    /// Lock: left as they are, listed, until a run after the date.
    pub retained_packs: Retained,
    /// Superseded index files retained by Object Lock: left in place
    /// (readers ignore them) until a run after the date.
    pub retained_index_files: Retained,
}

/// Runs prune. See the module docs. Refuses a grace period below
/// [`MIN_GRACE`], and refuses to run while another live prune session
/// exists.
pub(crate) async fn prune(repo: &Repository, opts: PruneOptions) -> Result<PruneReport> {
    if opts.grace < MIN_GRACE {
        return Err(Error::InvalidArgument(format!(
            "a grace period of {} s is too short: at least {MIN_GRACE} s (1h) are needed to cover clock differences between hosts and listing delays",
            opts.grace
        )));
    }
    let me = Arc::new(SessionHandle::new(repo.rng(), SessionPurpose::Prune));
    if !opts.dry_run {
        repo.announce(me.clone()).await?;
    }
    let result = match prune_as(repo, &me, opts).await {
        // Once the run's spool, plan and sets are gone: reading the index
        // again is its last peak (ADR 0024).
        Ok(report) if !opts.dry_run => reread_index(repo, report).await,
        other => other,
    };
    if !opts.dry_run {
        let _ = repo.end_session(&me.id).await;
    }
    result
}

/// Sessions first, snapshots after: a writer whose session is gone
/// from this listing stored its snapshot more than the grace period ago
/// (its done record lasted that long), so the snapshot listing shows
/// it; a more recent one is named by its done record. Snapshots are
/// listed before the index is read (by the caller): a writer stores its
/// index files before its snapshot, so every snapshot listed has its
/// blobs in that index.
async fn sessions_then_snapshots(
    repo: &Repository,
    me_handle: &SessionHandle,
    now: i64,
    opts: &PruneOptions,
    report: &mut PruneReport,
) -> Result<(SessionView, Vec<Id>)> {
    let view = prune_sessions(repo, me_handle, now, opts.grace, opts.dry_run).await?;
    report.stale_sessions_removed = view.removed;
    report.unreadable_sessions = view.unreadable.clone();
    let mut snapshot_ids = repo.snapshot_ids().await?;
    for sid in &view.done_snapshots {
        if !snapshot_ids.contains(sid) {
            snapshot_ids.push(*sid);
            report.snapshots_from_sessions += 1;
        }
    }
    Ok((view, snapshot_ids))
}

async fn prune_as(
    repo: &Repository,
    me_handle: &SessionHandle,
    opts: PruneOptions,
) -> Result<PruneReport> {
    let now = repo.clock().now();
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..PruneReport::default()
    };
    let (view, snapshot_ids) =
        sessions_then_snapshots(repo, me_handle, now, &opts, &mut report).await?;
    // The files' entries wait on local disk (ADR 0022), read back a pack
    // at a time; the spool's directory goes when the run ends.
    let (all_files, spool) = repo.held_index_files(opts.index_in_memory).await?;
    report.index_files_before = all_files.len();
    let (superseded, files) = live_files(&all_files);
    // Decided against exactly the files read; the table's directory goes
    // when the run ends, `reload_index` replaces the index after it.
    let (index, _table_dir) = repo.private_index(&files, &spool, opts.index_in_memory)?;
    *repo.write_index() = index;

    // Past its budget the referenced set goes beside the spool (ADR 0023).
    let seen = Referenced::spilling(
        spool.dir().map(std::path::Path::to_path_buf),
        opts.referenced_in_memory,
    );
    let (snapshots, referenced) = repo
        .referenced_blobs(snapshot_ids, Some(me_handle), seen)
        .await?;
    report.snapshots = snapshots;
    report.blobs_referenced = referenced.len();

    let tomb_files = tombstone_files(&files);
    let ripe_files = waiting(&view, now, opts.grace).ripe_files(&tomb_files, &mut report);
    // Past its budget beside the spool too (ADR 0024).
    let ripe = Ripe::gather(&ripe_files, &spool, spool.dir(), opts.ripe_in_memory)?;

    let packs = Packs::of(&files, &spool);
    let sizes: HashMap<Id, u64> = repo.list_packs().await?;
    let leftovers = repo
        .leftovers_of(indexed_packs(&all_files), me_handle.skew())
        .await?;
    // The ripe tombstones first: most entries have none, and a lookup in
    // a referenced set on disk is a read.
    let deletable = |e: &PackEntry, listed: i64| {
        ripe.get(&e.id).is_some_and(|t| t >= listed) && !referenced.contains(&e.id)
    };
    report.blobs_resurrected = ripe.count(|b| referenced.contains(b));

    let lock_aware = lock_aware(repo).await?;
    let plan = plan_packs(
        repo,
        lock_aware,
        &packs,
        &sizes,
        &deletable,
        &opts,
        &mut report,
    )
    .await?;

    let changes = against_index(repo, &files, &packs, &referenced, &ripe_files, plan, &opts)?;
    // Every decision above asked the referenced set and the ripe
    // tombstones; none may stand on a lookup that could not read them.
    referenced.verify()?;
    ripe.verify()?;
    report.blobs_tombstoned = changes.new_tombstones.len();
    report.index_files_kept = changes.kept(changes.compact, files.len());
    let index_deletions = index_deletions(
        repo,
        lock_aware,
        &changes.listing_files,
        &changes.resolved,
        &all_files,
        &superseded,
    )
    .await?;

    if opts.dry_run {
        index_deletions.note_retained(changes.compact, &mut report);
        report.index_files_after = report.index_files_before;
        return Ok(report);
    }

    let decided = Decided {
        now,
        live_files: files.len(),
        all_files: &all_files,
        index_deletions,
        tomb_files: &tomb_files,
        packs: &packs,
        changes,
        leftovers,
    };
    apply(repo, me_handle, decided, &opts, &mut report).await?;
    Ok(report)
}

/// Counts the index files `report` leaves and reads the index again.
async fn reread_index(repo: &Repository, mut report: PruneReport) -> Result<PruneReport> {
    report.index_files_after = repo.store().list(paths::INDEX).await?.len();
    repo.reload_index().await?;
    Ok(report)
}

/// The packs every index file read lists, superseded ones included.
fn indexed_packs(all: &[HeldFile]) -> HashSet<Id> {
    all.iter()
        .flat_map(|f| f.packs.iter().map(|l| l.pack))
        .collect()
}

/// When the tombstones of `view`'s sessions ripen.
fn waiting(view: &SessionView, now: i64, grace: i64) -> Waiting<'_> {
    Waiting {
        live: &view.live,
        unreadable: !view.unreadable.is_empty(),
        now,
        grace,
    }
}

/// [`index_changes`] against the index in force now.
fn against_index<'a>(
    repo: &Repository,
    files: &[&'a HeldFile],
    packs: &Packs<'_>,
    referenced: &Referenced,
    ripe_files: &[&HeldFile],
    plan: PackPlan,
    opts: &PruneOptions,
) -> Result<IndexChanges<'a>> {
    let index = repo.index();
    index_changes(
        files,
        packs,
        referenced,
        |b| index.contains(b),
        ripe_files,
        plan,
        opts.stable_index_entries,
    )
}

/// Writes what `prune_as` decided, in the order that keeps every reader
/// safe: re-check, tombstone file, new packs, compacted index files,
/// delete the superseded index files, check the session, delete packs.
async fn apply(
    repo: &Repository,
    me_handle: &SessionHandle,
    d: Decided<'_>,
    opts: &PruneOptions,
    report: &mut PruneReport,
) -> Result<()> {
    let me = &me_handle.id;
    let Decided {
        now,
        live_files,
        all_files,
        index_deletions,
        tomb_files,
        packs,
        changes,
        leftovers,
    } = d;
    let staying = changes.kept(true, live_files);
    let IndexChanges {
        new_tombstones,
        removed,
        resolved,
        repack,
        listing_files,
        kept_packs,
        compact,
    } = changes;
    // Nothing written yet: make sure nothing this run decided on
    // changed under it (another prune, a compaction, its own session
    // lost).
    let known: HashSet<Id> = all_files.iter().map(|f| f.id).collect();
    let mut to_supersede: Vec<Id> = listing_files.iter().map(|f| f.id).collect();
    to_supersede.extend(resolved.iter().copied());
    recheck_before_writes(repo, me_handle, &known, &to_supersede).await?;
    let adopted = repo.adopt_leftovers(&leftovers, opts.grace).await?;
    report.packs_adopted = adopted.len();
    report.stray_objects_deleted = leftovers.strays_older_than(opts.grace);

    // 1. Phase 1's tombstones.
    let written = write_tombstones(repo, me, now, new_tombstones).await?;
    report.tombstone_file = written.first().copied();
    report.tombstone_files_written = written.len();
    // 2. Repacked copies.
    let mut new_packs = write_repacked(repo, &repack, report).await?;
    new_packs.extend(adopted);
    repo.refresh_if_due(me_handle).await?;

    // 3. Compacted index files, superseding the old ones; 4. delete the
    // old index files; 5. only then delete packs.
    let compacting = compact || report.packs_adopted > 0;
    report.index_files_kept = if compacting { staying } else { live_files };
    index_deletions.note_retained(compacting, report);
    if compacting {
        // Tombstone files that stay: those not resolved, and this run's.
        let mut cuts: Vec<i64> = tomb_files
            .iter()
            .filter(|f| !resolved.contains(&f.id))
            .map(|f| f.created)
            .collect();
        cuts.push(now);
        let plan = Compaction {
            listed: still_listed(packs, &removed, &kept_packs),
            spool: packs.spool,
            cuts,
            new_packs,
            supersedes: index_deletions.supersedes.clone(),
            retained: &index_deletions.retained,
        };
        report.packs_missing = repo.write_compaction(me_handle, plan).await?;
    } else {
        if !new_packs.is_empty() {
            let new_packs = new_packs.into_iter().map(Ok);
            repo.store_index_files(*me, now, new_packs, Vec::new())
                .await?;
        }
        // Superseded files left by earlier runs (still superseded by
        // files that stay) go once their retention ends.
        for id in index_deletions.unretained(&index_deletions.lingering) {
            repo.delete_unless_retained(&paths::index(&id)).await?;
        }
    }
    delete_packs(repo, &removed, report).await
}

/// Tombstones one index file of phase 1 holds at most: 6.4 MB of plaintext,
/// a tenth of an index file's limit (FORMAT.md §16). Tests lower it
/// ([`prune_tombstones_per_file`]).
static TOMBSTONES_PER_FILE: AtomicUsize = AtomicUsize::new(MAX_ENTRIES_PER_FILE);

/// Sets how many tombstones one index file of phase 1 holds at most: for
/// tests, which have few.
#[doc(hidden)]
pub fn prune_tombstones_per_file(n: usize) {
    TOMBSTONES_PER_FILE.store(n.max(1), Ordering::Relaxed);
}

/// Phase 1's tombstone files, if there are new tombstones: as many as
/// [`TOMBSTONES_PER_FILE`] needs, all created at `now` (phase 2 reads them
/// as one).
async fn write_tombstones(
    repo: &Repository,
    me: &Id,
    now: i64,
    tombstones: Vec<Id>,
) -> Result<Vec<Id>> {
    let per_file = TOMBSTONES_PER_FILE.load(Ordering::Relaxed);
    let mut written = Vec::new();
    for part in tombstones.chunks(per_file) {
        let file = IndexFile {
            session: *me,
            created: now,
            packs: Vec::new(),
            tombstones: part.to_vec(),
            supersedes: Vec::new(),
        };
        written.push(repo.store_index_file(&file).await?);
    }
    Ok(written)
}

/// Last, once no index file in force lists them: the packs phase 2
/// removes.
async fn delete_packs(
    repo: &Repository,
    removed: &HashSet<Id>,
    report: &mut PruneReport,
) -> Result<()> {
    // A run paused since its last check (its session lapsed) stops
    // here: another prune may have taken over.
    repo.verify_sessions().await?;
    for pack in removed {
        // Retained after all (extended since prune asked): it stays,
        // unlisted, and is adopted again after the grace period.
        if let Some(until) = repo.delete_unless_retained(&paths::pack(pack)).await? {
            report.retained_packs.add(until, 0);
        }
    }
    Ok(())
}

/// The index files (in force) that hold tombstones.
fn tombstone_files<'a>(files: &[&'a HeldFile]) -> Vec<&'a HeldFile> {
    files
        .iter()
        .copied()
        .filter(|f| !f.tombstones.is_empty())
        .collect()
}

/// Copies the live blobs of the packs to repack into new packs;
/// returns their index entries.
async fn write_repacked(
    repo: &Repository,
    repack: &[(Id, Vec<PackEntry>)],
    report: &mut PruneReport,
) -> Result<Vec<IndexPack>> {
    let mut new_packs: Vec<IndexPack> = Vec::new();
    let mut builders = PackBuilders::default();
    for (pack, keep) in repack {
        let (done, n) = repo.copy_blobs(pack, keep, &mut builders).await?;
        report.bytes_written += n;
        new_packs.extend(done);
    }
    let (done, n) = builders.finish(repo).await?;
    report.bytes_written += n;
    new_packs.extend(done);
    report.packs_written = new_packs.len();
    Ok(new_packs)
}

struct Decided<'a> {
    now: i64,
    /// Index files not superseded before the run.
    live_files: usize,
    all_files: &'a [HeldFile],
    index_deletions: IndexDeletions,
    tomb_files: &'a [&'a HeldFile],
    packs: &'a Packs<'a>,
    changes: IndexChanges<'a>,
    leftovers: crate::Leftovers,
}
