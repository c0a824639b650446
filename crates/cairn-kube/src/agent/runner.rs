//! One job's run on the agent: wait for the volume, queue for a slot, move
//! the job to InProgress, run the engine while reporting progress, and
//! record the outcome. Every phase change is a guarded patch, so a job is
//! never run twice or moved on by two writers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn::Progress;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::Api;
use serde_json::{Value, json};

use super::Agent;
use super::engine::{self, BackupJob, Outcome, RestoreJob, VolumeId};
use super::volume::{VolumePath, locate, root_for};
use crate::crd::{BackupRepository, JobProgress, Phase, VolumeSource, time_from_secs};
use crate::job::{Job, Work};
use crate::kubeutil::{event, ready_condition, set_finalizer, transition, truncate, wall_now};
use crate::metrics::Metrics;
use crate::names::AGENT_FINALIZER;
use crate::trust::{self, Access};
use crate::{Error, Result};

/// A run this process owns: queued or running.
#[derive(Debug, Default)]
pub struct RunHandle {
    /// The engine's counters (and its cancel switch).
    pub progress: Arc<Progress>,
    stop: AtomicBool,
    wake: tokio::sync::Notify,
}

impl RunHandle {
    /// Asks the run to stop: a queued run ends at once, a running one within
    /// the engine's cancellation latency.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.progress.cancel();
        self.wake.notify_one();
    }
    /// Whether [`RunHandle::stop`] was called.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Runs `job` to a final phase (or until someone else moves it on), then
/// forgets it.
pub async fn run<J: Job>(agent: Arc<Agent>, job: Arc<J>, handle: Arc<RunHandle>, resume: bool) {
    let uid = job.uid_str();
    if let Err(e) = run_inner(&agent, job.as_ref(), &handle, resume).await {
        tracing::warn!(job = %job.name_str(), error = %e, "job run ended with an API error; it will be looked at again");
    }
    agent.forget_run(&uid);
}

async fn run_inner<J: Job>(agent: &Agent, job: &J, handle: &RunHandle, resume: bool) -> Result<()> {
    let api: Api<J> = Api::namespaced(agent.client.clone(), &job.ns());
    let name = job.name_str();
    let cfg = &agent.config;
    let from = if resume {
        Phase::InProgress
    } else {
        Phase::Assigned
    };

    // 1. The volume (the kubelet may still be mounting it for a new pod).
    let at = match find_volume(agent, job, handle).await? {
        Ok(at) => at,
        Err((phase, msg)) => return finish_idle(agent, &api, job, from, phase, &msg).await,
    };

    // 2. A slot on this node; the job stays Assigned while it waits.
    let Some(_permit) = slot::<J>(agent, handle).await else {
        let msg = "canceled while queued";
        return finish_idle(agent, &api, job, from, Phase::Canceled, msg).await;
    };

    // 3. Take the job: Assigned → InProgress, or re-take an orphan.
    if !take(agent, &api, job, resume).await? {
        return Ok(());
    }

    // 4. Run, reporting progress.
    let running = agent
        .metrics
        .running
        .get_or_create(&Metrics::kind(J::KIND))
        .clone();
    running.inc();
    let started = Instant::now();
    let reporter = tokio::spawn(report(
        agent.metrics.clone(),
        api.clone(),
        name.clone(),
        J::KIND,
        handle.progress.clone(),
        cfg.progress_interval,
    ));
    let result = execute(agent, job, &at, handle.progress.clone()).await;
    reporter.abort();
    let _ = reporter.await;
    running.dec();
    // The backups' pooled read windows and what the job's buffers left
    // free in the heap go back to the node rather than staying resident
    // until the next job.
    cairn::release_free_memory();

    // 5. The outcome.
    if record_outcome(agent, &api, job, handle, result, started).await? {
        release(&api, &name).await
    } else {
        Ok(())
    }
}

/// Where the job's volume is, once its source is confirmed and the kubelet
/// has mounted it; or how the job ends (failed, canceled) without it.
async fn find_volume<J: Job>(
    agent: &Agent,
    job: &J,
    handle: &RunHandle,
) -> Result<std::result::Result<VolumePath, (Phase, String)>> {
    let cfg = &agent.config;
    let source = job
        .job_status()
        .and_then(|s| s.source.clone())
        .ok_or_else(|| Error::Invalid("the job has no volume source in its status".into()))?;
    // Anyone who can edit the job can write its status: the source must be
    // confirmed by the pod and claim themselves before any path is built.
    if let Err(why) = confirm_source(agent, job, &source).await? {
        let msg = format!("refused the volume source in status: {why}");
        return Ok(Err((Phase::Failed, msg)));
    }
    let root = root_for(J::KIND, &cfg.kubelet_root, &cfg.restore_root);
    let deadline = Instant::now() + cfg.volume_wait;
    loop {
        match locate(root, &source) {
            Ok(at) => return Ok(Ok(at)),
            Err(_) if handle.stopping() => return Ok(Err((Phase::Canceled, "canceled".into()))),
            Err(why) if Instant::now() >= deadline => {
                let msg = format!(
                    "volume not found within {}s: {why}",
                    cfg.volume_wait.as_secs()
                );
                return Ok(Err((Phase::Failed, msg)));
            }
            Err(_) => {
                let _ =
                    tokio::time::timeout(Duration::from_millis(500), handle.wake.notified()).await;
            }
        }
    }
}

