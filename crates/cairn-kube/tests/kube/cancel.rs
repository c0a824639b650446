//! Cancel mid-backup: the job ends Canceled within seconds, no snapshot is
//! written, and the repository checks clean (what was uploaded is indexed).

use cairn::Maintenance as _;
use std::time::{Duration, Instant};

use cairn::CheckOptions;
use cairn_kube::crd::{Phase, PvcRef, RepositoryRef, VolumeBackup, VolumeBackupSpec};
use cairn_testkit::kube::ScenarioSpec;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::cluster;

/// Node `n`, claim `big` and the pod `app` on `n` using it.
fn one_app_on_one_node() -> ScenarioSpec {
    ScenarioSpec::new()
        .node("n")
        .claim("big")
        .pod("app", "n", "big")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_mid_backup_ends_canceled_within_seconds_and_leaves_the_repository_clean() {
    let Some(mut c) = cluster("cancel").await else {
        return;
    };
    let made = c.apply(&one_app_on_one_node()).await;
    let node = made.node("n");
    let volume = c.volume_dir(made.pod("app"), made.volume("big"));
    // 32 MB at 1 MiB/s: half a minute unless canceled.
    crate::common::fill(&volume, 32, 1_000_000);
    let repo_path = c.init_repository("repo").await;
    c.create_repository_object("main", &repo_path, Some(1024))
        .await;
    c.start_controller(std::sync::Arc::new(cairn_kube::clock::SystemClock));
    let _agent = c.start_agent(node);
    let vb = VolumeBackup::new(
        "slow",
        VolumeBackupSpec {
            pvc: PvcRef {
                name: "big".into(),
                namespace: None,
            },
            repository: RepositoryRef {
                name: "main".into(),
                namespace: None,
            },
            ..Default::default()
        },
    );
    let api = c.api::<VolumeBackup>();
    api.create(&PostParams::default(), &vb)
        .await
        .expect("create");
    let long = Duration::from_secs(120);
    c.wait_for("slow", "some progress", long, |vb: &VolumeBackup| {
        vb.status.as_ref().is_some_and(|s| {
            s.phase == Phase::InProgress && s.progress.as_ref().is_some_and(|p| p.bytes_done > 0)
        })
    })
    .await;

    let asked = Instant::now();
    api.patch(
        "slow",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"cancel": true}})),
    )
    .await
    .expect("cancel");
    let done: VolumeBackup = c
        .wait_for("slow", "a final phase", long, |vb: &VolumeBackup| {
            vb.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    let took = asked.elapsed();
    eprintln!("cancel took {took:?}");
    let st = done.status.expect("status");
    assert_eq!(st.phase, Phase::Canceled, "{:?}", st.message);
    assert!(took < Duration::from_secs(15), "cancel took {took:?}");
    assert!(st.snapshot_id.is_none());
    c.wait_for(
        "slow",
        "the agent's finalizer released",
        long,
        |vb: &VolumeBackup| {
            !vb.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == "cairn.dev/agent")
        },
    )
    .await;

    let repo = c.open_repository(&repo_path).await;
    assert!(repo.list_snapshots().await.expect("list").is_empty());
    let report = repo
        .check({
            let mut o = CheckOptions::default();
            o.read_data = true;
            o
        })
        .await
        .expect("check");
    assert!(
        report.errors.is_empty(),
        "check found errors: {:?}",
        report.errors
    );
    assert!(
        report.warnings.is_empty(),
        "unindexed leftovers: {:?}",
        report.warnings
    );
    assert!(
        report.packs > 0,
        "uploads before the cancel are indexed and kept"
    );
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_running_backup_stops_it_and_the_object_goes_away() {
    let Some(mut c) = cluster("delete-running").await else {
        return;
    };
    let made = c.apply(&one_app_on_one_node()).await;
    let node = made.node("n");
    crate::common::fill(
        &c.volume_dir(made.pod("app"), made.volume("big")),
        16,
        1_000_000,
    );
    let repo_path = c.init_repository("repo").await;
    c.create_repository_object("main", &repo_path, Some(1024))
        .await;
    c.start_controller(std::sync::Arc::new(cairn_kube::clock::SystemClock));
    let agent = c.start_agent(node);
    let vb = VolumeBackup::new(
        "doomed",
        VolumeBackupSpec {
            pvc: PvcRef {
                name: "big".into(),
                namespace: None,
            },
            repository: RepositoryRef {
                name: "main".into(),
                namespace: None,
            },
            ..Default::default()
        },
    );
    let api = c.api::<VolumeBackup>();
    api.create(&PostParams::default(), &vb)
        .await
        .expect("create");
    let long = Duration::from_secs(120);
    let running: VolumeBackup = c
        .wait_for(
            "doomed",
            "running with the agent's finalizer",
            long,
            |vb: &VolumeBackup| {
                let fin = vb
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == "cairn.dev/agent");
                fin && vb
                    .status
                    .as_ref()
                    .is_some_and(|s| s.phase == Phase::InProgress)
            },
        )
        .await;
    assert!(
        running
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "cairn.dev/controller")
    );

    api.delete("doomed", &Default::default())
        .await
        .expect("delete");
    crate::common::wait_until("the object gone", long, || {
        let api = api.clone();
        async move { api.get_opt("doomed").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let label = cairn_kube::metrics::OutcomeLabels {
        kind: "backup",
        phase: "Canceled",
    };
    assert_eq!(
        agent.metrics.outcomes.get_or_create(&label).get(),
        1,
        "the run was stopped, not finished"
    );
    let repo = c.open_repository(&repo_path).await;
    assert!(repo.list_snapshots().await.expect("list").is_empty());
    let report = repo
        .check({
            let mut o = CheckOptions::default();
            o.read_data = false;
            o
        })
        .await
        .expect("check");
    assert!(
        report.errors.is_empty() && report.warnings.is_empty(),
        "{report:?}"
    );
    c.cleanup().await;
}
