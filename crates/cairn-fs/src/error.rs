//! Errors and warnings of the file-system layer.

use std::path::PathBuf;

/// A fatal error: the operation stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] cairn_repo::Error),
    /// A file-system operation that the whole run depends on failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The run was cancelled through [`crate::Progress::cancel`].
    #[error("cancelled")]
    Cancelled,
    /// The request cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for `cairn-fs`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Something that went wrong with one entry while the run went on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// The path concerned.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}
