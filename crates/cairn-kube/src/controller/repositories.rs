//! The controller's executor for BackupRepositories: opens each repository
//! (creating it first with `spec.initialize`) and reports whether that
//! worked, so a wrong URL, password or credential shows before any backup.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::Context;
use crate::crd::{BackupRepository, secs_of, time_from_secs};
use crate::kubeutil::{event, merge_status, truncate, wall_now};
use crate::{Error, Result};

/// How often a healthy repository is checked again.
const RECHECK: Duration = Duration::from_secs(600);
/// How soon a failing one is tried again.
const RETRY: Duration = Duration::from_secs(60);

/// One reconcile of a repository: the check, then scheduled maintenance.
pub async fn reconcile(r: Arc<BackupRepository>, ctx: Arc<Context>) -> Result<Requeue> {
    let check_again = check_if_due(&r, &ctx).await?;
    let maintain_again = super::maintenance_jobs::reconcile(&ctx, &r).await?;
    Ok(Requeue::requeue(
        maintain_again.map_or(check_again, |m| m.min(check_again)),
    ))
}

/// Opens the repository unless a recent check says it opens; returns when
/// to check again.
async fn check_if_due(r: &BackupRepository, ctx: &Context) -> Result<Duration> {
    let status = r.status.clone().unwrap_or_default();
    let now = wall_now();
    let fresh = status.observed_generation == r.metadata.generation
        && status.phase.as_deref() == Some("Ready")
        && status
            .last_checked
            .as_ref()
            .is_some_and(|t| now - secs_of(t) < RECHECK.as_secs() as i64);
    if fresh {
        return Ok(RECHECK);
    }
    let (phase, message) = match check(ctx, r).await {
        Ok(msg) => ("Ready", msg),
        Err(e) => ("Failed", truncate(e.to_string(), 1000)),
    };
    let api: Api<BackupRepository> =
        Api::namespaced(ctx.client.clone(), &r.namespace().unwrap_or_default());
    merge_status(
        &api,
        &r.name_any(),
        json!({
            "phase": phase,
            "message": message,
            "observedGeneration": r.metadata.generation,
            "lastChecked": time_from_secs(now),
        }),
    )
    .await?;
    if status.phase.as_deref() != Some(phase) || status.message.as_deref() != Some(message.as_str())
    {
        event(&ctx.recorder, r, phase != "Ready", phase, message).await;
    }
    Ok(if phase == "Ready" { RECHECK } else { RETRY })
}

async fn check(ctx: &Context, r: &BackupRepository) -> Result<String> {
    let ns = r.namespace().unwrap_or_default();
    crate::trust::check_location(&ctx.config.admins, &ns, &r.spec.url).map_err(Error::Invalid)?;
    let creds = crate::repo::credentials(&ctx.client, r).await?;
    crate::repo::cache_bytes(r)?;
    let mut message = String::from("repository opened");
    if r.spec.initialize && crate::repo::initialize_if_missing(r, &creds, wall_now()).await? {
        message = String::from("repository created");
    }
    let repo = crate::repo::open_with(
        r,
        &creds,
        ctx.config.cache_dir.as_deref(),
        cairn::OpenOptions::default(),
    )
    .await?;
    let snapshots = repo
        .snapshot_ids()
        .await
        .map_err(|source| Error::Repository {
            location: r.spec.url.clone(),
            source,
        })?;
    Ok(format!("{message}; {} snapshots", snapshots.len()))
}
