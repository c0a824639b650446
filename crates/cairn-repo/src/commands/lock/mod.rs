//! S3 Object Lock in a repository (docs/ARCHIVAL.md, "Object lock").
//!
//! With a lock setting, the store gives every object it writes (but
//! sessions and probes) a retention until `now + period`; until then S3
//! refuses to delete or overwrite that version, whoever asks. This module
//! is what the repository adds on top:
//!
//! - [`Maintenance::extend_locks`](crate::Maintenance::extend_locks) (`cairn lock extend`) keeps what the
//!   repository needs retained (`extend`);
//! - prune and forget ask which of the objects they would delete are still
//!   retained and leave those for a later run (`prune_lock.rs`, `forget.rs`);
//! - [`recover`] (`cairn lock recover`) removes the delete markers a
//!   delete-everything attempt left on a versioned bucket.
//!
//! Retention dates are the storage server's business and are compared
//! with this host's system clock, never with the repository's clock (which
//! a test may move): S3 decides with its own.

mod extend;
mod recover;

use std::collections::HashMap;
use std::time::SystemTime;

use futures::{StreamExt, TryStreamExt};

pub(crate) use extend::extend_locks;
pub use extend::{ExtendProgress, ExtendReport};
pub use recover::{RecoverOptions, RecoverReport, recover};

use crate::{Repository, Result};

/// Objects asked about at once (one HEAD each).
pub(crate) const LOCK_CONCURRENCY: usize = 16;

/// Objects left in place because their retention has not ended: how
/// many, how big, and the range of dates they become deletable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Retained {
    /// Objects kept.
    pub objects: usize,
    /// Their bytes, where known (packs).
    pub bytes: u64,
    /// When the first of them becomes deletable (seconds since the epoch).
    pub earliest_until: Option<i64>,
    /// When the last of them does.
    pub latest_until: Option<i64>,
}

impl Retained {
    /// Counts one object retained until `until`.
    pub fn add(&mut self, until: SystemTime, bytes: u64) {
        let t = secs(until);
        self.objects += 1;
        self.bytes += bytes;
        self.earliest_until = Some(self.earliest_until.map_or(t, |e| e.min(t)));
        self.latest_until = Some(self.latest_until.map_or(t, |l| l.max(t)));
    }

    /// Both counts together.
    pub fn merge(&mut self, other: &Retained) {
        self.objects += other.objects;
        self.bytes += other.bytes;
        for t in [other.earliest_until, other.latest_until]
            .into_iter()
            .flatten()
        {
            self.earliest_until = Some(self.earliest_until.map_or(t, |e| e.min(t)));
            self.latest_until = Some(self.latest_until.map_or(t, |l| l.max(t)));
        }
    }
}

/// Seconds since the epoch (negative before it).
pub(crate) fn secs(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Whether deletions must ask about retention first: an S3 store whose
/// settings lock new objects, or whose bucket has Object Lock enabled
/// (older objects may be retained after `--object-lock none`, and a
/// bucket's default retention locks objects cairn never asked about).
pub(crate) async fn lock_aware(repo: &Repository) -> Result<bool> {
    if !repo.store().is_s3() {
        return Ok(false);
    }
    if repo.settings().is_some_and(|s| s.lock.is_some()) {
        return Ok(true);
    }
    match repo.store().lock_enabled().await {
        Ok(enabled) => Ok(enabled),
        // A server without Object Lock may not know the request at
        // all; its objects cannot be retained either.
        Err(e) => {
            tracing::debug!("no object lock configuration: {e}");
            Ok(false)
        }
    }
}

/// Which of `paths` are retained now, and until when (one HEAD each,
/// [`LOCK_CONCURRENCY`] at a time). Missing objects are not retained.
pub(crate) async fn retained_until(
    repo: &Repository,
    paths: Vec<String>,
) -> Result<HashMap<String, SystemTime>> {
    let store = repo.store();
    let found: Vec<Option<(String, SystemTime)>> = futures::stream::iter(paths)
        .map(|p| async move {
            let until = store.locked_until(&p).await?;
            Ok::<_, crate::Error>(until.map(|u| (p, u)))
        })
        .buffer_unordered(LOCK_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retained_objects_sum_up_with_their_date_range() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let mut a = Retained::default();
        a.add(t(200), 10);
        a.add(t(100), 5);
        assert_eq!(
            a,
            Retained {
                objects: 2,
                bytes: 15,
                earliest_until: Some(100),
                latest_until: Some(200)
            }
        );
        let mut b = Retained::default();
        b.add(t(300), 0);
        b.merge(&a);
        assert_eq!((b.objects, b.bytes), (3, 15));
        assert_eq!((b.earliest_until, b.latest_until), (Some(100), Some(300)));
        let mut empty = Retained::default();
        empty.merge(&Retained::default());
        assert_eq!(empty, Retained::default());
    }
}
