//! Types shared by the custom resources: references, phases and progress.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every cairn resource.
pub const GROUP: &str = "cairn.dev";
/// The version of every cairn resource.
pub const VERSION: &str = "v1alpha1";

/// A PersistentVolumeClaim, by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcRef {
    /// Name of the claim.
    pub name: String,
    /// Namespace of the claim; defaults to the namespace of the object that
    /// refers to it. Another namespace is only allowed for objects that live
    /// in an administrator namespace (`--admin-namespace` of the controller
    /// and the agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl PvcRef {
    /// (namespace, name), with `default_ns` when no namespace is given.
    pub fn resolve(&self, default_ns: &str) -> (String, String) {
        (
            self.namespace
                .clone()
                .unwrap_or_else(|| default_ns.to_owned()),
            self.name.clone(),
        )
    }
}

/// A BackupRepository, by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryRef {
    /// Name of the BackupRepository.
    pub name: String,
    /// Its namespace; defaults to the referring object's namespace. A
    /// repository in another namespace must list this namespace in its
    /// `allowedNamespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl RepositoryRef {
    /// (namespace, name), with `default_ns` when no namespace is given.
    pub fn resolve(&self, default_ns: &str) -> (String, String) {
        (
            self.namespace
                .clone()
                .unwrap_or_else(|| default_ns.to_owned()),
            self.name.clone(),
        )
    }
}

/// Where a job is in its life. `New` → `Assigned` (to a node) →
/// `InProgress` (an agent runs it) → `Completed`, `Failed` or `Canceled`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    /// Not yet assigned to a node.
    #[default]
    New,
    /// Assigned to a node; queued there until the agent has a free slot.
    Assigned,
    /// An agent is running it.
    InProgress,
    /// Finished successfully.
    Completed,
    /// Finished with an error (see `message`).
    Failed,
    /// Stopped on request (`spec.cancel`).
    Canceled,
}

impl Phase {
    /// Every phase, in life-cycle order.
    pub const ALL: [Phase; 6] = [
        Phase::New,
        Phase::Assigned,
        Phase::InProgress,
        Phase::Completed,
        Phase::Failed,
        Phase::Canceled,
    ];

    /// True once the job can no longer change.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Completed | Phase::Failed | Phase::Canceled)
    }

    /// The name used in the API (and as a metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::New => "New",
            Phase::Assigned => "Assigned",
            Phase::InProgress => "InProgress",
            Phase::Completed => "Completed",
            Phase::Failed => "Failed",
            Phase::Canceled => "Canceled",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bytes and files done so far, and the totals when known.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    /// Bytes expected in total (0 while unknown).
    #[serde(default)]
    pub total_bytes: u64,
    /// Bytes read (backup) or written (restore) so far.
    #[serde(default)]
    pub bytes_done: u64,
    /// Files expected in total (0 while unknown).
    #[serde(default)]
    pub total_files: u64,
    /// Files finished so far.
    #[serde(default)]
    pub files_done: u64,
    /// The same, for people: `1.5 GiB / 3.0 GiB (50%)`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

impl JobProgress {
    /// Progress from the engine's counters, with its summary line.
    pub fn new(files_done: u64, bytes_done: u64, total_files: u64, total_bytes: u64) -> Self {
        let summary = if total_bytes > 0 {
            let pct = (bytes_done.min(total_bytes) as f64 * 100.0 / total_bytes as f64) as u64;
            format!("{} / {} ({pct}%)", human(bytes_done), human(total_bytes))
        } else {
            human(bytes_done)
        };
        JobProgress {
            total_bytes,
            bytes_done,
            total_files,
            files_done,
            summary,
        }
    }
}

