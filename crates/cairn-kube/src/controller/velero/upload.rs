//! DataUploads: Velero hands over a ready VolumeSnapshot of a claim; a
//! VolumeBackup of that snapshot in Velero's namespace moves its data, and
//! the DataUpload's phases follow the job's: New → Accepted (the job
//! exists) → Prepared (placed on a node) → InProgress (an agent reads) →
//! Completed | Failed | Canceled. Everything Velero copies into its backup
//! (`snapshotID`, totals, `nodeOS`) is written in the same update that
//! sets Completed, after the snapshot and the temporary claim are gone.

use std::sync::Arc;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};

pub use super::phase::Step;
use super::phase::{accepted, common, ended, mirror, required};
use super::{BACKUP_NAME_TAG, BACKUP_UID_TAG, VeleroConfig, phase_of, spec_of, write_status};
use crate::Result;
use crate::controller::Context;
use crate::crd::{
    JobStatus, Phase, PvcRef, RepositoryRef, SnapshotPolicy, VolumeBackup, VolumeBackupSpec,
};
use crate::job::Job;
use crate::kubeutil::{ignore_missing, wall_now};

/// The fields of a DataUpload's spec that cairn reads.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct UploadSpec {
    /// `CSI`: the only kind Velero hands to data movers.
    pub snapshot_type: String,
    /// The snapshot.
    pub csi_snapshot: CsiSnapshot,
    /// The claim snapshotted.
    #[serde(rename = "sourcePVC")]
    pub source_pvc: String,
    /// Its namespace.
    pub source_namespace: String,
    /// The BackupStorageLocation.
    pub backup_storage_location: String,
    /// Velero asks to stop.
    pub cancel: bool,
}

/// Velero's snapshot of the claim.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct CsiSnapshot {
    /// The VolumeSnapshot, in the claim's namespace.
    pub volume_snapshot: String,
    /// Its class.
    pub snapshot_class: String,
}

/// What is wrong with a DataUpload's spec, if anything.
pub fn check(spec: &UploadSpec) -> Result<(), String> {
    if spec.snapshot_type != "CSI" {
        return Err(format!(
            "snapshotType {:?}: cairn moves only CSI snapshots",
            spec.snapshot_type
        ));
    }
    required(&[
        (
            "csiSnapshot.volumeSnapshot",
            spec.csi_snapshot.volume_snapshot.as_str(),
        ),
        ("sourcePVC", spec.source_pvc.as_str()),
        ("sourceNamespace", spec.source_namespace.as_str()),
        (
            "backupStorageLocation",
            spec.backup_storage_location.as_str(),
        ),
    ])
}

/// The next step for a DataUpload in `phase` (with `status`), whose job is
/// `job` (None before it is created), at `now`.
pub fn decide(
    (phase, status): (&str, &Value),
    spec: &UploadSpec,
    job: Option<&JobStatus>,
    now: i64,
) -> Step {
    if let Some(step) = common(phase, spec.cancel, job, now) {
        return step;
    }
    let Some(job) = job else {
        return match check(spec) {
            Ok(()) => Step::Start,
            Err(why) => Step::End(ended("Failed", &why, now)),
        };
    };
    match job.phase {
        Phase::Completed => Step::End(completed(job, now)),
        p => mirror(p, job, (phase, status)).map_or(Step::Nothing, Step::Write),
    }
}

/// The final status of a completed backup.
fn completed(job: &JobStatus, now: i64) -> Value {
    let done = job.progress.as_ref().map_or(0, |p| p.bytes_done);
    let total = job
        .progress
        .as_ref()
        .map_or(0, |p| p.total_bytes.max(p.bytes_done));
    json!({
        "phase": "Completed",
        "snapshotID": job.snapshot_id,
        "progress": {"totalBytes": total, "bytesDone": done.max(total)},
        "incrementalBytes": job.incremental_bytes.unwrap_or(0),
        "nodeOS": "linux",
        "node": job.node,
        "completionTimestamp": super::timestamp(now),
        "message": Value::Null,
    })
}

