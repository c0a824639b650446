//! The crate's error type.

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Kubernetes API refused or failed a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A referenced object does not exist.
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// Kind of object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A Secret lacks a key or holds something unusable.
    #[error("secret {namespace}/{name}: {message}")]
    Secret {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The repository could not be opened or used.
    #[error("repository {location}: {source}")]
    Repository {
        /// Repository URL.
        location: String,
        /// The engine's error.
        source: cairn::error::RepoError,
    },
    /// The storage location is invalid or unreachable.
    #[error(transparent)]
    Store(#[from] cairn::error::StoreError),
    /// The backup or restore itself failed.
    #[error(transparent)]
    Engine(#[from] cairn::error::FsError),
    /// The volume is not where the kubelet keeps it.
    #[error("{0}")]
    VolumeNotFound(String),
    /// A request that cannot work as given.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// A [`Error::NotFound`] for `kind` named by (namespace, name).
    pub fn not_found(kind: &'static str, key: &(String, String)) -> Error {
        Error::NotFound {
            kind,
            namespace: key.0.clone(),
            name: key.1.clone(),
        }
    }

    /// Whether this is an API 404.
    pub fn is_api_not_found(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 404)
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
