//! Writer sessions (`sessions/<id>`): a writer announces itself before it
//! uploads, refreshes the object while it runs and, once its snapshot is
//! stored, rewrites it a last time as "done" with the snapshot's id (prune
//! deletes it after the grace period), so prune knows who may still
//! reference blobs that no snapshot it listed holds. A session that lapsed
//! never comes back. See docs/MAINTENANCE.md for how prune uses them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use cairn_core::format::Session;
use cairn_core::{Compression, Id, Kind, open, seal};
use futures::{StreamExt, TryStreamExt};

use crate::repository::LOAD_CONCURRENCY;
use crate::session_handle::SessionHandle;
pub use crate::session_handle::hostname;
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

/// The sessions found in the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionListing {
    /// Those that decode.
    pub sessions: Vec<SessionInfo>,
    /// Those that do not, with the reason.
    pub unreadable: Vec<(Id, String)>,
}

/// A session as listed from the repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    /// The session.
    pub session: Session,
    /// True if it is running and was not refreshed within
    /// [`SESSION_TIMEOUT`] of now.
    pub stale: bool,
}

impl Repository {
    async fn put_session(&self, h: &SessionHandle, now: i64, done: Option<Id>) -> Result<()> {
        let started = h.started.load(Ordering::Relaxed);
        let s = Session {
            id: h.id,
            purpose: h.purpose,
            host: h.host.clone(),
            pid: std::process::id(),
            started,
            // A clock that stepped back must not write a session that
            // every reader rejects.
            refreshed: now.max(started),
            done,
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

    /// Stores the session object, measures this host's clock against the
    /// server's timestamp of it (refusing beyond
    /// [`MAX_CLOCK_SKEW`](crate::MAX_CLOCK_SKEW)), and registers it with
    /// this handle, so that [`save_snapshot`](Self::save_snapshot) can
    /// check it is still alive.
    pub(crate) async fn announce(&self, h: Arc<SessionHandle>) -> Result<()> {
        let now = self.clock().now();
        h.started.store(now, Ordering::Relaxed);
        self.put_session(&h, now, None).await?;
        let after = self.clock().now();
        match self
            .measure_skew(&paths::session(&h.id), &h.id, now, after)
            .await
        {
            Ok(skew) => h.skew.store(skew, Ordering::Relaxed),
            Err(e) => {
                let _ = self.store().delete(&paths::session(&h.id)).await;
                return Err(e);
            }
        }
        h.announced.store(true, Ordering::Relaxed);
        self.sessions_lock().push(h);
        Ok(())
    }

    /// Rewrites the session object if the last refresh is at least
    /// [`REFRESH_INTERVAL`] old (or the clock stepped back). A session
    /// whose last refresh is [`SELF_EXPIRY`] old, or whose object is gone,
    /// has lapsed: prune may have taken it for dead and deleted what it
    /// uses. It is never written again, and this fails for good.
    pub(crate) async fn refresh_if_due(&self, h: &SessionHandle) -> Result<()> {
        if !h.announced.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = self.clock().now();
        let age = now - h.last_refresh.load(Ordering::Relaxed);
        if (0..REFRESH_INTERVAL).contains(&age) && !h.expired.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.verify_session(h, now).await?;
        self.put_session(h, now, None).await
    }

    /// Fails if `h` lapsed: marked so before, last refreshed
    /// [`SELF_EXPIRY`] or longer ago, or its object is gone.
    async fn verify_session(&self, h: &SessionHandle, now: i64) -> Result<()> {
        let age = now - h.last_refresh.load(Ordering::Relaxed);
        if h.expired.load(Ordering::Relaxed) || age >= SELF_EXPIRY {
            h.expire();
            return Err(Error::SessionExpired {
                session: h.id,
                age,
                limit: SELF_EXPIRY,
            });
        }
        match self.store().head(&paths::session(&h.id)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => {
                h.expire();
                Err(Error::SessionLost { session: h.id })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a session object and forgets it: a writer that gives up, or
    /// a prune that is done.
    pub(crate) async fn end_session(&self, id: &Id) -> Result<()> {
        self.sessions_lock().retain(|h| h.id != *id);
        self.store().delete(&paths::session(id)).await?;
        Ok(())
    }

    /// Ends, without a snapshot, every session of this handle whose writer
    /// has finished (when the caller gives up on storing a snapshot).
    pub async fn end_finished_sessions(&self) -> Result<()> {
        for h in self.finished_sessions() {
            self.end_session(&h.id).await?;
        }
        Ok(())
    }

    fn finished_sessions(&self) -> Vec<Arc<SessionHandle>> {
        self.sessions_lock()
            .iter()
            .filter(|h| h.finished.load(Ordering::Relaxed))
            .cloned()
            .collect()
    }

    /// Ends every finished session of this handle with a "done" record
    /// naming `snapshot`, which prune keeps for the grace period: a prune
    /// whose listing of `snapshots/` lags still walks `snapshot`.
    pub(crate) async fn complete_finished_sessions(&self, snapshot: &Id) -> Result<()> {
        for h in self.finished_sessions() {
            let now = self.clock().now();
            self.put_session(&h, now, Some(*snapshot)).await?;
            self.sessions_lock().retain(|x| x.id != h.id);
        }
        Ok(())
    }

    /// Fails if a session of this handle lapsed (see
    /// [`refresh_if_due`](Self::refresh_if_due)): prune may already
    /// consider it dead and have deleted blobs it uses.
    pub(crate) async fn verify_sessions(&self) -> Result<()> {
        let handles: Vec<Arc<SessionHandle>> = self.sessions_lock().clone();
        for h in handles {
            self.verify_session(&h, self.clock().now()).await?;
        }
        Ok(())
    }

    /// Every session object in the repository that decodes, with its
    /// staleness at `now`. See [`session_listing`](Self::session_listing)
    /// for the ones that do not.
    pub async fn list_sessions(&self, now: i64) -> Result<Vec<SessionInfo>> {
        Ok(self.session_listing(now).await?.sessions)
    }

    /// Every session object in the repository. One that cannot be read
    /// (damaged, or written by a newer version) does not fail the listing:
    /// it is reported in `unreadable`, and prune treats it as a live writer
    /// it knows nothing about.
    pub async fn session_listing(&self, now: i64) -> Result<SessionListing> {
        let ids = self.list_ids(paths::SESSIONS).await?;
        let read: Vec<Option<std::result::Result<SessionInfo, (Id, String)>>> =
            futures::stream::iter(ids)
                .map(|id| self.read_session(id, now))
                .buffer_unordered(LOAD_CONCURRENCY)
                .try_collect()
                .await?;
        let mut listing = SessionListing::default();
        for r in read.into_iter().flatten() {
            match r {
                Ok(s) => listing.sessions.push(s),
                Err(bad) => listing.unreadable.push(bad),
            }
        }
        listing.sessions.sort_by_key(|s| s.session.id);
        listing.unreadable.sort();
        Ok(listing)
    }

    /// One session object: `None` if it vanished, `Err((id, why))` if it
    /// cannot be read; only a storage failure fails the call.
    async fn read_session(
        &self,
        id: Id,
        now: i64,
    ) -> Result<Option<std::result::Result<SessionInfo, (Id, String)>>> {
        let sealed = match self.store().get(&paths::session(&id)).await {
            Ok(b) => b,
            // Ended between the listing and the read.
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(Error::from(e)),
        };
        let session = match open(self.keys(), Kind::Session, &id, &sealed)
            .and_then(|plain| Session::decode(&plain))
        {
            Ok(s) => s,
            Err(e) => return Ok(Some(Err((id, e.to_string())))),
        };
        if session.id != id {
            let why = format!("sessions/{id} holds session {}", session.id);
            return Ok(Some(Err((id, why))));
        }
        let stale = session.done.is_none() && now - session.refreshed >= SESSION_TIMEOUT;
        Ok(Some(Ok(SessionInfo { session, stale })))
    }

    fn sessions_lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<SessionHandle>>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}
