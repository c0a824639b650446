//! The controller's executor for scheduled maintenance: lists a
//! repository's maintenance Jobs, asks [`maintenance::plan`] what to do,
//! starts the due Job, records the outcome of the last finished one (from
//! its pod's termination message) in `status.maintenance`, and deletes old
//! Jobs.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use super::Context;
use super::maintenance::{self, Facts, JobFacts, JobState, Plan};
use super::maintenance_job;
use crate::Result;
use crate::crd::{BackupRepository, MaintenanceStatus, secs_of, time_from_secs};
use crate::kubeutil::{event, ignore_missing, merge_status, truncate};
use crate::maintain::Report;
use crate::names::{MAINTENANCE_JOB_LABEL, MAINTENANCE_OF_LABEL, SCHEDULED_TIME_ANNOTATION};

fn job_facts(job: &Job) -> JobFacts {
    let status = job.status.as_ref();
    let condition = |kind: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
    };
    let state = if condition("Failed") || status.and_then(|s| s.failed).unwrap_or(0) > 0 {
        JobState::Failed
    } else if condition("Complete") || status.and_then(|s| s.succeeded).unwrap_or(0) > 0 {
        JobState::Succeeded
    } else {
        JobState::Active
    };
    JobFacts {
        name: job.name_any(),
        scheduled: job
            .annotations()
            .get(SCHEDULED_TIME_ANNOTATION)
            .and_then(|t| t.parse().ok())
            .unwrap_or_default(),
        state,
    }
}

/// Runs maintenance for `r` if it has a policy; returns when to look again.
pub async fn reconcile(ctx: &Context, r: &BackupRepository) -> Result<Option<Duration>> {
    let Some(policy) = r.spec.maintenance.clone() else {
        return Ok(None);
    };
    let ns = r.namespace().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = r.uid().unwrap_or_default();
    let jobs: Vec<JobFacts> = jobs_api
        .list(&ListParams::default().labels(&format!("{MAINTENANCE_OF_LABEL}={uid}")))
        .await?
        .items
        .iter()
        .filter(|j| j.meta().deletion_timestamp.is_none())
        .map(job_facts)
        .collect();
    let status = r
        .status
        .as_ref()
        .and_then(|s| s.maintenance.clone())
        .unwrap_or_default();
    let final_phase = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
    let target = copy_target(ctx, r).await?;
    let unsupported = maintenance_job::check_location(&r.spec.url)
        .and_then(|()| maintenance_job::check_copy_target(r, target.as_ref()))
        .err();
    let facts = Facts {
        unsupported,
        policy,
        created: r
            .meta()
            .creation_timestamp
            .as_ref()
            .map(secs_of)
            .unwrap_or_default(),
        last_scheduled: status.last_schedule_time.as_ref().map(secs_of),
        recorded: status.job.clone().filter(|_| final_phase),
        jobs,
    };
    let now = ctx.config.clock.now();
    let plan = maintenance::plan(&facts, now);
    let mut patch = json!({"nextScheduleTime": plan.next.map(time_from_secs)});
    if let Some(why) = &plan.invalid {
        return invalid(ctx, r, &status, why).await;
    }
    if status.phase.as_deref() == Some("Invalid") {
        // The policy was mended: the reason no longer holds.
        patch["phase"] = Value::Null;
        patch["summary"] = Value::Null;
    }
    if let Some(job) = &plan.record {
        record(ctx, r, job, &mut patch).await?;
    }
    if let Some(due) = plan.start {
        start(ctx, r, target.as_ref(), due, &mut patch).await?;
    }
    for name in &plan.delete {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        ignore_missing(jobs_api.delete(name, &dp).await)?;
    }
    write(ctx, r, patch).await?;
    Ok(Some(requeue(&plan, ctx.config.resync)))
}

/// When to look again: at the next due time, and at least every `resync`
/// (a run's end wakes the controller through its Job, not a due time).
fn requeue(plan: &Plan, resync: Duration) -> Duration {
    plan.requeue_after
        .map_or(resync, |s| Duration::from_secs(s.max(1) as u64).min(resync))
}

async fn write(ctx: &Context, r: &BackupRepository, maintenance: Value) -> Result<()> {
    let api: Api<BackupRepository> =
        Api::namespaced(ctx.client.clone(), &r.namespace().unwrap_or_default());
    merge_status(&api, &r.name_any(), json!({"maintenance": maintenance})).await
}

