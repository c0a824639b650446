//! Reading blobs and trees.

use bytes::Bytes;
use cairn_core::format::Node;
use cairn_core::format::Tree;
use cairn_core::{Id, Kind, open, open_owned};

use crate::{BlobLocation, Error, Repository, Result, paths};

impl Repository {
    /// Where a blob is stored, or [`Error::BlobNotIndexed`].
    pub fn locate(&self, id: &Id) -> Result<BlobLocation> {
        self.index()
            .get(id)
            .ok_or(Error::BlobNotIndexed { id: *id })
    }

    /// The ids of the objects under `prefix` (`index`, `snapshots`,
    /// `sessions`, `data`), from one listing; other names are ignored.
    pub(crate) async fn list_ids(&self, prefix: &str) -> Result<Vec<Id>> {
        Ok(self
            .store()
            .list(prefix)
            .await?
            .iter()
            .filter_map(|o| paths::id_in(prefix, &o.path))
            .collect())
    }

    /// Every pack in the store, with its size, from one listing of `data/`.
    pub async fn list_packs(&self) -> Result<std::collections::HashMap<Id, u64>> {
        Ok(self
            .store()
            .list(paths::DATA)
            .await?
            .into_iter()
            .filter_map(|o| paths::id_in(paths::DATA, &o.path).map(|id| (id, o.size)))
            .collect())
    }

    /// Downloads a blob's sealed bytes with one ranged read. Tree blobs go
    /// through the store's local cache, if it has one, keyed by id (writers
    /// put the trees they seal there too); file data never does. A cached
    /// copy is authenticated like any other when opened. Trees of remote
    /// repositories are read with the window of their pack around them
    /// (`windows.rs`).
    pub async fn fetch_blob(&self, id: &Id) -> Result<(BlobLocation, Bytes)> {
        let loc = self.locate(id)?;
        let start = u64::from(loc.offset);
        let range = start..start + u64::from(loc.length);
        let path = paths::pack(&loc.pack);
        let cache = self
            .store()
            .cache()
            .filter(|_| loc.kind == cairn_core::Kind::Tree);
        let read = async {
            if loc.kind == Kind::Tree && self.inner.windows.on() {
                return self.fetch_in_window(&loc).await;
            }
            Ok(self.store().get_range(&path, range).await?)
        };
        let Some(cache) = cache else {
            return Ok((loc, read.await?));
        };
        let key = tree_cache_key(id);
        if let Some(hit) = cache.get(&key).filter(|b| b.len() == loc.length as usize) {
            return Ok((loc, hit));
        }
        let sealed = read.await?;
        cache.put(&key, &sealed);
        Ok((loc, sealed))
    }

    /// Downloads `range` of a pack with one ranged read: restores that need
    /// several blobs lying close together in a pack fetch them at once and
    /// open each with [`Repository::open_blob`].
    pub async fn fetch_pack_range(&self, pack: &Id, range: std::ops::Range<u64>) -> Result<Bytes> {
        Ok(self.store().get_range(&paths::pack(pack), range).await?)
    }

    /// Opens sealed blob bytes and verifies that they hash to `id`; for a
    /// blob in a bundle, `sealed` is the whole bundle (the range its index
    /// entry gives). CPU-bound: async callers with large blobs should run it
    /// on a blocking thread.
    pub fn open_blob(&self, loc: &BlobLocation, id: &Id, sealed: &[u8]) -> Result<Vec<u8>> {
        if loc.kind == Kind::Bundle {
            return self.open_bundled(loc, id, sealed);
        }
        let plain = open(self.keys(), loc.kind, id, sealed);
        self.verified(loc, id, plain)
    }

    /// [`Repository::open_blob`] of bytes the caller gives up: decrypted in
    /// place when nothing else holds them, so a large tree takes its size
    /// once while it opens instead of twice.
    pub(crate) fn open_blob_owned(
        &self,
        loc: &BlobLocation,
        id: &Id,
        sealed: Bytes,
    ) -> Result<Vec<u8>> {
        if loc.kind == Kind::Bundle {
            return self.open_bundled(loc, id, &sealed);
        }
        // Without a copy when nothing else holds the bytes; a blob cut
        // from a larger buffer gives the rest back.
        let mut sealed = Vec::from(sealed);
        if sealed.capacity() > 2 * sealed.len() {
            sealed.shrink_to_fit();
        }
        let plain = open_owned(self.keys(), loc.kind, id, sealed);
        self.verified(loc, id, plain)
    }

    /// `plain`, opened from `loc`, if it has the indexed length and hashes
    /// to `id`.
    fn verified(
        &self,
        loc: &BlobLocation,
        id: &Id,
        plain: cairn_core::Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let corrupt = |detail: String| Error::CorruptBlob {
            id: *id,
            pack: loc.pack,
            detail,
        };
        let plain = plain.map_err(|e| corrupt(e.to_string()))?;
        if plain.len() != loc.raw_length as usize {
            return Err(corrupt(format!(
                "length {} differs from the indexed {}",
                plain.len(),
                loc.raw_length
            )));
        }
        if self.keys().blob_id(loc.kind, &plain) != *id {
            return Err(corrupt("content does not hash to its id".into()));
        }
        Ok(plain)
    }

    /// Reads, opens and verifies a blob, checking it is of `kind`. When the
    /// indexed copy cannot be read (its pack is gone or damaged), every
    /// other copy the index files list is tried before giving up.
    pub async fn read_blob(&self, kind: Kind, id: &Id) -> Result<Vec<u8>> {
        let first = match self.fetch_blob(id).await {
            Ok((loc, sealed)) => self.open_as_owned(kind, id, &loc, sealed),
            Err(e) => Err(e),
        };
        match first {
            Ok(plain) => Ok(plain),
            Err(e) => self.read_other_copy(kind, id, e).await,
        }
    }

