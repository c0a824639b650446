//! Request and byte counters, as a decorator on any store.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
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

    /// Counts a ranged read of `bytes` made beside the object store (a
    /// local read on the calling thread).
    pub(crate) fn count_range_get(&self, bytes: u64) {
        bump(&self.range_gets, 1);
        bump(&self.bytes_down, bytes);
    }

    /// Counts a write of `bytes` made beside the object store (an object
    /// spooled into a local repository).
    pub(crate) fn count_put(&self, bytes: u64) {
        bump(&self.puts, 1);
        bump(&self.bytes_up, bytes);
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
        let head = options.head;
        let r = self.inner.get_opts(location, options).await?;
        // A local file is read whole by one blocking call when it is taken
        // as it is; rewrapped as a stream it would be read 8 KiB at a time,
        // a blocking-pool hand-off each (a million futex calls to restore
        // 1 GiB). Its bytes are counted up front: all of the range is read.
        if let GetResultPayload::File(..) = r.payload {
            if !head {
                bump(&self.metrics.bytes_down, r.range.end - r.range.start);
            }
            return Ok(r);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::local::LocalFileSystem;

    /// A local file passes through as a file (read by one blocking call,
    /// not 8 KiB at a time), and its bytes are still counted.
    #[tokio::test]
    async fn a_local_file_is_counted_and_handed_on_as_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = LocalFileSystem::new_with_prefix(dir.path()).expect("local");
        let metrics = Arc::new(Metrics::default());
        let store = MetricsStore::new(Arc::new(local), metrics.clone());
        let path = Path::from("data/pack");
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        store.put(&path, body.clone().into()).await.expect("put");

        let whole = store.get(&path).await.expect("get");
        assert!(matches!(whole.payload, GetResultPayload::File(..)));
        assert_eq!(whole.bytes().await.expect("bytes"), body);
        let part = store.get_range(&path, 1000..5096).await.expect("range");
        assert_eq!(part, body[1000..5096]);
        let head = store.head(&path).await.expect("head");
        assert_eq!(head.size, 100_000);
        let seen = metrics.snapshot();
        assert_eq!(seen.bytes_down, 100_000 + 4096, "a head reads nothing");
        assert_eq!((seen.gets, seen.range_gets), (1, 1));
    }
}
