//! `repair index`: rebuild the index from the pack headers, after index
//! files were lost or damaged. Every pack carries a sealed header listing
//! its blobs, so the packs alone are enough.

use std::sync::Arc;

use cairn_core::Id;
use cairn_core::format::{IndexPack, PackEntry, SessionPurpose};
use futures::StreamExt;

use crate::repository::LOAD_CONCURRENCY;
use crate::session_handle::SessionHandle;
use crate::{Error, Repository, Result, paths};

/// What `repair index` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    /// True if nothing was written or deleted.
    pub dry_run: bool,
    /// Packs whose header was read.
    pub packs: usize,
    /// Blobs they hold.
    pub blobs: usize,
    /// Packs whose header could not be read: (object, problem). Their blobs
    /// are not indexed; `check` names the snapshots that need them.
    pub unreadable_packs: Vec<(String, String)>,
    /// Index files that could not be read (they are replaced).
    pub unreadable_index_files: Vec<(String, String)>,
    /// New index files written.
    pub index_files_written: usize,
    /// Old index files replaced and deleted.
    pub index_files_replaced: usize,
    /// Of those, files Object Lock still retains: superseded, so readers
    /// ignore them, and deleted by a prune after their date.
    pub index_files_retained: usize,
}

/// What the run found about one index file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileSeen {
    /// Readable: whether it lists packs, whether it holds tombstones.
    Read {
        /// It lists at least one pack.
        lists_packs: bool,
        /// It holds tombstones.
        tombstones: bool,
    },
    /// Damaged (corrupt, tampered, unknown version): the reason.
    Damaged(String),
    /// Gone between the listing and the read.
    Gone,
}

/// What the run found about one pack's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PackSeen {
    /// Its blobs.
    Read(Vec<PackEntry>),
    /// Damaged: the reason.
    Damaged(String),
    /// Gone between the listing and the read.
    Gone,
}

/// What a repair writes, decided from what it observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RepairPlan {
    /// The packs the new index files list, blobs in offset order.
    pub(crate) listed: Vec<IndexPack>,
    /// The old index files the new ones supersede.
    pub(crate) replace: Vec<Id>,
}

/// The plan for `files` and `packs` as observed (index files listed before
/// the packs), and the report's counts. The safety rules:
/// - tombstone-only files stay (their tombstones are older than the new
///   listing; prune tombstones again later);
/// - every other file that was read, and every damaged one, is replaced;
/// - a file or pack gone meanwhile is left out (deleted by someone else);
/// - a damaged pack is reported and not listed: its blobs are unindexed.
pub(crate) fn plan(
    files: Vec<(Id, FileSeen)>,
    packs: Vec<(Id, PackSeen)>,
    report: &mut RepairReport,
) -> RepairPlan {
    let mut out = RepairPlan::default();
    for (id, seen) in files {
        match seen {
            FileSeen::Read {
                lists_packs: false,
                tombstones: true,
            }
            | FileSeen::Gone => {}
            FileSeen::Read { .. } => out.replace.push(id),
            FileSeen::Damaged(why) => {
                report.unreadable_index_files.push((paths::index(&id), why));
                out.replace.push(id);
            }
        }
    }
    for (pack, seen) in packs {
        match seen {
            PackSeen::Read(mut blobs) => {
                blobs.sort_by_key(|e| e.offset);
                report.blobs += blobs.len();
                out.listed.push(IndexPack { pack, blobs });
            }
            PackSeen::Damaged(why) => report.unreadable_packs.push((paths::pack(&pack), why)),
            PackSeen::Gone => {}
        }
    }
    out.listed.sort_by_key(|p| p.pack);
    report.unreadable_index_files.sort();
    report.unreadable_packs.sort();
    report.packs = out.listed.len();
    report.index_files_replaced = out.replace.len();
    out
}

