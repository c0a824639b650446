//! [`BlobWriter`]: deduplicate, seal, pack and upload blobs.
//!
//! Many threads call [`BlobWriter::add_blob`] at once (the backup pipeline
//! runs it on rayon). Full packs go through a bounded channel to one async
//! uploader task that keeps a few uploads in flight and writes an index file
//! every few packs, so a backup that is killed leaves its uploaded packs
//! indexed and the next backup deduplicates against them. Memory is bounded:
//! at most [`PACK_BUFFERS`] data packs exist at once (filling, queued or
//! uploading; see [`BufferPool`]), each within the configured pack size,
//! and one tree pack. In a local repository, data packs are not held in
//! memory at all: each blob is written into the pack's temporary file as
//! it is added ([`cairn_store::Spool`]), and the uploader makes the file
//! durable and renames it into place. To a remote store, data packs are
//! streamed as multipart uploads ([`cairn_store::Store::stream`]): at most
//! [`PART_BUFFERS`] parts of a third of a pack exist at once (one filling,
//! one uploading), and the uploader completes the upload.
//!
//! Before anything is deduplicated or uploaded, the uploader announces the
//! writer's session (`sessions/<id>`) and then reloads the index and lists
//! the packs, so every tombstone stored before the announcement is seen
//! (docs/MAINTENANCE.md) and no index entry whose pack is gone is trusted.
//! The uploader refreshes the session while it runs and aborts the writer
//! for good if the session lapsed; the session ends when the snapshot is
//! stored ([`Repository::save_snapshot`]) or when the writer fails.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};

use cairn_core::format::{BundleBuilder, IndexPack, PackBuilder, SessionPurpose};
use cairn_core::{Compression, Id, Kind, seal_into};
use cairn_store::BufferPool;
use tokio::sync::mpsc;

use crate::session_handle::SessionHandle;
use crate::{Error, Repository, Result};

mod bundle;
mod filling;
mod stats;
mod upload;
use filling::{Filling, FinishedPack};
use stats::Counters;
pub use stats::WriterStats;
pub(crate) use upload::pack_class;
use upload::{upload_loop, write_index};

/// A bundle (docs/FORMAT.md §7.1) is sealed once its plaintext (blobs and
/// directory) adds up to this many bytes, or a quarter of the data pack
/// size if that is less. Reading
/// one small file reads its whole bundle, so bundles stay small.
pub(crate) const BUNDLE_TARGET: usize = 1024 * 1024;
/// Data blobs of at most an eighth of the bundle target (128 KiB) are
/// stored in bundles: small files compress together, and a bundle stays
/// within 9/8 of its target.
pub(crate) const BUNDLE_BLOB_SHARE: usize = 8;

/// Pack uploads in flight at once.
const UPLOAD_CONCURRENCY: usize = 2;
/// Finished packs waiting for an upload slot.
const QUEUE_DEPTH: usize = 1;
/// Write an index file after this many uploaded packs, or sooner once the
/// packs not yet indexed list [`INDEX_EVERY_ENTRIES`] blobs.
const INDEX_EVERY_PACKS: usize = 8;
/// Entries a pack lists at most: a pack closes before its entries would
/// exceed it, whatever its size. A 16 MiB pack of bundles of tiny files
/// listed about 370,000 blobs (its header alone near its target), and the
/// writer held each entry four times (the pack's list, its header, the
/// index file and its encoding): 2^15 entries keep each copy under 2 MiB.
pub(crate) const PACK_ENTRIES_MAX: usize = 1 << 15;
/// Blobs an index file lists before it is written: with one pack's entries
/// over it at most, an index file lists under 2^16 blobs (3 MiB).
const INDEX_EVERY_ENTRIES: usize = PACK_ENTRIES_MAX;
/// How often the uploader wakes up to see whether the session needs a
/// refresh when no pack finishes (wall-clock; the decision uses the
/// repository's clock).
const REFRESH_WAKEUP: std::time::Duration = std::time::Duration::from_secs(15);

