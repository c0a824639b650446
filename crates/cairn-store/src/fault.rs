//! Fault injection, for tests: a decorator that makes requests fail, slow
//! down, or return short or broken data, from a seeded generator so every
//! run injects the same faults.
//!
//! Faults here sit above the backend, so object_store's retries do not see
//! them: they model permanent failures and bad data. Transient network
//! faults that retries must absorb are injected below the retry layer, at
//! the HTTP level, by [`crate::FaultConnector`].

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

use crate::restream::restream;

/// Which faults to inject.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// After this many successful writes under `prefix`, every further
    /// write there fails (a permanent failure mid-run).
    pub fail_writes_after: Option<u64>,
    /// After this many parts of multipart uploads under `prefix`, every
    /// further part fails (an upload that breaks off mid-object).
    pub fail_parts_after: Option<u64>,
    /// Only writes and reads whose path starts with this are affected.
    pub prefix: String,
    /// Fraction of reads (0.0–1.0) that fail outright.
    pub read_error_rate: f64,
    /// Fraction of reads that return fewer bytes than the object holds.
    pub truncate_rate: f64,
    /// Fraction of reads whose bytes are altered (one bit flipped).
    pub corrupt_rate: f64,
    /// Every download fails with an error after this many bytes (a
    /// connection dropped mid-transfer).
    pub fail_reads_after_bytes: Option<u64>,
    /// Delay added to every request.
    pub latency: Duration,
    /// Seed of the generator deciding which requests fail.
    pub seed: u64,
    /// Paths that listings show although they do not exist: what a reader
    /// sees when another process deletes objects between its list and get.
    pub ghosts: Vec<String>,
    /// Every read (not HEAD) fails as S3 answers for an object in an
    /// archival class that is not restored ([`crate::StoreError::Archived`]).
    pub archived: bool,
}

/// Wraps a store and injects the configured faults.
#[derive(Debug)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    config: FaultConfig,
    writes: AtomicU64,
    /// Parts uploaded under the prefix (shared with the uploads).
    parts: Arc<AtomicU64>,
    rng: Mutex<u64>,
}

/// A multipart upload whose parts fail after
/// [`FaultConfig::fail_parts_after`].
#[derive(Debug)]
struct FaultUpload {
    inner: Box<dyn MultipartUpload>,
    parts: Arc<AtomicU64>,
    limit: u64,
    location: String,
}

#[async_trait]
impl MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let n = self.parts.fetch_add(1, Ordering::Relaxed);
        if n >= self.limit {
            let e = injected(format!("injected part failure for {}", self.location));
            return Box::pin(async move { Err(e) });
        }
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

impl FaultStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, config: FaultConfig) -> Self {
        let seed = config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        FaultStore {
            inner,
            config,
            writes: AtomicU64::new(0),
            parts: Arc::default(),
            rng: Mutex::new(seed),
        }
    }

    /// Writes that went through so far (under the prefix).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// A uniform draw in [0, 1) from the seeded xorshift generator.
    fn draw(&self) -> f64 {
        let mut x = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }

    fn applies(&self, location: &Path) -> bool {
        location.as_ref().starts_with(&self.config.prefix)
    }

    fn check_write(&self, location: &Path) -> Result<()> {
        if !self.applies(location) {
            return Ok(());
        }
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        match self.config.fail_writes_after {
            Some(limit) if n >= limit => Err(injected(format!(
                "injected write failure #{} for {location}",
                n - limit + 1
            ))),
            _ => Ok(()),
        }
    }

    async fn delay(&self) {
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
    }
}

fn injected(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "fault injection",
        source: message.into(),
    }
}

/// Collects a whole download, lets `damage` change it, and serves the result.
fn rewrite(
    s: crate::restream::ByteStream,
    damage: fn(&mut Vec<u8>),
) -> crate::restream::ByteStream {
    let collected = s.collect::<Vec<_>>();
    futures::stream::once(async move {
        let mut all = Vec::new();
        for c in collected.await {
            all.extend_from_slice(&c?);
        }
        damage(&mut all);
        Ok(Bytes::from(all))
    })
    .boxed()
}

/// Keeps all but the last byte of a download.
fn truncate(s: crate::restream::ByteStream) -> crate::restream::ByteStream {
    rewrite(s, |all| {
        all.pop();
    })
}

/// Passes `limit` bytes of a download through, then fails it.
fn fail_after(
    s: crate::restream::ByteStream,
    limit: u64,
    what: String,
) -> crate::restream::ByteStream {
    let mut sent = 0u64;
    s.map(move |chunk| {
        let chunk = chunk?;
        let room = limit.saturating_sub(sent);
        if chunk.len() as u64 <= room {
            sent += chunk.len() as u64;
            return Ok(chunk);
        }
        Err(injected(format!(
            "injected read failure after {limit} bytes of {what}"
        )))
    })
    .boxed()
}

/// Flips one bit in the middle of a download.
fn corrupt(s: crate::restream::ByteStream) -> crate::restream::ByteStream {
    rewrite(s, |all| {
        let mid = all.len() / 2;
        if let Some(b) = all.get_mut(mid) {
            *b ^= 0x10;
        }
    })
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.delay().await;
        self.check_write(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.delay().await;
        self.check_write(location)?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        match self.config.fail_parts_after {
            Some(limit) if self.applies(location) => Ok(Box::new(FaultUpload {
                inner,
                parts: self.parts.clone(),
                limit,
                location: location.to_string(),
            })),
            _ => Ok(inner),
        }
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.delay().await;
        if !self.applies(location) || options.head {
            return self.inner.get_opts(location, options).await;
        }
        let c = &self.config;
        if c.archived {
            return Err(injected(format!(
                "InvalidObjectState: {location} is in an archival storage class (injected)"
            )));
        }
        if self.draw() < c.read_error_rate {
            return Err(injected(format!("injected read failure for {location}")));
        }
        let r = self.inner.get_opts(location, options).await?;
        if let Some(limit) = c.fail_reads_after_bytes {
            let what = location.to_string();
            return Ok(restream(r, move |s| fail_after(s, limit, what)));
        }
        if self.draw() < c.truncate_rate {
            return Ok(restream(r, truncate));
        }
        if self.draw() < c.corrupt_rate {
            return Ok(restream(r, corrupt));
        }
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.delay().await;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let want = prefix.map(|p| format!("{p}/")).unwrap_or_default();
        let ghosts: Vec<Result<ObjectMeta>> = self
            .config
            .ghosts
            .iter()
            .filter(|g| g.starts_with(&want))
            .map(|g| {
                Ok(ObjectMeta {
                    location: Path::from(g.as_str()),
                    last_modified: Default::default(),
                    size: 1,
                    e_tag: None,
                    version: None,
                })
            })
            .collect();
        self.inner
            .list(prefix)
            .chain(futures::stream::iter(ghosts))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check_write(to)?;
        self.inner.copy_opts(from, to, options).await
    }
}
