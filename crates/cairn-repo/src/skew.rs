//! Clock skew against the storage server.
//!
//! Times in sessions and index files are the writing host's clock, and
//! prune compares them with its own. How far apart two clocks may be is
//! bounded by [`MAX_CLOCK_SKEW`]: every session (backup or prune) measures
//! its host's clock against the server's timestamp (`LastModified`) of the
//! session object it has just written, and a host further off than the
//! bound refuses to run. Test clocks (see [`cairn_core::Clock::is_wall_clock`])
//! are measured but not refused; the measurement still converts server
//! timestamps to the repository's clock.

use cairn_core::Id;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::{Error, Repository, Result};

/// The largest difference (seconds) tolerated between a host's clock and
/// the storage server's. Two hosts within it differ by at most twice as
/// much; docs/MAINTENANCE.md shows why the protocol holds with that.
pub const MAX_CLOCK_SKEW: i64 = 300;

/// Server timestamps have a resolution of one second (S3's
/// `Last-Modified`), and local readings are truncated to whole seconds.
const RESOLUTION: i64 = 1;

/// One listed object with the server's timestamp.
#[derive(Debug, Clone)]
pub(crate) struct TimedObject {
    pub(crate) path: String,
    pub(crate) size: u64,
    /// `LastModified`, seconds since the epoch, server's clock.
    pub(crate) modified: i64,
}

impl Repository {
    /// The server's `LastModified` of `path`, in seconds.
    pub(crate) async fn server_time_of(&self, path: &str) -> Result<i64> {
        let meta = self
            .store()
            .object_store()
            .head(&object_store::path::Path::from(path))
            .await
            .map_err(|e| backend(path, e))?;
        Ok(meta.last_modified.timestamp())
    }

    /// Measures the skew (server minus local, seconds) from `path`, an
    /// object written between the local readings `before` and `after`.
    /// Fails with [`Error::ClockSkew`] beyond [`MAX_CLOCK_SKEW`] on a wall
    /// clock.
    pub(crate) async fn measure_skew(
        &self,
        path: &str,
        session: &Id,
        before: i64,
        after: i64,
    ) -> Result<i64> {
        let server = self.server_time_of(path).await?;
        let skew = if server < before - RESOLUTION {
            server - before
        } else if server > after + RESOLUTION {
            server - after
        } else {
            0
        };
        if self.clock().is_wall_clock() && skew.abs() > MAX_CLOCK_SKEW {
            return Err(Error::ClockSkew {
                session: *session,
                skew,
                limit: MAX_CLOCK_SKEW,
            });
        }
        Ok(skew)
    }

    /// Lists `prefix` with the server's timestamps.
    pub(crate) async fn list_timed(&self, prefix: &str) -> Result<Vec<TimedObject>> {
        use futures::TryStreamExt;
        let p = object_store::path::Path::from(prefix);
        self.store()
            .object_store()
            .list(Some(&p))
            .map_ok(|m| TimedObject {
                path: m.location.to_string(),
                size: m.size,
                modified: m.last_modified.timestamp(),
            })
            .try_collect()
            .await
            .map_err(|e| Error::Store(backend(prefix, e)))
    }
}

/// The store's error for a call made on the object store underneath it.
fn backend(path: &str, e: object_store::Error) -> cairn_store::StoreError {
    match e {
        object_store::Error::NotFound { .. } => cairn_store::StoreError::NotFound {
            path: path.to_owned(),
        },
        e => cairn_store::StoreError::Backend {
            path: path.to_owned(),
            message: e.to_string(),
        },
    }
}
