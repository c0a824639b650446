//! Writer sessions (`sessions/<id>`): a writer announces itself before it
//! uploads, refreshes the object while it runs and deletes it once its
//! snapshot is stored, so prune knows who may still reference blobs that no
//! snapshot lists yet. See docs/MAINTENANCE.md for how prune uses them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;
use cairn_core::format::{Session, SessionPurpose};
use cairn_core::{Compression, Id, Kind, RandomSource, open, seal};
use futures::{StreamExt, TryStreamExt};

use crate::repository::LOAD_CONCURRENCY;
use crate::{Error, Repository, Result, paths};

/// A session not refreshed for this long (seconds) is stale: prune ignores it.
pub const SESSION_TIMEOUT: i64 = 3600;
/// A running writer refreshes its session at least this often (seconds, on
/// the repository's clock).
pub const REFRESH_INTERVAL: i64 = 300;
/// A writer whose own last refresh is this old refuses to store its
/// snapshot: half the timeout leaves room for clock differences and the
/// time the snapshot write takes.
pub const SELF_EXPIRY: i64 = SESSION_TIMEOUT / 2;

/// A session as listed from the repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    /// The session.
    pub session: Session,
    /// True if it was not refreshed within [`SESSION_TIMEOUT`] of now.
    pub stale: bool,
}

/// Nonces for one session's objects, from 32 secret random bytes drawn when
/// the session starts (BLAKE3 keyed XOF over a counter). Session objects are
/// rewritten at times that depend on scheduling, so drawing their nonces from
/// the repository's injected generator would make everything else a seeded
/// test writes depend on that scheduling.
struct NonceStream {
    key: [u8; 32],
    counter: AtomicU64,
}

impl RandomSource for NonceStream {
    fn fill(&self, buf: &mut [u8]) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&n.to_le_bytes());
        h.finalize_xof().fill(buf);
    }
}

/// One session of this process.
pub(crate) struct SessionHandle {
    pub(crate) id: Id,
    purpose: SessionPurpose,
    host: String,
    started: AtomicI64,
    last_refresh: AtomicI64,
    announced: AtomicBool,
    /// The writer is done; the session ends when the snapshot is stored.
    finished: AtomicBool,
    nonces: NonceStream,
}

impl SessionHandle {
    /// A session with id and nonce key drawn from `rng` in one call of 64
    /// bytes (the first 32 are the id).
    pub(crate) fn new(rng: &dyn RandomSource, purpose: SessionPurpose) -> SessionHandle {
        let mut b = [0u8; 64];
        rng.fill(&mut b);
        let mut id = [0u8; 32];
        let mut key = [0u8; 32];
        id.copy_from_slice(&b[..32]);
        key.copy_from_slice(&b[32..]);
        SessionHandle {
            id: Id::from_bytes(id),
            purpose,
            host: hostname(),
            started: AtomicI64::new(0),
            last_refresh: AtomicI64::new(0),
            announced: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            nonces: NonceStream {
                key,
                counter: AtomicU64::new(0),
            },
        }
    }

    pub(crate) fn mark_finished(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }
}

/// This machine's hostname, as recorded in sessions and (by the CLI) in
/// snapshots and key files; `localhost` when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

impl Repository {
    async fn put_session(&self, h: &SessionHandle, now: i64) -> Result<()> {
        let s = Session {
            id: h.id,
            purpose: h.purpose,
            host: h.host.clone(),
            pid: std::process::id(),
            started: h.started.load(Ordering::Relaxed),
            refreshed: now,
        };
        let sealed = seal(
            self.keys(),
            Kind::Session,
            &h.id,
            &s.encode(),
            Compression::None,
            &h.nonces,
        );
        self.store()
            .put(&paths::session(&h.id), Bytes::from(sealed))
            .await?;
        h.last_refresh.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Stores the session object and registers it with this handle, so that
    /// [`save_snapshot`](Self::save_snapshot) can check it is still fresh.
    pub(crate) async fn announce(&self, h: Arc<SessionHandle>) -> Result<()> {
        let now = self.clock().now();
        h.started.store(now, Ordering::Relaxed);
        self.put_session(&h, now).await?;
        h.announced.store(true, Ordering::Relaxed);
        self.sessions_lock().push(h);
        Ok(())
    }

    /// Rewrites the session object if the last refresh is at least
    /// [`REFRESH_INTERVAL`] old.
    pub(crate) async fn refresh_if_due(&self, h: &SessionHandle) -> Result<()> {
        let now = self.clock().now();
        if h.announced.load(Ordering::Relaxed)
            && now - h.last_refresh.load(Ordering::Relaxed) >= REFRESH_INTERVAL
        {
            self.put_session(h, now).await?;
        }
        Ok(())
    }

    /// Deletes a session object and forgets it.
    pub(crate) async fn end_session(&self, id: &Id) -> Result<()> {
        self.sessions_lock().retain(|h| h.id != *id);
        self.store().delete(&paths::session(id)).await?;
        Ok(())
    }

    /// Ends every session of this handle whose writer has finished (after
    /// its snapshot is stored, or when the caller gives up on it).
    pub async fn end_finished_sessions(&self) -> Result<()> {
        let done: Vec<Id> = self
            .sessions_lock()
            .iter()
            .filter(|h| h.finished.load(Ordering::Relaxed))
            .map(|h| h.id)
            .collect();
        for id in done {
            self.end_session(&id).await?;
        }
        Ok(())
    }

    /// Fails if a session of this handle was not refreshed recently enough:
    /// prune may already consider it dead and have deleted blobs it uses.
    pub(crate) fn check_sessions_fresh(&self) -> Result<()> {
        let now = self.clock().now();
        for h in self.sessions_lock().iter() {
            let age = now - h.last_refresh.load(Ordering::Relaxed);
            if age >= SELF_EXPIRY {
                return Err(Error::SessionExpired {
                    session: h.id,
                    age,
                    limit: SELF_EXPIRY,
                });
            }
        }
        Ok(())
    }

    /// Every session object in the repository, with its staleness at `now`.
    pub async fn list_sessions(&self, now: i64) -> Result<Vec<SessionInfo>> {
        let ids: Vec<Id> = self
            .store()
            .list(paths::SESSIONS)
            .await?
            .iter()
            .filter_map(|o| paths::id_in(paths::SESSIONS, &o.path))
            .collect();
        futures::stream::iter(ids)
            .map(|id| async move {
                let sealed = match self.store().get(&paths::session(&id)).await {
                    Ok(b) => b,
                    // Ended between the listing and the read.
                    Err(e) if e.is_not_found() => return Ok(None),
                    Err(e) => return Err(Error::from(e)),
                };
                let session = Session::decode(&open(self.keys(), Kind::Session, &id, &sealed)?)?;
                if session.id != id {
                    return Err(Error::Format(cairn_core::Error::Corrupt {
                        what: "session",
                        detail: format!("sessions/{id} holds session {}", session.id),
                    }));
                }
                let stale = now - session.refreshed >= SESSION_TIMEOUT;
                Ok(Some(SessionInfo { session, stale }))
            })
            .buffer_unordered(LOAD_CONCURRENCY)
            .try_filter_map(|s| async move { Ok(s) })
            .try_collect()
            .await
    }

    fn sessions_lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<SessionHandle>>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}
