//! The controller's executor for jobs: observes the claim, pods, nodes and
//! agent leases around a VolumeBackup or VolumeRestore, asks
//! [`assign::decide`] what to do, and does it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::Context;
use super::assign::{self, Action, Exposure, JobFacts, Observed, RepoCheck};
use super::helper::{self, HelperSpec};
use super::hooks::Stage;
use super::hooks_exec;
use super::{snapshot, target};
use crate::crd::{BackupRepository, JobStatus, Phase, time_from_secs};
use crate::job::{Job, Work};
use crate::kubeutil::{
    agent_ages, event, merge_status, ready_condition, set_finalizer, transition, wall_now,
};
use crate::names::{CONTROLLER_FINALIZER, NODE_LABEL, OWNER_UID_LABEL, node_label};
use crate::trust::{authorize, check_restore_source, check_source_cluster};
use crate::{Error, Result};

fn facts<J: Job>(job: &J) -> JobFacts {
    // The claim the agent reads: for a snapshot backup, the one made from
    // the snapshot.
    let status = job.job_status();
    JobFacts {
        kind: Some(J::KIND),
        deleting: job.deleting(),
        finalizers: job.finalizers().to_vec(),
        phase: job.phase(),
        has_status: status.is_some(),
        cancel: job.cancel(),
        node: job.node().map(str::to_owned),
        source: status.and_then(|s| s.source.clone()),
        claim: job.reach().1,
        message: status.and_then(|s| s.message.clone()),
        running_for: status
            .and_then(|s| s.start_time.as_ref())
            .map(|t| wall_now() - crate::crd::secs_of(t)),
    }
}

async fn repository_check<J: Job>(ctx: &Context, job: &J) -> Result<RepoCheck> {
    let key = job.repository_key();
    let api: Api<BackupRepository> = Api::namespaced(ctx.client.clone(), &key.0);
    let Some(repo) = api.get_opt(&key.1).await? else {
        return Ok(RepoCheck::Missing(format!(
            "waiting for BackupRepository {}/{}",
            key.0, key.1
        )));
    };
    if let Some(why) = not_yet_created(&repo) {
        return Ok(RepoCheck::Missing(why));
    }
    Ok(
        match authorize(
            &ctx.config.admins,
            &job.ns(),
            (&key.0, &key.1),
            &repo.spec,
            &job.claim().0,
        )
        .and_then(|access| match job.work() {
            Work::Restore {
                source: Some((ns, _)),
                cluster,
                ..
            } => check_restore_source(&access, &ns).and_then(|()| {
                check_source_cluster(&access, &ctx.config.cluster, cluster.as_deref())
            }),
            _ => Ok(()),
        }) {
            Ok(()) => RepoCheck::Ok,
            Err(why) => RepoCheck::Forbidden(why),
        },
    )
}

/// Why a job must wait for `repo`: it asks to be created (`initialize`)
/// and the controller has not looked at it yet, so an agent would find
/// no repository there. Once looked at (Ready or Failed), jobs go on and
/// meet what the controller met.
pub fn not_yet_created(repo: &BackupRepository) -> Option<String> {
    let looked = repo.status.as_ref().is_some_and(|s| s.phase.is_some());
    (repo.spec.initialize && !looked).then(|| {
        format!(
            "waiting for BackupRepository {} to be created",
            repo.metadata.name.as_deref().unwrap_or_default()
        )
    })
}

/// Feeds a completed backup to the per-claim "last successful backup"
/// gauges (every reconcile after a restart does it again, so the gauges
/// come back with the controller).
fn record_completed_backup<J: Job>(ctx: &Context, job: &J, ns: &str, claim: &str) {
    if job.phase() != Phase::Completed || !matches!(job.work(), Work::Backup { .. }) {
        return;
    }
    let Some(st) = job.job_status() else { return };
    let Some(at) = &st.completion_time else {
        return;
    };
    let bytes = st.progress.as_ref().map_or(0, |p| p.total_bytes);
    ctx.metrics
        .backup_completed(ns, claim, at.0.as_second(), bytes);
}

/// A node whose agent is alive (the first by name), where a volume
/// provisioned on first use can be reached.
async fn live_agent(ctx: &Context) -> Result<Option<String>> {
    let ages = agent_ages(&ctx.leases(), wall_now()).await?;
    Ok(ages
        .into_iter()
        .find(|(_, age)| *age <= ctx.config.limits.lease_secs)
        .map(|(node, _)| node))
}

