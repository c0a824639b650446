//! DataDownloads: Velero has created the user's claim (naming no volume,
//! selecting one by label) and asks for snapshot `snapshotID` in it. A
//! VolumeRestore in Velero's namespace restores into a claim cairn creates
//! there like the user's; once it completes, [`super::rebind`] hands the
//! volume over, and only then is the DataDownload Completed.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};

pub use super::phase::Step;
use super::phase::{accepted, common, ended, mirror, required};
use super::rebind::{self, RECLAIM_POLICY_ANNOTATION, RESTORED_FOR_LABEL};
use super::{VeleroConfig, phase_of, spec_of, write_status};
use crate::Result;
use crate::controller::Context;
use crate::crd::{
    ClaimTemplate, JobStatus, Phase, PvcRef, RepositoryRef, VolumeRestore, VolumeRestoreSpec,
};
use crate::kubeutil::{ignore_missing, wall_now};
use crate::names::OWNER_UID_LABEL;

/// The fields of a DataDownload's spec that cairn reads.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct DownloadSpec {
    /// The user's claim.
    pub target_volume: TargetVolume,
    /// The BackupStorageLocation.
    pub backup_storage_location: String,
    /// The snapshot (a DataUpload's `snapshotID`).
    #[serde(rename = "snapshotID")]
    pub snapshot_id: String,
    /// The namespace the snapshot was taken in.
    pub source_namespace: String,
    /// Velero asks to stop.
    pub cancel: bool,
}

/// The claim to restore into.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct TargetVolume {
    /// Its name.
    pub pvc: String,
    /// Its namespace (after Velero's namespace mapping).
    pub namespace: String,
}

/// What is wrong with a DataDownload's spec, if anything.
pub fn check(spec: &DownloadSpec) -> Result<(), String> {
    let id = &spec.snapshot_id;
    if id.len() != 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(format!("snapshotID {id:?} is not a cairn snapshot id"));
    }
    required(&[
        ("targetVolume.pvc", spec.target_volume.pvc.as_str()),
        (
            "targetVolume.namespace",
            spec.target_volume.namespace.as_str(),
        ),
        (
            "backupStorageLocation",
            spec.backup_storage_location.as_str(),
        ),
    ])
}

/// The next step for a DataDownload in `phase`, whose job is `job`, when
/// the user's claim exists or not.
pub fn decide(
    (phase, status): (&str, &Value),
    spec: &DownloadSpec,
    job: Option<&JobStatus>,
    target_exists: bool,
    now: i64,
) -> Step {
    if let Some(step) = common(phase, spec.cancel, job, now) {
        return step;
    }
    let Some(job) = job else {
        return match check(spec) {
            Err(why) => Step::End(ended("Failed", &why, now)),
            Ok(()) if !target_exists => Step::Wait,
            Ok(()) => Step::Start,
        };
    };
    match job.phase {
        Phase::Completed => {
            let total = job
                .progress
                .as_ref()
                .map_or(0, |p| p.total_bytes.max(p.bytes_done));
            Step::Rebind(json!({
                "phase": "Completed",
                "progress": {"totalBytes": total, "bytesDone": total},
                "node": job.node,
                "completionTimestamp": super::timestamp(now),
                "message": Value::Null,
            }))
        }
        p => mirror(p, job, (phase, status)).map_or(Step::Nothing, Step::Write),
    }
}

/// Whether snapshot `id` (of `source`) is one Velero may restore for a
/// DataDownload of `source_namespace`: a backup of a claim of that
/// namespace (the namespace before Velero's mapping).
pub fn check_source(
    id: &str,
    source: &cairn::Source,
    source_namespace: &str,
) -> Result<(), String> {
    match source {
        cairn::Source::KubernetesVolume { namespace, .. } if namespace == source_namespace => {
            Ok(())
        }
        cairn::Source::KubernetesVolume {
            namespace, name, ..
        } => Err(format!(
            "snapshot {id} is of claim {namespace}/{name}, not of a claim of namespace \
             {source_namespace} as the DataDownload says"
        )),
        _ => Err(format!("snapshot {id} is not of a Kubernetes volume")),
    }
}

/// Opens the repository and checks that the snapshot exists and was taken
/// in the DataDownload's source namespace.
async fn check_snapshot(
    ctx: &Context,
    repo: &crate::crd::BackupRepository,
    spec: &DownloadSpec,
) -> Result<std::result::Result<(), String>> {
    let r = crate::repo::open(
        &ctx.client,
        repo,
        ctx.config.cache_dir.as_deref(),
        cairn::OpenOptions::default(),
    )
    .await?;
    let Ok(id) = cairn::Id::from_hex(&spec.snapshot_id) else {
        return Ok(Err(format!(
            "snapshotID {:?} is not a snapshot id",
            spec.snapshot_id
        )));
    };
    match r.load_snapshot(&id).await {
        Ok(snap) => Ok(check_source(
            &spec.snapshot_id,
            &snap.source,
            &spec.source_namespace,
        )),
        Err(cairn::error::RepoError::Store(e)) if e.is_not_found() => Ok(Err(format!(
            "snapshot {} is not in repository {}",
            spec.snapshot_id,
            repo.name_any()
        ))),
        Err(source) => Err(crate::Error::Repository {
            location: repo.spec.url.clone(),
            source,
        }),
    }
}

