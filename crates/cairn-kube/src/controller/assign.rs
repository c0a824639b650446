//! The controller's reconciler for jobs (VolumeBackup and VolumeRestore),
//! as a pure function of what it observed: which node runs the job, helper
//! pods for claims no pod mounts, and clean-up. The agent takes it from
//! `Assigned` on.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};

use super::placement::{helper_node, mounted_volume_name, running_pod, source_of, starting_pod};
use crate::crd::{Phase, VolumeSource};
use crate::job::JobKind;
use crate::names::{AGENT_FINALIZER, CONTROLLER_FINALIZER};

/// The facts about one job the decision needs.
#[derive(Clone, Debug, Default)]
pub struct JobFacts {
    /// Backup or restore.
    pub kind: Option<JobKind>,
    /// Deletion has begun.
    pub deleting: bool,
    /// Finalizers present.
    pub finalizers: Vec<String>,
    /// Current phase.
    pub phase: Phase,
    /// Whether a status was written yet.
    pub has_status: bool,
    /// `spec.cancel`.
    pub cancel: bool,
    /// Assigned node.
    pub node: Option<String>,
    /// Recorded source pod.
    pub source: Option<VolumeSource>,
    /// Name of the claim the agent must reach.
    pub claim: String,
    /// Current status message.
    pub message: Option<String>,
    /// Seconds since an agent started the job (`status.startTime`).
    pub running_for: Option<i64>,
}

/// What the controller sees around the job.
#[derive(Clone, Debug, Default)]
pub struct Observed<'a> {
    /// The claim, if it exists.
    pub pvc: Option<&'a PersistentVolumeClaim>,
    /// Its volume, if bound and found.
    pub pv: Option<&'a PersistentVolume>,
    /// Pods in the claim's namespace.
    pub pods: &'a [Pod],
    /// This job's helper pods.
    pub helpers: &'a [Pod],
    /// Every node (only needed when a helper pod must be placed).
    pub nodes: &'a [Node],
    /// Seconds since each node's agent last renewed its lease, by node.
    pub agents: BTreeMap<String, i64>,
    /// Whether the repository exists and the job may use it.
    pub repository: RepoCheck,
    /// For a backup of a CSI snapshot: whether the snapshot and the claim
    /// made from it are ready.
    pub exposure: Exposure,
}

/// Where a snapshot backup's volume stands before it can be placed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Exposure {
    /// Not a snapshot backup: the claim itself is read.
    #[default]
    Live,
    /// The snapshot or the claim made from it is not ready yet.
    Waiting(String),
    /// The snapshot failed, or objects in its place are not cairn's.
    Failed(String),
    /// The claim made from the snapshot exists; place the job on it.
    Ready,
}

/// Whether a job may use its repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RepoCheck {
    /// It exists and the job may use it.
    #[default]
    Ok,
    /// It does not exist (yet): the job waits.
    Missing(String),
    /// The job may not use it: the job fails.
    Forbidden(String),
}

/// Timing knobs.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// An agent is alive if its lease was renewed within this many seconds.
    pub lease_secs: i64,
    /// A job in progress fails when its agent has been silent this long.
    pub agent_timeout_secs: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            lease_secs: 40,
            agent_timeout_secs: 300,
        }
    }
}

/// One step for the executor.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Write the initial status (phase New).
    InitStatus,
    /// Add the controller's finalizer.
    AddFinalizer,
    /// Remove a finalizer (the controller's, or a dead agent's).
    RemoveFinalizer(&'static str),
    /// Create a helper pod mounting the claim on this node.
    CreateHelperPod {
        /// Node to run on.
        node: String,
    },
    /// Delete a helper pod.
    DeleteHelperPod(String),
    /// New → Assigned.
    Assign {
        /// The node.
        node: String,
        /// How the agent reaches the volume.
        source: VolumeSource,
    },
    /// Assigned → New (the pod it was assigned through is gone).
    Unassign(String),
    /// To a final phase.
    Finish {
        /// The phase expected now.
        from: Phase,
        /// Failed or Canceled.
        to: Phase,
        /// Why.
        message: String,
    },
    /// Stay, saying why, and look again later.
    Wait(String),
}

/// Decides the next steps for a job.
pub fn decide(job: &JobFacts, seen: &Observed<'_>, limits: Limits) -> Vec<Action> {
    let live: BTreeSet<String> = seen
        .agents
        .iter()
        .filter(|(_, age)| **age <= limits.lease_secs)
        .map(|(n, _)| n.clone())
        .collect();
    let has = |f: &str| job.finalizers.iter().any(|x| x == f);
    let mut out = Vec::new();

    if job.deleting {
        out.extend(delete_helpers(seen));
        let agent_alive = job.node.as_ref().is_some_and(|n| live.contains(n));
        // The agent removes its own finalizer once the run has stopped; if
        // the agent is gone, nobody else will.
        if has(AGENT_FINALIZER) && !agent_alive {
            out.push(Action::RemoveFinalizer(AGENT_FINALIZER));
        }
        if has(CONTROLLER_FINALIZER) {
            out.push(Action::RemoveFinalizer(CONTROLLER_FINALIZER));
        }
        return out;
    }
    if job.phase.is_terminal() {
        out.extend(delete_helpers(seen));
        return out;
    }
    if !job.has_status {
        out.push(Action::InitStatus);
    }
    if !has(CONTROLLER_FINALIZER) {
        out.push(Action::AddFinalizer);
    }
    match job.phase {
        Phase::New => out.extend(place(job, seen, &live)),
        Phase::Assigned => out.extend(assigned(job, seen, &live)),
        Phase::InProgress => out.extend(in_progress(job, seen, limits)),
        _ => {}
    }
    out
}

