//! `BackupSchedule`: VolumeBackups of selected claims on a cron schedule,
//! with retention.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{RepositoryRef, SnapshotPolicy};

/// VolumeBackups of every selected claim on a cron schedule, and retention
/// of the backups it made.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "BackupSchedule",
    namespaced,
    status = "BackupScheduleStatus",
    shortname = "bsched",
    category = "cairn",
    doc = "VolumeBackups of selected PersistentVolumeClaims on a cron schedule, with retention.",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Protected","type":"string","jsonPath":".status.protectedClaims"}"#,
    printcolumn = r#"{"name":"Last Success","type":"date","jsonPath":".status.lastSuccessfulTime"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.summary"}"#,
    printcolumn = r#"{"name":"Last","type":"date","jsonPath":".status.lastScheduleTime","priority":1}"#,
    printcolumn = r#"{"name":"Next","type":"string","jsonPath":".status.nextScheduleTime","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleSpec {
    /// Standard five-field cron expression in UTC (`30 2 * * *`), or
    /// `@hourly`, `@daily`, `@weekly`, `@monthly`.
    pub schedule: String,
    /// The repository to back up into.
    pub repository: RepositoryRef,
    /// Claims to back up; an empty selector selects every claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Namespaces to look for claims in; default the schedule's own. Other
    /// namespaces are only honoured for a schedule in an administrator
    /// namespace (`--admin-namespace`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Which completed backups to keep, per claim, as in `cairn forget`.
    /// Backups beyond it are deleted and their snapshots forgotten. With no
    /// rule set every backup is kept.
    #[serde(default)]
    pub retention: Retention,
    /// Tags for every snapshot (the schedule's name is always added).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Patterns to leave out of every backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Stop creating backups (retention still applies).
    #[serde(default)]
    pub paused: bool,
    /// Back up CSI snapshots of the claims rather than the live volumes
    /// (copied into every VolumeBackup the schedule makes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotPolicy>,
}

/// Retention rules, as in `cairn forget`. Counts of 0 disable a rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Keep the `n` newest backups.
    #[serde(default)]
    pub keep_last: u32,
    /// Keep the newest backup of each of the last `n` hours with one.
    #[serde(default)]
    pub keep_hourly: u32,
    /// … of each of the last `n` days.
    #[serde(default)]
    pub keep_daily: u32,
    /// … of each of the last `n` ISO weeks.
    #[serde(default)]
    pub keep_weekly: u32,
    /// … of each of the last `n` months.
    #[serde(default)]
    pub keep_monthly: u32,
    /// … of each of the last `n` years.
    #[serde(default)]
    pub keep_yearly: u32,
    /// Keep every backup within this span of the newest one (`1y6m`, `14d`,
    /// `36h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
    /// Keep every backup whose snapshot has one of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_tags: Vec<String>,
    /// Failed and canceled backups to keep per claim (newest first);
    /// default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_failed: Option<u32>,
}

/// What the schedule did last.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleStatus {
    /// `Active`, `Paused` or `Invalid` (see `message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The last time backups were due (and created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// The next time backups are due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// Backups of this schedule by phase, for people: `3 Completed, 1 InProgress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Why the schedule is invalid, or what it did last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Selected claims that have a completed backup, of all selected:
    /// `2/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_claims: Option<String>,
    /// Selected claims with no completed backup yet (`namespace/name`, at
    /// most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unprotected_claims: Vec<String>,
    /// When the newest completed backup of this schedule completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
}
