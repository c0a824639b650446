//! Every on-disk codec, one module per structure and format version.
//!
//! docs/FORMAT.md is the prose specification of these bytes.

pub mod bundle_v1;
pub mod config_v1;
pub mod index_v1;
pub mod keyfile_v1;
pub mod pack_v1;
pub mod session_v1;
pub mod session_v2;
pub mod settings_v1;
pub mod snapshot_v1;
pub mod tree_v1;

pub(crate) mod text;

pub use bundle_v1::{Bundle, BundleBuilder};
pub use config_v1::Config;
pub use index_v1::{IndexFile, IndexPack};
pub use keyfile_v1::{KdfParams, KeyFile, MAX_KEY_FILE_LEN};
pub use pack_v1::{PackBuilder, PackEntry};
pub use session_v2::{Session, SessionPurpose};
pub use settings_v1::{Lock, LockMode, Settings};
pub use snapshot_v1::{RootLayout, Snapshot, SnapshotStats, Source};
pub use tree_v1::{Node, NodeKind, Timestamp, Tree, Xattr};
