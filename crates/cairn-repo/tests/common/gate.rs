//! A store decorator for interleaving tests: it can hold the first read
//! under a prefix until the test releases it (a process paused at that
//! point), and hide objects from listings (a listing that lags).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use tokio::sync::oneshot;

/// One pause: reads under `prefix` stop here once.
struct Pause {
    prefix: String,
    reached: Option<oneshot::Sender<()>>,
    release: Option<oneshot::Receiver<()>>,
}

/// See the module docs.
#[derive(Default)]
pub struct Gate {
    pause: Mutex<Option<Pause>>,
    hidden: Mutex<Vec<String>>,
    /// When set, the server's clock: objects are stamped with its time
    /// when written, so server timestamps follow the test's clock.
    server_clock: Option<Arc<cairn_core::FixedClock>>,
    written: Mutex<std::collections::HashMap<String, i64>>,
}

impl Gate {
    /// A gate whose server clock is `clock`.
    pub fn with_server_clock(clock: Arc<cairn_core::FixedClock>) -> Gate {
        Gate {
            server_clock: Some(clock),
            ..Gate::default()
        }
    }

    fn stamp(&self, location: &Path) {
        if let Some(c) = &self.server_clock {
            use cairn_core::Clock;
            self.written
                .lock()
                .expect("lock")
                .insert(location.to_string(), c.now());
        }
    }

    fn restamp(&self, mut m: ObjectMeta) -> ObjectMeta {
        if let Some(t) = self.written.lock().expect("lock").get(m.location.as_ref()) {
            if let Some(dt) = chrono::DateTime::from_timestamp(*t, 0) {
                m.last_modified = dt;
            }
        }
        m
    }

    /// Holds the next read under `prefix`. Returns a receiver that fires
    /// when a read is held, and the sender that releases it.
    pub fn pause_at(&self, prefix: &str) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        *self.pause.lock().expect("lock") = Some(Pause {
            prefix: prefix.to_owned(),
            reached: Some(reached_tx),
            release: Some(release_rx),
        });
        (reached_rx, release_tx)
    }

    /// Listings leave out objects whose path starts with `prefix`.
    pub fn hide(&self, prefix: &str) {
        self.hidden.lock().expect("lock").push(prefix.to_owned());
    }

    fn take_pause(&self, location: &Path) -> Option<oneshot::Receiver<()>> {
        let mut g = self.pause.lock().expect("lock");
        let p = g.as_mut()?;
        if !location.as_ref().starts_with(&p.prefix) {
            return None;
        }
        if let Some(tx) = p.reached.take() {
            let _ = tx.send(());
        }
        let rx = p.release.take();
        *g = None;
        rx
    }
}

/// An object store whose reads and listings a [`Gate`] controls.
pub struct GateStore {
    pub inner: Arc<dyn ObjectStore>,
    pub gate: Arc<Gate>,
}

impl std::fmt::Debug for GateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GateStore({})", self.inner)
    }
}

impl std::fmt::Display for GateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GateStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for GateStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let r = self.inner.put_opts(location, payload, opts).await?;
        self.gate.stamp(location);
        Ok(r)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.gate.stamp(location);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if !options.head {
            if let Some(release) = self.gate.take_pause(location) {
                let _ = release.await;
            }
        }
        let mut r = self.inner.get_opts(location, options).await?;
        r.meta = self.gate.restamp(r.meta);
        Ok(r)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let hidden = self.gate.hidden.lock().expect("lock").clone();
        let gate = self.gate.clone();
        self.inner
            .list(prefix)
            .map(move |m| m.map(|m| gate.restamp(m)))
            .filter(move |m| {
                let keep = match m {
                    Ok(m) => !hidden.iter().any(|h| m.location.as_ref().starts_with(h)),
                    Err(_) => true,
                };
                futures::future::ready(keep)
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
