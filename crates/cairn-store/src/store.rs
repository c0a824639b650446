//! [`Store`]: the repository's view of an object store.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
};

use crate::backends;
use crate::cache::Cache;
use crate::http_fault::{FaultConnector, HttpFaults};
use crate::limit::RateLimitStore;
use crate::metrics::{Metrics, MetricsSnapshot, MetricsStore};
use crate::s3api::{Availability, ObjectStatus, S3Api};
use crate::{Location, StoreError, StoreResult, parse_location};

/// Objects above this size are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 24 * 1024 * 1024;
const MULTIPART_PART: usize = 8 * 1024 * 1024;
const MULTIPART_CONCURRENCY: usize = 4;

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Path relative to the repository root, e.g. `data/ab/ab12…`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// What an object is to the storage: which class it is written with and
/// whether it is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectClass {
    /// A pack of file content: the policy's data class, locked.
    Data,
    /// Everything a backup, a listing or a browse reads (tree packs, index
    /// files, snapshots, keys, config, settings): the metadata class, locked.
    Metadata,
    /// Objects rewritten or deleted as a matter of course (writer
    /// sessions, probes): the metadata class, never locked.
    Volatile,
}

impl ObjectClass {
    /// The class of an object from its name alone: packs are data (a tree
    /// pack's writer says otherwise), sessions and probes are volatile.
    pub fn of_path(path: &str) -> ObjectClass {
        if path.starts_with("data/") {
            ObjectClass::Data
        } else if path.starts_with("sessions/") || path.starts_with("probe/") {
            ObjectClass::Volatile
        } else {
            ObjectClass::Metadata
        }
    }
}

/// Object Lock retention given to every object written (but
/// [`ObjectClass::Volatile`] ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: String,
    /// How long from the write.
    pub period: std::time::Duration,
}

/// How objects are written: storage classes per kind and a retention.
/// Empty classes leave the bucket's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoragePolicy {
    /// Storage class of data packs.
    pub data_class: String,
    /// Storage class of everything else.
    pub metadata_class: String,
    /// Retention of new objects.
    pub lock: Option<Retention>,
}

impl StoragePolicy {
    fn class(&self, class: ObjectClass) -> &str {
        match class {
            ObjectClass::Data => &self.data_class,
            ObjectClass::Metadata | ObjectClass::Volatile => &self.metadata_class,
        }
    }
}

/// Whether opening a local store may create its directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// A missing directory is an error.
    Never,
    /// A missing directory is created (for `init`).
    IfMissing,
}

/// How to open a store.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Create a missing local directory (for `init`).
    pub create: bool,
    /// Upload limit in KiB/s.
    pub limit_upload_kib: Option<u64>,
    /// Download limit in KiB/s.
    pub limit_download_kib: Option<u64>,
    /// Transient HTTP faults to inject below the retry layer (tests only).
    pub http_faults: Option<HttpFaults>,
    /// Settings for the cloud backend, named like their environment
    /// variables (`AWS_ACCESS_KEY_ID`, `GOOGLE_SERVICE_ACCOUNT_KEY`,
    /// `AZURE_STORAGE_ACCOUNT_KEY`, …, any case), on top of the process
    /// environment: a process serving several repositories passes each
    /// one's credentials here. A key of the URL's provider that the backend
    /// does not know is an error (a typo must not be ignored); other
    /// providers' keys are skipped.
    pub settings: std::collections::BTreeMap<String, String>,
    /// Build the backend from `settings` alone, which may then hold only
    /// [`ISOLATED_SETTINGS`](crate::ISOLATED_SETTINGS) (any other key is
    /// refused, naming it): no process environment, no credential files, no
    /// instance metadata. For settings written by someone other than whoever
    /// runs the process, e.g. a tenant's Secret read by a shared agent.
    pub isolated: bool,
    /// PEM certificates of authorities to trust besides the system's, for
    /// an S3 server whose certificate a private CA signed.
    pub root_certificates: Option<Vec<u8>>,
}