/// The claim cairn restores into: like the user's.
pub fn template(target: &PersistentVolumeClaim) -> Result<ClaimTemplate, String> {
    let spec = target.spec.clone().unwrap_or_default();
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| q.0.clone())
        .ok_or("the target claim requests no storage size")?;
    Ok(ClaimTemplate {
        size,
        storage_class_name: spec.storage_class_name,
        access_modes: spec.access_modes.unwrap_or_default(),
        volume_mode: spec.volume_mode,
    })
}

/// One reconcile of a DataDownload.
pub async fn reconcile(dd: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Requeue> {
    let cfg = super::settings(&ctx)?;
    if !super::ours(&dd, cfg) {
        return Ok(Requeue::await_change());
    }
    let spec: DownloadSpec = spec_of(&dd);
    let dds = super::api(&ctx.client, cfg, "v2alpha1", "DataDownload");
    let jobs: Api<VolumeRestore> = Api::namespaced(ctx.client.clone(), &cfg.namespace);
    let job = jobs.get_opt(&dd.name_any()).await?;
    if super::refuse_foreign(&dds, &dd, job.as_ref()).await? {
        return Ok(Requeue::await_change());
    }
    let target_ns = &spec.target_volume.namespace;
    let targets: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), target_ns);
    let target = match spec.target_volume.pvc.as_str() {
        "" => None,
        name if !target_ns.is_empty() => targets.get_opt(name).await?,
        _ => None,
    };
    let status = dd.data.get("status").cloned().unwrap_or(Value::Null);
    let job_status = job.as_ref().map(|j| j.status.clone().unwrap_or_default());
    let step = decide(
        (phase_of(&dd), &status),
        &spec,
        job_status.as_ref(),
        target.is_some(),
        wall_now(),
    );
    match step {
        Step::Nothing => {}
        Step::Wait => return Ok(Requeue::requeue(super::wait(&ctx))),
        Step::Start => {
            let Some(target) = &target else {
                return Ok(Requeue::requeue(super::wait(&ctx)));
            };
            start(&ctx, cfg, &dd, &spec, target).await?;
        }
        Step::CancelJob => super::cancel_job(&jobs, &dds, &dd, job.as_ref()).await?,
        Step::Write(fields) => write_status(&dds, &dd, fields).await?,
        Step::Rebind(fields) => {
            return match hand_over(&ctx, cfg, &dd, target.as_ref()).await? {
                rebind::Step::Done => {
                    write_status(&dds, &dd, fields).await?;
                    Ok(Requeue::await_change())
                }
                rebind::Step::Fail(why) => {
                    let failed = ended("Failed", &why, wall_now());
                    write_status(&dds, &dd, failed).await?;
                    Ok(Requeue::await_change())
                }
                _ => Ok(Requeue::requeue(super::wait(&ctx))),
            };
        }
        Step::End(fields) => {
            remove_restore_claim(&ctx, cfg, &dd, job.as_ref()).await?;
            write_status(&dds, &dd, fields).await?;
            return Ok(Requeue::await_change());
        }
    }
    Ok(Requeue::requeue(ctx.config.resync))
}

/// Makes the repository and the job, then says Accepted.
async fn start(
    ctx: &Context,
    cfg: &VeleroConfig,
    dd: &DynamicObject,
    spec: &DownloadSpec,
    target: &PersistentVolumeClaim,
) -> Result<()> {
    let dds = super::api(&ctx.client, cfg, "v2alpha1", "DataDownload");
    let failed = |why: String| ended("Failed", &why, wall_now());
    let repo = match super::ensure_repository(ctx, &spec.backup_storage_location).await? {
        Ok((repo, _)) => repo,
        Err(why) => return write_status(&dds, dd, failed(why)).await,
    };
    if let Err(why) = check_snapshot(ctx, &repo, spec).await? {
        return write_status(&dds, dd, failed(why)).await;
    }
    let template = match template(target) {
        Ok(t) => t,
        Err(why) => return write_status(&dds, dd, failed(why)).await,
    };
    let mut vr = VolumeRestore::new(
        &dd.name_any(),
        VolumeRestoreSpec {
            repository: RepositoryRef {
                name: repo.name_any(),
                namespace: None,
            },
            snapshot: Some(spec.snapshot_id.clone()),
            target_pvc: PvcRef {
                name: dd.name_any(),
                namespace: None,
            },
            create_target_pvc: Some(template),
            ..Default::default()
        },
    );
    vr.metadata.owner_references = super::job_owner(dd, "DataDownload");
    let jobs: Api<VolumeRestore> = Api::namespaced(ctx.client.clone(), &cfg.namespace);
    crate::kubeutil::ignore_conflict(jobs.create(&PostParams::default(), &vr).await)?;
    write_status(&dds, dd, accepted(wall_now())).await
}

