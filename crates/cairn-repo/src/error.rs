//! The one error type of `cairn-repo`.

use cairn_core::Id;
use cairn_store::StoreError;

/// What can go wrong with a repository.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Decoding, authentication or key derivation failed.
    #[error(transparent)]
    Format(#[from] cairn_core::Error),
    /// The storage backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// There is no repository at the location.
    #[error("{location}: not a cairn repository (no config); create one with `cairn init`")]
    NotARepository {
        /// Where we looked.
        location: String,
    },
    /// `init` found a repository already there.
    #[error("{location}: a repository already exists here")]
    AlreadyInitialized {
        /// Where.
        location: String,
    },
    /// `init` found unrelated objects.
    #[error("{location}: location is not empty (found {found}); refusing to initialise over it")]
    NotEmpty {
        /// Where.
        location: String,
        /// An object that was found.
        found: String,
    },
    /// A blob is referenced but not in the index.
    #[error("blob {id} is not in the index")]
    BlobNotIndexed {
        /// The blob.
        id: Id,
    },
    /// A blob was found but its content is wrong.
    #[error("blob {id} in pack {pack} is corrupt: {detail}")]
    CorruptBlob {
        /// The blob.
        id: Id,
        /// Its pack.
        pack: Id,
        /// What was wrong.
        detail: String,
    },
    /// No snapshot matches.
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    /// A snapshot id prefix matches several snapshots.
    #[error("snapshot id prefix {prefix:?} is ambiguous: it matches {count} snapshots")]
    AmbiguousSnapshot {
        /// The prefix given.
        prefix: String,
        /// How many matched.
        count: usize,
    },
    /// No key matches, or the key cannot be removed.
    #[error("{0}")]
    Key(String),
    /// A caller passed an argument that cannot work (e.g. an empty retention policy).
    #[error("{0}")]
    InvalidArgument(String),
    /// This process's writer session was not refreshed in time, so prune may
    /// already treat it as dead: the snapshot is not saved. Run the backup again.
    #[error(
        "writer session {session} expired (last refreshed {age} s ago, limit {limit} s); the snapshot was not saved, run the backup again"
    )]
    SessionExpired {
        /// The session.
        session: Id,
        /// Seconds since its last refresh.
        age: i64,
        /// The limit.
        limit: i64,
    },
    /// Another prune is running; two at once could each delete what the other still needs.
    #[error("another prune is running (session {session} on {host}, pid {pid}); try again later")]
    PruneRunning {
        /// Its session.
        session: Id,
        /// Its host.
        host: String,
        /// Its process id.
        pid: u32,
    },
    /// The local index table would outgrow its size limit.
    #[error(
        "the merged index needs {needed} bytes of local disk, more than the {limit} byte limit; \
         if the repository really is this large, raise the limit: `cairn --index-table-limit MIB` \
         or CAIRN_INDEX_TABLE_LIMIT (MiB) for the CLI and the node agent, \
         OpenOptions::index_table_limit in the library"
    )]
    IndexTooLarge {
        /// Bytes the table and its sort runs would take.
        needed: u64,
        /// The limit.
        limit: u64,
    },
    /// This process's writer session object is gone from the repository
    /// (prune removed it as stale): nothing it wrote since is protected.
    #[error(
        "writer session {session} was removed from the repository while it ran (a prune took it for dead); nothing was saved, run the backup again"
    )]
    SessionLost {
        /// The session.
        session: Id,
    },
    /// This host's clock differs from the storage server's by more than
    /// the protocol tolerates.
    #[error(
        "session {session}: this host's clock is {skew} s off the storage server's (server minus local; at most {limit} s are tolerated); fix the clock (NTP) and run again"
    )]
    ClockSkew {
        /// The session whose object was measured.
        session: Id,
        /// Server time minus local time, seconds.
        skew: i64,
        /// The bound.
        limit: i64,
    },
    /// Another prune or `repair index` changed the index while this prune
    /// ran: it stops before writing anything.
    #[error("prune stopped before changing anything: {0}; run it again")]
    PruneConflict(String),
    /// The local index table a backup deduplicated against turned out
    /// damaged once its check finished (ADR 0028); the table is removed
    /// and nothing the backup wrote is referenced by a snapshot.
    #[error(
        "the local index table this backup used is damaged ({detail}); it has been removed \
         and no snapshot was stored: run the backup again (the next run rebuilds the table)"
    )]
    IndexTableDamaged {
        /// What was wrong with it.
        detail: String,
    },
    /// A background task failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// True if the error means the password was wrong.
    pub fn is_wrong_password(&self) -> bool {
        matches!(self, Error::Format(cairn_core::Error::WrongPassword))
    }

    /// True if the error means an object's content is unusable (corrupt,
    /// failed authentication, too large), as opposed to a storage or local
    /// failure that may go away.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            Error::Format(
                cairn_core::Error::Corrupt { .. }
                    | cairn_core::Error::Tampered { .. }
                    | cairn_core::Error::UnsupportedVersion { .. }
            ) | Error::CorruptBlob { .. }
        )
    }
}

/// A repository object that could not be used and was left out, so that
/// the commands that do not need it keep working.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Damaged {
    /// The object, e.g. `index/ab12…` or `snapshots/…`.
    pub object: String,
    /// Why it was left out.
    pub problem: String,
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.object, self.problem)
    }
}

/// Result alias for `cairn-repo`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
