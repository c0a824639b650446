//! Objects streamed to a remote store part by part as they are made.
//!
//! A local repository writes a data pack into its file as it fills
//! (`spool.rs`); a remote one held each pack whole in memory until it was
//! uploaded, two 16 MiB packs at once, the largest item of an S3 backup's
//! memory. Here a pack goes up as a multipart upload whose parts are cut
//! as it fills: the writer copies its bytes into part buffers from a
//! [`BufferPool`] (so the parts filling, queued and uploading never exceed
//! the pool's limit), each full part is handed to a task that uploads the
//! pack's parts in order, and [`Store::publish`] sends the rest as the
//! last part and completes the upload. The object appears only then, as
//! with a `put`; an upload dropped before is aborted, and leaves nothing
//! a listing shows.
//!
//! The object's path is fixed when the upload starts (a multipart upload
//! is created for a key), so a streamed pack's name is drawn when it is
//! started, not when it is sealed.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, PutMultipartOptions, PutPayload};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::buffers::{BufferPool, Slot};
use crate::{ObjectClass, Store, StoreError, StoreResult};

/// The smallest part S3 accepts, but for the last.
pub const MIN_PART: usize = 5 * 1024 * 1024;

/// What the writer hands the uploading task.
enum Msg {
    Part(Vec<u8>, Slot),
    /// Every part is sent: complete the upload.
    Complete,
}

/// The writing side of a streamed object; see the module docs.
#[derive(Debug)]
pub(crate) struct PartSpool {
    path: String,
    pool: Arc<BufferPool>,
    /// The part being filled.
    part: Option<(Vec<u8>, Slot)>,
    /// False once the writer must not block for a buffer.
    wait: bool,
    tx: Option<mpsc::UnboundedSender<Msg>>,
    task: Option<JoinHandle<StoreResult<()>>>,
    /// Why the upload failed, once it did: for the writes after.
    failed: Arc<Mutex<Option<String>>>,
    len: u64,
    parts: u64,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Part(b, _) => write!(f, "Part({} bytes)", b.len()),
            Msg::Complete => f.write_str("Complete"),
        }
    }
}

impl PartSpool {
    /// Appends `b`, handing each part on as it fills. Waits for a buffer
    /// while the pool's are all out, unless [`never_wait`](Self::never_wait).
    pub(crate) fn write(&mut self, mut b: &[u8]) -> StoreResult<()> {
        self.check()?;
        let cap = self.pool.capacity().max(1);
        self.len += b.len() as u64;
        while !b.is_empty() {
            let (buf, _) = match &mut self.part {
                Some(p) => p,
                None => self.part.insert(if self.wait {
                    self.pool.take()
                } else {
                    self.pool.take_now()
                }),
            };
            // A part is sent once full, so there is room in this one.
            let n = cap.saturating_sub(buf.len()).min(b.len());
            buf.extend_from_slice(&b[..n]);
            b = &b[n..];
            if buf.len() >= cap {
                self.send_part()?;
            }
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// From now on, buffers past the pool's limit rather than waiting.
    pub(crate) fn never_wait(&mut self) {
        self.wait = false;
    }

    fn send_part(&mut self) -> StoreResult<()> {
        let Some((buf, slot)) = self.part.take() else {
            return Ok(());
        };
        self.parts += 1;
        self.send(Msg::Part(buf, slot))
    }

    fn send(&mut self, msg: Msg) -> StoreResult<()> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok());
        if sent { Ok(()) } else { Err(self.error()) }
    }

    fn check(&self) -> StoreResult<()> {
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if failed { Err(self.error()) } else { Ok(()) }
    }

    fn error(&self) -> StoreError {
        let why = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        StoreError::Backend {
            path: self.path.clone(),
            message: why.unwrap_or_else(|| "the upload stopped".into()),
        }
    }

    /// Sends what is left as the last part, completes the upload and waits
    /// for it.
    pub(crate) async fn finish(&mut self) -> StoreResult<()> {
        if self.parts == 0 && self.part.is_none() {
            // An empty object is one empty part.
            self.part = Some(self.pool.take_now());
        }
        let result = self.send_part().and_then(|()| self.send(Msg::Complete));
        self.tx = None;
        let Some(task) = self.task.take() else {
            return Err(self.error());
        };
        let done = task.await.map_err(|e| StoreError::Backend {
            path: self.path.clone(),
            message: format!("upload task failed: {e}"),
        })?;
        // The task's own error says more than a closed channel.
        done.and(result)
    }
}