/// A slot on this node, counted as queued while waiting; None when the
/// job is stopped first.
async fn slot<J: Job>(
    agent: &Agent,
    handle: &RunHandle,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let queued = agent
        .metrics
        .queued
        .get_or_create(&Metrics::kind(J::KIND))
        .clone();
    queued.inc();
    let permit = tokio::select! {
        p = agent.slots.clone().acquire_owned() => p.ok(),
        _ = wait_stop(handle) => None,
    };
    queued.dec();
    permit
}

async fn wait_stop(handle: &RunHandle) {
    while !handle.stopping() {
        handle.wake.notified().await;
    }
}

/// Ends a job that never ran here (from Assigned, or an orphan).
async fn finish_idle<J: Job>(
    agent: &Agent,
    api: &Api<J>,
    job: &J,
    from: Phase,
    to: Phase,
    message: &str,
) -> Result<()> {
    // A run stopped for a shutdown leaves the job to the next agent.
    if to == Phase::Canceled && agent.shutting_down() {
        return Ok(());
    }
    super::end(agent, api, job, from, to, message, &[]).await
}

/// Removes the agent's finalizer (looking again if the object changed).
pub async fn release<J: Job>(api: &Api<J>, name: &str) -> Result<()> {
    for _ in 0..5 {
        let Some(obj) = api.get_opt(name).await? else {
            return Ok(());
        };
        if set_finalizer(api, &obj, AGENT_FINALIZER, false).await? {
            return Ok(());
        }
    }
    Err(Error::Invalid(format!(
        "could not remove the agent finalizer from {name}"
    )))
}

/// Retries an API call on transport errors for about a minute: the outcome
/// of a long backup must not be lost to one failed request.
async fn retry<F, Fut>(mut f: F) -> Result<bool>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let mut delay = Duration::from_millis(200);
    let mut tries = 0;
    loop {
        match f().await {
            Err(e) if tries < 10 => {
                tracing::warn!(error = %e, "cannot record the outcome yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                tries += 1;
            }
            r => return r,
        }
    }
}

/// Adds what the engine did since the last call to the byte and file
/// counters.
fn count_progress(m: &Metrics, kind: crate::job::JobKind, p: &Progress, last: &mut (u64, u64)) {
    let (files, bytes, _, _) = p.get();
    let k = Metrics::kind(kind);
    m.files
        .get_or_create(&k)
        .inc_by(files.saturating_sub(last.0));
    m.bytes
        .get_or_create(&k)
        .inc_by(bytes.saturating_sub(last.1));
    *last = (files, bytes);
}

/// Patches `status.progress` every `every` while the job runs.
async fn report<J: Job>(
    metrics: Arc<Metrics>,
    api: Api<J>,
    name: String,
    kind: crate::job::JobKind,
    progress: Arc<Progress>,
    every: Duration,
) {
    let mut last = (0, 0);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (files, bytes, total_files, total_bytes) = progress.get();
        count_progress(&metrics, kind, &progress, &mut last);
        let body = json!({"progress": JobProgress::new(files, bytes, total_files, total_bytes)});
        if let Err(e) = crate::kubeutil::merge_status(&api, &name, body).await {
            tracing::debug!(error = %e, "progress patch failed");
        }
    }
}