    /// [`Repository::read_blob`] with the opening (decryption,
    /// decompression, hashing) on a blocking thread: for restores, which
    /// read many large blobs from async tasks.
    pub async fn read_blob_blocking(&self, kind: Kind, id: &Id) -> Result<Vec<u8>> {
        let first = match self.fetch_blob(id).await {
            Ok((loc, sealed)) => {
                let (repo, id) = (self.clone(), *id);
                tokio::task::spawn_blocking(move || repo.open_as_owned(kind, &id, &loc, sealed))
                    .await
                    .map_err(|e| Error::Internal(format!("blob task failed: {e}")))?
            }
            Err(e) => Err(e),
        };
        match first {
            Ok(plain) => Ok(plain),
            Err(e) => self.read_other_copy(kind, id, e).await,
        }
    }

    /// After the indexed copy of a blob failed with `err`, tries every other
    /// copy that an index file lists; `err` if none opens. A blob that no
    /// index lists has no other copy.
    pub async fn read_other_copy(&self, kind: Kind, id: &Id, err: Error) -> Result<Vec<u8>> {
        if let Error::BlobNotIndexed { .. } = err {
            return Err(err);
        }
        let failed = self.locate(id).ok();
        for loc in self.blob_copies(id).await? {
            if Some(loc) == failed {
                continue;
            }
            let start = u64::from(loc.offset);
            let range = start..start + u64::from(loc.length);
            let Ok(sealed) = self.fetch_pack_range(&loc.pack, range).await else {
                continue;
            };
            if let Ok(plain) = self.open_as(kind, id, &loc, &sealed) {
                tracing::warn!("blob {id}: read from pack {} after: {err}", loc.pack);
                return Ok(plain);
            }
        }
        Err(err)
    }

    /// Every copy of a blob that any index file lists (superseded files
    /// included: their packs may still be there). Reads every index file:
    /// for the rare reads whose first copy failed.
    pub async fn blob_copies(&self, id: &Id) -> Result<Vec<BlobLocation>> {
        let mut out: Vec<BlobLocation> = Vec::new();
        for (_, f) in self.read_index_files().await? {
            for p in &f.packs {
                for e in p.blobs.iter().filter(|e| e.id == *id) {
                    let loc = BlobLocation::in_pack(p.pack, e);
                    if !out.contains(&loc) {
                        out.push(loc);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Opens `sealed`, read from `loc`, as a blob of `kind`.
    fn open_as(&self, kind: Kind, id: &Id, loc: &BlobLocation, sealed: &[u8]) -> Result<Vec<u8>> {
        Self::is_as(kind, id, loc)?;
        self.open_blob(loc, id, sealed)
    }

    /// [`Repository::open_as`] of bytes the caller gives up.
    fn open_as_owned(
        &self,
        kind: Kind,
        id: &Id,
        loc: &BlobLocation,
        sealed: Bytes,
    ) -> Result<Vec<u8>> {
        Self::is_as(kind, id, loc)?;
        self.open_blob_owned(loc, id, sealed)
    }

    /// An error unless `loc` indexes a blob of `kind`.
    fn is_as(kind: Kind, id: &Id, loc: &BlobLocation) -> Result<()> {
        if loc.kind.content() != kind {
            return Err(Error::CorruptBlob {
                id: *id,
                pack: loc.pack,
                detail: format!("indexed as {} but referenced as {kind}", loc.kind),
            });
        }
        Ok(())
    }

    /// Reads and decodes a tree on the calling thread, from a local
    /// repository ([`cairn_store::Store::get_range_now`]); `None` for other
    /// stores and on any error, for the caller to use
    /// [`load_tree`](Self::load_tree), which reports errors and tries
    /// other copies. Blocking: for threads that may block (the backup's
    /// walk).
    pub fn load_tree_now(&self, id: &Id) -> Option<Tree> {
        let loc = self.locate(id).ok()?;
        let start = u64::from(loc.offset);
        let range = start..start + u64::from(loc.length);
        let sealed = self
            .store()
            .get_range_now(&paths::pack(&loc.pack), range)?
            .ok()?;
        let plain = self.open_as(Kind::Tree, id, &loc, &sealed).ok()?;
        Tree::decode(&plain).ok()
    }

    /// Reads a tree and gives its nodes to `f` one at a time
    /// ([`Tree::visit`]): a walk that needs each node once holds the
    /// tree's plaintext, not its decoded nodes as well. Stops at the first
    /// error of `f`; `f` may have seen nodes of a tree that turns out
    /// corrupt.
    pub(crate) async fn visit_tree(
        &self,
        id: &Id,
        f: impl FnMut(Node) -> Result<()>,
    ) -> Result<()> {
        let plain = self.read_blob(Kind::Tree, id).await?;
        Tree::visit(&plain, f).map_err(|e| Error::CorruptBlob {
            id: *id,
            pack: self.locate(id).map(|l| l.pack).unwrap_or_default(),
            detail: e.to_string(),
        })?
    }

    /// Reads and decodes a tree.
    pub async fn load_tree(&self, id: &Id) -> Result<Tree> {
        let plain = self.read_blob(Kind::Tree, id).await?;
        Tree::decode(&plain).map_err(|e| Error::CorruptBlob {
            id: *id,
            pack: self.locate(id).map(|l| l.pack).unwrap_or_default(),
            detail: e.to_string(),
        })
    }
}

/// The cache key of a sealed tree blob.
pub(crate) fn tree_cache_key(id: &Id) -> String {
    format!("trees/{id}")
}
