//! What prune checks around its decisions: who else is in the repository
//! before it starts, and that nothing it decided on changed before it
//! writes. docs/MAINTENANCE.md gives the argument these checks complete.

use std::collections::HashSet;

use cairn_core::Id;
use cairn_core::format::{Session, SessionPurpose};

use crate::session_handle::SessionHandle;
use crate::{Error, Repository, Result, SESSION_TIMEOUT, paths};

/// The smallest grace period prune accepts (seconds). Tombstones must stay
/// unripe while a writer that loaded the index before they were written may
/// still be running or have just stored its snapshot; that spans the clock
/// difference of two hosts (twice [`MAX_CLOCK_SKEW`](crate::MAX_CLOCK_SKEW)),
/// the time an object takes to be listed everywhere and the time a done
/// session protects its snapshot. One hour covers all of them with room.
pub const MIN_GRACE: i64 = 3600;

/// The other sessions as prune sees them when it starts.
#[derive(Debug, Default)]
pub(crate) struct SessionView {
    /// Running backups.
    pub(crate) live: Vec<Session>,
    /// Snapshots named by done sessions not older than the grace period:
    /// walked even if the listing of `snapshots/` does not show them yet.
    pub(crate) done_snapshots: Vec<Id>,
    /// Session objects that cannot be read: treated as live writers that
    /// started at an unknown time.
    pub(crate) unreadable: Vec<Id>,
    /// Stale or expired sessions (deleted unless dry run).
    pub(crate) removed: usize,
}

/// Lists `sessions/`: refuses if another live prune exists, deletes
/// stale running sessions and done sessions older than `grace` (unless
/// `dry_run`), and returns the rest.
pub(crate) async fn prune_sessions(
    repo: &Repository,
    me: &SessionHandle,
    now: i64,
    grace: i64,
    dry_run: bool,
) -> Result<SessionView> {
    let listing = repo.session_listing(now).await?;
    let mut view = SessionView::default();
    for s in listing
        .sessions
        .into_iter()
        .filter(|s| s.session.id != me.id)
    {
        let session = s.session;
        let drop = match session.done {
            Some(snapshot) => {
                if now - session.refreshed < grace {
                    view.done_snapshots.push(snapshot);
                    false
                } else {
                    true
                }
            }
            None if s.stale => true,
            None if session.purpose == SessionPurpose::Prune => {
                return Err(Error::PruneRunning {
                    session: session.id,
                    host: session.host,
                    pid: session.pid,
                });
            }
            None => false,
        };
        if drop {
            if !dry_run {
                repo.store().delete(&paths::session(&session.id)).await?;
            }
            view.removed += 1;
        } else if session.done.is_none() {
            view.live.push(session);
        }
    }
    for (id, why) in listing.unreadable {
        // The server's clock alone dates it: an object the server has
        // not touched for the timeout is not a running writer's.
        let path = paths::session(&id);
        let age = match repo.server_time_of(&path).await {
            Ok(t) => (now + me.skew()) - t,
            Err(Error::Store(e)) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        if age >= SESSION_TIMEOUT + grace {
            if !dry_run {
                repo.store().delete(&path).await?;
            }
            view.removed += 1;
        } else {
            tracing::warn!("session {id} cannot be read ({why}); deletions wait for it");
            view.unreadable.push(id);
        }
    }
    Ok(view)
}

/// Just before prune writes anything: its own session must still be
/// there and fresh (refreshed now), no other prune may have appeared,
/// every index file it is about to supersede must still exist, and no
/// index file written meanwhile may supersede or tombstone anything
/// (the mark of another prune or `repair index`). Backups' new index
/// files are fine: prune neither supersedes nor deletes them.
pub(crate) async fn recheck_before_writes(
    repo: &Repository,
    me: &SessionHandle,
    known: &HashSet<Id>,
    to_supersede: &[Id],
) -> Result<()> {
    repo.refresh_if_due(me).await?;
    repo.verify_sessions().await?;
    let now = repo.clock().now();
    for info in repo.list_sessions(now).await? {
        let s = info.session;
        let live = !info.stale && s.done.is_none();
        if live && s.id != me.id && s.purpose == SessionPurpose::Prune {
            return Err(Error::PruneRunning {
                session: s.id,
                host: s.host,
                pid: s.pid,
            });
        }
    }
    let listed: HashSet<Id> = repo.list_ids(paths::INDEX).await?.into_iter().collect();
    if let Some(gone) = to_supersede.iter().find(|id| !listed.contains(id)) {
        return Err(Error::PruneConflict(format!(
            "index file {gone} was removed while prune ran"
        )));
    }
    for id in listed.difference(known) {
        let f = match repo.read_index_file(id).await {
            Ok(f) => f,
            Err(Error::Store(e)) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        if !f.supersedes.is_empty() || !f.tombstones.is_empty() {
            return Err(Error::PruneConflict(format!(
                "index file {id} (session {}) appeared while prune ran and changes what others listed",
                f.session
            )));
        }
    }
    Ok(())
}
