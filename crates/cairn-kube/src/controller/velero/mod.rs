//! cairn as Velero's data mover (`velero backup create --snapshot-move-data
//! --data-mover cairn`): the controller runs Velero's DataUploads and
//! DataDownloads whose `spec.datamover` is cairn's, and never touches
//! others.
//!
//! Each Velero object is carried out by one of cairn's own jobs in Velero's
//! namespace, owned by it: a DataUpload by a VolumeBackup of Velero's
//! VolumeSnapshot (recorded as a backup of the original claim, so the next
//! one finds its parent), a DataDownload by a VolumeRestore into a claim
//! cairn creates and then hands to the claim Velero made, with Velero's own
//! rebind sequence. The repository is the BackupStorageLocation's
//! `<prefix>/cairn/` ([`bsl`]); snapshots carry the Backup's uid, and a
//! DeleteBackupRequest forgets them ([`deletion`]). The decisions are pure
//! ([`upload::decide`], [`download::decide`], [`rebind::next`]) and tested
//! without a cluster. See docs/VELERO.md.

pub mod bsl;
pub mod deletion;
pub mod download;
pub mod phase;
pub mod rebind;
pub mod upload;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use super::Context;
use crate::crd::{BackupRepository, SecretKeyRef, VolumeBackup, VolumeRestore};
use crate::{Error, Result};

/// Velero's API group.
pub const GROUP: &str = "velero.io";

/// Label on cairn's repositories made for a BackupStorageLocation: its name.
pub const BSL_LABEL: &str = "cairn.dev/velero-location";

/// Tag on snapshots of a Velero backup: `velero-backup-uid=<uid>`.
pub const BACKUP_UID_TAG: &str = "velero-backup-uid";

/// Tag on snapshots of a Velero backup: `velero-backup=<name>`.
pub const BACKUP_NAME_TAG: &str = "velero-backup";

/// How the controller serves Velero.
#[derive(Clone, Debug, PartialEq)]
pub struct VeleroConfig {
    /// Velero's namespace: its DataUploads, DataDownloads, locations,
    /// Backups and DeleteBackupRequests live there.
    pub namespace: String,
    /// The data mover's name in Velero (`--data-mover cairn`).
    pub data_mover: String,
    /// The repositories' password Secret, in Velero's namespace (never
    /// Velero's own static default).
    pub password_secret: SecretKeyRef,
    /// Maintenance schedule of the repositories of writable locations.
    pub maintenance_schedule: Option<String>,
}

impl VeleroConfig {
    /// Defaults for Velero in `namespace`: mover `cairn`, password in
    /// Secret `cairn-repo-credentials`, key `repository-password`, no
    /// maintenance schedule.
    pub fn new(namespace: &str) -> VeleroConfig {
        VeleroConfig {
            namespace: namespace.to_owned(),
            data_mover: "cairn".into(),
            password_secret: SecretKeyRef {
                name: "cairn-repo-credentials".into(),
                key: Some("repository-password".into()),
            },
            maintenance_schedule: None,
        }
    }
}

/// The API resource of a Velero kind.
pub fn resource(version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, version, kind))
}

/// Velero objects of `kind` in Velero's namespace.
pub fn api(client: &Client, cfg: &VeleroConfig, version: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), &cfg.namespace, &resource(version, kind))
}

/// The Velero settings, which `run` checked are present.
fn settings(ctx: &Context) -> Result<&VeleroConfig> {
    ctx.config
        .velero
        .as_ref()
        .ok_or_else(|| Error::Invalid("Velero support is not configured".into()))
}

/// A field of a Velero object's spec, parsed.
pub fn spec_of<T: serde::de::DeserializeOwned + Default>(o: &DynamicObject) -> T {
    o.data
        .get("spec")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default()
}

