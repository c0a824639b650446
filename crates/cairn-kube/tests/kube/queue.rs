//! The per-node limit: with one slot, a second job waits in phase Assigned
//! (counted as queued) until the first finishes; both complete.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_kube::crd::{Phase, PvcRef, RepositoryRef, VolumeBackup, VolumeBackupSpec};
use cairn_testkit::kube::ScenarioSpec;
use kube::api::{ListParams, PostParams};

use crate::common::{cluster, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_one_slot_a_second_job_waits_assigned_until_the_first_is_done() {
    let Some(mut c) = cluster("queue").await else {
        return;
    };
    let spec = ScenarioSpec::new()
        .node("n")
        .claim("one")
        .pod_on("n", "one")
        .claim("two")
        .pod_on("n", "two");
    let made = c.apply(&spec).await;
    let node = made.node("n");
    for claim in ["one", "two"] {
        let dir = c.volume_dir(made.pod(&format!("app-{claim}")), made.volume(claim));
        crate::common::fill(&dir, 4, 1_000_000);
    }
    let repo_path = c.init_repository("repo").await;
    c.create_repository_object("main", &repo_path, Some(2048))
        .await;
    c.start_controller(std::sync::Arc::new(cairn_kube::clock::SystemClock));
    let mut config = c.agent_config(node);
    config.max_concurrent = 1;
    let agent = c.start_agent_with(config);

    let api = c.api::<VolumeBackup>();
    for claim in ["one", "two"] {
        let vb = VolumeBackup::new(
            claim,
            VolumeBackupSpec {
                pvc: PvcRef {
                    name: claim.into(),
                    namespace: None,
                },
                repository: RepositoryRef {
                    name: "main".into(),
                    namespace: None,
                },
                ..Default::default()
            },
        );
        api.create(&PostParams::default(), &vb)
            .await
            .expect("create");
    }
    let queued = agent
        .metrics
        .queued
        .get_or_create(&cairn_kube::metrics::Metrics::kind(
            cairn_kube::job::JobKind::Backup,
        ))
        .clone();
    let saw_queue = Arc::new(AtomicBool::new(false));
    let saw_queued_gauge = Arc::new(AtomicBool::new(false));
    wait_until(
        "both completed, never both running",
        Duration::from_secs(120),
        || {
            let api = api.clone();
            let queued = queued.clone();
            let (saw_queue, saw_queued_gauge) = (saw_queue.clone(), saw_queued_gauge.clone());
            async move {
                let phases: Vec<Phase> = api
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .map(|v| v.status.map(|s| s.phase).unwrap_or_default())
                    .collect();
                let running = phases.iter().filter(|p| **p == Phase::InProgress).count();
                assert!(
                    running <= 1,
                    "two jobs ran at once on a one-slot node: {phases:?}"
                );
                if running == 1 && phases.contains(&Phase::Assigned) {
                    saw_queue.store(true, Ordering::Relaxed);
                }
                if queued.get() == 1 {
                    saw_queued_gauge.store(true, Ordering::Relaxed);
                }
                phases.iter().all(|p| *p == Phase::Completed).then_some(())
            }
        },
    )
    .await;
    assert!(
        saw_queue.load(Ordering::Relaxed),
        "the second job was never seen waiting Assigned beside the first"
    );
    assert!(
        saw_queued_gauge.load(Ordering::Relaxed),
        "the queue depth gauge never showed the waiting job"
    );
    assert_eq!(queued.get(), 0);
    c.cleanup().await;
}
