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
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
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
        self.inner.put_multipart_opts(location, opts).await
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
