//! The job reconciler as a function of observed state.

use super::*;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, PersistentVolumeClaimStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::controller::placement::tests::pod;

fn claim(bound: bool) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("db".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            volume_name: bound.then(|| "pv-db".to_owned()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some(if bound { "Bound" } else { "Pending" }.into()),
            ..Default::default()
        }),
    }
}

fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn new_job() -> JobFacts {
    JobFacts {
        kind: Some(JobKind::Backup),
        finalizers: vec![CONTROLLER_FINALIZER.into()],
        has_status: true,
        claim: "db".into(),
        ..Default::default()
    }
}

fn agents(list: &[(&str, i64)]) -> BTreeMap<String, i64> {
    list.iter().map(|(n, a)| ((*n).to_owned(), *a)).collect()
}

#[test]
fn a_new_job_gets_a_status_and_a_finalizer_first() {
    let job = JobFacts {
        finalizers: vec![],
        has_status: false,
        ..new_job()
    };
    let pvc = claim(true);
    let seen = Observed {
        pvc: Some(&pvc),
        ..Default::default()
    };
    let actions = decide(&job, &seen, Limits::default());
    assert_eq!(actions[0], Action::InitStatus);
    assert_eq!(actions[1], Action::AddFinalizer);
}

#[test]
fn a_job_is_assigned_to_the_node_of_the_running_pod() {
    let pvc = claim(true);
    let pods = vec![pod("app", "node-b", "Running", "db")];
    let seen = Observed {
        pvc: Some(&pvc),
        pods: &pods,
        agents: agents(&[("node-a", 1), ("node-b", 1)]),
        ..Default::default()
    };
    let actions = decide(&new_job(), &seen, Limits::default());
    let [Action::Assign { node, source }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!(node, "node-b");
    assert_eq!(source.pod_uid, "uid-app");
    assert_eq!(source.persistent_volume, "pv-db");
}

#[test]
fn an_unmounted_claim_gets_a_helper_pod_then_is_assigned_through_it() {
    let pvc = claim(true);
    let nodes = vec![node("node-a"), node("node-b")];
    let mut seen = Observed {
        pvc: Some(&pvc),
        nodes: &nodes,
        agents: agents(&[("node-b", 3)]),
        ..Default::default()
    };
    assert_eq!(
        decide(&new_job(), &seen, Limits::default()),
        vec![Action::CreateHelperPod {
            node: "node-b".into()
        }]
    );
    let helpers = vec![pod("cairn-backup-x", "node-b", "Pending", "db")];
    seen.helpers = &helpers;
    let actions = decide(&new_job(), &seen, Limits::default());
    let [Action::Assign { node, source }] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!(node, "node-b");
    assert!(source.helper_pod);
}

#[test]
fn without_a_live_agent_the_job_waits_and_says_why() {
    let pvc = claim(true);
    let nodes = vec![node("node-a")];
    let seen = Observed {
        pvc: Some(&pvc),
        nodes: &nodes,
        agents: agents(&[("node-a", 600)]),
        ..Default::default()
    };
    let actions = decide(&new_job(), &seen, Limits::default());
    let [Action::Wait(msg)] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert!(msg.contains("no node has a running cairn agent"), "{msg}");
    // The same message is not written again.
    let job = JobFacts {
        message: Some(msg.clone()),
        ..new_job()
    };
    assert_eq!(
        decide(&job, &seen, Limits::default()),
        vec![Action::Wait(String::new())]
    );
}

#[test]
fn missing_claims_and_forbidden_repositories_fail_unbound_claims_wait() {
    let seen = Observed {
        ..Default::default()
    };
    let actions = decide(&new_job(), &seen, Limits::default());
    assert!(
        matches!(&actions[..], [Action::Finish { to: Phase::Failed, message, .. }] if message.contains("not found"))
    );

    let pvc = claim(true);
    let seen = Observed {
        pvc: Some(&pvc),
        repository: RepoCheck::Forbidden("not allowed".into()),
        ..Default::default()
    };
    let actions = decide(&new_job(), &seen, Limits::default());
    assert!(
        matches!(&actions[..], [Action::Finish { to: Phase::Failed, message, .. }] if message == "not allowed")
    );

    let seen = Observed {
        pvc: Some(&pvc),
        repository: RepoCheck::Missing("waiting for BackupRepository main".into()),
        ..Default::default()
    };
    assert!(
        matches!(&decide(&new_job(), &seen, Limits::default())[..], [Action::Wait(m)] if m.contains("main"))
    );

    let pending = claim(false);
    let seen = Observed {
        pvc: Some(&pending),
        ..Default::default()
    };
    assert!(
        matches!(&decide(&new_job(), &seen, Limits::default())[..], [Action::Wait(m)] if m.contains("bound"))
    );
}

#[test]
fn cancel_before_assignment_or_with_a_dead_agent_is_done_by_the_controller() {
    let job = JobFacts {
        cancel: true,
        ..new_job()
    };
    let seen = Observed {
        ..Default::default()
    };
    assert!(matches!(
        &decide(&job, &seen, Limits::default())[..],
        [Action::Finish {
            from: Phase::New,
            to: Phase::Canceled,
            ..
        }]
    ));

    let pods = vec![pod("app", "node-b", "Running", "db")];
    let assigned = JobFacts {
        phase: Phase::Assigned,
        node: Some("node-b".into()),
        source: Some(VolumeSource {
            pod_uid: "uid-app".into(),
            ..Default::default()
        }),
        cancel: true,
        ..new_job()
    };
    let mut seen = Observed {
        pods: &pods,
        agents: agents(&[("node-b", 1)]),
        ..Default::default()
    };
    assert_eq!(
        decide(&assigned, &seen, Limits::default()),
        vec![],
        "the live agent cancels it"
    );
    seen.agents = agents(&[("node-b", 100)]);
    assert!(matches!(
        &decide(&assigned, &seen, Limits::default())[..],
        [Action::Finish {
            to: Phase::Canceled,
            ..
        }]
    ));
}

#[test]
fn an_assigned_job_whose_pod_went_away_is_placed_again() {
    let assigned = JobFacts {
        phase: Phase::Assigned,
        node: Some("node-b".into()),
        source: Some(VolumeSource {
            pod_uid: "uid-gone".into(),
            ..Default::default()
        }),
        ..new_job()
    };
    let seen = Observed {
        agents: agents(&[("node-b", 1)]),
        ..Default::default()
    };
    assert!(matches!(
        &decide(&assigned, &seen, Limits::default())[..],
        [Action::Unassign(_)]
    ));
}

#[test]
fn a_job_in_progress_fails_only_when_its_agent_is_silent_for_long() {
    let running = JobFacts {
        phase: Phase::InProgress,
        node: Some("node-b".into()),
        ..new_job()
    };
    let mut seen = Observed {
        agents: agents(&[("node-b", 100)]),
        ..Default::default()
    };
    assert_eq!(
        decide(&running, &seen, Limits::default()),
        vec![],
        "a restarting agent resumes it"
    );
    seen.agents = agents(&[]);
    assert_eq!(
        decide(&running, &seen, Limits::default()),
        vec![],
        "no lease yet: a job that just started is not failed"
    );
    let old = JobFacts {
        running_for: Some(400),
        ..running.clone()
    };
    assert!(matches!(
        &decide(&old, &seen, Limits::default())[..],
        [Action::Finish {
            to: Phase::Failed,
            ..
        }]
    ));
    seen.agents = agents(&[("node-b", 301)]);
    let actions = decide(&running, &seen, Limits::default());
    assert!(
        matches!(&actions[..], [Action::Finish { from: Phase::InProgress, to: Phase::Failed, message }] if message.contains("node-b"))
    );
}

#[test]
fn finished_and_deleted_jobs_clean_up() {
    let helpers = vec![pod("cairn-backup-x", "node-b", "Running", "db")];
    let done = JobFacts {
        phase: Phase::Completed,
        ..new_job()
    };
    let seen = Observed {
        helpers: &helpers,
        ..Default::default()
    };
    assert_eq!(
        decide(&done, &seen, Limits::default()),
        vec![Action::DeleteHelperPod("cairn-backup-x".into())]
    );
    let deleting = JobFacts {
        deleting: true,
        phase: Phase::InProgress,
        node: Some("node-b".into()),
        finalizers: vec![CONTROLLER_FINALIZER.into(), AGENT_FINALIZER.into()],
        ..new_job()
    };
    let mut seen = Observed {
        helpers: &helpers,
        agents: agents(&[("node-b", 1)]),
        ..Default::default()
    };
    assert_eq!(
        decide(&deleting, &seen, Limits::default()),
        vec![
            Action::DeleteHelperPod("cairn-backup-x".into()),
            Action::RemoveFinalizer(CONTROLLER_FINALIZER)
        ],
        "the live agent removes its own finalizer"
    );
    seen.agents.clear();
    assert!(
        decide(&deleting, &seen, Limits::default())
            .contains(&Action::RemoveFinalizer(AGENT_FINALIZER))
    );
}

#[test]
fn a_snapshot_backup_waits_for_its_snapshot_and_fails_with_it() {
    let pvc = claim(true);
    let pods = vec![pod("app", "node-b", "Running", "db")];
    let waiting = Observed {
        pvc: Some(&pvc),
        pods: &pods,
        agents: agents(&[("node-b", 1)]),
        exposure: Exposure::Waiting("waiting for VolumeSnapshot s to be ready".into()),
        ..Default::default()
    };
    let actions = decide(&new_job(), &waiting, Limits::default());
    assert_eq!(
        actions,
        vec![Action::Wait(
            "waiting for VolumeSnapshot s to be ready".into()
        )],
        "not placed on the pod that mounts the live claim"
    );
    let failed = Observed {
        exposure: Exposure::Failed("VolumeSnapshot s failed: no space".into()),
        ..waiting.clone()
    };
    let actions = decide(&new_job(), &failed, Limits::default());
    assert!(
        matches!(&actions[..], [Action::Finish { to: Phase::Failed, message, .. }] if message.contains("no space")),
        "{actions:?}"
    );
    let ready = Observed {
        exposure: Exposure::Ready,
        ..waiting
    };
    let actions = decide(&new_job(), &ready, Limits::default());
    assert!(
        matches!(&actions[..], [Action::Assign { .. }]),
        "{actions:?}"
    );
}