/// `1536` → `1.5 KiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// What the agent needs to reach a volume: the pod that mounts it and the
/// names the kubelet files it under.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSource {
    /// Namespace of the pod.
    pub pod_namespace: String,
    /// Name of the pod.
    pub pod_name: String,
    /// UID of the pod: its directory under `<kubelet-root>/pods/`.
    #[serde(rename = "podUID")]
    pub pod_uid: String,
    /// The pod's name for the volume (`spec.volumes[].name`).
    pub volume_name: String,
    /// The PersistentVolume bound to the claim: the kubelet's directory name
    /// for the volume.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub persistent_volume: String,
    /// True when cairn created the pod only to mount the volume.
    #[serde(default)]
    pub helper_pod: bool,
}

/// A backup of a CSI snapshot of the claim: the controller takes a
/// VolumeSnapshot, waits until it is ready, makes a temporary claim from it
/// in the claim's namespace, lets an agent back that up with the original
/// claim recorded as the source (so the next backup finds its parent), and
/// deletes the temporary objects afterwards.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotPolicy {
    /// The VolumeSnapshotClass to take the snapshot with (its driver must
    /// be the claim's).
    pub volume_snapshot_class_name: String,
    /// Which metadata show a file unchanged since the previous backup:
    /// `SizeAndMtime` (the default here: a volume cloned from a snapshot
    /// has new inode numbers and change times at every backup on many
    /// drivers) or `Strict` (size, mtime, ctime and inode, as for a live
    /// volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_detection: Option<ChangeDetectionMode>,
    /// Keep this many of the claim's newest VolumeSnapshots taken for
    /// backups (for fast restores on the cluster itself); the others, and
    /// every temporary claim, are deleted once the backup ends. Default 0.
    #[serde(default)]
    pub keep_snapshots: u32,
    /// Back up this existing VolumeSnapshot of the claim (in the claim's
    /// namespace) instead of taking one; `volumeSnapshotClassName` is then
    /// only recorded. cairn never deletes a snapshot it did not take: its
    /// maker does (the Velero data mover deletes Velero's once the backup
    /// ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_snapshot_name: Option<String>,
}

/// How a backup decides that a file is unchanged.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ChangeDetectionMode {
    /// Size, modification time, change time and inode number.
    Strict,
    /// Size and modification time.
    SizeAndMtime,
}

/// The status fields VolumeBackup and VolumeRestore share.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// Where the job is in its life.
    #[serde(default)]
    pub phase: Phase,
    /// The node whose agent runs the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The pod through which the agent reaches the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<VolumeSource>,
    /// The snapshot written (backup) or read (restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Bytes and files done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<JobProgress>,
    /// Bytes this backup added to the repository (after deduplication and
    /// compression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_bytes: Option<u64>,
    /// What happened last, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When an agent started the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job reached a final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// The agent process running the job (changes when an agent restarts
    /// and resumes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// How many times an agent started the job.
    #[serde(default)]
    pub attempts: u32,
    /// Standard conditions: `Ready` becomes true when the job completes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    /// Backups: what the application hooks of the pods that mount the
    /// claim did (docs/KUBERNETES.md, "Application hooks").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<super::HookStatus>,
}

/// A timestamp from seconds since the epoch.
pub fn time_from_secs(secs: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default())
}

/// Seconds since the epoch of a timestamp.
pub fn secs_of(t: &Time) -> i64 {
    t.0.as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_summary_reads_well() {
        assert_eq!(JobProgress::new(1, 512, 0, 0).summary, "512 B");
        assert_eq!(
            JobProgress::new(1, 1536, 2, 3072).summary,
            "1.5 KiB / 3.0 KiB (50%)"
        );
        // Bytes done past the total (files grew) never show above 100%.
        assert!(
            JobProgress::new(1, 5000, 1, 1000)
                .summary
                .ends_with("(100%)")
        );
    }

    #[test]
    fn references_default_to_the_referrers_namespace() {
        let r = PvcRef {
            name: "data".into(),
            namespace: None,
        };
        assert_eq!(r.resolve("apps"), ("apps".into(), "data".into()));
        let r = RepositoryRef {
            name: "repo".into(),
            namespace: Some("backup".into()),
        };
        assert_eq!(r.resolve("apps"), ("backup".into(), "repo".into()));
    }
}
