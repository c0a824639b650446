//! Helpers prune and `repair index` share: storing index files, copying
//! blobs into new packs, reading pack headers, reachability.

use bytes::Bytes;
use cairn_core::format::{IndexFile, IndexPack, NodeKind, PackBuilder, PackEntry, pack_v1};
use cairn_core::{Compression, Id, Kind, seal};

use crate::referenced::Referenced;
use crate::session_handle::SessionHandle;
use crate::writer::PACK_ENTRIES_MAX;
use crate::{BlobLocation, Error, Repository, Result, paths};

/// The most blobs one index file written by prune or repair lists, so no
/// single index file grows without bound.
pub(crate) const MAX_ENTRIES_PER_FILE: usize = 200_000;

impl Repository {
    /// Seals and stores an index file; returns its name. Readers merge it
    /// into their index when they next load it: it must only list blobs
    /// that really are where it says.
    pub async fn store_index_file(&self, file: &IndexFile) -> Result<Id> {
        let plain = file.encode();
        let id = self.keys().id_of(&plain);
        let sealed = seal(
            self.keys(),
            Kind::Index,
            &id,
            &plain,
            Compression::Zstd(3),
            self.rng(),
        );
        self.store()
            .put(&paths::index(&id), Bytes::from(sealed))
            .await?;
        Ok(id)
    }

    /// Writes `packs` as index files created at `created`, at most
    /// [`MAX_ENTRIES_PER_FILE`] blobs each. Only the last file names
    /// `supersedes`, so a reader that lists while they are being written sees
    /// either the old files or the complete new set, never a partial set that
    /// hides the old files. The packs go into the files in the order given:
    /// a compaction orders them by age, so that the packs a later prune
    /// deletes together sit in few files.
    pub(crate) async fn store_index_files(
        &self,
        session: Id,
        created: i64,
        packs: impl IntoIterator<Item = Result<IndexPack>>,
        supersedes: Vec<Id>,
    ) -> Result<Vec<Id>> {
        // One file's packs at a time: a compaction hands them over as it
        // reads them from its spool.
        let file = |packs: Vec<IndexPack>, last: bool| IndexFile {
            session,
            created,
            packs,
            tombstones: Vec::new(),
            supersedes: if last { supersedes.clone() } else { Vec::new() },
        };
        let mut ids = Vec::new();
        let mut group: Vec<IndexPack> = Vec::new();
        let mut n = 0;
        for p in packs {
            let p = p?;
            if n + p.blobs.len() > MAX_ENTRIES_PER_FILE && n > 0 {
                let full = file(std::mem::take(&mut group), false);
                ids.push(self.store_index_file(&full).await?);
                n = 0;
            }
            n += p.blobs.len();
            group.push(p);
        }
        if !group.is_empty() || !supersedes.is_empty() {
            ids.push(self.store_index_file(&file(group, true)).await?);
        }
        Ok(ids)
    }

    /// Reads a pack's header with one suffix read (and a second if the
    /// header is longer than the first guess). Returns the entries and the
    /// pack's size.
    pub(crate) async fn read_pack_header(&self, pack: &Id) -> Result<(Vec<PackEntry>, u64)> {
        let path = paths::pack(pack);
        let guess = 64 * 1024;
        let (mut tail, size) = self.store().get_suffix(&path, guess).await?;
        let corrupt = |detail: String| {
            Error::Format(cairn_core::Error::Corrupt {
                what: "pack header",
                detail: format!("{path}: {detail}"),
            })
        };
        if tail.len() < pack_v1::TRAILER_LEN {
            return Err(corrupt(format!("only {size} bytes")));
        }
        let mut t = [0u8; pack_v1::TRAILER_LEN];
        t.copy_from_slice(&tail[tail.len() - pack_v1::TRAILER_LEN..]);
        let hlen = u64::from(pack_v1::header_length(t));
        let need = hlen + pack_v1::TRAILER_LEN as u64;
        if need > size {
            return Err(corrupt(format!("header length {hlen} exceeds the pack")));
        }
        let most = cairn_core::max_plaintext(Kind::PackHeader) + cairn_core::SEAL_OVERHEAD;
        if hlen > most as u64 {
            return Err(corrupt(format!(
                "header length {hlen} exceeds the {most} byte limit"
            )));
        }
        if need > tail.len() as u64 {
            let (longer, now) = self.store().get_suffix(&path, need).await?;
            if now != size {
                return Err(corrupt(format!(
                    "changed size from {size} to {now} bytes while being read"
                )));
            }
            tail = longer;
        }
        // A server may answer a suffix read with fewer bytes than asked
        // (or the object may have been replaced): never index past them.
        let Some(start) = tail.len().checked_sub(need as usize) else {
            return Err(corrupt(format!(
                "a read of its last {need} bytes returned only {}",
                tail.len()
            )));
        };
        let sealed = &tail[start..tail.len() - pack_v1::TRAILER_LEN];
        let plain = cairn_core::open(self.keys(), Kind::PackHeader, pack, sealed)?;
        let entries =
            pack_v1::decode_header(&plain, size - need).map_err(|e| corrupt(e.to_string()))?;
        Ok((entries, size))
    }

