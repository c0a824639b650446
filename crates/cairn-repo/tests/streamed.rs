//! A writer into a remote store streams its data packs as multipart
//! uploads (`cairn_store::Store::stream`) instead of holding them whole in
//! memory: every part but the last is at least the store's smallest part,
//! the repository reads back as one written by a writer that holds packs
//! whole, an upload that breaks off fails the backup and leaves no pack,
//! and one dropped early is aborted. Against an in-memory store made to
//! stream, and against Garage (skipped without `CAIRN_TEST_S3_URL`).

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cairn_core::{FixedClock, Kind};
use cairn_repo::{BlobWriter, CheckOptions, InitOptions, Maintenance, Repository};
use cairn_store::{FaultConfig, FaultStore, Store};
use common::*;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};

const PACK: u32 = 64 * 1024;
/// The smallest part the test store takes (a third of a pack is more).
const MIN_PART: usize = 16 * 1024;

/// What the store saw: each multipart upload's path and part sizes, and
/// whether it was completed or aborted.
#[derive(Debug, Default)]
struct Seen {
    uploads: Vec<Upload>,
    /// Set by a test: every part from now on fails.
    fail_parts: bool,
}

#[derive(Debug, Default, Clone)]
struct Upload {
    path: String,
    parts: Vec<usize>,
    completed: bool,
    aborted: bool,
}

/// An in-memory store that records its multipart uploads.
#[derive(Debug)]
struct Recorder {
    inner: InMemory,
    seen: Arc<Mutex<Seen>>,
}

impl std::fmt::Display for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

#[derive(Debug)]
struct RecordedUpload {
    inner: Box<dyn MultipartUpload>,
    seen: Arc<Mutex<Seen>>,
    n: usize,
}

impl RecordedUpload {
    fn with(&self, f: impl FnOnce(&mut Upload)) {
        f(&mut self.seen.lock().expect("seen").uploads[self.n]);
    }
}

