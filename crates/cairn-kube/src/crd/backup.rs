//! `VolumeBackup`: one backup of one PersistentVolumeClaim.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{JobStatus, PvcRef, RepositoryRef, SnapshotPolicy};

/// One backup of one PersistentVolumeClaim into a BackupRepository.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "VolumeBackup",
    namespaced,
    status = "JobStatus",
    shortname = "vb",
    category = "cairn",
    doc = "One backup of one PersistentVolumeClaim into a BackupRepository.",
    printcolumn = r#"{"name":"PVC","type":"string","jsonPath":".spec.pvc.name"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress.summary"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.node","priority":1}"#,
    printcolumn = r#"{"name":"Snapshot","type":"string","jsonPath":".status.snapshotId","priority":1}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct VolumeBackupSpec {
    /// The claim to back up.
    pub pvc: PvcRef,
    /// The repository to back up into.
    pub repository: RepositoryRef,
    /// Tags recorded in the snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Patterns to leave out, in gitignore syntax relative to the volume's
    /// root (`/cache`, `*.tmp`, `lost+found/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Set to true to stop the backup. What was uploaded stays indexed in
    /// the repository (a later backup reuses it); no snapshot is written.
    #[serde(default)]
    pub cancel: bool,
    /// Back up a CSI snapshot of the claim rather than the live volume: a
    /// consistent point in time (crash-consistent, as after a power cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotPolicy>,
}