/// Rebuilds the index from every pack's header. New index files list
/// every readable pack and supersede every old file that lists packs or
/// cannot be read; tombstone-only files are kept (a rebuilt listing is
/// newer than them, so they no longer apply: prune tombstones again
/// later, which only delays deletion). Run it while no prune runs.
///
/// Works on a repository whose index files are damaged: they are not
/// needed to open it, and are named in the report. Only damage is a
/// finding: an index file or pack header that cannot be read for
/// another reason (the network, permissions) ends the run before
/// anything is written, so a passing failure never unindexes a pack.
/// The decision is `plan`, a pure function of what was read.
///
/// The run announces a writer session, so a prune sees it, and lists
/// `index/` before `data/`: an index file written after the pack
/// listing may name packs the listing missed, so only files listed
/// earlier (whose packs were all uploaded before them) are superseded.
pub(crate) async fn repair_index(repo: &Repository, mode: crate::RunMode) -> Result<RepairReport> {
    let dry_run = mode.is_dry_run();
    let mut report = RepairReport {
        dry_run,
        ..RepairReport::default()
    };
    let session = Arc::new(SessionHandle::new(repo.rng(), SessionPurpose::Backup));
    if !dry_run {
        repo.announce(session.clone()).await?;
    }
    let r = repair_in_session(repo, session.id, &mut report).await;
    if !dry_run {
        let ended = repo.end_session(&session.id).await;
        r?;
        ended?;
    } else {
        r?;
    }
    if !dry_run {
        repo.reload_index().await?;
    }
    Ok(report)
}

async fn repair_in_session(
    repo: &Repository,
    session: Id,
    report: &mut RepairReport,
) -> Result<()> {
    // Index files before packs: see repair_index.
    let files = observe_index_files(repo).await?;
    let packs = observe_packs(repo).await?;
    let plan = plan(files, packs, report);
    if report.dry_run {
        return Ok(());
    }
    let written = repo
        .store_index_files(
            session,
            repo.clock().now(),
            plan.listed.into_iter().map(Ok),
            plan.replace.clone(),
        )
        .await?;
    report.index_files_written = written.len();
    for id in &plan.replace {
        if repo
            .delete_unless_retained(&paths::index(id))
            .await?
            .is_some()
        {
            report.index_files_retained += 1;
        }
    }
    Ok(())
}

/// Every index file, as read. Failures other than damage (the network,
/// permissions) end the run: nothing is decided on a partial view.
async fn observe_index_files(repo: &Repository) -> Result<Vec<(Id, FileSeen)>> {
    let mut out = Vec::new();
    for id in repo.list_ids(paths::INDEX).await? {
        let seen = match repo.read_index_file(&id).await {
            Ok(f) => FileSeen::Read {
                lists_packs: !f.packs.is_empty(),
                tombstones: !f.tombstones.is_empty(),
            },
            Err(Error::Store(e)) if e.is_not_found() => FileSeen::Gone,
            Err(e) if e.is_damage() => FileSeen::Damaged(e.to_string()),
            Err(e) => return Err(e),
        };
        out.push((id, seen));
    }
    Ok(out)
}

/// Every pack's header, as read; as for index files, only damage is a
/// finding, any other failure ends the run.
async fn observe_packs(repo: &Repository) -> Result<Vec<(Id, PackSeen)>> {
    let packs = repo.list_ids(paths::DATA).await?;
    let mut headers = futures::stream::iter(packs)
        .map(|pack| async move { (pack, repo.read_pack_header(&pack).await) })
        .buffer_unordered(LOAD_CONCURRENCY);
    let mut out = Vec::new();
    while let Some((pack, r)) = headers.next().await {
        let seen = match r {
            Ok((blobs, _)) => PackSeen::Read(blobs),
            Err(Error::Store(e)) if e.is_not_found() => PackSeen::Gone,
            Err(e) if e.is_damage() => PackSeen::Damaged(e.to_string()),
            Err(e) => return Err(e),
        };
        out.push((pack, seen));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "repair_tests.rs"]
mod tests;
