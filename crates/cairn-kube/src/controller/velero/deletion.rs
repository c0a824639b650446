//! Velero never tells a data mover other than its own that a backup was
//! deleted: it makes a DeleteBackupRequest (also when a backup's TTL ends)
//! and deletes its own data. cairn watches those requests and forgets the
//! snapshots tagged with the backup's uid in the repositories of Velero's
//! locations; scheduled maintenance then frees their data. The request is
//! annotated with how many were forgotten, so each is handled once.

use cairn::Maintenance as _;
use std::sync::Arc;

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::{BACKUP_UID_TAG, spec_of};
use crate::controller::Context;
use crate::crd::BackupRepository;
use crate::{Error, Result};

/// Annotation on a DeleteBackupRequest once cairn handled it: how many
/// snapshots it forgot.
pub const FORGOTTEN_ANNOTATION: &str = "cairn.dev/forgotten-snapshots";

/// The label Velero puts on a DeleteBackupRequest: the backup's uid.
pub const BACKUP_UID_LABEL: &str = "velero.io/backup-uid";

/// Whether a snapshot with `tags` belongs to the backup with `uid`.
pub fn of_backup(tags: &[String], uid: &str) -> bool {
    let want = format!("{BACKUP_UID_TAG}={uid}");
    !uid.is_empty() && tags.contains(&want)
}

/// One reconcile of a DeleteBackupRequest.
pub async fn reconcile(dbr: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Requeue> {
    if dbr.annotations().contains_key(FORGOTTEN_ANNOTATION) {
        return Ok(Requeue::await_change());
    }
    let cfg = super::settings(&ctx)?;
    let backup_name = dbr
        .data
        .get("spec")
        .and_then(|s| s.get("backupName"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let backups = super::api(&ctx.client, cfg, "v1", "Backup");
    let backup = match backup_name.as_str() {
        "" => None,
        name => backups.get_opt(name).await?,
    };
    let uid = dbr
        .labels()
        .get(BACKUP_UID_LABEL)
        .cloned()
        .or_else(|| backup.as_ref().and_then(|b| b.uid()))
        .unwrap_or_default();
    if uid.is_empty() {
        tracing::warn!(request = %dbr.name_any(), "DeleteBackupRequest names no backup cairn can find");
        return Ok(Requeue::await_change());
    }
    // The backup's location if it is still there, else every location.
    let locations: Vec<String> = match backup.as_ref().and_then(|b| {
        b.data
            .get("spec")?
            .get("storageLocation")?
            .as_str()
            .map(str::to_owned)
    }) {
        Some(l) => vec![l],
        None => super::api(&ctx.client, cfg, "v1", "BackupStorageLocation")
            .list(&Default::default())
            .await?
            .items
            .iter()
            .map(|l| l.name_any())
            .collect(),
    };
    let mut forgotten = 0;
    for location in locations {
        forgotten += forget_in(&ctx, &location, &uid).await?;
    }
    let dbrs = super::api(&ctx.client, cfg, "v1", "DeleteBackupRequest");
    let patch = json!({"metadata": {"annotations": {FORGOTTEN_ANNOTATION: forgotten.to_string()}}});
    dbrs.patch(
        &dbr.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    tracing::info!(backup = %backup_name, uid = %uid, forgotten, "forgot a Velero backup's snapshots");
    Ok(Requeue::await_change())
}

/// Forgets the backup's snapshots in the repository of `location`, unless
/// the location is read-only or has no repository of cairn's; returns how
/// many.
async fn forget_in(ctx: &Context, location: &str, uid: &str) -> Result<usize> {
    let cfg = super::settings(ctx)?;
    let Some(bsl) = super::api(&ctx.client, cfg, "v1", "BackupStorageLocation")
        .get_opt(location)
        .await?
    else {
        return Ok(0);
    };
    let defaults = super::bsl::Defaults {
        password: cfg.password_secret.clone(),
        maintenance_schedule: None,
    };
    match super::bsl::location(&spec_of(&bsl), &defaults) {
        Ok(l) if !l.read_only => {}
        _ => return Ok(0),
    }
    let repos: Api<BackupRepository> = Api::namespaced(ctx.client.clone(), &cfg.namespace);
    let Some(repo_obj) = repos.get_opt(&super::repository_name(location)).await? else {
        return Ok(0);
    };
    let repo = crate::repo::open(
        &ctx.client,
        &repo_obj,
        ctx.config.cache_dir.as_deref(),
        cairn::OpenOptions::default(),
    )
    .await?;
    let err = |source| Error::Repository {
        location: repo_obj.spec.url.clone(),
        source,
    };
    let mut n = 0;
    for (id, snap) in repo.list_snapshots().await.map_err(err)? {
        if of_backup(&snap.tags, uid) && repo.forget_snapshot(&id).await.map_err(err)? {
            ctx.metrics.forgotten.inc();
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_snapshots_tagged_with_the_backups_uid_belong_to_it() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(of_backup(&tags(&["x", "velero-backup-uid=u1"]), "u1"));
        assert!(!of_backup(&tags(&["velero-backup-uid=u12"]), "u1"));
        assert!(!of_backup(&tags(&["velero-backup-uid=u1x"]), "u1"));
        assert!(!of_backup(&tags(&["velero-backup=u1"]), "u1"));
        assert!(
            !of_backup(&tags(&["velero-backup-uid="]), ""),
            "no uid matches nothing"
        );
    }
}