struct Shared {
    repo: Repository,
    session: Arc<SessionHandle>,
    /// Set by the uploader once the session is announced and the index
    /// reloaded; `add_blob` waits for it.
    ready: Mutex<Option<std::result::Result<(), String>>>,
    ready_cv: Condvar,
    /// `ready` holds `Ok`: read without the lock by every blob's call.
    ready_ok: std::sync::atomic::AtomicBool,
    /// Blobs this writer stored that no index file it wrote lists yet: an
    /// index file's blobs leave it once the index holds them, so it holds
    /// a few packs' blobs, not the run's.
    pending: Mutex<HashSet<Id>>,
    /// Bumped, under `pending`'s lock, each time blobs leave `pending`.
    indexed: std::sync::atomic::AtomicU64,
    /// Packs in `data/` when the session started, plus those this writer
    /// uploaded: a blob is deduplicated only against a copy in one of them,
    /// never on an index entry alone (an index file can outlive its pack).
    packs: std::sync::RwLock<HashSet<Id>>,
    data: Mutex<Filling>,
    tree: Mutex<Filling>,
    /// Small data blobs waiting for their bundle to fill (when `bundling`).
    bundle: Mutex<BundleBuilder>,
    /// The buffer of a sealed bundle, for the next bundle to fill.
    bundle_spare: Mutex<Option<Vec<u8>>>,
    bundling: bool,
    /// When a bundle is sealed, and the largest blob it takes.
    bundle_target: usize,
    bundle_blob_max: usize,
    /// The data packs' buffers: at most [`PACK_BUFFERS`] packs in memory,
    /// or [`PART_BUFFERS`] parts where packs are streamed.
    buffers: Arc<BufferPool>,
    /// Data packs are streamed (remote stores), in `buffers`' parts.
    streamed: bool,
    /// The runtime the parts of streamed packs are uploaded on.
    rt: tokio::runtime::Handle,
    /// Why the writer cannot go on: a pack's file could not be written,
    /// and the blobs it listed are lost.
    broken: Mutex<Option<String>>,
    counters: Counters,
}

thread_local! {
    /// Each thread seals into one buffer it keeps, rather than allocating
    /// one per blob (which fragmented the allocator, see `buffers`).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Data packs in memory at most: one filling and one uploading, or two
/// uploading while the writer waits to start the next. A third buffer
/// (one filling, two uploading) cost 16 MiB of peak RSS and gained no
/// time, locally or against Garage on loopback (docs/PERFORMANCE.md).
pub(crate) const PACK_BUFFERS: usize = 2;

/// Parts of streamed data packs in memory at most: one filling and one
/// uploading. A third (two uploading) kept the S3 backup of the PVC-like
/// dataset 0.2 s faster (about 3%) and its peak RSS 5 MiB higher, over the
/// 96 MiB budget (docs/PERFORMANCE.md, "S3 backup memory").
pub(crate) const PART_BUFFERS: usize = 2;

/// Adds blobs to a repository. See the module docs.
pub struct BlobWriter {
    shared: Arc<Shared>,
    tx: mpsc::Sender<FinishedPack>,
    uploader: tokio::task::JoinHandle<Result<Vec<IndexPack>>>,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter").finish_non_exhaustive()
    }
}