/// One reconcile of a job.
pub async fn reconcile<J: Job>(job: Arc<J>, ctx: Arc<Context>) -> Result<Requeue> {
    let facts = facts(job.as_ref());
    let (claim_ns, claim) = job.claim();
    record_completed_backup(&ctx, job.as_ref(), &claim_ns, &claim);
    let claim = job.reach().1;
    let client = ctx.client.clone();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &claim_ns);
    let helpers = pods_api
        .list(&ListParams::default().labels(&format!("{OWNER_UID_LABEL}={}", job.uid_str())))
        .await?
        .items;
    let active = !facts.deleting && !facts.phase.is_terminal();
    let mut pods = Vec::new();
    if active && matches!(facts.phase, Phase::New | Phase::Assigned) {
        pods = pods_api.list(&ListParams::default()).await?.items;
    }
    let prep = if active && facts.phase == Phase::New {
        prepare(&ctx, job.as_ref(), &facts, (&claim_ns, &claim)).await?
    } else {
        Preparation::default()
    };
    if !active {
        after_end(&ctx, job.as_ref()).await?;
    }
    let Preparation {
        pvc,
        pv,
        nodes,
        repository,
        exposure,
    } = prep;
    let agents = agent_ages(&ctx.leases(), wall_now()).await?;
    let seen = Observed {
        pvc: pvc.as_ref(),
        pv: pv.as_ref(),
        pods: &pods,
        helpers: &helpers,
        nodes: &nodes,
        agents,
        repository,
        exposure,
    };
    let actions = assign::decide(&facts, &seen, ctx.config.limits);
    let api: Api<J> = Api::namespaced(client.clone(), &job.ns());
    let mut requeue = if active {
        Some(ctx.config.resync)
    } else {
        None
    };
    let block = pvc
        .as_ref()
        .and_then(|c| c.spec.as_ref()?.volume_mode.as_deref())
        == Some("Block");
    for action in actions {
        if let Some(again) = apply(&ctx, &api, job.as_ref(), (&claim_ns, block), action).await? {
            requeue = Some(requeue.map_or(again, |r| r.min(again)));
        }
    }
    Ok(match requeue {
        Some(d) => Requeue::requeue(d),
        None => Requeue::await_change(),
    })
}

/// What a job in phase New needs observed (and, for a snapshot backup or
/// a restore into a claim to create, brought about) before it is placed.
#[derive(Default)]
struct Preparation {
    pvc: Option<PersistentVolumeClaim>,
    pv: Option<PersistentVolume>,
    nodes: Vec<Node>,
    repository: RepoCheck,
    exposure: Exposure,
}

async fn prepare<J: Job>(
    ctx: &Context,
    job: &J,
    facts: &JobFacts,
    (claim_ns, claim): (&str, &str),
) -> Result<Preparation> {
    let client = ctx.client.clone();
    let mut prep = Preparation {
        repository: repository_check(ctx, job).await?,
        ..Preparation::default()
    };
    let usable = prep.repository == RepoCheck::Ok;
    // A snapshot is taken only for a job that may use its repository,
    // between the pre and the post hooks (which record their outcomes in
    // the status, so it must exist first).
    if let (Some(policy), true) = (job.snapshot(), usable) {
        prep.exposure = if facts.has_status {
            snapshot_between_hooks(ctx, job, policy).await?
        } else {
            Exposure::Waiting(String::new())
        };
    }
    prep.pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), claim_ns)
        .get_opt(claim)
        .await?;
    if let (Some(t), true) = (job.claim_template(), usable) {
        let node = live_agent(ctx).await?;
        prep.exposure = target::ensure(ctx, job, t, prep.pvc.is_some(), node.as_deref()).await?;
    }
    let pv_name = prep
        .pvc
        .as_ref()
        .and_then(|c| c.spec.as_ref()?.volume_name.clone());
    if let Some(name) = pv_name {
        prep.pv = Api::<PersistentVolume>::all(client.clone())
            .get_opt(&name)
            .await?;
    }
    prep.nodes = Api::<Node>::all(client)
        .list(&ListParams::default())
        .await?
        .items;
    Ok(prep)
}