async fn invalid(
    ctx: &Context,
    r: &BackupRepository,
    status: &MaintenanceStatus,
    why: &str,
) -> Result<Option<Duration>> {
    if status.phase.as_deref() != Some("Invalid") || status.summary.as_deref() != Some(why) {
        write(ctx, r, json!({"phase": "Invalid", "summary": why})).await?;
        event(&ctx.recorder, r, true, "MaintenanceInvalid", why.to_owned()).await;
    }
    Ok(Some(ctx.config.resync))
}

/// The image maintenance Jobs run: `--maintenance-image`, else the image of
/// the controller's own pod.
async fn image(ctx: &Context) -> Result<String> {
    if let Some(image) = &ctx.config.maintenance_image {
        return Ok(image.clone());
    }
    let name = std::env::var("POD_NAME").map_err(|_| {
        crate::Error::Invalid(
            "no --maintenance-image, and POD_NAME is not set to find the controller's own image"
                .into(),
        )
    })?;
    let pod = Api::<Pod>::namespaced(ctx.client.clone(), &ctx.config.agent_namespace)
        .get(&name)
        .await?;
    pod.spec
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image)
        .ok_or_else(|| crate::Error::Invalid(format!("pod {name} names no image")))
}

/// The BackupRepository the policy's `copyTo` names, in the same
/// namespace, if it exists.
async fn copy_target(ctx: &Context, r: &BackupRepository) -> Result<Option<BackupRepository>> {
    let Some(name) = r
        .spec
        .maintenance
        .as_ref()
        .and_then(|m| m.copy_to.as_deref())
    else {
        return Ok(None);
    };
    let api: Api<BackupRepository> =
        Api::namespaced(ctx.client.clone(), &r.namespace().unwrap_or_default());
    Ok(api.get_opt(name).await?)
}

async fn start(
    ctx: &Context,
    r: &BackupRepository,
    target: Option<&BackupRepository>,
    due: i64,
    patch: &mut Value,
) -> Result<()> {
    let image = image(ctx).await?;
    let job = maintenance_job::build(r, target, due, &image).map_err(crate::Error::Invalid)?;
    let name = job.name_any();
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &r.namespace().unwrap_or_default());
    match api.create(&PostParams::default(), &job).await {
        Ok(_) => {
            let note = format!("started Job {name}");
            event(&ctx.recorder, r, false, "MaintenanceStarted", note).await;
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    patch["phase"] = json!("Running");
    patch["job"] = json!(name);
    patch["lastScheduleTime"] = json!(time_from_secs(due));
    Ok(())
}

/// The report a maintenance Job's pod left, or why there is none.
async fn report_of(ctx: &Context, r: &BackupRepository, job: &str) -> Result<Report> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &r.namespace().unwrap_or_default());
    let list = pods
        .list(&ListParams::default().labels(&format!("{MAINTENANCE_JOB_LABEL}={job}")))
        .await?;
    let message = list.items.iter().find_map(|p| {
        let statuses = p.status.as_ref()?.container_statuses.as_ref()?;
        let c = statuses.iter().find(|c| c.name == "maintain")?;
        c.state.as_ref()?.terminated.as_ref()?.message.clone()
    });
    Ok(match message.map(|m| Report::parse(&m)) {
        Some(Ok(report)) => report,
        Some(Err(why)) => Report {
            error: Some(why),
            ..Report::default()
        },
        None => Report {
            error: Some(
                "the Job's pod left no report (deleted, or stopped at its deadline)".into(),
            ),
            ..Report::default()
        },
    })
}

async fn record(
    ctx: &Context,
    r: &BackupRepository,
    job: &JobFacts,
    patch: &mut Value,
) -> Result<()> {
    let report = report_of(ctx, r, &job.name).await?;
    let succeeded = job.state == JobState::Succeeded && report.ok && report.error.is_none();
    let now = ctx.config.clock.now();
    let summary = truncate(report.summary(), 1000);
    patch["phase"] = json!(if succeeded { "Succeeded" } else { "Failed" });
    patch["job"] = json!(job.name);
    patch["lastCompletionTime"] = json!(time_from_secs(now));
    patch["reclaimedBytes"] = json!(report.reclaimed_bytes);
    patch["summary"] = json!(summary);
    patch["problems"] = json!(report.problems);
    if succeeded {
        patch["lastSuccessTime"] = json!(time_from_secs(now));
    }
    ctx.metrics.maintenance_done(
        &r.namespace().unwrap_or_default(),
        &r.name_any(),
        succeeded,
        report.reclaimed_bytes,
        now,
    );
    let reason = if succeeded {
        "MaintenanceSucceeded"
    } else {
        "MaintenanceFailed"
    };
    event(
        &ctx.recorder,
        r,
        !succeeded,
        reason,
        format!("Job {}: {summary}", job.name),
    )
    .await;
    Ok(())
}