impl Shared {
    /// True if a live copy of `id` is indexed in a pack that exists.
    fn stored(&self, id: &Id) -> bool {
        let Some(loc) = self.repo.index().live_location(id) else {
            return false;
        };
        self.packs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&loc.pack)
    }

    /// Takes `id` for this writer to store: false if the repository or
    /// this writer has it already.
    fn claim(&self, id: &Id) -> bool {
        let seen = self.indexed.load(Ordering::Acquire);
        if self.stored(id) {
            return false;
        }
        let mut pending = lock(&self.pending);
        if pending.contains(id) {
            return false;
        }
        // An index file written since the lookup above may list it: its
        // blobs left `pending` after the index took them.
        if self.indexed.load(Ordering::Acquire) != seen && self.stored(id) {
            return false;
        }
        pending.insert(*id)
    }

    /// The blobs of `file`, now in the index, leave `pending`.
    fn indexed(&self, file: &cairn_core::format::IndexFile) {
        let mut pending = lock(&self.pending);
        for p in &file.packs {
            for e in &p.blobs {
                pending.remove(&e.id);
            }
        }
        self.indexed.fetch_add(1, Ordering::Release);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BlobWriter {
    /// Starts a writer that stores small data blobs in bundles when the
    /// repository compresses. Must be called inside a tokio runtime, which
    /// runs the uploader.
    pub fn new(repo: &Repository) -> Result<BlobWriter> {
        let compresses = repo.config().compression() != Compression::None;
        BlobWriter::with_bundles(repo, compresses)
    }

    /// Starts a writer that uses bundles or not. Without, it writes only
    /// objects of format version 1, which every release reads.
    pub fn with_bundles(repo: &Repository, bundling: bool) -> Result<BlobWriter> {
        let target = (repo.config().data_pack_size as usize / 4).min(BUNDLE_TARGET);
        BlobWriter::start(repo, bundling, target)
    }

    /// A writer that seals bundles at `target` bytes: for tests that need
    /// the larger bundles of other (or older) writers.
    #[doc(hidden)]
    pub fn with_bundle_target(repo: &Repository, target: usize) -> Result<BlobWriter> {
        BlobWriter::start(repo, true, target)
    }

    fn start(repo: &Repository, bundling: bool, bundle_target: usize) -> Result<BlobWriter> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Internal("BlobWriter::new needs a tokio runtime".into()))?;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let session = Arc::new(SessionHandle::new(repo.rng(), SessionPurpose::Backup));
        let pack_size = repo.config().data_pack_size as usize;
        let part = repo.store().stream_part_size(pack_size);
        let buffers = match part {
            Some(part) => BufferPool::new(PART_BUFFERS, part),
            None => BufferPool::new(PACK_BUFFERS, pack_size),
        };
        let shared = Arc::new(Shared {
            repo: repo.clone(),
            session,
            ready: Mutex::new(None),
            ready_cv: Condvar::new(),
            ready_ok: std::sync::atomic::AtomicBool::new(false),
            pending: Mutex::new(HashSet::new()),
            indexed: std::sync::atomic::AtomicU64::new(0),
            packs: std::sync::RwLock::new(HashSet::new()),
            data: Mutex::default(),
            tree: Mutex::default(),
            bundle: Mutex::default(),
            bundle_spare: Mutex::default(),
            bundling,
            bundle_target,
            bundle_blob_max: bundle_target / BUNDLE_BLOB_SHARE,
            buffers,
            streamed: part.is_some(),
            rt: handle.clone(),
            broken: Mutex::new(None),
            counters: Counters::default(),
        });
        let uploader = handle.spawn(upload_loop(shared.clone(), rx));
        Ok(BlobWriter {
            shared,
            tx,
            uploader,
        })
    }

    /// Adds a blob unless the repository or this writer already has it.
    /// Returns its id and whether it was new.
    ///
    /// Blocking (it may wait for an upload slot): call it from a plain or
    /// rayon thread, or `spawn_blocking`, never directly on an async task.
    pub fn add_blob(&self, kind: Kind, data: &[u8]) -> Result<(Id, bool)> {
        let repo = &self.shared.repo;
        // Readers refuse objects above their kind's limit, so a larger one
        // must never be written (a directory of millions of entries is the
        // one input that can reach it).
        let limit = cairn_core::max_plaintext(kind);
        if data.len() > limit {
            return Err(Error::InvalidArgument(format!(
                "a {kind} blob of {} bytes exceeds the {limit} byte limit for its kind",
                data.len(),
            )));
        }
        self.wait_ready()?;
        let id = repo.keys().blob_id(kind, data);
        if !self.shared.claim(&id) {
            return Ok((id, false));
        }
        if kind == Kind::Data && self.shared.bundling && data.len() <= self.shared.bundle_blob_max {
            self.add_to_bundle(id, data)?;
            return Ok((id, true));
        }
        SCRATCH.with_borrow_mut(|sealed| self.store_sealed(kind, id, data, sealed))?;
        Ok((id, true))
    }

    /// Seals `data` into the calling thread's `sealed` buffer and appends it
    /// to the pack of its kind, sending the pack off when full.
    fn store_sealed(&self, kind: Kind, id: Id, data: &[u8], sealed: &mut Vec<u8>) -> Result<()> {
        let repo = &self.shared.repo;
        seal_into(
            repo.keys(),
            kind,
            &id,
            data,
            repo.config().compression(),
            repo.rng(),
            sealed,
        );
        if kind == Kind::Tree {
            // The next backup compares against these trees: keep them local.
            if let Some(cache) = repo.store().cache() {
                cache.put(&crate::read::tree_cache_key(&id), sealed);
            }
        }
        self.count(kind, data.len(), sealed.len());
        let raw_len = data.len() as u32; // bounded by max_plaintext(kind) above
        self.append(kind, sealed, 1, |p| p.push(kind, id, sealed, raw_len))
    }

    /// Counts a new blob of `kind`: `raw` bytes of plaintext, `sealed`
    /// bytes stored (0 for a blob in a bundle, whose bytes count when the
    /// bundle is sealed).
    fn count(&self, kind: Kind, raw: usize, sealed: usize) {
        let c = &self.shared.counters;
        match kind {
            Kind::Tree => &c.tree_blobs,
            _ => &c.data_blobs,
        }
        .fetch_add(1, Ordering::Relaxed);
        c.bytes_added.fetch_add(raw as u64, Ordering::Relaxed);
        c.bytes_stored.fetch_add(sealed as u64, Ordering::Relaxed);
    }

    /// Appends the sealed object `sealed`, listed by `entries` entries (a
    /// blob, or a bundle's blobs), to the pack of `kind` with `push`,
    /// sending the pack off when full.
    fn append(
        &self,
        kind: Kind,
        sealed: &[u8],
        entries: usize,
        push: impl FnOnce(&mut PackBuilder),
    ) -> Result<()> {
        let (packer, target) = self.packer(kind);
        loop {
            let mut f = lock(packer);
            self.check_broken()?;
            // A pack, header included, stays within its target size unless
            // its only object is larger: a full one is sent off first.
            let size = f.pack.size_with_entries(sealed.len(), entries);
            let listed = f.pack.entries().len() + entries;
            if !f.pack.is_empty() && (size > target || listed > PACK_ENTRIES_MAX) {
                let full = std::mem::take(&mut *f);
                drop(f);
                self.send(kind, full)?;
                continue;
            }
            if kind != Kind::Tree && f.unstarted() {
                *f = self.start_data_pack()?;
            }
            if let Err(e) = f.push(sealed, push) {
                // The pack's file is dropped (and removed) with it.
                *f = Filling::default();
                return Err(self.broken_by(e));
            }
            // A pack that reached its target (a blob as large as a pack, on
            // its own) goes now rather than with the next blob: a writer
            // killed before then would have stored nothing.
            if f.pack.size() >= target || f.pack.entries().len() >= PACK_ENTRIES_MAX {
                let full = std::mem::take(&mut *f);
                drop(f);
                self.send(kind, full)?;
            }
            return Ok(());
        }
    }

    /// A new data pack: its file in a local repository, an upload to a
    /// remote store, else a buffer from the pool (waiting, if every buffer
    /// is in use, for an upload to end).
    fn start_data_pack(&self) -> Result<Filling> {
        let shared = &self.shared;
        let store = shared.repo.store();
        if let Some(spool) = store.spool(crate::paths::DATA) {
            return Ok(Filling {
                pack: PackBuilder::spooled(),
                spool: Some(spool?),
                ..Filling::default()
            });
        }
        if shared.streamed {
            let id = shared.repo.random_pack_id();
            let path = crate::paths::pack(&id);
            let class = pack_class(Kind::Data);
            return Ok(Filling {
                pack: PackBuilder::spooled(),
                spool: Some(store.stream(&shared.rt, &path, class, &shared.buffers)),
                id: Some(id),
                ..Filling::default()
            });
        }
        let (buf, slot) = shared.buffers.take();
        Ok(Filling {
            pack: PackBuilder::with_buffer(buf),
            slot: Some(slot),
            ..Filling::default()
        })
    }

    /// Marks the writer broken by `e`, a failed write to a pack's file:
    /// the file holds part of a blob, so the pack is lost with every blob
    /// it listed, and the writer fails from here on, so that no snapshot
    /// refers to them.
    fn broken_by(&self, e: Error) -> Error {
        *lock(&self.shared.broken) = Some(e.to_string());
        e
    }

    /// Fails once a pack's file could not be written.
    fn check_broken(&self) -> Result<()> {
        match lock(&self.shared.broken).as_ref() {
            Some(e) => Err(Error::Internal(format!("a pack could not be written: {e}"))),
            None => Ok(()),
        }
    }

    /// True if every blob of `ids` can be referenced without storing it
    /// again: live in the index with a pack that exists, or added by this
    /// writer. For the parent-snapshot shortcut, which reuses a file's
    /// chunk list unread. Waits, like [`add_blob`](Self::add_blob), until
    /// the session is announced and the index reloaded; blocking.
    pub fn reusable(&self, ids: &[Id]) -> Result<bool> {
        self.wait_ready()?;
        // Stored blobs first, without the lock every thread shares (an
        // unchanged file's are all stored); the rest are looked for among
        // this writer's pending blobs, and in the index again under the
        // lock, in case one was stored in between.
        let missing: Vec<&Id> = ids.iter().filter(|id| !self.shared.stored(id)).collect();
        if missing.is_empty() {
            return Ok(true);
        }
        let pending = lock(&self.shared.pending);
        Ok(missing
            .iter()
            .all(|id| pending.contains(*id) || self.shared.stored(id)))
    }

    /// Blobs stored that no index file written yet lists: for tests.
    #[doc(hidden)]
    pub fn pending_blobs(&self) -> usize {
        lock(&self.shared.pending).len()
    }

    /// The writer's session id (also in its index files).
    pub fn session(&self) -> Id {
        self.shared.session.id
    }

    /// Blocks until the session is announced and the index reloaded.
    fn wait_ready(&self) -> Result<()> {
        if self
            .shared
            .ready_ok
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Ok(());
        }
        let mut r = lock(&self.shared.ready);
        while r.is_none() {
            r = self
                .shared
                .ready_cv
                .wait(r)
                .unwrap_or_else(|p| p.into_inner());
        }
        match r.as_ref() {
            Some(Err(e)) => Err(Error::Internal(format!("cannot start the session: {e}"))),
            _ => Ok(()),
        }
    }

    /// What was added so far.
    pub fn stats(&self) -> WriterStats {
        self.shared.counters.snapshot()
    }

    fn packer(&self, kind: Kind) -> (&Mutex<Filling>, usize) {
        let config = self.shared.repo.config();
        match kind {
            Kind::Tree => (&self.shared.tree, config.tree_pack_size as usize),
            _ => (&self.shared.data, config.data_pack_size as usize),
        }
    }

    /// Seals a full pack and queues it for the uploader (blocking while the
    /// queue is full).
    fn send(&self, kind: Kind, full: Filling) -> Result<()> {
        let pack = self.seal_pack(kind, full)?;
        self.tx
            .blocking_send(pack)
            .map_err(|_| Error::Internal("the pack uploader stopped after an error".into()))
    }

    /// Seals a pack's header; for a spooled pack, writes it to the file
    /// or upload.
    fn seal_pack(&self, kind: Kind, f: Filling) -> Result<FinishedPack> {
        let repo = &self.shared.repo;
        let id = f.id.unwrap_or_else(|| repo.random_pack_id());
        let mut spool = f.spool;
        let (mut bytes, entries) = f.pack.finish(repo.keys(), &id, repo.rng());
        if let Some(spool) = &mut spool {
            spool.write(&bytes).map_err(|e| self.broken_by(e.into()))?;
            bytes = Vec::new();
        }
        Ok(FinishedPack {
            id,
            kind,
            bytes,
            entries,
            slot: f.slot,
            spool,
        })
    }

    /// Seals the packs still filling and sends them to the uploader;
    /// true if the uploader had stopped. Fails, sending nothing more, once
    /// a pack could not be written (its blobs are lost: no snapshot may
    /// refer to them).
    async fn send_rest(&self) -> Result<bool> {
        let mut send_failed = false;
        let mut data = std::mem::take(&mut *lock(&self.shared.data));
        // This task must not wait for the uploads to give part buffers back.
        data.never_wait();
        let rest = std::mem::take(&mut *lock(&self.shared.bundle));
        if !rest.is_empty() {
            // Not through `append`, which blocks: this pack may go without
            // a buffer from the pool, as it holds only this bundle.
            let mut sealed = Vec::new();
            let members = self.seal_bundle(rest, &mut sealed);
            let target = self.shared.repo.config().data_pack_size as usize;
            let size = data.pack.size_with_entries(sealed.len(), members.len());
            if !data.pack.is_empty() && size > target {
                let pack = self.seal_pack(Kind::Data, std::mem::take(&mut data));
                send_failed |= self.tx.send(pack?).await.is_err();
            }
            data.push(&sealed, |p| p.push_bundle(&sealed, &members))
                .map_err(|e| self.broken_by(e))?;
        }
        *lock(&self.shared.data) = data;
        self.check_broken()?;
        for kind in [Kind::Data, Kind::Tree] {
            let f = std::mem::take(&mut *lock(self.packer(kind).0));
            if !f.pack.is_empty() {
                let pack = self.seal_pack(kind, f)?;
                send_failed |= self.tx.send(pack).await.is_err();
            }
        }
        Ok(send_failed)
    }

    /// Uploads what is left, waits for every upload, and writes the last
    /// index file. After this returns, every blob added is readable by a
    /// fresh [`Repository::open`]. On an error (a pack that could not be
    /// written, an upload that failed), the packs that were stored are
    /// still indexed before it is returned, so the next backup reuses them.
    pub async fn finish(self) -> Result<WriterStats> {
        let sent = self.send_rest().await;
        let BlobWriter {
            shared,
            tx,
            uploader,
        } = self;
        drop(tx);
        let result = async {
            let rest = uploader
                .await
                .map_err(|e| Error::Internal(format!("uploader task: {e}")))??;
            if !rest.is_empty() {
                write_index(&shared, rest).await?;
            }
            if sent? {
                return Err(Error::Internal("the pack uploader stopped early".into()));
            }
            Ok(shared.counters.snapshot())
        }
        .await;
        match result {
            Ok(stats) => {
                // The session stays until the snapshot is stored: until then
                // its blobs are referenced by nothing prune can see.
                shared.session.mark_finished();
                Ok(stats)
            }
            Err(e) => {
                // Best effort: a session left behind only delays prune until
                // it goes stale.
                let _ = shared.repo.end_session(&shared.session.id).await;
                Err(e)
            }
        }
    }
}
