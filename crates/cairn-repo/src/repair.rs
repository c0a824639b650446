//! `repair index`: rebuild the index from the pack headers, after index
//! files were lost or damaged. Every pack carries a sealed header listing
//! its blobs, so the packs alone are enough.

use std::sync::Arc;

use cairn_core::Id;
use cairn_core::format::{IndexPack, SessionPurpose};
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

impl Repository {
    /// Rebuilds the index from every pack's header. New index files list
    /// every readable pack and supersede every old file that lists packs or
    /// cannot be read; tombstone-only files are kept (a rebuilt listing is
    /// newer than them, so they no longer apply: prune tombstones again
    /// later, which only delays deletion). Run it while no prune runs.
    ///
    /// Works on a repository whose index files are damaged: they are not
    /// needed to open it, and are named in the report.
    ///
    /// The run announces a writer session, so a prune sees it, and lists
    /// `index/` before `data/`: an index file written after the pack
    /// listing may name packs the listing missed, so only files listed
    /// earlier (whose packs were all uploaded before them) are superseded.
    pub async fn repair_index(&self, mode: crate::RunMode) -> Result<RepairReport> {
        let dry_run = mode.is_dry_run();
        let mut report = RepairReport {
            dry_run,
            ..RepairReport::default()
        };
        let session = Arc::new(SessionHandle::new(self.rng(), SessionPurpose::Backup));
        if !dry_run {
            self.announce(session.clone()).await?;
        }
        let r = self.repair_in_session(session.id, &mut report).await;
        if !dry_run {
            let ended = self.end_session(&session.id).await;
            r?;
            ended?;
        } else {
            r?;
        }
        if !dry_run {
            self.reload_index().await?;
        }
        Ok(report)
    }

    async fn repair_in_session(&self, session: Id, report: &mut RepairReport) -> Result<()> {
        let replace = self.index_files_to_replace(report).await?;
        let packs = self.list_ids(paths::DATA).await?;
        let mut headers = futures::stream::iter(packs)
            .map(|pack| async move { (pack, self.read_pack_header(&pack).await) })
            .buffer_unordered(LOAD_CONCURRENCY);
        let mut listed: Vec<IndexPack> = Vec::new();
        while let Some((pack, r)) = headers.next().await {
            match r {
                Ok((mut blobs, _)) => {
                    blobs.sort_by_key(|e| e.offset);
                    report.blobs += blobs.len();
                    listed.push(IndexPack { pack, blobs });
                }
                Err(Error::Store(e)) if e.is_not_found() => {}
                Err(e) => report
                    .unreadable_packs
                    .push((paths::pack(&pack), e.to_string())),
            }
        }
        drop(headers);
        report.packs = listed.len();
        report.unreadable_packs.sort();
        report.index_files_replaced = replace.len();
        if report.dry_run {
            return Ok(());
        }
        let written = self
            .store_index_files(session, self.clock().now(), listed, replace.clone())
            .await?;
        report.index_files_written = written.len();
        for id in &replace {
            if self
                .delete_unless_retained(&paths::index(id))
                .await?
                .is_some()
            {
                report.index_files_retained += 1;
            }
        }
        Ok(())
    }

    /// The index files a rebuilt index replaces: every file that lists
    /// packs or cannot be read. Tombstone-only files stay.
    async fn index_files_to_replace(&self, report: &mut RepairReport) -> Result<Vec<Id>> {
        let names = self.list_ids(paths::INDEX).await?;
        let mut replace = Vec::new();
        for id in names {
            match self.read_index_file(&id).await {
                Ok(f) if f.packs.is_empty() && !f.tombstones.is_empty() => {}
                Ok(_) => replace.push(id),
                Err(Error::Store(e)) if e.is_not_found() => {}
                Err(e) if e.is_damage() => {
                    report
                        .unreadable_index_files
                        .push((paths::index(&id), e.to_string()));
                    replace.push(id);
                }
                Err(e) => return Err(e),
            }
        }
        report.unreadable_index_files.sort();
        Ok(replace)
    }
}