/// A repository's storage: an object store plus the description shown to
/// users and counters of every request made through it.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) inner: Arc<dyn ObjectStore>,
    describe: String,
    pub(crate) metrics: Arc<Metrics>,
    remote: bool,
    cache: Option<Arc<Cache>>,
    /// The directory of a local repository (for its temporary files).
    pub(crate) local_root: Option<std::path::PathBuf>,
    /// The directory of a local repository without an upload limit, which
    /// objects may be written into as they are made (`spool.rs`).
    pub(crate) spool_root: Option<std::path::PathBuf>,
    /// The directory of a local repository without a download limit, whose
    /// objects may be read on the calling thread (`spool.rs`).
    pub(crate) direct_root: Option<std::path::PathBuf>,
    /// The requests object_store lacks, for S3 stores.
    pub(crate) s3: Option<S3Api>,
    /// The smallest part of objects streamed to this store (`parts.rs`):
    /// remote stores only, unless a test asks.
    pub(crate) stream_min_part: Option<usize>,
    /// Classes and retention of what is written; the repository sets it
    /// from its settings once it is open.
    policy: Arc<std::sync::RwLock<StoragePolicy>>,
}

impl Store {
    /// Opens the store at `url`. With [`Create::IfMissing`], a missing
    /// local directory is created (for `init`); with [`Create::Never`], a
    /// missing directory is an error.
    pub fn open(url: &str, create: Create) -> StoreResult<Store> {
        Store::open_with(
            url,
            &StoreOptions {
                create: create == Create::IfMissing,
                ..Default::default()
            },
        )
    }

