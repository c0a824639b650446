//! The controller's executor for BackupSchedules: lists the schedule's
//! backups and the selected claims, asks [`schedule::plan`] what to do, and
//! creates backups, forgets snapshots and deletes old backups.

use cairn::Maintenance as _;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::Context;
use super::schedule::{self, BackupFacts, Plan, ScheduleFacts};
use super::selector;
use crate::crd::{
    BackupRepository, BackupSchedule, PvcRef, VolumeBackup, VolumeBackupSpec, secs_of,
    time_from_secs,
};
use crate::kubeutil::{event, merge_status, truncate};
use crate::names::{SCHEDULE_LABEL, SCHEDULE_UID_LABEL, SCHEDULED_TIME_ANNOTATION, label_value};
use crate::trust::{authorize, may_forget};
use crate::{Error, Result};

fn backup_facts(vb: &VolumeBackup) -> BackupFacts {
    let ns = vb.namespace().unwrap_or_default();
    let status = vb.status.as_ref();
    BackupFacts {
        name: vb.name_any(),
        claim: vb.spec.pvc.resolve(&ns),
        phase: status.map(|s| s.phase).unwrap_or_default(),
        scheduled: vb
            .annotations()
            .get(SCHEDULED_TIME_ANNOTATION)
            .and_then(|t| t.parse().ok())
            .or_else(|| vb.meta().creation_timestamp.as_ref().map(secs_of))
            .unwrap_or_default(),
        snapshot_id: status.and_then(|s| s.snapshot_id.clone()),
        completed: status.and_then(|s| s.completion_time.as_ref()).map(secs_of),
        tags: vb.spec.tags.clone(),
    }
}

/// One reconcile of a schedule.
pub async fn reconcile(s: Arc<BackupSchedule>, ctx: Arc<Context>) -> Result<Requeue> {
    let ns = s.namespace().unwrap_or_default();
    let name = s.name_any();
    let uid = s.uid().unwrap_or_default();
    let now = ctx.config.clock.now();
    let client = ctx.client.clone();
    let backups_api: Api<VolumeBackup> = Api::namespaced(client.clone(), &ns);
    let backups: Vec<BackupFacts> = backups_api
        .list(&ListParams::default().labels(&format!("{SCHEDULE_UID_LABEL}={uid}")))
        .await?
        .items
        .iter()
        .filter(|b| b.meta().deletion_timestamp.is_none())
        .map(backup_facts)
        .collect();
    let facts = ScheduleFacts {
        namespace: ns.clone(),
        name: name.clone(),
        spec: s.spec.clone(),
        created: s
            .meta()
            .creation_timestamp
            .as_ref()
            .map(secs_of)
            .unwrap_or(now),
        last_schedule: s
            .status
            .as_ref()
            .and_then(|st| st.last_schedule_time.as_ref())
            .map(secs_of),
        repository_namespace: s.spec.repository.resolve(&ns).0,
        admin: ctx.config.admins.contains(&ns),
    };
    let query = match s.spec.selector.as_ref().map(selector::to_query).transpose() {
        Ok(q) => q.unwrap_or_default(),
        Err(e) => return invalid(&ctx, &s, e).await,
    };
    let claims = selected_claims(&ctx, &s, &query).await?;
    let plan = schedule::plan(&facts, &backups, &claims, now);
    tracing::debug!(
        schedule = %name, now, last = ?facts.last_schedule, claims = claims.len(),
        backups = backups.len(), create = plan.create.len(), forget = plan.forget.len(),
        "schedule planned"
    );
    if let Some(why) = plan.invalid.clone() {
        return invalid(&ctx, &s, why).await;
    }
    execute(&ctx, &s, &plan, &backups).await?;

    merge_status(
        &Api::<BackupSchedule>::namespaced(client, &ns),
        &name,
        status_of(&s, &plan),
    )
    .await?;
    let resync = ctx.config.resync;
    let after = plan
        .requeue_after
        .map(|s| Duration::from_secs(s.max(1) as u64))
        .map_or(resync, |d| d.min(resync));
    Ok(Requeue::requeue(after))
}

/// The claims the schedule selects, in its namespaces, that are not being
/// deleted.
async fn selected_claims(
    ctx: &Context,
    s: &BackupSchedule,
    query: &str,
) -> Result<Vec<(String, String)>> {
    let ns = s.namespace().unwrap_or_default();
    let namespaces = if s.spec.namespaces.is_empty() {
        vec![ns]
    } else {
        s.spec.namespaces.clone()
    };
    let mut claims = Vec::new();
    for n in &namespaces {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), n);
        for c in pvcs.list(&ListParams::default().labels(query)).await?.items {
            if c.meta().deletion_timestamp.is_none() {
                claims.push((n.clone(), c.name_any()));
            }
        }
    }
    Ok(claims)
}

