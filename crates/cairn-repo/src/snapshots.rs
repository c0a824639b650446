//! Snapshot manifests: save, list, find.

use bytes::Bytes;
use cairn_core::format::Snapshot;
use cairn_core::{Compression, Id, Kind, open, seal};
use futures::{StreamExt, TryStreamExt};

use crate::repository::LOAD_CONCURRENCY;
use crate::{Error, Repository, Result, paths};

impl Repository {
    /// Seals and stores a snapshot; returns its id.
    ///
    /// Refuses if an index table this handle verified while in use turned
    /// out damaged ([`index_checked`](Self::index_checked)), or if a
    /// writer session of this handle lapsed (not refreshed
    /// recently enough, or removed by a prune that took it for dead), also
    /// just after the snapshot is stored, in which case the snapshot is
    /// deleted again: a prune may have listed `snapshots/` before it
    /// appeared. Then ends the sessions of finished writers with a "done"
    /// record naming the snapshot.
    pub async fn save_snapshot(&self, snap: &Snapshot) -> Result<Id> {
        // What the snapshot references was looked up in the index table:
        // one verified while in use must have passed (ADR 0028).
        self.index_checked().await?;
        self.verify_sessions().await?;
        let plain = snap.encode();
        let id = self.keys().id_of(&plain);
        let sealed = seal(
            self.keys(),
            Kind::Snapshot,
            &id,
            &plain,
            Compression::Zstd(3),
            self.rng(),
        );
        // Locked only once it stays: a retained snapshot could not be
        // taken back, and one a prune did not account for must not stay.
        let path = paths::snapshot(&id);
        self.store()
            .put_new_unlocked(&path, Bytes::from(sealed))
            .await?;
        if let Err(e) = self.verify_sessions().await {
            let _ = self.store().delete(&path).await;
            return Err(e);
        }
        if let Err(e) = self.store().lock(&path).await {
            // The snapshot is stored and accounted for: failing now would
            // end the session without its done record. The next `cairn
            // lock extend` locks a snapshot that has no retention.
            tracing::warn!("{path} is stored but not locked yet: {e}");
        }
        self.complete_finished_sessions(&id).await?;
        Ok(id)
    }

    /// Loads one snapshot by full id.
    pub async fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        self.load_snapshot_from(self.store(), id).await
    }

    /// Loads one snapshot by full id from `store` (this repository's, with
    /// or without its cache).
    pub(crate) async fn load_snapshot_from(
        &self,
        store: &cairn_store::Store,
        id: &Id,
    ) -> Result<Snapshot> {
        let sealed = store.get(&paths::snapshot(id)).await?;
        let plain = open(self.keys(), Kind::Snapshot, id, &sealed)?;
        Snapshot::decode(&plain).map_err(|e| {
            Error::Format(cairn_core::Error::Corrupt {
                what: "snapshot",
                detail: format!("{}: {e}", paths::snapshot(id)),
            })
        })
    }

    /// Ids of every snapshot, from a listing (nothing is decrypted).
    pub async fn snapshot_ids(&self) -> Result<Vec<Id>> {
        self.list_ids(paths::SNAPSHOTS).await
    }

    /// Every snapshot, oldest first.
    ///
    /// A snapshot that a concurrent `forget` deletes between the listing and
    /// the read is left out, as if the listing had come a moment later. A
    /// damaged snapshot is left out too, and named in
    /// [`damaged`](Self::damaged), so the others stay usable.
    pub async fn list_snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let ids = self.snapshot_ids().await?;
        let loaded: Vec<Option<(Id, Snapshot)>> = futures::stream::iter(ids)
            .map(|id| async move {
                match self.load_snapshot(&id).await {
                    Ok(s) => Ok(Some((id, s))),
                    Err(Error::Store(e)) if e.is_not_found() => Ok(None),
                    Err(e) if e.is_damage() => {
                        self.note_damage(paths::snapshot(&id), e.to_string());
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_collect()
            .await?;
        let mut snaps: Vec<(Id, Snapshot)> = loaded.into_iter().flatten().collect();
        snaps.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(snaps)
    }

    /// Resolves `latest` or a unique id prefix (at least 4 hex digits).
    pub async fn find_snapshot(&self, spec: &str) -> Result<(Id, Snapshot)> {
        if spec == "latest" {
            return self
                .list_snapshots()
                .await?
                .pop()
                .ok_or_else(|| Error::SnapshotNotFound(spec.to_owned()));
        }
        let spec_lc = spec.to_ascii_lowercase();
        if spec_lc.is_empty() || !spec_lc.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::SnapshotNotFound(spec.to_owned()));
        }
        let matches: Vec<Id> = self
            .snapshot_ids()
            .await?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&spec_lc))
            .collect();
        match matches.as_slice() {
            [] => Err(Error::SnapshotNotFound(spec.to_owned())),
            [id] => Ok((*id, self.load_snapshot(id).await?)),
            _ => Err(Error::AmbiguousSnapshot {
                prefix: spec.to_owned(),
                count: matches.len(),
            }),
        }
    }
}
