//! Storage errors, by what a caller can do about them.

/// An error from the storage backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object does not exist.
    #[error("{path}: not found")]
    NotFound {
        /// Object path.
        path: String,
    },
    /// A create-only write found the object already there.
    #[error("{path}: already exists")]
    AlreadyExists {
        /// Object path.
        path: String,
    },
    /// The backend refused access.
    #[error("{path}: permission denied: {message}")]
    PermissionDenied {
        /// Object path.
        path: String,
        /// Backend message.
        message: String,
    },
    /// A read returned fewer bytes than asked for.
    #[error("{path}: short read: asked for {expected} bytes, got {got}")]
    ShortRead {
        /// Object path.
        path: String,
        /// Bytes requested.
        expected: u64,
        /// Bytes returned.
        got: u64,
    },
    /// The bucket or container itself does not exist.
    #[error("{location}: the bucket or container does not exist (create it first)")]
    MissingBucket {
        /// The store.
        location: String,
    },
    /// The repository URL cannot be used.
    #[error("invalid repository location {url:?}: {message}")]
    InvalidLocation {
        /// The URL as given.
        url: String,
        /// Why.
        message: String,
    },
    /// Any other backend failure (I/O, network, server error).
    #[error("{path}: {source}")]
    Backend {
        /// Object path.
        path: String,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },
}

impl StoreError {
    pub(crate) fn from_backend(path: &str, e: object_store::Error) -> StoreError {
        let path = path.to_owned();
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound { path },
            object_store::Error::AlreadyExists { .. } => StoreError::AlreadyExists { path },
            object_store::Error::PermissionDenied { source, .. }
            | object_store::Error::Unauthenticated { source, .. } => StoreError::PermissionDenied {
                path,
                message: source.to_string(),
            },
            source => StoreError::Backend { path, source },
        }
    }

    /// True when the object was missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

/// Result alias for storage operations.
pub type StoreResult<T> = Result<T, StoreError>;