/// The schedule's status after a pass that planned `plan`.
fn status_of(s: &BackupSchedule, plan: &Plan) -> serde_json::Value {
    let unprotected: Vec<&String> = plan.unprotected.iter().take(20).collect();
    let mut status = json!({
        "phase": if s.spec.paused { "Paused" } else { "Active" },
        "summary": plan.summary,
        "protectedClaims": plan.protected,
        "unprotectedClaims": unprotected,
        "lastSuccessfulTime": plan.last_success.map(time_from_secs),
        "message": if plan.busy.is_empty() { None } else {
            Some(format!("skipped claims whose previous backup still runs: {}", plan.busy.join(", ")))
        },
    });
    if let Some(t) = plan.last_schedule {
        status["lastScheduleTime"] = json!(time_from_secs(t));
    }
    if let Some(t) = plan.next_schedule {
        status["nextScheduleTime"] = json!(time_from_secs(t));
    }
    status
}

async fn invalid(ctx: &Context, s: &BackupSchedule, why: String) -> Result<Requeue> {
    let ns = s.namespace().unwrap_or_default();
    let changed = s.status.as_ref().and_then(|st| st.message.as_deref()) != Some(why.as_str());
    merge_status(
        &Api::<BackupSchedule>::namespaced(ctx.client.clone(), &ns),
        &s.name_any(),
        json!({"phase": "Invalid", "message": why}),
    )
    .await?;
    if changed {
        event(&ctx.recorder, s, true, "Invalid", why).await;
    }
    Ok(Requeue::requeue(ctx.config.resync))
}

