//! Request and byte counters, as a decorator on any store.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

use crate::restream::restream;

/// Live counters of the requests a store made.
#[derive(Debug, Default)]
pub struct Metrics {
    gets: AtomicU64,
    range_gets: AtomicU64,
    puts: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    other: AtomicU64,
    bytes_down: AtomicU64,
    bytes_up: AtomicU64,
}

/// A reading of [`Metrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Whole-object reads.
    pub gets: u64,
    /// Ranged reads.
    pub range_gets: u64,
    /// Writes (simple and multipart).
    pub puts: u64,
    /// Listings.
    pub lists: u64,
    /// Deletions.
    pub deletes: u64,
    /// Heads and copies.
    pub other: u64,
    /// Bytes downloaded.
    pub bytes_down: u64,
    /// Bytes uploaded.
    pub bytes_up: u64,
}

impl MetricsSnapshot {
    /// All requests.
    pub fn requests(&self) -> u64 {
        self.gets + self.range_gets + self.puts + self.lists + self.deletes + self.other
    }
}

impl Metrics {
    /// The current counts.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            gets: g(&self.gets),
            range_gets: g(&self.range_gets),
            puts: g(&self.puts),
            lists: g(&self.lists),
            deletes: g(&self.deletes),
            other: g(&self.other),
            bytes_down: g(&self.bytes_down),
            bytes_up: g(&self.bytes_up),
        }
    }
}

impl Metrics {
    /// Counts one request made beside the object store (S3 HEADs,
    /// retention and version requests).
    pub(crate) fn count_other(&self) {
        bump(&self.other, 1);
    }
}

fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// Counts requests and bytes of the store it wraps.
#[derive(Debug)]
pub struct MetricsStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
}

impl MetricsStore {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: Arc<dyn ObjectStore>, metrics: Arc<Metrics>) -> Self {
        MetricsStore { inner, metrics }
    }
}

impl fmt::Display for MetricsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metrics({})", self.inner)
    }
}

/// Counts the bytes of a multipart upload's parts.
#[derive(Debug)]
struct CountedUpload {
    inner: Box<dyn MultipartUpload>,
    metrics: Arc<Metrics>,
}

#[async_trait]
impl MultipartUpload for CountedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        bump(&self.metrics.bytes_up, data.content_length() as u64);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for MetricsStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        bump(&self.metrics.puts, 1);
        bump(&self.metrics.bytes_up, payload.content_length() as u64);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        bump(&self.metrics.puts, 1);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(CountedUpload {
            inner,
            metrics: self.metrics.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            bump(&self.metrics.other, 1);
        } else if options.range.is_some() {
            bump(&self.metrics.range_gets, 1);
        } else {
            bump(&self.metrics.gets, 1);
        }
        let r = self.inner.get_opts(location, options).await?;
        let m = self.metrics.clone();
        Ok(restream(r, move |s| {
            s.inspect(move |c| {
                if let Ok(b) = c {
                    bump(&m.bytes_down, b.len() as u64);
                }
            })
            .boxed()
        }))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let m = self.metrics.clone();
        self.inner
            .delete_stream(locations.inspect(move |_| bump(&m.deletes, 1)).boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        bump(&self.metrics.lists, 1);
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        bump(&self.metrics.lists, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        bump(&self.metrics.other, 1);
        self.inner.copy_opts(from, to, options).await
    }
}
