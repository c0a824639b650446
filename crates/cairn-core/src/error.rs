//! The one error type of `cairn-core`.

use crate::{Id, Kind};

/// What can go wrong while decoding, opening or deriving.
///
/// Every variant names the object it concerns so a caller can tell a user
/// what failed and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes do not follow the format: truncated, trailing garbage, a count
    /// that does not fit, an unknown enum value.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which structure was being decoded.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// Authenticated decryption failed: the object was modified, truncated,
    /// moved to another name, or sealed with another key.
    #[error(
        "{kind} {id} failed authentication: it was modified, truncated, or sealed with another key"
    )]
    Tampered {
        /// The kind the object was opened as.
        kind: Kind,
        /// The id the object was opened as.
        id: Id,
    },
    /// No key file could be unlocked with the given password.
    #[error("wrong password: no key in the repository could be unlocked with it")]
    WrongPassword,
    /// A structure declares a format version this build does not know.
    #[error("unsupported {what} format version {version} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Which structure.
        what: &'static str,
        /// The version found.
        version: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A parameter is outside its allowed range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
}

impl Error {
    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}

/// Result alias for `cairn-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