/// The VolumeBackup that carries out `du`.
fn job_for(du: &DynamicObject, spec: &UploadSpec, repository: &str) -> VolumeBackup {
    let labels = du.labels();
    let mut tags = Vec::new();
    if let Some(uid) = labels.get("velero.io/backup-uid") {
        tags.push(format!("{BACKUP_UID_TAG}={uid}"));
    }
    if let Some(name) = labels.get("velero.io/backup-name") {
        tags.push(format!("{BACKUP_NAME_TAG}={name}"));
    }
    let mut vb = VolumeBackup::new(
        &du.name_any(),
        VolumeBackupSpec {
            pvc: PvcRef {
                name: spec.source_pvc.clone(),
                namespace: Some(spec.source_namespace.clone()),
            },
            repository: RepositoryRef {
                name: repository.to_owned(),
                namespace: None,
            },
            tags,
            snapshot: Some(SnapshotPolicy {
                volume_snapshot_class_name: spec.csi_snapshot.snapshot_class.clone(),
                volume_snapshot_name: Some(spec.csi_snapshot.volume_snapshot.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    vb.metadata.owner_references = super::job_owner(du, "DataUpload");
    vb
}

/// One reconcile of a DataUpload.
pub async fn reconcile(du: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Requeue> {
    let cfg = super::settings(&ctx)?;
    if !super::ours(&du, cfg) {
        return Ok(Requeue::await_change());
    }
    let spec: UploadSpec = spec_of(&du);
    let dus = super::api(&ctx.client, cfg, "v2alpha1", "DataUpload");
    let jobs: Api<VolumeBackup> = Api::namespaced(ctx.client.clone(), &cfg.namespace);
    let job = jobs.get_opt(&du.name_any()).await?;
    if super::refuse_foreign(&dus, &du, job.as_ref()).await? {
        return Ok(Requeue::await_change());
    }
    let status = du.data.get("status").cloned().unwrap_or(Value::Null);
    let job_status = job.as_ref().map(|j| j.status.clone().unwrap_or_default());
    let step = decide(
        (phase_of(&du), &status),
        &spec,
        job_status.as_ref(),
        wall_now(),
    );
    match step {
        // An upload never waits for a claim or rebinds (decide says so).
        Step::Nothing | Step::Wait | Step::Rebind(_) => {}
        Step::Start => start(&ctx, cfg, &du, &spec).await?,
        Step::CancelJob => super::cancel_job(&jobs, &dus, &du, job.as_ref()).await?,
        Step::Write(fields) => write_status(&dus, &du, fields).await?,
        Step::End(fields) => {
            if let Some(j) = &job {
                if let Some(policy) = j.snapshot() {
                    crate::controller::snapshot::clean_up(&ctx, j, policy).await?;
                }
            }
            dispose_snapshot(&ctx, &spec).await?;
            write_status(&dus, &du, fields).await?;
            return Ok(Requeue::await_change());
        }
    }
    Ok(Requeue::requeue(ctx.config.resync))
}

/// Makes the repository and the job, then says Accepted; a location that
/// cannot be written fails the DataUpload.
async fn start(
    ctx: &Context,
    cfg: &VeleroConfig,
    du: &DynamicObject,
    spec: &UploadSpec,
) -> Result<()> {
    let dus = super::api(&ctx.client, cfg, "v2alpha1", "DataUpload");
    let bsl = &spec.backup_storage_location;
    let failed = |why: String| ended("Failed", &why, wall_now());
    let (repo, location) = match super::ensure_repository(ctx, bsl).await? {
        Ok(r) => r,
        Err(why) => return write_status(&dus, du, failed(why)).await,
    };
    if location.read_only {
        let why = format!("BackupStorageLocation {bsl} is ReadOnly: cairn never writes to it");
        return write_status(&dus, du, failed(why)).await;
    }
    let jobs: Api<VolumeBackup> = Api::namespaced(ctx.client.clone(), &cfg.namespace);
    let vb = job_for(du, spec, &repo.name_any());
    crate::kubeutil::ignore_conflict(jobs.create(&PostParams::default(), &vb).await)?;
    write_status(&dus, du, accepted(wall_now())).await
}

/// Deletes Velero's VolumeSnapshot and its content, which Velero handed
/// over: the content is switched to `Delete` first, so the storage
/// snapshot goes with it.
async fn dispose_snapshot(ctx: &Context, spec: &UploadSpec) -> Result<()> {
    let name = &spec.csi_snapshot.volume_snapshot;
    if name.is_empty() || spec.source_namespace.is_empty() {
        return Ok(());
    }
    let vss = crate::controller::snapshot::snapshots(&ctx.client, &spec.source_namespace);
    let Some(vs) = vss.get_opt(name).await? else {
        return Ok(());
    };
    let content = vs
        .data
        .get("status")
        .and_then(|s| s.get("boundVolumeSnapshotContentName"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(content) = &content {
        let vscs = crate::controller::snapshot::contents(&ctx.client);
        let patch = json!({"spec": {"deletionPolicy": "Delete"}});
        ignore_missing(
            vscs.patch(content, &PatchParams::default(), &Patch::Merge(patch))
                .await,
        )?;
        ignore_missing(vss.delete(name, &DeleteParams::default()).await)?;
        ignore_missing(vscs.delete(content, &DeleteParams::default()).await)?;
    } else {
        ignore_missing(vss.delete(name, &DeleteParams::default()).await)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "upload_tests.rs"]
mod tests;