/// Once a job has ended (or is being deleted): the snapshot's temporary
/// objects go, and whenever the pre hooks ran, the post hooks run.
async fn after_end<J: Job>(ctx: &Context, job: &J) -> Result<()> {
    if let Some(policy) = job.snapshot() {
        snapshot::clean_up(ctx, job, policy).await?;
    }
    if hooks_exec::status(job).pre_done {
        let api: Api<J> = Api::namespaced(ctx.client.clone(), &job.ns());
        hooks_exec::run_stage(ctx, &api, job, Stage::Post).await?;
    }
    Ok(())
}

/// Runs the pre hooks, takes (or checks) the snapshot, and runs the post
/// hooks once it is ready; a pre hook that fails the backup fails it.
async fn snapshot_between_hooks<J: Job>(
    ctx: &Context,
    job: &J,
    policy: &crate::crd::SnapshotPolicy,
) -> Result<Exposure> {
    let api: Api<J> = Api::namespaced(ctx.client.clone(), &job.ns());
    if let Some(why) = hooks_exec::run_stage(ctx, &api, job, Stage::Pre).await? {
        return Ok(Exposure::Failed(why)); // decide() ends the job with it
    }
    let exposure = snapshot::expose(ctx, job, policy).await?;
    if exposure == Exposure::Ready {
        hooks_exec::run_stage(ctx, &api, job, Stage::Post).await?;
    }
    Ok(exposure)
}

/// Applies one action; returns how soon to look again, if sooner than usual.
async fn apply<J: Job>(
    ctx: &Context,
    api: &Api<J>,
    job: &J,
    (claim_ns, block): (&str, bool),
    action: Action,
) -> Result<Option<Duration>> {
    let name = job.name_str();
    let soon = Some(Duration::from_secs(1));
    match action {
        Action::InitStatus => {
            merge_status(api, &name, JobStatus::default()).await?;
        }
        Action::AddFinalizer => {
            if !set_finalizer(api, job, CONTROLLER_FINALIZER, true).await? {
                return Ok(soon);
            }
        }
        Action::RemoveFinalizer(f) => {
            if !set_finalizer(api, job, f, false).await? {
                return Ok(soon);
            }
        }
        Action::CreateHelperPod { node } => {
            create_helper(ctx, job, (claim_ns, block), node).await?;
            return Ok(soon);
        }
        Action::DeleteHelperPod(pod) => {
            delete_helper(ctx, job, claim_ns, pod).await?;
        }
        Action::Assign { node, source } => {
            // A live backup reads between the pre and the post hooks (a
            // snapshot backup ran them around the snapshot).
            if job.snapshot().is_none() && matches!(job.work(), Work::Backup { .. }) {
                if let Some(why) = hooks_exec::run_stage(ctx, api, job, Stage::Pre).await? {
                    finish(ctx, api, job, (Phase::New, Phase::Failed), why).await?;
                    return Ok(soon);
                }
            }
            assign_to(ctx, api, job, node, source).await?;
        }
        Action::Unassign(why) => {
            unassign(api, job, ctx, why).await?;
            return Ok(soon);
        }
        Action::Finish { from, to, message } => {
            finish(ctx, api, job, (from, to), message).await?;
        }
        Action::Wait(message) => {
            if !message.is_empty() {
                merge_status(api, &name, json!({ "message": message })).await?;
            }
            return Ok(Some(ctx.config.wait_interval));
        }
    }
    Ok(None)
}

