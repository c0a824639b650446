//! # cairn-store
//!
//! The storage seam. A repository URL becomes an [`object_store`] backend
//! wrapped in [`Store`], which adds what a repository needs on top of the
//! primitives: create-only writes, length-checked range reads (a short read
//! is an error, never data), listing by prefix and errors whose kinds mean
//! something to a caller.
//!
//! Supported URLs: a plain path or `file:///path` (local directory, the
//! default), `s3://bucket/prefix` (with `endpoint`, `region`, `path-style`
//! and `allow-http` query options), `gs://bucket/prefix`,
//! `az://container/prefix`, and `memory://` (tests). Decorators add request
//! metrics (always on), rate limits and, for tests, fault injection.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cairn_store::StoreError> {
//! let store = cairn_store::Store::memory();
//! store.put_new("config", b"hello".to_vec().into()).await?;
//! assert_eq!(&store.get("config").await?[..], b"hello");
//! assert!(store.put_new("config", b"again".to_vec().into()).await.is_err());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod backends;
mod buffers;
mod cache;
#[doc(hidden)]
pub mod direct_io;
mod error;
mod fault;
mod http_fault;
mod limit;
mod lock;
mod metrics;
mod parts;
mod restream;
mod roots;
mod s3api;
mod spool;
mod staging;
mod store;
mod url;

pub use backends::ISOLATED_SETTINGS;
pub use buffers::{BufferPool, Slot};
pub use cache::{Cache, cache_key};
pub use error::{StoreError, StoreResult};
pub use fault::{FaultConfig, FaultStore};
pub use http_fault::{FaultConnector, HttpFaults};
pub use limit::RateLimitStore;
pub use lock::RetentionState;
pub use metrics::{Metrics, MetricsSnapshot, MetricsStore};
pub use parts::MIN_PART;
pub use s3api::{
    Availability, ObjectStatus, ObjectVersion, PendingUpload, is_archival_class, parse_date,
};
pub use spool::Spool;
pub use staging::StagingFile;
pub use store::{
    Create, MULTIPART_THRESHOLD, ObjectClass, ObjectInfo, Retention, StoragePolicy, Store,
    StoreOptions,
};
pub use url::{Location, S3Options, parse_location};
