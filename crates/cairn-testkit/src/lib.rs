//! cairn's shared test kit, for the workspace's tests and for embedders
//! who test against cairn. Dev-only: never a normal dependency.
//!
//! - [`noise`] and [`text`]: seeded bytes, incompressible or compressible,
//!   the same on every run ([`XorShift`] for more control).
//! - [`TreeBuilder`]: source trees with every entry kind, modes and times;
//!   [`tree_digest`] and [`assert_same_tree`] to compare a restored tree
//!   with its source.
//! - [`memory_repository`] and [`MemoryRepository`]: a repository in
//!   memory on a [`FixedClock`] with the fast test KDF.
//! - [`faulty`] with a [`FaultPlan`]: the same objects behind injected
//!   faults (writes that start failing, short, broken or altered reads).
//! - [`conformance`]: the storage contract as named checks, to run against
//!   any [`cairn_store::Store`].
//! - [`workspace_root`]: the workspace's files, found at run time.
//! - `kube` (feature `kube`): Kubernetes scenarios on a test apiserver —
//!   a namespace per test, nodes, claims bound to volumes, pods Running on
//!   a node, a kubelet-like directory, cleanup — and `kube::mock`, an
//!   in-memory API server for a real `kube::Client`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use cairn_testkit::{FaultPlan, MemoryRepository, noise};
//!
//! let m = MemoryRepository::new(b"pw").await;
//! assert_eq!(noise(1, 16), noise(1, 16));
//! m.advance(86_400); // a day passes for every handle on this clock
//! // Every pack upload fails from the first on.
//! let broken = m.faulty(&FaultPlan::new().fail_writes_after(0).under("data/")).await;
//! # drop(broken);
//! # }
//! ```

#![warn(missing_docs)]

pub mod conformance;
mod digest;
mod fault;
#[cfg(feature = "kube")]
pub mod kube;
mod noise;
mod repo;
pub mod tls;
mod tree;
mod workspace;

pub use cairn_core::FixedClock;
pub use digest::{
    Entry, EntryKind, assert_same_tree, differences, hard_link_groups, tree_digest,
    tree_digest_with_times,
};
pub use fault::{FaultPlan, Faulty, faulty};
pub use noise::{XorShift, noise, text};
pub use repo::{MemoryRepository, T0, memory_repository, snapshot_of};
pub use tree::{Time, TreeBuilder};
pub use workspace::workspace_root;