#[async_trait]
impl MultipartUpload for RecordedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        if self.seen.lock().expect("seen").fail_parts {
            return Box::pin(async {
                Err(object_store::Error::Generic {
                    store: "recorder",
                    source: "part refused".into(),
                })
            });
        }
        self.with(|u| u.parts.push(data.content_length()));
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.with(|u| u.completed = true);
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.with(|u| u.aborted = true);
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for Recorder {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        let n = {
            let mut seen = self.seen.lock().expect("seen");
            seen.uploads.push(Upload {
                path: location.to_string(),
                ..Upload::default()
            });
            seen.uploads.len() - 1
        };
        Ok(Box::new(RecordedUpload {
            inner,
            seen: self.seen.clone(),
            n,
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A repository whose store streams packs in parts of at least
/// [`MIN_PART`], behind `faults`; returns what the store saw.
async fn streaming_repo(faults: FaultConfig) -> (Repository, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorder = Recorder {
        inner: InMemory::new(),
        seen: seen.clone(),
    };
    let faulty = FaultStore::new(Arc::new(recorder), faults);
    let store =
        Store::from_object_store(Arc::new(faulty), "recorder".into()).with_streaming(MIN_PART);
    assert_eq!(store.stream_part_size(PACK as usize), Some(21_846));
    let mut opts = InitOptions::insecure_fast_for_tests();
    opts.data_pack_size = Some(PACK);
    opts.clock = Arc::new(FixedClock::new(T0));
    let repo = Repository::init(store, PASSWORD, opts).await.expect("init");
    (repo, seen)
}

/// Files of a mix of sizes: bundled, single and larger than a pack.
fn files() -> Vec<(String, Vec<u8>)> {
    (0..90u64)
        .map(|i| {
            let len = match i % 3 {
                0 => 100_000,
                1 => 3_000 + i as usize * 11,
                _ => 30_000,
            };
            (format!("f{i:03}"), content(i, len))
        })
        .collect()
}

fn uploads(seen: &Mutex<Seen>) -> Vec<Upload> {
    seen.lock().expect("seen").uploads.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_writer_streams_its_packs_in_parts_and_they_read_back() {
    let (repo, seen) = streaming_repo(FaultConfig::default()).await;
    let files = files();
    let snap = backup(&repo, "h", &files).await;
    let packs = repo.list_packs().await.expect("list");
    let ups = uploads(&seen);
    assert!(ups.len() >= 40, "{} uploads", ups.len());
    for u in &ups {
        assert!(u.path.starts_with("data/"), "{}", u.path);
        assert!(u.completed && !u.aborted, "{u:?}");
        // S3's rule: every part but the last at least the smallest part.
        let (last, rest) = u.parts.split_last().expect("a part");
        assert!(rest.iter().all(|&p| p >= MIN_PART), "{u:?}");
        assert!(*last > 0, "{u:?}");
        // Listed, under the name it was started for, with every byte.
        let id = u
            .path
            .rsplit('/')
            .next()
            .expect("name")
            .parse()
            .expect("id");
        let size = packs.get(&id).copied().expect("a listed pack");
        assert_eq!(size, u.parts.iter().sum::<usize>() as u64, "{u:?}");
        // Three parts at most, but for a pack of one blob larger than a
        // pack.
        assert!(u.parts.len() <= 3 || size > u64::from(PACK), "{u:?}");
    }
    // Packs of more than one part: most data packs are full.
    assert!(ups.iter().filter(|u| u.parts.len() >= 3).count() >= 20);
    assert_eq!(restore(&repo, &snap).await, files);
    let mut o = CheckOptions::default();
    o.read_data = true;
    let report = repo.check(o).await.expect("check");
    assert!(report.is_ok(), "{:#?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_that_fails_fails_the_backup_leaves_no_snapshot_nor_partial_pack_and_indexes_the_stored_ones()
 {
    let (repo, seen) = streaming_repo(FaultConfig {
        fail_parts_after: Some(10),
        prefix: "data/".into(),
        ..Default::default()
    })
    .await;
    let writer = BlobWriter::new(&repo).expect("writer");
    let files = files();
    let (writer, added) = tokio::task::spawn_blocking(move || {
        let added: Result<Vec<_>, _> = files
            .iter()
            .map(|(_, data)| writer.add_blob(Kind::Data, data))
            .collect();
        (writer, added)
    })
    .await
    .expect("join");
    let finished = writer.finish().await;
    assert!(
        added.is_err() || finished.is_err(),
        "a backup whose upload failed went on"
    );
    assert!(repo.list_snapshots().await.expect("list").is_empty());
    // Every upload that failed was aborted, and no pack that is listed
    // lacks a byte: the repository checks clean, data included.
    let ups = uploads(&seen);
    assert!(ups.iter().any(|u| u.aborted), "{ups:?}");
    // The packs that were stored before it are indexed: the next backup
    // reuses them.
    assert!(ups.iter().any(|u| u.completed), "{ups:?}");
    let left = repo.check_leftovers().await.expect("leftovers");
    assert!(left.unindexed_packs.is_empty(), "{left:?}");
    let packs = repo.list_packs().await.expect("list");
    for u in ups.iter().filter(|u| !u.completed) {
        let id = u
            .path
            .rsplit('/')
            .next()
            .expect("name")
            .parse()
            .expect("id");
        assert!(!packs.contains_key(&id), "{u:?}");
    }
    let mut o = CheckOptions::default();
    o.read_data = true;
    let report = repo.check(o).await.expect("check");
    assert!(report.is_ok(), "{:#?}", report.errors);
}

/// Waits until `done` holds for what the store saw.
async fn until(seen: &Mutex<Seen>, done: impl Fn(&[Upload]) -> bool) {
    for _ in 0..500 {
        if done(&seen.lock().expect("seen").uploads) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("never: {:?}", uploads(seen));
}

/// A pack whose upload breaks while it fills breaks the writer: `finish`
/// fails, and still indexes the pack stored before, which the next backup
/// reuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_that_breaks_while_filling_fails_finish_after_indexing_the_stored_ones() {
    let (repo, seen) = streaming_repo(FaultConfig::default()).await;
    let writer = Arc::new(BlobWriter::new(&repo).expect("writer"));
    let add = |w: &Arc<BlobWriter>, range: std::ops::Range<u64>| {
        let w = w.clone();
        tokio::task::spawn_blocking(move || {
            range
                .map(|i| w.add_blob(Kind::Data, &content(i, 10_000)).map(|_| ()))
                .collect::<Result<Vec<()>, _>>()
        })
    };
    // Six blobs fill the first pack; the seventh seals it and starts the
    // second, short of a part.
    add(&writer, 0..7).await.expect("join").expect("add");
    until(&seen, |u| u.first().is_some_and(|u| u.completed)).await;
    seen.lock().expect("seen").fail_parts = true;
    // Its first part fails: the upload is aborted.
    add(&writer, 7..9).await.expect("join").expect("add");
    until(&seen, |u| u.get(1).is_some_and(|u| u.aborted)).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let writer = Arc::into_inner(writer).expect("one writer");
    assert!(writer.finish().await.is_err(), "a broken writer finished");
    let left = repo.check_leftovers().await.expect("leftovers");
    assert!(left.unindexed_packs.is_empty(), "{left:?}");
    assert_eq!(repo.list_packs().await.expect("list").len(), 1);
    seen.lock().expect("seen").fail_parts = false;
    let files: Vec<_> = (0..9u64)
        .map(|i| (format!("f{i}"), content(i, 10_000)))
        .collect();
    let writer = BlobWriter::new(&repo).expect("writer");
    let (writer, added) = tokio::task::spawn_blocking(move || {
        let added = files
            .iter()
            .filter(|(_, d)| writer.add_blob(Kind::Data, d).expect("add").1)
            .count();
        (writer, added)
    })
    .await
    .expect("join");
    writer.finish().await.expect("finish");
    assert_eq!(added, 3, "the six blobs of the stored pack are reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_dropped_while_a_pack_streams_aborts_its_upload() {
    let (repo, seen) = streaming_repo(FaultConfig::default()).await;
    let writer = BlobWriter::new(&repo).expect("writer");
    let writer = tokio::task::spawn_blocking(move || {
        // More than a part and less than a pack: one part is up, and the
        // pack is still filling when the writer goes.
        writer
            .add_blob(Kind::Data, &content(1, 40_000))
            .expect("add");
        writer
    })
    .await
    .expect("join");
    drop(writer);
    // The upload may start after the writer is gone: wait for it, and for
    // its abort (an empty list is not yet an aborted one).
    for _ in 0..500 {
        let ups = uploads(&seen);
        if !ups.is_empty() && ups.iter().all(|u| u.aborted) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let ups = uploads(&seen);
    assert_eq!(ups.len(), 1, "{ups:?}");
    assert!(ups[0].aborted && !ups[0].completed, "{ups:?}");
    assert_eq!(ups[0].parts, [21_846], "{ups:?}");
    assert!(repo.list_packs().await.expect("list").is_empty());
}

/// Against Garage: a backup of 40 MiB of incompressible data streams its
/// full (15 MiB and more) packs in three parts (an S3 multipart ETag ends `-3`) and
/// reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packs_stream_to_a_real_s3_server_in_three_parts() {
    let Some(store) = garage("streamed") else {
        return;
    };
    assert_eq!(store.stream_part_size(16 << 20), Some((16 << 20) / 3 + 1));
    let repo = Repository::init(store, PASSWORD, InitOptions::insecure_fast_for_tests())
        .await
        .expect("init");
    assert_eq!(repo.config().data_pack_size, 16 << 20);
    // Blobs of 1 MiB, as chunks are: full packs of 15 blobs.
    let files: Vec<_> = (0..40u64)
        .map(|i| (format!("f{i:02}"), content(i, 1 << 20)))
        .collect();
    let snap = backup(&repo, "h", &files).await;
    let inner = repo.store().object_store().clone();
    let mut tags = Vec::new();
    for o in repo.store().list("data/").await.expect("list") {
        let meta = inner.head(&Path::from(o.path)).await.expect("head");
        tags.push((o.size, meta.e_tag.unwrap_or_default()));
    }
    let full: Vec<_> = tags.iter().filter(|(s, _)| *s >= 15 << 20).collect();
    assert!(!full.is_empty(), "{tags:?}");
    for (_, tag) in full {
        assert!(tag.trim_matches('"').ends_with("-3"), "{tags:?}");
    }
    assert_eq!(restore(&repo, &snap).await, files);
}

/// Against Garage: the upload of a pack a killed writer was streaming
/// (started, a part sent, never completed nor aborted) is invisible to
/// listings; `check` reports it, prune leaves it while it is younger than
/// the grace period, and aborting it removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_writers_upload_is_found_and_can_be_aborted_on_a_real_s3_server() {
    let Some(store) = garage("pending") else {
        return;
    };
    let repo = Repository::init(store, PASSWORD, InitOptions::insecure_fast_for_tests())
        .await
        .expect("init");
    let path = format!("data/ab/{}", "ab".repeat(32));
    let inner = repo.store().object_store().clone();
    let mut upload = inner
        .put_multipart(&Path::from(path.as_str()))
        .await
        .expect("start");
    upload
        .put_part(vec![1u8; 5 << 20].into())
        .await
        .expect("part");
    // The process is killed here: nothing completes or aborts it.
    std::mem::forget(upload);

    assert!(repo.store().list("data/").await.expect("list").is_empty());
    let found = repo.check_leftovers().await.expect("leftovers");
    assert_eq!(found.pending_uploads.len(), 1, "{found:?}");
    let (p, id, age) = &found.pending_uploads[0];
    assert_eq!(p, &path);
    assert!((0..600).contains(age), "{age}");
    assert!(
        found
            .describe()
            .iter()
            .any(|l| l.contains("never completed"))
    );

    let mut opts = cairn_repo::PruneOptions::default();
    opts.grace = cairn_repo::MIN_GRACE;
    repo.prune(opts).await.expect("prune");
    assert_eq!(repo.pending_uploads(0).await.expect("pending").len(), 1);

    let pending = cairn_store::PendingUpload {
        path: path.clone(),
        upload_id: id.clone(),
        initiated: String::new(),
    };
    repo.store().abort_upload(&pending).await.expect("abort");
    assert!(repo.pending_uploads(0).await.expect("pending").is_empty());
    // Aborting one that is gone is no error (another prune got there first).
    repo.store()
        .abort_upload(&pending)
        .await
        .expect("abort again");
}

/// Against moto's object-lock bucket (scripts/moto.sh): a streamed pack,
/// completed from its parts, is given the repository's retention as a
/// pack written whole is, and reads back. Skipped without moto unless
/// `CAIRN_REQUIRE_MOTO` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_packs_are_locked_in_an_object_lock_bucket() {
    let Ok(base) = std::env::var("CAIRN_TEST_MOTO_LOCK_URL") else {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_MOTO").is_none(),
            "CAIRN_REQUIRE_MOTO is set but CAIRN_TEST_MOTO_LOCK_URL is not"
        );
        eprintln!("SKIP: CAIRN_TEST_MOTO_LOCK_URL is not set");
        return;
    };
    let (head, query) = base.split_once('?').unwrap_or((&base, ""));
    let url = format!("{head}/streamed-{}?{query}", std::process::id());
    let store = Store::open(&url, cairn_store::Create::IfMissing).expect("store");
    let mut opts = InitOptions::insecure_fast_for_tests();
    let mut lock = cairn_repo::SettingsChange::new();
    lock.lock = Some(Some(cairn_core::format::Lock {
        mode: cairn_core::format::LockMode::Governance,
        seconds: 3600,
    }));
    opts.settings = lock;
    let repo = Repository::init(store, PASSWORD, opts).await.expect("init");
    let files: Vec<_> = (0..20u64)
        .map(|i| (format!("f{i:02}"), content(i, 1 << 20)))
        .collect();
    let snap = backup(&repo, "h", &files).await;
    let inner = repo.store().object_store().clone();
    let mut streamed = 0;
    for o in repo.store().list("data/").await.expect("list") {
        let meta = inner
            .head(&Path::from(o.path.as_str()))
            .await
            .expect("head");
        streamed += usize::from(meta.e_tag.unwrap_or_default().contains('-'));
        let status = repo.store().status(&o.path).await.expect("status");
        let (mode, _until) = status.retention.expect("a retention");
        assert_eq!(mode, "GOVERNANCE", "{}", o.path);
    }
    assert!(streamed >= 1, "no pack was streamed");
    assert_eq!(restore(&repo, &snap).await, files);
}