/// Observes the hand-over and takes its next step; returns that step.
async fn hand_over(
    ctx: &Context,
    cfg: &VeleroConfig,
    dd: &DynamicObject,
    target: Option<&PersistentVolumeClaim>,
) -> Result<rebind::Step> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &cfg.namespace);
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &cfg.namespace);
    let uid = dd.uid().unwrap_or_default();
    let restore_claim = claims.get_opt(&dd.name_any()).await?;
    let bound_to = restore_claim
        .as_ref()
        .and_then(|c| c.spec.as_ref()?.volume_name.clone())
        .filter(|v| !v.is_empty());
    let volume = match bound_to {
        Some(name) => pvs.get_opt(&name).await?,
        None => pvs
            .list(&ListParams::default().labels(&format!("{RESTORED_FOR_LABEL}={uid}")))
            .await?
            .items
            .into_iter()
            .next(),
    };
    let helper = crate::names::helper_pod("restore", &dd.name_any());
    let helper_gone = pods.get_opt(&helper).await?.is_none();
    let step = rebind::next(&rebind::Seen {
        restore_claim: restore_claim.as_ref(),
        volume: volume.as_ref(),
        target,
        helper_gone,
        uid: &uid,
    });
    take_step(ctx, cfg, &uid, &step).await?;
    Ok(step)
}

/// Applies one step of the hand-over.
async fn take_step(
    ctx: &Context,
    cfg: &VeleroConfig,
    uid: &str,
    step: &rebind::Step,
) -> Result<()> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &cfg.namespace);
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let merge = |v: Value| Patch::Merge(v);
    let pp = PatchParams::default();
    match step {
        rebind::Step::Retain { volume, policy } => {
            pvs.patch(
                volume,
                &pp,
                &merge(json!({
                    "metadata": {
                        "labels": {RESTORED_FOR_LABEL: uid},
                        "annotations": {RECLAIM_POLICY_ANNOTATION: policy},
                    },
                    "spec": {"persistentVolumeReclaimPolicy": "Retain"},
                })),
            )
            .await?;
        }
        rebind::Step::DeleteRestoreClaim(name) => {
            ignore_missing(claims.delete(name, &DeleteParams::default()).await)?;
        }
        rebind::Step::PointClaim { claim, volume } => {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &claim.0);
            api.patch(&claim.1, &pp, &merge(json!({
                "metadata": {"annotations": {
                    rebind::BIND_COMPLETED: Value::Null, rebind::BOUND_BY_CONTROLLER: Value::Null,
                }},
                "spec": {"volumeName": volume},
            })))
            .await?;
        }
        rebind::Step::PointVolume {
            volume,
            claim,
            labels,
        } => {
            pvs.patch(volume, &pp, &merge(json!({
                "metadata": {
                    "labels": labels,
                    "annotations": {rebind::BOUND_BY_CONTROLLER: Value::Null},
                },
                "spec": {"claimRef": {
                    "kind": "PersistentVolumeClaim", "namespace": claim.0, "name": claim.1,
                    "apiVersion": Value::Null, "uid": Value::Null, "resourceVersion": Value::Null,
                    "fieldPath": Value::Null,
                }},
            })))
            .await?;
        }
        rebind::Step::RestorePolicy { volume, policy } => {
            pvs.patch(
                volume,
                &pp,
                &merge(json!({
                    "metadata": {"annotations": {RECLAIM_POLICY_ANNOTATION: Value::Null}},
                    "spec": {"persistentVolumeReclaimPolicy": policy},
                })),
            )
            .await?;
        }
        rebind::Step::Wait(_) | rebind::Step::Fail(_) | rebind::Step::Done => {}
    }
    Ok(())
}

/// Deletes the claim cairn restored into, when the restore ends without
/// handing it over (failed or canceled).
async fn remove_restore_claim(
    ctx: &Context,
    cfg: &VeleroConfig,
    dd: &DynamicObject,
    job: Option<&VolumeRestore>,
) -> Result<()> {
    let Some(job) = job else {
        return Ok(());
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &cfg.namespace);
    let Some(c) = claims.get_opt(&dd.name_any()).await? else {
        return Ok(());
    };
    let ours = c.labels().get(OWNER_UID_LABEL) == job.metadata.uid.as_ref();
    if ours && c.metadata.deletion_timestamp.is_none() {
        ignore_missing(
            claims
                .delete(&dd.name_any(), &DeleteParams::default())
                .await,
        )?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "download_tests.rs"]
mod tests;