/// Creates the helper pod that mounts (or attaches) the claim `job` reads.
async fn create_helper<J: Job>(
    ctx: &Context,
    job: &J,
    (claim_ns, block): (&str, bool),
    node: String,
) -> Result<()> {
    let name = job.name_str();
    let kind = J::KIND;
    let same_ns = job.ns() == claim_ns;
    let claim = job.reach();
    let pod = helper::build(&HelperSpec {
        kind,
        job: (&job.ns(), &name),
        job_uid: &job.uid_str(),
        owner: if same_ns {
            job.controller_owner_ref(&())
        } else {
            None
        },
        claim: (claim_ns, &claim.1),
        node: &node,
        block,
        image: &ctx.config.helper_image,
    });
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), claim_ns);
    match pods.create(&PostParams::default(), &pod).await {
        Ok(p) => {
            ctx.metrics.helper_pods.inc();
            let note = format!(
                "no running pod mounts claim {}; created pod {} on node {node} to mount it",
                claim.1,
                p.name_any()
            );
            event(&ctx.recorder, job, false, "HelperPodCreated", note).await;
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Deletes a helper pod of `job`.
async fn delete_helper<J: Job>(ctx: &Context, job: &J, claim_ns: &str, pod: String) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), claim_ns);
    match pods.delete(&pod, &DeleteParams::default()).await {
        Ok(_) => {
            event(
                &ctx.recorder,
                job,
                false,
                "HelperPodDeleted",
                format!("deleted pod {pod}"),
            )
            .await;
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Assigns `job` to `node`, reaching the volume through `source`.
async fn assign_to<J: Job>(
    ctx: &Context,
    api: &Api<J>,
    job: &J,
    node: String,
    source: crate::crd::VolumeSource,
) -> Result<()> {
    let name = job.name_str();
    let kind = J::KIND;
    let labels = json!({"metadata": {"labels": {NODE_LABEL: node_label(&node)}}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&labels))
        .await?;
    let note = format!(
        "assigned to node {node}, reaching the volume through pod {}",
        source.pod_name
    );
    let done = transition(
        api,
        &name,
        &[("/status/phase", json!(Phase::New))],
        &[
            ("/status/phase", json!(Phase::Assigned)),
            ("/status/node", json!(node)),
            (
                "/status/source",
                serde_json::to_value(&source).map_err(invalid)?,
            ),
            ("/status/message", json!(note)),
        ],
    )
    .await?;
    if done {
        ctx.metrics.outcome(kind, Phase::Assigned);
        event(&ctx.recorder, job, false, "Assigned", note).await;
    }
    Ok(())
}

/// Takes `job` back to New, to be placed again.
async fn unassign<J: Job>(api: &Api<J>, job: &J, ctx: &Context, why: String) -> Result<()> {
    let name = job.name_str();
    let done = transition(
        api,
        &name,
        &[("/status/phase", json!(Phase::Assigned))],
        &[
            ("/status/phase", json!(Phase::New)),
            ("/status/node", Value::Null),
            ("/status/source", Value::Null),
            ("/status/message", json!(why)),
        ],
    )
    .await?;
    if done {
        let labels = json!({"metadata": {"labels": {NODE_LABEL: null}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&labels))
            .await?;
        event(&ctx.recorder, job, true, "Unassigned", why).await;
    }
    Ok(())
}

/// Moves `job` from `from` to the final phase `to`.
async fn finish<J: Job>(
    ctx: &Context,
    api: &Api<J>,
    job: &J,
    (from, to): (Phase, Phase),
    message: String,
) -> Result<()> {
    let name = job.name_str();
    let kind = J::KIND;
    let done = transition(
        api,
        &name,
        &[("/status/phase", json!(from))],
        &[
            ("/status/phase", json!(to)),
            ("/status/message", json!(message)),
            ("/status/completionTime", json!(time_from_secs(wall_now()))),
            ("/status/conditions", json!([ready_condition(to, &message)])),
        ],
    )
    .await?;
    if done {
        ctx.metrics.outcome(kind, to);
        event(
            &ctx.recorder,
            job,
            to == Phase::Failed,
            to.as_str(),
            message,
        )
        .await;
    }
    Ok(())
}

fn invalid(e: serde_json::Error) -> Error {
    Error::Invalid(e.to_string())
}

/// The job a helper pod belongs to, from its annotation.
pub fn job_of_helper<J: Job>(pod: &Pod) -> Option<kube::runtime::reflector::ObjectRef<J>> {
    let kind = pod.labels().get(crate::names::HELPER_KIND_LABEL)?;
    if kind != J::KIND.as_str() {
        return None;
    }
    let (ns, name) = pod
        .annotations()
        .get(helper::JOB_ANNOTATION)?
        .split_once('/')?;
    Some(kube::runtime::reflector::ObjectRef::new(name).within(ns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{BackupRepositorySpec, BackupRepositoryStatus};

    #[test]
    fn jobs_wait_for_a_repository_the_controller_has_yet_to_create() {
        let mut repo = BackupRepository::new(
            "velero-default",
            BackupRepositorySpec {
                initialize: true,
                ..Default::default()
            },
        );
        assert!(not_yet_created(&repo).is_some_and(|w| w.contains("velero-default")));
        for phase in ["Ready", "Failed"] {
            repo.status = Some(BackupRepositoryStatus {
                phase: Some(phase.into()),
                ..Default::default()
            });
            assert_eq!(not_yet_created(&repo), None, "{phase}: the job goes on");
        }
        repo.status = None;
        repo.spec.initialize = false;
        assert_eq!(
            not_yet_created(&repo),
            None,
            "created by hand: nothing to wait for"
        );
    }
}
