//! Upload and download rate limits, as a decorator on any store.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

use crate::restream::restream;

/// Spaces transfers so that, on average, at most `rate` bytes pass per second.
#[derive(Debug)]
struct Pacer {
    bytes_per_sec: f64,
    next_free: Mutex<Instant>,
}

impl Pacer {
    fn new(kib_per_sec: u64) -> Self {
        Pacer {
            bytes_per_sec: (kib_per_sec.max(1) * 1024) as f64,
            next_free: Mutex::new(Instant::now()),
        }
    }

    /// Books `n` bytes; returns how long to wait before (or after) moving them.
    fn book(&self, n: usize) -> Duration {
        self.book_at(n, Instant::now())
    }

    fn book_at(&self, n: usize, now: Instant) -> Duration {
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*next).max(now);
        *next = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec);
        *next - now
    }
}

/// Limits the bandwidth of the store it wraps.
#[derive(Debug)]
pub struct RateLimitStore {
    inner: Arc<dyn ObjectStore>,
    up: Option<Arc<Pacer>>,
    down: Option<Arc<Pacer>>,
}

impl RateLimitStore {
    /// Wraps `inner` with optional upload and download limits in KiB/s.
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        upload_kib: Option<u64>,
        download_kib: Option<u64>,
    ) -> Self {
        RateLimitStore {
            inner,
            up: upload_kib.map(|k| Arc::new(Pacer::new(k))),
            down: download_kib.map(|k| Arc::new(Pacer::new(k))),
        }
    }
}

impl fmt::Display for RateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RateLimit({})", self.inner)
    }
}

/// A multipart upload whose parts are paced like whole objects: without
/// it, objects sent in parts (large ones, and the packs streamed to
/// remote stores) passed the upload limit.
#[derive(Debug)]
struct PacedUpload {
    inner: Box<dyn MultipartUpload>,
    up: Arc<Pacer>,
}

#[async_trait]
impl MultipartUpload for PacedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let wait = self.up.book(data.content_length());
        let part = self.inner.put_part(data);
        Box::pin(async move {
            tokio::time::sleep(wait).await;
            part.await
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for RateLimitStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if let Some(p) = &self.up {
            tokio::time::sleep(p.book(payload.content_length())).await;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(match &self.up {
            Some(up) => Box::new(PacedUpload {
                inner,
                up: up.clone(),
            }),
            None => inner,
        })
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let r = self.inner.get_opts(location, options).await?;
        let Some(p) = self.down.clone() else {
            return Ok(r);
        };
        Ok(restream(r, move |s| {
            s.then(move |c| {
                let p = p.clone();
                async move {
                    if let Ok(b) = &c {
                        tokio::time::sleep(p.book(b.len())).await;
                    }
                    c
                }
            })
            .boxed()
        }))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    /// Parts of a multipart upload are booked with the upload pacer as a
    /// whole object is (they went through unpaced before): two parts of
    /// 100 KiB at 1 MiB/s move its next free instant on by 200/1024 s.
    #[tokio::test]
    async fn multipart_parts_are_paced() {
        let store = RateLimitStore::new(Arc::new(InMemory::new()), Some(1024), None);
        let pacer = store.up.clone().expect("upload pacer");
        let t0 = *pacer.next_free.lock().expect("lock");
        let mut up = store
            .put_multipart_opts(&Path::from("big"), PutMultipartOptions::default())
            .await
            .expect("create");
        for _ in 0..2 {
            up.put_part(vec![7u8; 100 * 1024].into())
                .await
                .expect("part");
        }
        up.complete().await.expect("complete");
        let booked = *pacer.next_free.lock().expect("lock") - t0;
        assert!(booked >= Duration::from_millis(195), "{booked:?}");
        let got = store.inner.get(&Path::from("big")).await.expect("get");
        assert_eq!(got.bytes().await.expect("bytes").len(), 200 * 1024);
    }

    #[test]
    fn pacer_books_consecutive_transfers_back_to_back() {
        let p = Pacer::new(1024); // 1 MiB/s
        let t0 = *p.next_free.lock().expect("lock");
        assert_eq!(p.book_at(512 * 1024, t0), Duration::from_millis(500));
        // Booked at the same instant, the second half-MiB waits for the first.
        assert_eq!(p.book_at(512 * 1024, t0), Duration::from_secs(1));
        // After an idle gap the pacer does not let a burst through at once.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.book_at(1024 * 1024, later), Duration::from_secs(1));
    }
}
