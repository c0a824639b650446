//! `repair index`: rebuild the index from the pack headers, after index
//! files were lost or damaged. Every pack carries a sealed header listing
//! its blobs, so the packs alone are enough.

use cairn_core::Id;
use cairn_core::format::IndexPack;
use futures::StreamExt;

use crate::repository::LOAD_CONCURRENCY;
use crate::{Repository, Result, paths};

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
}

impl Repository {
    /// Rebuilds the index from every pack's header. New index files list
    /// every readable pack and supersede every old file that lists packs or
    /// cannot be read; tombstone-only files are kept (a rebuilt listing is
    /// newer than them, so they no longer apply: prune tombstones again
    /// later, which only delays deletion). Run it while no prune runs.
    pub async fn repair_index(&self, dry_run: bool) -> Result<RepairReport> {
        let mut report = RepairReport {
            dry_run,
            ..RepairReport::default()
        };
        let packs: Vec<Id> = self
            .store()
            .list(paths::DATA)
            .await?
            .iter()
            .filter_map(|o| paths::id_in(paths::DATA, &o.path))
            .collect();
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
                Err(e) => report
                    .unreadable_packs
                    .push((paths::pack(&pack), e.to_string())),
            }
        }
        report.packs = listed.len();
        report.unreadable_packs.sort();

        let names: Vec<Id> = self
            .store()
            .list(paths::INDEX)
            .await?
            .iter()
            .filter_map(|o| paths::id_in(paths::INDEX, &o.path))
            .collect();
        let mut replace = Vec::new();
        for id in names {
            match self.read_index_file(&id).await {
                Ok(f) if f.packs.is_empty() && !f.tombstones.is_empty() => {}
                Ok(_) => replace.push(id),
                Err(e) => {
                    report
                        .unreadable_index_files
                        .push((paths::index(&id), e.to_string()));
                    replace.push(id);
                }
            }
        }
        report.index_files_replaced = replace.len();
        if dry_run {
            return Ok(report);
        }
        let mut session = [0u8; 32];
        self.rng().fill(&mut session);
        let written = self
            .store_index_files(
                Id::from_bytes(session),
                self.clock().now(),
                listed,
                replace.clone(),
            )
            .await?;
        report.index_files_written = written.len();
        for id in &replace {
            self.store().delete(&paths::index(id)).await?;
        }
        self.reload_index().await?;
        Ok(report)
    }
}