/// `status.phase` of a Velero object ("" when unset).
pub fn phase_of(o: &DynamicObject) -> &str {
    o.data
        .get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Writes `status` fields of a DataUpload or DataDownload through the
/// object itself (their CRDs have no status subresource), on the version
/// read: a concurrent change makes it fail and the reconcile run again.
pub async fn write_status(
    api: &Api<DynamicObject>,
    o: &DynamicObject,
    status: Value,
) -> Result<()> {
    let patch = json!({
        "metadata": {"resourceVersion": o.resource_version()},
        "status": status,
    });
    api.patch(&o.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// An owner reference to a Velero object (in the same namespace).
pub fn owner(o: &DynamicObject, version: &str, kind: &str) -> Value {
    json!([{
        "apiVersion": format!("{GROUP}/{version}"),
        "kind": kind,
        "name": o.name_any(),
        "uid": o.uid(),
        "controller": true,
        "blockOwnerDeletion": false,
    }])
}

/// The repository for location `name`, created or brought up to date from
/// the location; `Err` says why the location cannot be used.
pub async fn ensure_repository(
    ctx: &Context,
    name: &str,
) -> Result<std::result::Result<(BackupRepository, bsl::Location), String>> {
    let cfg = settings(ctx)?;
    let Some(obj) = api(&ctx.client, cfg, "v1", "BackupStorageLocation")
        .get_opt(name)
        .await?
    else {
        return Ok(Err(format!("BackupStorageLocation {name} not found")));
    };
    let defaults = bsl::Defaults {
        password: cfg.password_secret.clone(),
        maintenance_schedule: cfg.maintenance_schedule.clone(),
    };
    let location = match bsl::location(&spec_of(&obj), &defaults) {
        Ok(l) => l,
        Err(why) => return Ok(Err(format!("BackupStorageLocation {name}: {why}"))),
    };
    let repos: Api<BackupRepository> = Api::namespaced(ctx.client.clone(), &cfg.namespace);
    let repo_name = repository_name(name);
    let repo = match repos.get_opt(&repo_name).await? {
        None => {
            let mut repo = BackupRepository::new(&repo_name, location.spec.clone());
            repo.metadata.labels = crate::names::label_value(name)
                .map(|v| [(BSL_LABEL.to_owned(), v)].into_iter().collect());
            repo.metadata.owner_references =
                serde_json::from_value(owner(&obj, "v1", "BackupStorageLocation")).ok();
            match repos.create(&PostParams::default(), &repo).await {
                Ok(r) => r,
                Err(kube::Error::Api(e)) if e.code == 409 => repos.get(&repo_name).await?,
                Err(e) => return Err(e.into()),
            }
        }
        Some(existing) => {
            // What the location decides is kept in step with it; what an
            // administrator tuned (cache, upload limit) is left alone.
            let s = &location.spec;
            let e = &existing.spec;
            if e.url != s.url
                || e.credentials_secret_ref != s.credentials_secret_ref
                || e.password_secret_ref != s.password_secret_ref
                || e.initialize != s.initialize
            {
                let patch = json!({"spec": {
                    "url": s.url,
                    "credentialsSecretRef": s.credentials_secret_ref,
                    "passwordSecretRef": s.password_secret_ref,
                    "initialize": s.initialize,
                }});
                repos
                    .patch(&repo_name, &PatchParams::default(), &Patch::Merge(patch))
                    .await?
            } else {
                existing
            }
        }
    };
    Ok(Ok((repo, location)))
}

/// The name of the repository made for location `bsl`.
pub fn repository_name(bsl: &str) -> String {
    crate::names::bounded(&format!("velero-{bsl}"), 253)
}

/// Runs the Velero controllers until the process is stopped.
pub async fn run(ctx: Arc<Context>) -> Result<()> {
    let cfg = settings(&ctx)?.clone();
    if !ctx.config.admins.contains(&cfg.namespace) {
        return Err(Error::Invalid(format!(
            "Velero's namespace {} must be an administrator namespace (--admin-namespace {} \
             for the controller and the agents): its jobs back up and restore claims of every \
             namespace",
            cfg.namespace, cfg.namespace
        )));
    }
    let client = ctx.client.clone();
    let jobs_vb: Api<VolumeBackup> = Api::namespaced(client.clone(), &cfg.namespace);
    let jobs_vr: Api<VolumeRestore> = Api::namespaced(client.clone(), &cfg.namespace);
    let du = resource("v2alpha1", "DataUpload");
    let dd = resource("v2alpha1", "DataDownload");
    let dbr = resource("v1", "DeleteBackupRequest");
    let uploads = Controller::new_with(
        api(&client, &cfg, "v2alpha1", "DataUpload"),
        watcher::Config::default(),
        du,
    )
    .owns(jobs_vb, watcher::Config::default())
    .shutdown_on_signal()
    .run(
        upload::reconcile,
        super::error_policy("dataupload"),
        ctx.clone(),
    );
    let downloads = Controller::new_with(
        api(&client, &cfg, "v2alpha1", "DataDownload"),
        watcher::Config::default(),
        dd,
    )
    .owns(jobs_vr, watcher::Config::default())
    .shutdown_on_signal()
    .run(
        download::reconcile,
        super::error_policy("datadownload"),
        ctx.clone(),
    );
    let deletions = Controller::new_with(
        api(&client, &cfg, "v1", "DeleteBackupRequest"),
        watcher::Config::default(),
        dbr,
    )
    .shutdown_on_signal()
    .run(
        deletion::reconcile,
        super::error_policy("deletebackuprequest"),
        ctx.clone(),
    );
    tokio::join!(
        super::drain("dataupload", ctx.clone(), uploads),
        super::drain("datadownload", ctx.clone(), downloads),
        super::drain("deletebackuprequest", ctx.clone(), deletions),
    );
    Ok(())
}

/// How soon a Velero object that waits is looked at again.
pub fn wait(ctx: &Context) -> Duration {
    ctx.config.wait_interval
}

/// The API's time for `secs` since the epoch, as Velero writes timestamps.
pub fn timestamp(secs: i64) -> Value {
    serde_json::to_value(crate::crd::time_from_secs(secs)).unwrap_or(Value::Null)
}

/// Whether `o` is for this mover.
pub fn ours(o: &DynamicObject, cfg: &VeleroConfig) -> bool {
    o.data
        .get("spec")
        .and_then(|s| s.get("datamover"))
        .and_then(Value::as_str)
        == Some(cfg.data_mover.as_str())
}

/// The owner reference of a cairn job to the Velero object `o`.
pub fn job_owner(
    o: &DynamicObject,
    kind: &str,
) -> Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>> {
    serde_json::from_value(owner(o, "v2alpha1", kind)).ok()
}

/// Whether `refs` name `o` as owner.
pub fn owned_by(
    refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    o: &DynamicObject,
) -> bool {
    refs.iter().any(|r| Some(&r.uid) == o.metadata.uid.as_ref())
}

/// Fails `o` (a DataUpload or DataDownload, through `movers`) when the job
/// of its name is not its own; true if it did.
pub async fn refuse_foreign<K: kube::Resource<DynamicType = ()>>(
    movers: &Api<DynamicObject>,
    o: &DynamicObject,
    job: Option<&K>,
) -> Result<bool> {
    let Some(j) = job else {
        return Ok(false);
    };
    if owned_by(j.owner_references(), o) {
        return Ok(false);
    }
    let kind = o
        .types
        .as_ref()
        .map_or("object", |t| t.kind.as_str())
        .to_owned();
    let why = format!(
        "{} {} exists and is not this {kind}'s",
        K::kind(&()),
        j.meta().name.clone().unwrap_or_default()
    );
    let failed = phase::ended("Failed", &why, crate::kubeutil::wall_now());
    write_status(movers, o, failed).await?;
    Ok(true)
}

/// Asks the job of `o` to stop (once: a job already asked is left alone),
/// and shows `o` Canceling until it has.
pub async fn cancel_job<K>(
    jobs: &Api<K>,
    movers: &Api<DynamicObject>,
    o: &DynamicObject,
    job: Option<&K>,
) -> Result<()>
where
    K: crate::job::Job + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if !job.is_some_and(|j| j.cancel()) {
        let patch = json!({"spec": {"cancel": true}});
        jobs.patch(&o.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await?;
    }
    if phase_of(o) != "Canceling" {
        write_status(movers, o, json!({"phase": "Canceling"})).await?;
    }
    Ok(())
}