/// Takes the job: Assigned → InProgress, or re-takes an orphan
/// (`resume`); false if another agent or a change got there first.
async fn take<J: Job>(agent: &Agent, api: &Api<J>, job: &J, resume: bool) -> Result<bool> {
    let cfg = &agent.config;
    let name = job.name_str();
    let Some(fresh) = api.get_opt(&name).await? else {
        return Ok(false);
    };
    let attempts = fresh.job_status().map(|s| s.attempts).unwrap_or(0);
    let me = &cfg.agent_id;
    let taken = if resume {
        transition(
            api,
            &name,
            &[("/status/phase", json!(Phase::InProgress)), ("/status/attempts", json!(attempts))],
            &[
                ("/status/agent", json!(me)),
                ("/status/attempts", json!(attempts + 1)),
                ("/status/message", json!(format!(
                    "resumed after an agent restart (attempt {}); data uploaded before is reused",
                    attempts + 1
                ))),
            ],
        )
        .await?
    } else {
        transition(
            api,
            &name,
            &[
                ("/status/phase", json!(Phase::Assigned)),
                ("/status/node", json!(cfg.node)),
            ],
            &[
                ("/status/phase", json!(Phase::InProgress)),
                ("/status/agent", json!(me)),
                ("/status/attempts", json!(attempts + 1)),
                ("/status/startTime", json!(time_from_secs(wall_now()))),
                ("/status/message", json!("running")),
            ],
        )
        .await?
    };
    if !taken {
        return Ok(false);
    }
    if let Some(fresh) = api.get_opt(&name).await? {
        set_finalizer(api, &fresh, AGENT_FINALIZER, true).await?;
    }
    let (reason, note) = if resume {
        (
            "Resumed",
            format!(
                "agent {me} resumed it on node {} (attempt {})",
                cfg.node,
                attempts + 1
            ),
        )
    } else {
        (
            "Started",
            format!("agent {me} started it on node {}", cfg.node),
        )
    };
    event(&agent.recorder, job, false, reason, note).await;
    Ok(true)
}

/// Records how the run ended; false when it stopped for a shutdown and the
/// job stays InProgress (its uploads indexed) for the next agent.
async fn record_outcome<J: Job>(
    agent: &Agent,
    api: &Api<J>,
    job: &J,
    handle: &RunHandle,
    result: Result<Outcome>,
    started: Instant,
) -> Result<bool> {
    let name = job.name_str();
    let me = &agent.config.agent_id;
    if agent.shutting_down()
        && matches!(result, Err(Error::Engine(cairn::error::FsError::Cancelled)))
    {
        tracing::info!(job = %name, "left in progress for the next agent");
        return Ok(false);
    }
    let (phase, outcome, message) = match result {
        Ok(o) => (Phase::Completed, o.clone(), o.message),
        Err(Error::Engine(cairn::error::FsError::Cancelled)) => (
            Phase::Canceled,
            Outcome::default(),
            "canceled; data uploaded so far is indexed and reused by the next backup".to_owned(),
        ),
        Err(e) => (
            Phase::Failed,
            Outcome::default(),
            truncate(e.to_string(), 1000),
        ),
    };
    let (files, bytes, total_files, total_bytes) = handle.progress.get();
    let mut set: Vec<(&str, Value)> = vec![
        ("/status/phase", json!(phase)),
        ("/status/message", json!(message)),
        ("/status/completionTime", json!(time_from_secs(wall_now()))),
        (
            "/status/progress",
            json!(JobProgress::new(
                files,
                bytes,
                total_files.max(files),
                total_bytes.max(bytes)
            )),
        ),
        (
            "/status/conditions",
            json!([ready_condition(phase, &message)]),
        ),
    ];
    if !outcome.snapshot_id.is_empty() {
        set.push(("/status/snapshotId", json!(outcome.snapshot_id)));
    }
    if let Some(b) = outcome.incremental_bytes {
        set.push(("/status/incrementalBytes", json!(b)));
    }
    let expect = [
        ("/status/phase", json!(Phase::InProgress)),
        ("/status/agent", json!(me)),
    ];
    let recorded = retry(|| transition(api, &name, &expect, &set)).await?;
    if recorded {
        agent.metrics.outcome(J::KIND, phase);
        agent
            .metrics
            .duration
            .get_or_create(&Metrics::kind(J::KIND))
            .observe(started.elapsed().as_secs_f64());
        event(
            &agent.recorder,
            job,
            phase == Phase::Failed,
            phase.as_str(),
            message,
        )
        .await;
    }
    Ok(true)
}

/// Re-reads the pod and claim a job's `status.source` names and checks them
/// ([`trust::check_source`]). The outer error is an API failure (retried
/// later), the inner one a refusal.
async fn confirm_source<J: Job>(
    agent: &Agent,
    job: &J,
    source: &VolumeSource,
) -> Result<std::result::Result<(), String>> {
    if let Err(why) = trust::check_source_names(source) {
        return Ok(Err(why));
    }
    // The claim read: for a snapshot backup, the one made from the snapshot.
    let claim = job.reach();
    let pod = Api::<Pod>::namespaced(agent.client.clone(), &claim.0)
        .get_opt(&source.pod_name)
        .await?;
    let pvc = Api::<PersistentVolumeClaim>::namespaced(agent.client.clone(), &claim.0)
        .get_opt(&claim.1)
        .await?;
    if let Err(why) = trust::check_source(
        source,
        &claim,
        &agent.config.node,
        pod.as_ref(),
        pvc.as_ref(),
    ) {
        return Ok(Err(why));
    }
    if job.snapshot().is_none() {
        return Ok(Ok(()));
    }
    let vs_name = job.snapshot_name();
    let vs = crate::controller::snapshot::snapshots(&agent.client, &claim.0)
        .get_opt(&vs_name)
        .await?;
    let of = vs
        .as_ref()
        .and_then(crate::controller::snapshot::snapshot_source);
    Ok(trust::check_snapshot_lineage(
        pvc.as_ref(),
        (&vs_name, of),
        &job.claim(),
    ))
}

