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
    #[error("the bucket or container does not exist (create it first)")]
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
    /// The object is in an archival storage class (S3 `GLACIER`,
    /// `DEEP_ARCHIVE`) and must be restored before it can be read.
    #[error(
        "{path}: in an archival storage class; ask for its restore first (`cairn warm-up`, or `restore --warm-up`)"
    )]
    Archived {
        /// Object path.
        path: String,
    },
    /// Object Lock retention forbids the change (a delete, a shorter
    /// retention).
    #[error("{path}: locked: {message}")]
    Locked {
        /// Object path.
        path: String,
        /// Backend message, or when the retention ends.
        message: String,
    },
    /// The backend cannot do this (storage classes or object lock on a
    /// local directory, say).
    #[error("{what} needs an S3 repository; {location} is not one")]
    Unsupported {
        /// What was asked.
        what: &'static str,
        /// The store.
        location: String,
    },
    /// Any other backend failure (I/O, network, server error).
    #[error("{path}: {message}")]
    Backend {
        /// Object path.
        path: String,
        /// What went wrong, summarised from the backend's error chain: the
        /// root cause, the server's error code and status, retries made.
        message: String,
    },
}

impl StoreError {
    pub(crate) fn from_backend(path: &str, e: object_store::Error) -> StoreError {
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        };
        if summarize(&e).contains("InvalidObjectState") {
            return StoreError::Archived { path };
        }
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound { path },
            object_store::Error::AlreadyExists { .. } => StoreError::AlreadyExists { path },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => StoreError::PermissionDenied {
                path,
                message: summarize(&e),
            },
            e => {
                let message = summarize(&e);
                if message.contains("HTTP 403") || message.contains("HTTP 401") {
                    StoreError::PermissionDenied { path, message }
                } else if message.contains("HTTP 404") {
                    StoreError::NotFound { path }
                } else {
                    StoreError::Backend { path, message }
                }
            }
        }
    }

    /// True when the object was missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

/// A short account of a backend error. object_store's messages nest every
/// layer (request, retry, HTTP client, socket), each repeating the next; a
/// user needs the root cause, the server's own error code and message, the
/// HTTP status, and whether retrying was tried.
fn summarize(e: &object_store::Error) -> String {
    let mut texts = vec![e.to_string()];
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = cur {
        texts.push(s.to_string());
        cur = s.source();
    }
    let all = texts.join(" ");
    let between = |start: &str, end: &str| {
        let i = all.find(start)? + start.len();
        let j = all[i..].find(end)? + i;
        Some(all[i..j].to_owned())
    };
    let mut parts = Vec::new();
    match (
        between("<Code>", "</Code>"),
        between("<Message>", "</Message>"),
    ) {
        (Some(code), Some(msg)) => parts.push(format!("{code}: {msg}")),
        (Some(code), None) => parts.push(code),
        // The innermost error names the real cause (e.g. "tcp connect
        // error: Connection refused (os error 111)").
        _ => parts.push(texts.last().cloned().unwrap_or_default()),
    }
    if let Some(status) = between("status code: ", " ") {
        parts.push(format!("HTTP {status}"));
    }
    if let Some(n) = between("after ", " retries") {
        if n != "0" {
            parts.push(format!("after {n} retries"));
        }
    }
    let mut out = parts.join(", ");
    if out.len() > 300 {
        let mut cut = 300;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// Result alias for storage operations.
pub type StoreResult<T> = Result<T, StoreError>;