    /// Opens the store at `url` with rate limits and test hooks.
    pub fn open_with(url: &str, opts: &StoreOptions) -> StoreResult<Store> {
        let location = parse_location(url)?;
        let faults = opts.http_faults.clone().map(FaultConnector::new);
        let settings = backends::Settings {
            root_certificates: opts.root_certificates.as_deref(),
            map: &opts.settings,
            isolated: opts.isolated,
        };
        let mut local_root = None;
        let mut s3 = None;
        let (backend, describe): (Arc<dyn ObjectStore>, String) = match &location {
            Location::Local(dir) => {
                let invalid = |message: String| StoreError::InvalidLocation {
                    url: url.to_owned(),
                    message,
                };
                if opts.create {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| invalid(format!("cannot create directory: {e}")))?;
                } else if !dir.is_dir() {
                    return Err(invalid(
                        "no such directory (create a repository with `cairn init`)".to_owned(),
                    ));
                }
                let dir = dir
                    .canonicalize()
                    .map_err(|e| invalid(format!("cannot resolve path: {e}")))?;
                // fsync: a backup reported complete must survive a power cut.
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| invalid(e.to_string()))?
                    .with_fsync(true);
                local_root = Some(dir.clone());
                (Arc::new(fs), dir.display().to_string())
            }
            Location::Memory => (Arc::new(InMemory::new()), "memory://".to_owned()),
            Location::S3 {
                bucket,
                prefix,
                options,
            } => {
                let (backend, api) =
                    backends::s3(url, bucket, prefix, options, &settings, faults.as_ref())?;
                s3 = Some(api);
                (backend, url.to_owned())
            }
            Location::Gcs { bucket, prefix } => (
                backends::gcs(url, bucket, prefix, &settings)?,
                url.to_owned(),
            ),
            Location::Azure { container, prefix } => (
                backends::azure(url, container, prefix, &settings)?,
                url.to_owned(),
            ),
        };
        let limited: Arc<dyn ObjectStore> =
            if opts.limit_upload_kib.is_some() || opts.limit_download_kib.is_some() {
                Arc::new(RateLimitStore::new(
                    backend,
                    opts.limit_upload_kib,
                    opts.limit_download_kib,
                ))
            } else {
                backend
            };
        let mut store = Store::from_object_store(limited, describe);
        store.remote = location.is_remote();
        store.stream_min_part = store.remote.then_some(crate::MIN_PART);
        store.set_local_root(local_root, opts);
        store.s3 = s3.map(|api| api.with_metrics(store.metrics.clone()));
        Ok(store)
    }

    /// A new, empty in-memory store.
    pub fn memory() -> Store {
        Store::from_object_store(Arc::new(InMemory::new()), "memory://".to_owned())
    }

    /// Wraps any object store (for decorators and embedders). Requests are
    /// counted from here on.
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, describe: String) -> Store {
        let metrics = Arc::new(Metrics::default());
        Store {
            inner: Arc::new(MetricsStore::new(inner, metrics.clone())),
            describe,
            metrics,
            remote: false,
            cache: None,
            local_root: None,
            spool_root: None,
            direct_root: None,
            s3: None,
            stream_min_part: None,
            policy: Arc::default(),
        }
    }

    /// Caches immutable objects (index files, snapshots, settings) in `cache`; the
    /// repository also keeps tree blobs there.
    pub fn with_cache(mut self, cache: Arc<Cache>) -> Store {
        self.cache = Some(cache);
        self
    }

    /// The cache, if any.
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.cache.as_ref()
    }

    /// Requests and bytes so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// True for network backends (S3, GCS, Azure).
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Where this store is, for messages.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Writes an object, replacing any existing one. Used for objects whose
    /// names are unique by construction (packs, index files, snapshots).
    ///
    /// Objects larger than [`MULTIPART_THRESHOLD`] go up as a multipart
    /// upload with parts sent concurrently, which is faster on real object
    /// stores and keeps each request small enough to retry cheaply.
    ///
    /// The object gets the storage class and retention of its
    /// [`ObjectClass::of_path`] under the store's [`StoragePolicy`].
    pub async fn put(&self, path: &str, data: Bytes) -> StoreResult<()> {
        self.put_as(path, data, ObjectClass::of_path(path)).await
    }

    /// [`put`](Self::put) with the object's class given (tree packs are
    /// metadata, though their names are those of packs).
    pub async fn put_as(&self, path: &str, data: Bytes, class: ObjectClass) -> StoreResult<()> {
        self.put_plain(path, data, class).await?;
        self.lock_new(path, class).await
    }

    async fn put_plain(&self, path: &str, data: Bytes, class: ObjectClass) -> StoreResult<()> {
        let location = Path::from(path);
        let err = |e| StoreError::from_backend(path, e);
        let attributes = self.attributes(class);
        if data.len() <= MULTIPART_THRESHOLD {
            let opts = PutOptions {
                attributes,
                ..Default::default()
            };
            return self
                .inner
                .put_opts(&location, PutPayload::from_bytes(data), opts)
                .await
                .map(|_| ())
                .map_err(err);
        }
        let opts = PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        let upload = self
            .inner
            .put_multipart_opts(&location, opts)
            .await
            .map_err(err)?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART);
        for part in data.chunks(MULTIPART_PART) {
            w.wait_for_capacity(MULTIPART_CONCURRENCY)
                .await
                .map_err(err)?;
            w.put(data.slice_ref(part));
        }
        w.finish().await.map(|_| ()).map_err(err)
    }

    /// Writes an object only if none exists, where the backend can enforce
    /// it; [`StoreError::AlreadyExists`] otherwise. Backends that ignore the
    /// condition behave like [`put`](Self::put): callers must not rely on it
    /// for correctness.
    pub async fn put_new(&self, path: &str, data: Bytes) -> StoreResult<()> {
        self.put_new_unlocked(path, data).await?;
        self.lock_new(path, ObjectClass::of_path(path)).await
    }

    /// [`put_new`](Self::put_new) without the retention, for an object
    /// its writer may still have to take back (a snapshot whose session
    /// lapsed): [`lock`](Self::lock) gives it the retention once it stays.
    pub async fn put_new_unlocked(&self, path: &str, data: Bytes) -> StoreResult<()> {
        let opts = PutOptions {
            mode: PutMode::Create,
            attributes: self.attributes(ObjectClass::of_path(path)),
            ..Default::default()
        };
        self.inner
            .put_opts(&Path::from(path), PutPayload::from_bytes(data), opts)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::from_backend(path, e))
    }

    /// The storage class attribute for a write of `class`, on S3 stores
    /// whose policy names one.
    pub(crate) fn attributes(&self, class: ObjectClass) -> Attributes {
        let mut a = Attributes::new();
        if self.s3.is_some() {
            let name = self.policy().class(class).to_owned();
            if !name.is_empty() {
                a.insert(Attribute::StorageClass, name.into());
            }
        }
        a
    }

    /// The classes and retention new objects get.
    pub fn policy(&self) -> StoragePolicy {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the classes and retention of new objects (for this store and
    /// its clones). Storage classes and retention need an S3 store.
    pub fn set_policy(&self, policy: StoragePolicy) -> StoreResult<()> {
        if policy != StoragePolicy::default() && self.s3.is_none() {
            return Err(StoreError::Unsupported {
                what: "storage classes and object lock",
                location: self.describe.clone(),
            });
        }
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
        Ok(())
    }

    /// True for S3 stores, which know storage classes, restores and
    /// object lock.
    pub fn is_s3(&self) -> bool {
        self.s3.is_some()
    }

    pub(crate) fn s3_api(&self, what: &'static str) -> StoreResult<&S3Api> {
        self.s3.as_ref().ok_or_else(|| StoreError::Unsupported {
            what,
            location: self.describe.clone(),
        })
    }

    /// An object's storage class, whether it can be read now, and its
    /// retention. Objects of other stores are always readable.
    pub async fn status(&self, path: &str) -> StoreResult<ObjectStatus> {
        match &self.s3 {
            Some(api) => api.status(path).await,
            None => Ok(ObjectStatus {
                storage_class: "STANDARD".into(),
                availability: Availability::Readable,
                retention: None,
                size: self.head(path).await?,
            }),
        }
    }

    /// Asks for an archived object's restore: readable for `days`, fetched
    /// at `tier` (`Expedited`, `Standard`, `Bulk`). False when one was
    /// already under way.
    pub async fn request_restore(&self, path: &str, days: u32, tier: &str) -> StoreResult<bool> {
        self.s3_api("restoring from archival storage")?
            .restore(path, days, tier)
            .await
    }

    /// Reads a whole object. Index files, snapshots and settings come from the cache
    /// when present there.
    pub async fn get(&self, path: &str) -> StoreResult<Bytes> {
        let cache = self.cache.as_ref().filter(|_| {
            ["index/", "snapshots/", "settings/"]
                .iter()
                .any(|p| path.starts_with(p))
        });
        if let Some(hit) = cache.and_then(|c| c.get(path)) {
            return Ok(hit);
        }
        let b = self.get_uncached(path).await?;
        if let Some(c) = cache {
            c.put(path, &b);
        }
        Ok(b)
    }

    async fn get_uncached(&self, path: &str) -> StoreResult<Bytes> {
        let r = self
            .inner
            .get(&Path::from(path))
            .await
            .map_err(|e| StoreError::from_backend(path, e))?;
        let expected = r.meta.size;
        let b = r
            .bytes()
            .await
            .map_err(|e| StoreError::from_backend(path, e))?;
        check_len(path, expected, &b)?;
        Ok(b)
    }

    /// Reads `range` of an object; anything but exactly that many bytes is an error.
    pub async fn get_range(&self, path: &str, range: Range<u64>) -> StoreResult<Bytes> {
        let expected = range.end.saturating_sub(range.start);
        let b = self
            .inner
            .get_range(&Path::from(path), range)
            .await
            .map_err(|e| StoreError::from_backend(path, e))?;
        check_len(path, expected, &b)?;
        Ok(b)
    }

    /// Reads `range` of an object, or the part of it the object has: the
    /// bytes from `range.start` to the end of the range or of the object,
    /// whichever comes first. `range.start` must be inside the object.
    pub async fn get_range_upto(&self, path: &str, range: Range<u64>) -> StoreResult<Bytes> {
        let (b, got, _) = self
            .get_part(path, GetRange::Bounded(range.clone()))
            .await?;
        // The backend checks the range a server answers with; a wrapper
        // or a backend that does not is caught here.
        if got.start != range.start || got.end > range.end {
            return Err(StoreError::ShortRead {
                path: path.to_owned(),
                expected: range.end.saturating_sub(range.start),
                got: b.len() as u64,
            });
        }
        Ok(b)
    }

    /// Reads the last `n` bytes of an object (or all of it, if shorter) and
    /// returns them with the object's total size.
    pub async fn get_suffix(&self, path: &str, n: u64) -> StoreResult<(Bytes, u64)> {
        let (b, _, size) = self.get_part(path, GetRange::Suffix(n)).await?;
        Ok((b, size))
    }

    /// Reads `range` of an object: the bytes, the range they are (checked
    /// against their length) and the object's size.
    async fn get_part(&self, path: &str, range: GetRange) -> StoreResult<(Bytes, Range<u64>, u64)> {
        let opts = GetOptions {
            range: Some(range),
            ..Default::default()
        };
        let r = self
            .inner
            .get_opts(&Path::from(path), opts)
            .await
            .map_err(|e| StoreError::from_backend(path, e))?;
        let (got, size) = (r.range.clone(), r.meta.size);
        let b = r
            .bytes()
            .await
            .map_err(|e| StoreError::from_backend(path, e))?;
        check_len(path, got.end.saturating_sub(got.start), &b)?;
        Ok((b, got, size))
    }

    /// Finds out whether the backend refuses a create-only write to an
    /// existing object (S3 servers that ignore `If-None-Match` do not).
    /// Writes and deletes two probe objects under `probe/`.
    pub async fn probe_create_only(&self, nonce: &str) -> StoreResult<bool> {
        let path = format!("probe/create-only-{nonce}");
        self.put_new(&path, Bytes::from_static(b"1")).await?;
        let second = self.put_new(&path, Bytes::from_static(b"2")).await;
        let _ = self.delete(&path).await;
        match second {
            Ok(()) => Ok(false),
            Err(StoreError::AlreadyExists { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// The size of an object.
    pub async fn head(&self, path: &str) -> StoreResult<u64> {
        self.inner
            .head(&Path::from(path))
            .await
            .map(|m| m.size)
            .map_err(|e| StoreError::from_backend(path, e))
    }

    /// Lists every object under `prefix` (a folder such as `snapshots`),
    /// following pagination to the end.
    pub async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectInfo>> {
        let p = Path::from(prefix);
        let prefix_opt = if prefix.is_empty() { None } else { Some(&p) };
        self.inner
            .list(prefix_opt)
            .map_ok(|m| ObjectInfo {
                path: m.location.to_string(),
                size: m.size,
            })
            .try_collect()
            .await
            .map_err(|e| match StoreError::from_backend(prefix, e) {
                // Listing a prefix with nothing under it succeeds; a 404 on
                // a listing means the bucket or container is missing.
                StoreError::NotFound { .. } => StoreError::MissingBucket {
                    location: self.describe.clone(),
                },
                other => other,
            })
    }

    /// Deletes an object; deleting a missing object is not an error.
    ///
    /// Under a retention policy, an object whose retention has not ended
    /// is not touched: [`StoreError::Locked`] says until when. (On a
    /// versioned bucket, S3 would "delete" it by hiding it behind a delete
    /// marker, which looks like data loss to every reader.)
    pub async fn delete(&self, path: &str) -> StoreResult<()> {
        if self.policy().lock.is_some() && ObjectClass::of_path(path) != ObjectClass::Volatile {
            if let Some(until) = self.locked_until(path).await? {
                return Err(StoreError::Locked {
                    path: path.to_owned(),
                    message: format!("retained until {}", crate::s3api::iso8601(until)),
                });
            }
        }
        match self.inner.delete(&Path::from(path)).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::from_backend(path, e)),
        }
    }
}

fn check_len(path: &str, expected: u64, b: &Bytes) -> StoreResult<()> {
    if b.len() as u64 != expected {
        return Err(StoreError::ShortRead {
            path: path.to_owned(),
            expected,
            got: b.len() as u64,
        });
    }
    Ok(())
}