/// An assigned job: canceled while its agent is gone, placed again when
/// the pod it was assigned through is gone, or waiting for the agent.
fn assigned(job: &JobFacts, seen: &Observed<'_>, live: &BTreeSet<String>) -> Option<Action> {
    let node = job.node.clone().unwrap_or_default();
    let pod_gone = job.source.as_ref().is_some_and(|s| {
        !seen
            .pods
            .iter()
            .chain(seen.helpers)
            .any(|p| p.metadata.uid.as_deref() == Some(&s.pod_uid))
    });
    if job.cancel && !live.contains(&node) {
        Some(finish(
            job.phase,
            Phase::Canceled,
            "canceled before it started",
        ))
    } else if pod_gone {
        Some(Action::Unassign(
            "the pod it was assigned through is gone; placing it again".to_owned(),
        ))
    } else if !live.contains(&node) {
        Some(wait(
            job,
            format!("waiting for the cairn agent on node {node}"),
        ))
    } else {
        None
    }
}

/// A running job fails when its agent has been silent too long.
fn in_progress(job: &JobFacts, seen: &Observed<'_>, limits: Limits) -> Option<Action> {
    let node = job.node.clone().unwrap_or_default();
    // Without a lease (not renewed yet, or deleted), the time since the
    // job started counts as the agent's silence.
    let silent = seen
        .agents
        .get(&node)
        .copied()
        .or(job.running_for)
        .unwrap_or(0);
    (silent > limits.agent_timeout_secs).then(|| {
        finish(
            job.phase,
            Phase::Failed,
            &format!(
                "the cairn agent on node {node} stopped reporting for more than {}s while running this job",
                limits.agent_timeout_secs
            ),
        )
    })
}

fn finish(from: Phase, to: Phase, message: &str) -> Action {
    Action::Finish {
        from,
        to,
        message: message.to_owned(),
    }
}

fn wait(job: &JobFacts, message: String) -> Action {
    if job.message.as_deref() == Some(message.as_str()) {
        Action::Wait(String::new())
    } else {
        Action::Wait(message)
    }
}

fn delete_helpers(seen: &Observed<'_>) -> Vec<Action> {
    seen.helpers
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name.clone())
        .map(Action::DeleteHelperPod)
        .collect()
}

/// New: find the node, or make a pod that mounts the claim.
fn place(job: &JobFacts, seen: &Observed<'_>, live: &BTreeSet<String>) -> Vec<Action> {
    if job.cancel {
        return vec![finish(
            Phase::New,
            Phase::Canceled,
            "canceled before it was assigned",
        )];
    }
    match &seen.repository {
        RepoCheck::Ok => {}
        RepoCheck::Missing(why) => return vec![wait(job, why.clone())],
        RepoCheck::Forbidden(why) => return vec![finish(Phase::New, Phase::Failed, why)],
    }
    match &seen.exposure {
        Exposure::Live | Exposure::Ready => {}
        Exposure::Waiting(why) => return vec![wait(job, why.clone())],
        Exposure::Failed(why) => return vec![finish(Phase::New, Phase::Failed, why)],
    }
    let Some(pvc) = seen.pvc else {
        return vec![finish(
            Phase::New,
            Phase::Failed,
            &format!("PersistentVolumeClaim {} not found", job.claim),
        )];
    };
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let pv_name = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    if !bound || pv_name.is_empty() {
        return vec![wait(
            job,
            format!("waiting for claim {} to be bound", job.claim),
        )];
    }
    if let Some((node, source)) = running_pod(seen.pods, &job.claim, &pv_name, live) {
        return vec![Action::Assign { node, source }];
    }
    if let Some(pod) = starting_pod(seen.pods, &job.claim) {
        return vec![wait(
            job,
            format!("waiting for pod {pod}, which mounts the claim, to start"),
        )];
    }
    // Our helper pod, once created, is where the agent reaches the volume
    // (the agent waits for the kubelet to mount it).
    let helper = seen
        .helpers
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .find_map(|p| {
            let node = p.spec.as_ref()?.node_name.clone()?;
            let volume = mounted_volume_name(p, &job.claim)?;
            Some((node, source_of(p, volume, &pv_name, true)?))
        });
    if let Some((node, source)) = helper {
        return vec![Action::Assign { node, source }];
    }
    match helper_node(seen.pv, seen.nodes, live) {
        Ok(node) => vec![Action::CreateHelperPod { node }],
        Err(why) => vec![wait(
            job,
            format!("no pod mounts claim {}, and {why}", job.claim),
        )],
    }
}

#[cfg(test)]
#[path = "assign_tests.rs"]
mod tests;
