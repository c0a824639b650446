//! `VolumeRestore`: a snapshot written back into a PersistentVolumeClaim.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{JobStatus, PvcRef, RepositoryRef};

/// A snapshot restored into a PersistentVolumeClaim.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "VolumeRestore",
    namespaced,
    status = "JobStatus",
    shortname = "vr",
    category = "cairn",
    doc = "A snapshot restored into a PersistentVolumeClaim.",
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.targetPvc.name"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress.summary"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.node","priority":1}"#,
    printcolumn = r#"{"name":"Snapshot","type":"string","jsonPath":".status.snapshotId","priority":1}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRestoreSpec {
    /// The repository holding the snapshot.
    pub repository: RepositoryRef,
    /// Snapshot id, or a unique prefix of one. When empty, the newest
    /// snapshot of `sourcePvc` is restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Restore the newest snapshot of this claim (default: of the target
    /// claim itself). Ignored when `snapshot` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_pvc: Option<PvcRef>,
    /// Restore the newest snapshot of `sourcePvc` that the cluster of this
    /// name recorded (its agents' `--cluster-name`), e.g. to restore a lost
    /// cluster's claims into a new one. Only jobs in an administrator
    /// namespace may name another cluster than their own. Ignored when
    /// `snapshot` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cluster: Option<String>,
    /// The claim to restore into. Existing files are replaced; other files
    /// in it are left alone. Ownership, modes, times and extended
    /// attributes are restored.
    pub target_pvc: PvcRef,
    /// Set to true to stop the restore; files already written stay.
    #[serde(default)]
    pub cancel: bool,
    /// Create `targetPvc` with these settings if it does not exist (a
    /// restore into a rebuilt cluster or namespace). An existing claim is
    /// used as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_target_pvc: Option<ClaimTemplate>,
}

/// The claim a restore creates when its target does not exist.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimTemplate {
    /// Requested size, as a quantity (`10Gi`).
    pub size: String,
    /// Storage class (default: the cluster's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Access modes (default `ReadWriteOnce`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<String>,
    /// `Filesystem` (default) or `Block`, as the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mode: Option<String>,
}
