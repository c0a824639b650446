//! # cairn-kube
//!
//! cairn on Kubernetes. A thin **controller** turns user intent into
//! per-volume jobs assigned to nodes, and a **node agent** on every node runs
//! the jobs assigned to it with the `cairn` engine, reaching each volume
//! through the kubelet's pods directory.
//!
//! - [`crd`]: the custom resources (`BackupRepository`, `VolumeBackup`,
//!   `VolumeRestore`, `BackupSchedule`) and their generated CRDs.
//! - [`controller`]: assignment of jobs to nodes, helper pods for unmounted
//!   claims, schedules and retention.
//! - [`agent`]: the node agent.
//!
//! Every reconciler is split in two: a pure function from observed state to
//! a list of actions (unit-tested without a cluster), and a thin executor that
//! observes and applies them through the API.
//!
//! ```
//! use cairn_kube::crd::{Phase, VolumeBackup, VolumeBackupSpec, PvcRef, RepositoryRef};
//!
//! let vb = VolumeBackup::new("data-nightly", VolumeBackupSpec {
//!     pvc: PvcRef { name: "data".into(), namespace: None },
//!     repository: RepositoryRef { name: "main".into(), namespace: None },
//!     ..Default::default()
//! });
//! assert!(vb.status.is_none());
//! assert!(!Phase::InProgress.is_terminal());
//! ```

#![warn(missing_docs)]

pub mod agent;
pub mod aws_ini;
pub mod clock;
pub mod controller;
pub mod crd;
pub mod http;
pub mod job;
pub mod kubeutil;
pub mod maintain;
pub mod metrics;
pub mod names;
pub mod repo;
pub mod storage;
pub mod trust;

mod error;

pub use error::{Error, Result};
pub mod cli;
