//! The writer's uploader task: announces the session, uploads finished
//! packs a few at a time, and writes an index file every few packs (or
//! sooner, for packs of many small blobs).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use cairn_core::format::{IndexFile, IndexPack};
use cairn_core::{Compression, Kind, seal};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;

use super::{
    FinishedPack, INDEX_EVERY_ENTRIES, INDEX_EVERY_PACKS, REFRESH_WAKEUP, Shared,
    UPLOAD_CONCURRENCY, lock,
};
use crate::{Result, paths};

/// Announces the session, then reloads the index and lists the packs: in
/// this order, the index the writer deduplicates against holds every
/// tombstone stored before the session became visible, and every pack it
/// lists that prune deleted before then is known to be gone.
pub(super) async fn start_session(shared: &Shared) -> Result<()> {
    shared.repo.announce(shared.session.clone()).await?;
    shared.repo.reload_index().await?;
    let packs = shared.repo.list_packs().await?;
    *shared.packs.write().unwrap_or_else(|p| p.into_inner()) = packs.into_keys().collect();
    Ok(())
}

pub(super) async fn upload_loop(
    shared: Arc<Shared>,
    rx: mpsc::Receiver<FinishedPack>,
) -> Result<Vec<IndexPack>> {
    let started = start_session(&shared).await;
    *lock(&shared.ready) = Some(started.as_ref().map(|_| ()).map_err(|e| e.to_string()));
    shared
        .ready_ok
        .store(started.is_ok(), std::sync::atomic::Ordering::Release);
    shared.ready_cv.notify_all();
    started?;
    upload_packs(shared, rx).await
}

async fn upload_packs(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<FinishedPack>,
) -> Result<Vec<IndexPack>> {
    let mut ticker = tokio::time::interval(REFRESH_WAKEUP);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inflight = FuturesUnordered::new();
    let mut unindexed = Vec::new();
    let mut open = true;
    loop {
        tokio::select! {
            Some(done) = inflight.next(), if !inflight.is_empty() => {
                let done = match done {
                    Ok(d) => d,
                    Err(e) => {
                        // Stop taking packs, but index every pack that did
                        // upload, so the next backup reuses it.
                        drop(rx);
                        while let Some(other) = inflight.next().await {
                            unindexed.extend(other.ok());
                        }
                        if !unindexed.is_empty() {
                            write_index(&shared, unindexed).await?;
                        }
                        return Err(e);
                    }
                };
                unindexed.push(done);
                let entries: usize = unindexed.iter().map(|p: &IndexPack| p.blobs.len()).sum();
                if unindexed.len() >= INDEX_EVERY_PACKS || entries >= INDEX_EVERY_ENTRIES {
                    write_index(&shared, std::mem::take(&mut unindexed)).await?;
                }
                shared.repo.refresh_if_due(&shared.session).await?;
            }
            _ = ticker.tick(), if open || !inflight.is_empty() => {
                shared.repo.refresh_if_due(&shared.session).await?;
            }
            msg = rx.recv(), if open && inflight.len() < UPLOAD_CONCURRENCY => match msg {
                Some(p) => inflight.push(upload(shared.clone(), p)),
                None => open = false,
            },
            else => break,
        }
    }
    Ok(unindexed)
}

async fn upload(shared: Arc<Shared>, p: FinishedPack) -> Result<IndexPack> {
    let store = shared.repo.store();
    if let Some(spool) = p.spool {
        // Written already: made durable and put in place. On failure the
        // spool's file is removed.
        let path = paths::pack(&p.id);
        store.publish(spool, &path, pack_class(p.kind)).await?;
    } else {
        let bytes = Bytes::from(p.bytes);
        // On failure the slot is dropped with the pack: its place is free
        // again.
        store
            .put_as(&paths::pack(&p.id), bytes.clone(), pack_class(p.kind))
            .await?;
        // Once the store let go of its copy, the buffer is ours again; if
        // it kept one, the slot alone is given up.
        if let (Some(slot), Ok(buf)) = (p.slot, bytes.try_into_mut()) {
            slot.give_back(Vec::from(buf));
        }
    }
    shared
        .packs
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(p.id);
    let c = &shared.counters;
    match p.kind {
        Kind::Tree => &c.tree_packs,
        _ => &c.data_packs,
    }
    .fetch_add(1, Ordering::Relaxed);
    Ok(IndexPack {
        pack: p.id,
        blobs: p.entries,
    })
}

pub(super) async fn write_index(shared: &Shared, mut packs: Vec<IndexPack>) -> Result<()> {
    let repo = &shared.repo;
    // Uploads finish in any order; sorting makes the file's bytes depend
    // only on what it lists.
    packs.sort_by_key(|p| p.pack);
    let created = repo.clock().now();
    let file = IndexFile {
        session: shared.session.id,
        created,
        packs,
        tombstones: Vec::new(),
        supersedes: Vec::new(),
    };
    let plain = file.encode();
    let id = repo.keys().id_of(&plain);
    let sealed = seal(
        repo.keys(),
        Kind::Index,
        &id,
        &plain,
        Compression::Zstd(3),
        repo.rng(),
    );
    repo.store()
        .put(&paths::index(&id), Bytes::from(sealed))
        .await?;
    repo.write_index().add_file(id, &file);
    shared.indexed(&file);
    shared.counters.index_files.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Tree packs keep the metadata class: listings and browsing read them,
/// and they must never need a restore from an archival class.
pub(crate) fn pack_class(kind: Kind) -> cairn_store::ObjectClass {
    match kind {
        Kind::Tree => cairn_store::ObjectClass::Metadata,
        _ => cairn_store::ObjectClass::Data,
    }
}