/// How a backup compares files with its parent: by size and mtime for a
/// volume cloned from a snapshot unless the policy says otherwise, strictly
/// for a live volume.
fn change_detection(snapshot: Option<&crate::crd::SnapshotPolicy>) -> cairn::ChangeDetection {
    use crate::crd::ChangeDetectionMode as Mode;
    match snapshot.map(|s| s.change_detection.unwrap_or(Mode::SizeAndMtime)) {
        Some(Mode::SizeAndMtime) => cairn::ChangeDetection::SizeAndMtime,
        Some(Mode::Strict) | None => cairn::ChangeDetection::Strict,
    }
}

/// For a backup, the volume's tree read into the kernel's caches while the
/// repository's key is derived, staying ahead of the walk after.
fn readahead(work: &Work, at: &VolumePath) -> Option<cairn::MetadataReadahead> {
    matches!(work, Work::Backup { .. })
        .then(|| cairn::MetadataReadahead::start(vec![at.path().to_owned()]))
}

/// Opens the repository and runs the engine.
async fn execute<J: Job>(
    agent: &Agent,
    job: &J,
    at: &VolumePath,
    progress: Arc<Progress>,
) -> Result<Outcome> {
    let cfg = &agent.config;
    let (rns, rname) = job.repository_key();
    let repo_obj = Api::<BackupRepository>::namespaced(agent.client.clone(), &rns)
        .get_opt(&rname)
        .await?
        .ok_or_else(|| Error::not_found("BackupRepository", &(rns.clone(), rname.clone())))?;
    let (claim_ns, claim) = job.claim();
    let access = trust::authorize(
        &cfg.admins,
        &job.ns(),
        (&rns, &rname),
        &repo_obj.spec,
        &claim_ns,
    )
    .map_err(Error::Invalid)?;
    let work = job.work();
    let readahead = readahead(&work, at);
    let mut opts = cairn::OpenOptions::default();
    if let Some(limit) = cfg.index_table_limit {
        opts.index_table_limit = limit;
    }
    // A backup's snapshot is stored only once the index table passed its
    // check, which runs while the backup uses it (ADR 0028).
    opts.overlap_table_check = matches!(work, Work::Backup { .. });
    let repo = crate::repo::open(&agent.client, &repo_obj, cfg.cache_dir.as_deref(), opts).await?;
    let result = match work {
        Work::Backup { tags, excludes } => {
            let j = BackupJob {
                volume: VolumeId {
                    cluster: cfg.cluster.clone(),
                    namespace: claim_ns,
                    name: claim,
                },
                node: cfg.node.clone(),
                tags,
                excludes,
                time: cfg.clock.now(),
                change_detection: change_detection(job.snapshot()),
            };
            engine::backup(&repo, at, j, progress).await
        }
        Work::Restore {
            snapshot,
            source,
            cluster,
        } => {
            let (ns, name) = source.unwrap_or((claim_ns, claim));
            trust::check_restore_source(&access, &ns).map_err(Error::Invalid)?;
            trust::check_source_cluster(&access, &cfg.cluster, cluster.as_deref())
                .map_err(Error::Invalid)?;
            let j = RestoreJob {
                snapshot,
                source: VolumeId {
                    // Administrators restore a claim's newest snapshot of
                    // the cluster they name, or of any; tenants only of
                    // this one.
                    cluster: match access {
                        Access::Admin => cluster.unwrap_or_default(),
                        Access::Tenant(_) => cfg.cluster.clone(),
                    },
                    namespace: ns,
                    name,
                },
                access,
                cluster: cfg.cluster.clone(),
            };
            engine::restore(&repo, at, j, progress).await
        }
    };
    drop(readahead);
    trim_cache(cfg.cache_dir.as_deref(), &repo_obj).await;
    result
}

/// Keeps the repository's local cache within its size, after a run.
async fn trim_cache(cache_dir: Option<&std::path::Path>, repo_obj: &BackupRepository) {
    if let (Some(root), Ok(max)) = (cache_dir, crate::repo::cache_bytes(repo_obj)) {
        let dir = crate::repo::cache_dir(root, &repo_obj.spec.url);
        if dir.is_dir() {
            let _ = tokio::task::spawn_blocking(move || crate::repo::trim_cache(&dir, max)).await;
        }
    }
}