/// Uploads the parts `rx` brings in order, then completes the upload; a
/// channel closed without [`Msg::Complete`] (the writer dropped it) or any
/// failure aborts it. Buffers go back to their pool once their part is up.
async fn upload_parts(
    inner: Arc<dyn ObjectStore>,
    path: String,
    opts: PutMultipartOptions,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    failed: Arc<Mutex<Option<String>>>,
) -> StoreResult<()> {
    let err = |e| StoreError::from_backend(&path, e);
    let result = async {
        let location = Path::from(path.as_str());
        let mut upload = inner
            .put_multipart_opts(&location, opts)
            .await
            .map_err(err)?;
        while let Some(msg) = rx.recv().await {
            let step = match msg {
                Msg::Part(buf, slot) => {
                    let bytes = Bytes::from(buf);
                    let sent = upload.put_part(PutPayload::from_bytes(bytes.clone())).await;
                    // Once the store let go of its copy, the buffer is the
                    // pool's again; if it kept one, the slot alone is.
                    if let Ok(b) = bytes.try_into_mut() {
                        slot.give_back(Vec::from(b));
                    }
                    sent
                }
                Msg::Complete => match upload.complete().await {
                    Ok(_) => return Ok(()),
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = step {
                let _ = upload.abort().await;
                return Err(err(e));
            }
        }
        let _ = upload.abort().await;
        Err(StoreError::Backend {
            path: path.clone(),
            message: "dropped before it was complete".into(),
        })
    }
    .await;
    if let Err(e) = &result {
        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }
    result
}

impl Store {
    /// The part size for streaming objects of about `size` bytes to this
    /// store: at least [`MIN_PART`] (or the store's test setting), and a
    /// third of the object, so a full pack goes up in three parts. `None`
    /// where objects are not streamed: local and in-memory stores, and
    /// objects too small for two parts.
    pub fn stream_part_size(&self, size: usize) -> Option<usize> {
        let min = self.stream_min_part?;
        let part = size.div_ceil(3).max(min);
        (size >= 2 * min).then_some(part)
    }

    /// Streams objects of in-memory and local stores too, in parts of at
    /// least `min_part` bytes (for tests; remote stores stream in parts of
    /// at least [`MIN_PART`]).
    pub fn with_streaming(mut self, min_part: usize) -> Store {
        self.stream_min_part = Some(min_part.max(1));
        self.spool_root = None;
        self
    }

    /// Starts the object `path` as a multipart upload that `pool`'s
    /// buffers are streamed into (see the module docs). Must be called
    /// where `rt` may spawn the upload's task.
    pub fn stream(
        &self,
        rt: &tokio::runtime::Handle,
        path: &str,
        class: ObjectClass,
        pool: &Arc<BufferPool>,
    ) -> crate::Spool {
        let (tx, rx) = mpsc::unbounded_channel();
        let failed = Arc::new(Mutex::new(None));
        let opts = PutMultipartOptions {
            attributes: self.attributes(class),
            ..Default::default()
        };
        let task = rt.spawn(upload_parts(
            self.inner.clone(),
            path.to_owned(),
            opts,
            rx,
            failed.clone(),
        ));
        crate::Spool::parts(PartSpool {
            path: path.to_owned(),
            pool: pool.clone(),
            part: None,
            wait: true,
            tx: Some(tx),
            task: Some(task),
            failed,
            len: 0,
            parts: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FaultConfig, FaultStore};
    use object_store::memory::InMemory;
    use std::time::Duration;

    /// A slow store: the writer waits for part buffers rather than take
    /// more than the pool's limit, and the object is all there once
    /// published, and not before.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parts_in_memory_never_exceed_the_pool_and_the_object_appears_whole() {
        let slow = FaultStore::new(
            Arc::new(InMemory::new()),
            FaultConfig {
                latency: Duration::from_millis(5),
                ..Default::default()
            },
        );
        let store = Store::from_object_store(Arc::new(slow), "slow".into()).with_streaming(1000);
        assert_eq!(store.stream_part_size(1999), None, "less than two parts");
        assert_eq!(store.stream_part_size(6000), Some(2000));
        let pool = BufferPool::new(2, 1000);
        let rt = tokio::runtime::Handle::current();
        let mut spool = store.stream(&rt, "data/ab/obj", ObjectClass::Data, &pool);
        let body: Vec<u8> = (0..25_500u32).map(|i| (i % 251) as u8).collect();
        let b = body.clone();
        let spool = tokio::task::spawn_blocking(move || {
            for piece in b.chunks(700) {
                spool.write(piece).expect("write");
            }
            spool
        })
        .await
        .expect("join");
        assert_eq!(spool.len(), body.len() as u64);
        assert!(store.list("data/").await.expect("list").is_empty());
        store
            .publish(spool, "data/ab/obj", ObjectClass::Data)
            .await
            .expect("publish");
        assert_eq!(&store.get("data/ab/obj").await.expect("get")[..], &body[..]);
        let (out, _, peak) = pool.counts();
        assert_eq!((out, peak), (0, 2), "at most the pool's two buffers");
        // Published under another name than it was started for: refused.
        let other = store.stream(&rt, "data/ab/x", ObjectClass::Data, &pool);
        assert!(
            store
                .publish(other, "data/ab/y", ObjectClass::Data)
                .await
                .is_err()
        );
    }

    /// Writes after a part failed report it; publishing fails and leaves
    /// no object.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_part_fails_the_writes_after_it_and_the_publish() {
        let faulty = FaultStore::new(
            Arc::new(InMemory::new()),
            FaultConfig {
                fail_parts_after: Some(1),
                ..Default::default()
            },
        );
        let store = Store::from_object_store(Arc::new(faulty), "faulty".into()).with_streaming(100);
        let pool = BufferPool::new(3, 100);
        let rt = tokio::runtime::Handle::current();
        let mut spool = store.stream(&rt, "data/obj", ObjectClass::Data, &pool);
        let spool = tokio::task::spawn_blocking(move || {
            let mut failed = None;
            for i in 0..200 {
                if let Err(e) = spool.write(&[i as u8; 50]) {
                    failed = Some(e);
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let e = failed.expect("a write after the failed part fails");
            assert!(e.to_string().contains("injected part failure"), "{e}");
            spool
        })
        .await
        .expect("join");
        let e = store
            .publish(spool, "data/obj", ObjectClass::Data)
            .await
            .expect_err("publish");
        assert!(e.to_string().contains("injected part failure"), "{e}");
        assert!(store.list("data").await.expect("list").is_empty());
    }
}
