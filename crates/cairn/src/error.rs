//! Errors an embedder can act on without knowing the layers.
//!
//! Each layer has its own error type ([`StoreError`], [`FormatError`],
//! [`RepoError`], [`FsError`]), and the functions of this crate return the
//! one of their layer. Every one of them converts into [`Error`] (so `?`
//! works in a function returning `cairn::Error`), whose [`Error::kind`]
//! says what happened in the terms a caller decides on: ask for another
//! password, retry later, give up on a damaged repository, fix the request.
//! The original error stays reachable as the [`std::error::Error::source`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use cairn::{ErrorKind, InitOptions, Repository, Store};
//!
//! let store = Store::memory();
//! Repository::init(store.clone(), b"right", InitOptions::insecure_fast_for_tests())
//!     .await
//!     .expect("init");
//! let err = Repository::open(store, b"wrong", Default::default())
//!     .await
//!     .map(|_| ())
//!     .map_err(cairn::Error::from)
//!     .expect_err("a wrong password");
//! assert_eq!(err.kind(), ErrorKind::WrongPassword);
//! assert!(!err.is_retryable());
//! # }
//! ```

pub use cairn_core::Error as FormatError;
pub use cairn_fs::Error as FsError;
pub use cairn_repo::Error as RepoError;
pub use cairn_store::StoreError;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The repository, a snapshot, an object or a path does not exist.
    NotFound,
    /// Stored data is damaged or was altered: a blob, pack, index file or
    /// snapshot fails its authentication or does not decode.
    Corrupt,
    /// No key file opens with the password given.
    WrongPassword,
    /// The storage or the file system refused access (credentials,
    /// permissions).
    PermissionDenied,
    /// The storage could not be reached or failed for a while (network,
    /// server errors after retries, a writer session that expired): the
    /// same call may work later.
    Transient,
    /// Something else is working on the repository (a prune, an `init`) or
    /// got there first: try again once it is done.
    Conflict,
    /// The request cannot work as given (an argument, a location, an
    /// ambiguous snapshot prefix, a clock too far off).
    Invalid,
    /// The repository uses a format version this build cannot read.
    Unsupported,
    /// The caller cancelled the operation.
    Cancelled,
    /// The data is in an archival storage class (S3 Glacier, Deep
    /// Archive): request its restore (`warm_up`) and try again once it is
    /// readable.
    Archived,
    /// A failure none of the above describes (a bug, an I/O error of the
    /// local machine).
    Other,
}

/// An error of any layer, with its [`ErrorKind`].
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the same call may succeed if made again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Transient | ErrorKind::Conflict)
    }

    /// The layer's own error, to match on its details.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.inner.as_ref()
    }

    /// The layer's own error, owned.
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self.inner
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.inner.as_ref())
    }
}

fn store_kind(e: &StoreError) -> ErrorKind {
    match e {
        StoreError::NotFound { .. } | StoreError::MissingBucket { .. } => ErrorKind::NotFound,
        StoreError::AlreadyExists { .. } => ErrorKind::Conflict,
        StoreError::PermissionDenied { .. } => ErrorKind::PermissionDenied,
        // An object shorter than its index says is damaged storage.
        StoreError::ShortRead { .. } => ErrorKind::Corrupt,
        StoreError::InvalidLocation { .. } => ErrorKind::Invalid,
        StoreError::Backend { .. } => ErrorKind::Transient,
        StoreError::Archived { .. } => ErrorKind::Archived,
        StoreError::Locked { .. } => ErrorKind::PermissionDenied,
        StoreError::Unsupported { .. } => ErrorKind::Unsupported,
        _ => ErrorKind::Other,
    }
}

fn format_kind(e: &FormatError) -> ErrorKind {
    match e {
        FormatError::Corrupt { .. } | FormatError::Tampered { .. } => ErrorKind::Corrupt,
        FormatError::WrongPassword => ErrorKind::WrongPassword,
        FormatError::UnsupportedVersion { .. } => ErrorKind::Unsupported,
        FormatError::InvalidParameter(_) => ErrorKind::Invalid,
        _ => ErrorKind::Other,
    }
}

fn repo_kind(e: &RepoError) -> ErrorKind {
    match e {
        RepoError::Format(e) => format_kind(e),
        RepoError::Store(e) => store_kind(e),
        RepoError::NotARepository { .. } | RepoError::SnapshotNotFound(_) => ErrorKind::NotFound,
        RepoError::BlobNotIndexed { .. } | RepoError::CorruptBlob { .. } => ErrorKind::Corrupt,
        RepoError::AlreadyInitialized { .. }
        | RepoError::NotEmpty { .. }
        | RepoError::PruneRunning { .. }
        | RepoError::PruneConflict(_) => ErrorKind::Conflict,
        RepoError::SessionExpired { .. }
        | RepoError::SessionLost { .. }
        | RepoError::IndexTableDamaged { .. } => ErrorKind::Transient,
        RepoError::AmbiguousSnapshot { .. }
        | RepoError::Key(_)
        | RepoError::InvalidArgument(_)
        | RepoError::IndexTooLarge { .. }
        | RepoError::ClockSkew { .. } => ErrorKind::Invalid,
        _ => ErrorKind::Other,
    }
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        _ => ErrorKind::Other,
    }
}

fn fs_kind(e: &FsError) -> ErrorKind {
    match e {
        FsError::Repo(e) => repo_kind(e),
        FsError::Io { source, .. } => io_kind(source),
        FsError::Cancelled => ErrorKind::Cancelled,
        FsError::Invalid(_) => ErrorKind::Invalid,
        _ => ErrorKind::Other,
    }
}

macro_rules! from_layer {
    ($t:ty, $kind:ident) => {
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error {
                    kind: $kind(&e),
                    inner: Box::new(e),
                }
            }
        }
    };
}

from_layer!(StoreError, store_kind);
from_layer!(FormatError, format_kind);
from_layer!(RepoError, repo_kind);
from_layer!(FsError, fs_kind);