    /// Copies `entries` of `pack` (verified) into `builders`, uploading every
    /// pack that reaches its target size. A bundle is copied whole, once,
    /// with the entries of its blobs among `entries` (the others are not
    /// listed again, so they are gone). Returns the index entries of the
    /// packs uploaded and the bytes written.
    pub(crate) async fn copy_blobs(
        &self,
        pack: &Id,
        entries: &[PackEntry],
        builders: &mut PackBuilders,
    ) -> Result<(Vec<IndexPack>, u64)> {
        let bytes = self.store().get(&paths::pack(pack)).await?;
        let mut done = Vec::new();
        let mut written = 0;
        for group in objects(entries) {
            let e = group[0];
            let sealed =
                bytes
                    .get(e.offset as usize..e.end() as usize)
                    .ok_or(Error::CorruptBlob {
                        id: e.id,
                        pack: *pack,
                        detail: "lies beyond the end of the pack".into(),
                    })?;
            // Never copy a damaged blob over a good pack's grave.
            let mut opener = self.range_opener();
            for m in &group {
                opener.open(&BlobLocation::in_pack(*pack, m), &m.id, sealed)?;
            }
            let (b, target) = match e.kind {
                Kind::Tree => (&mut builders.tree, self.config().tree_pack_size as usize),
                _ => (&mut builders.data, self.config().data_pack_size as usize),
            };
            // As the writer does: a pack lists at most PACK_ENTRIES_MAX
            // blobs, whatever their size (bundles of tiny files).
            if !b.is_empty() && b.entries().len() + group.len() > PACK_ENTRIES_MAX {
                let (p, n) = self.upload_pack(std::mem::take(b)).await?;
                done.push(p);
                written += n;
            }
            if e.kind == Kind::Bundle {
                let members: Vec<(Id, u32)> = group.iter().map(|m| (m.id, m.raw_length)).collect();
                b.push_bundle(sealed, &members);
            } else {
                b.push(e.kind, e.id, sealed, e.raw_length);
            }
            if b.len() >= target || b.entries().len() >= PACK_ENTRIES_MAX {
                let (p, n) = self.upload_pack(std::mem::take(b)).await?;
                done.push(p);
                written += n;
            }
        }
        Ok((done, written))
    }

    /// A new pack name: random, so packs of concurrent writers never
    /// collide.
    pub(crate) fn random_pack_id(&self) -> Id {
        let mut id = [0u8; 32];
        self.rng().fill(&mut id);
        Id::from_bytes(id)
    }

    /// Seals and uploads a pack; returns its index entries and size.
    pub(crate) async fn upload_pack(&self, b: PackBuilder) -> Result<(IndexPack, u64)> {
        let id = self.random_pack_id();
        let (bytes, blobs) = b.finish(self.keys(), &id, self.rng());
        let n = bytes.len() as u64;
        let kind = blobs.first().map_or(Kind::Data, |e| e.kind);
        self.store()
            .put_as(
                &paths::pack(&id),
                Bytes::from(bytes),
                crate::writer::pack_class(kind),
            )
            .await?;
        Ok((IndexPack { pack: id, blobs }, n))
    }

    /// Every blob reachable from the snapshots `ids`, gathered in `seen`
    /// (empty). Any snapshot or tree that cannot be read is an error:
    /// prune must not guess. The walk can take hours on a large
    /// repository: `keepalive`'s session is refreshed as it goes.
    pub(crate) async fn referenced_blobs(
        &self,
        ids: Vec<Id>,
        keepalive: Option<&SessionHandle>,
        mut seen: Referenced,
    ) -> Result<(usize, Referenced)> {
        let mut count = 0;
        for sid in ids {
            let snap = match self.load_snapshot(&sid).await {
                Ok(s) => s,
                // Forgotten between the listing and the read.
                Err(Error::Store(e)) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            count += 1;
            let mut stack = vec![snap.tree];
            while let Some(tid) = stack.pop() {
                if !seen.trees.insert(tid) {
                    continue;
                }
                if let Some(h) = keepalive {
                    self.refresh_if_due(h).await?;
                }
                // A node at a time: a tree may list millions of chunks.
                self.visit_tree(&tid, |node| {
                    match node.kind {
                        NodeKind::Dir => stack.extend(node.subtree),
                        NodeKind::File | NodeKind::BlockDevice => {
                            for c in &node.content {
                                seen.data.insert(c)?;
                            }
                        }
                        _ => {}
                    }
                    Ok(())
                })
                .await?;
            }
        }
        seen.seal()?;
        Ok((count, seen))
    }
}

/// `entries` as the objects they lie in, in order of first appearance:
/// one blob each, or the blobs of one bundle together.
fn objects(entries: &[PackEntry]) -> Vec<Vec<&PackEntry>> {
    let mut out: Vec<Vec<&PackEntry>> = Vec::new();
    let mut bundles: std::collections::HashMap<(u32, u32), usize> = Default::default();
    for e in entries {
        if e.kind != Kind::Bundle {
            out.push(vec![e]);
            continue;
        }
        match bundles.entry(e.range()) {
            std::collections::hash_map::Entry::Occupied(i) => out[*i.get()].push(e),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(out.len());
                out.push(vec![e]);
            }
        }
    }
    out
}

/// The open data and tree packs of a repack.
#[derive(Debug, Default)]
pub(crate) struct PackBuilders {
    data: PackBuilder,
    tree: PackBuilder,
}

impl PackBuilders {
    /// Uploads whatever is left.
    pub(crate) async fn finish(self, repo: &Repository) -> Result<(Vec<IndexPack>, u64)> {
        let mut done = Vec::new();
        let mut written = 0;
        for b in [self.data, self.tree] {
            if !b.is_empty() {
                let (p, n) = repo.upload_pack(b).await?;
                done.push(p);
                written += n;
            }
        }
        Ok((done, written))
    }
}