async fn execute(
    ctx: &Context,
    s: &BackupSchedule,
    plan: &Plan,
    backups: &[BackupFacts],
) -> Result<()> {
    let ns = s.namespace().unwrap_or_default();
    let api: Api<VolumeBackup> = Api::namespaced(ctx.client.clone(), &ns);
    create_backups(ctx, s, plan, &api).await?;
    if plan.forget.is_empty() && plan.delete.is_empty() {
        return Ok(());
    }
    // Each snapshot with the claim its backup names, so retention forgets
    // only what the schedule may reach (a status is easy to patch).
    let snapshots: Vec<(&(String, String), &String)> = plan
        .forget
        .iter()
        .filter_map(|(name, id)| {
            let claim = &backups.iter().find(|b| &b.name == name)?.claim;
            Some((claim, id.as_ref()?))
        })
        .collect();
    let retained = if snapshots.is_empty() {
        Vec::new()
    } else {
        forget(ctx, s, &snapshots).await?
    };
    // A Backup whose snapshot Object Lock still retains stays, so a later
    // pass forgets it once the retention has ended.
    let names = plan
        .forget
        .iter()
        .filter(|(_, id)| id.as_ref().is_none_or(|id| !retained.contains(id)))
        .map(|(n, _)| n)
        .chain(&plan.delete);
    let mut deleted = Vec::new();
    for n in names {
        match api.delete(n, &DeleteParams::default()).await {
            Ok(_) => deleted.push(n.clone()),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !deleted.is_empty() {
        let note = format!(
            "retention: forgot {} snapshots, deleted {}",
            snapshots.len(),
            deleted.join(", ")
        );
        event(&ctx.recorder, s, false, "Retention", note).await;
    }
    Ok(())
}

/// Creates the VolumeBackups the plan says are due (one already there is
/// left as it is).
async fn create_backups(
    ctx: &Context,
    s: &BackupSchedule,
    plan: &Plan,
    api: &Api<VolumeBackup>,
) -> Result<()> {
    let ns = s.namespace().unwrap_or_default();
    let mut created = Vec::new();
    for b in &plan.create {
        let mut labels =
            BTreeMap::from([(SCHEDULE_UID_LABEL.to_owned(), s.uid().unwrap_or_default())]);
        if let Some(v) = label_value(&s.name_any()) {
            labels.insert(SCHEDULE_LABEL.to_owned(), v);
        }
        let mut vb = VolumeBackup::new(
            &b.name,
            VolumeBackupSpec {
                pvc: PvcRef {
                    name: b.claim.1.clone(),
                    namespace: (b.claim.0 != ns).then(|| b.claim.0.clone()),
                },
                repository: s.spec.repository.clone(),
                tags: s.spec.tags.iter().cloned().chain([s.name_any()]).collect(),
                excludes: s.spec.excludes.clone(),
                cancel: false,
                snapshot: s.spec.snapshot.clone(),
            },
        );
        vb.metadata.namespace = Some(ns.clone());
        vb.metadata.labels = Some(labels);
        vb.metadata.annotations = Some(BTreeMap::from([(
            SCHEDULED_TIME_ANNOTATION.to_owned(),
            b.scheduled.to_string(),
        )]));
        vb.metadata.owner_references = s.controller_owner_ref(&()).map(|o| vec![o]);
        match api.create(&PostParams::default(), &vb).await {
            Ok(_) => {
                ctx.metrics.scheduled.inc();
                created.push(b.name.clone());
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !created.is_empty() {
        let note = format!("created {}", created.join(", "));
        event(&ctx.recorder, s, false, "Scheduled", note).await;
    }
    Ok(())
}

/// Forgets snapshots in the schedule's repository, each only if the
/// schedule may use the repository for its claim and the snapshot is of
/// that claim (see [`crate::trust`]). A snapshot already gone is fine (a
/// previous attempt got that far); a refused one is left alone and said so.
/// Returns the snapshots S3 Object Lock still retains: left for later.
async fn forget(
    ctx: &Context,
    s: &BackupSchedule,
    snapshots: &[(&(String, String), &String)],
) -> Result<Vec<String>> {
    let ns = s.namespace().unwrap_or_default();
    let (rns, rname) = s.spec.repository.resolve(&ns);
    let repo_obj = Api::<BackupRepository>::namespaced(ctx.client.clone(), &rns)
        .get_opt(&rname)
        .await?
        .ok_or_else(|| Error::not_found("BackupRepository", &(rns.clone(), rname.clone())))?;
    let mut refused = Vec::new();
    let mut allowed = Vec::new();
    let mut retained = Vec::new();
    for (claim, id) in snapshots {
        match authorize(
            &ctx.config.admins,
            &ns,
            (&rns, &rname),
            &repo_obj.spec,
            &claim.0,
        ) {
            Ok(access) => allowed.push((access, *claim, *id)),
            Err(why) => refused.push(why),
        }
    }
    if !allowed.is_empty() {
        let repo = crate::repo::open(
            &ctx.client,
            &repo_obj,
            ctx.config.cache_dir.as_deref(),
            cairn::OpenOptions::default(),
        )
        .await?;
        let url = repo_obj.spec.url.clone();
        let err = |source| Error::Repository {
            location: url.clone(),
            source,
        };
        for (access, claim, id) in allowed {
            let Ok(id) = cairn::Id::from_hex(id) else {
                refused.push(format!("{id:?} is not a snapshot id"));
                continue;
            };
            let snap = match repo.load_snapshot(&id).await {
                Ok(snap) => snap,
                Err(cairn::error::RepoError::Store(e)) if e.is_not_found() => continue,
                Err(e) => return Err(err(e)),
            };
            let hex = id.to_hex();
            if let Err(why) = may_forget(&access, &ctx.config.cluster, claim, &hex, &snap.source) {
                refused.push(why);
                continue;
            }
            // Prune frees the snapshot's data later.
            match repo.forget_snapshot(&id).await {
                Ok(true) => {
                    ctx.metrics.forgotten.inc();
                }
                Ok(false) => {}
                Err(cairn::error::RepoError::Store(cairn::StoreError::Locked { .. })) => {
                    retained.push(hex);
                }
                Err(e) => return Err(err(e)),
            }
        }
    }
    retention_events(ctx, s, &refused, &retained).await;
    Ok(retained)
}

/// Says which snapshots retention refused to forget, and how many it left
/// because Object Lock still retains them.
async fn retention_events(
    ctx: &Context,
    s: &BackupSchedule,
    refused: &[String],
    retained: &[String],
) {
    if !refused.is_empty() {
        let note = format!("retention refused: {}", refused.join("; "));
        event(
            &ctx.recorder,
            s,
            true,
            "RetentionRefused",
            truncate(note, 1000),
        )
        .await;
    }
    if !retained.is_empty() {
        let note = format!(
            "retention: {} snapshots are retained by object lock; forgotten once it ends",
            retained.len()
        );
        event(&ctx.recorder, s, false, "RetentionWaiting", note).await;
    }
}
