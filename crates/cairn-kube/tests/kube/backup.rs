//! A backup runs on the node of the pod that mounts the claim, restores
//! byte-identical with the CLI and through a VolumeRestore; an unmounted
//! claim is reached through a helper pod that goes away afterwards.

use std::time::Duration;

use cairn_kube::crd::{
    Phase, PvcRef, RepositoryRef, VolumeBackup, VolumeBackupSpec, VolumeRestore, VolumeRestoreSpec,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};

use crate::common::{PASSWORD, cli, cluster, fill, tree, wait_until};

const LONG: Duration = Duration::from_secs(120);

fn repository() -> RepositoryRef {
    RepositoryRef {
        name: "main".into(),
        namespace: None,
    }
}

fn phase_is(p: Phase) -> impl Fn(&VolumeBackup) -> bool {
    move |vb| vb.status.as_ref().is_some_and(|s| s.phase == p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_b_backs_up_its_pods_claim_node_a_ignores_it_and_it_restores() {
    let Some(mut c) = cluster("backup-node-b").await else {
        return;
    };
    let node_a = c.create_node("node-a").await;
    let node_b = c.create_node("node-b").await;
    let pv = c.create_claim("data").await;
    let uid = c.create_pod("app", &node_b, "data").await;
    let volume = c.volume_dir(&uid, &pv);
    fill(&volume, 24, 300_000);
    let repo_path = c.init_repository("repo").await;
    // A limit keeps the run long enough to watch its progress.
    c.create_repository_object("main", &repo_path, Some(4096))
        .await;
    let controller = c.start_controller(std::sync::Arc::new(cairn_kube::clock::SystemClock));
    let agent_a = c.start_agent(&node_a);
    let agent_b = c.start_agent(&node_b);

    let vb = VolumeBackup::new(
        "first",
        VolumeBackupSpec {
            pvc: PvcRef {
                name: "data".into(),
                namespace: None,
            },
            repository: repository(),
            tags: vec!["manual".into()],
            ..Default::default()
        },
    );
    c.api::<VolumeBackup>()
        .create(&PostParams::default(), &vb)
        .await
        .expect("create");

    let running: VolumeBackup = c
        .wait_for(
            "first",
            "progress while in progress",
            LONG,
            |vb: &VolumeBackup| {
                vb.status.as_ref().is_some_and(|s| {
                    s.phase == Phase::InProgress
                        && s.progress.as_ref().is_some_and(|p| p.bytes_done > 0)
                })
            },
        )
        .await;
    let st = running.status.expect("status");
    assert_eq!(st.node.as_deref(), Some(node_b.as_str()));
    assert_eq!(st.agent.as_deref(), Some(agent_b.id.as_str()));

    let done: VolumeBackup = c
        .wait_for("first", "Completed", LONG, phase_is(Phase::Completed))
        .await;
    let st = done.status.expect("status");
    let progress = st.progress.expect("progress");
    assert_eq!(progress.files_done, 25, "24 files and an empty one");
    assert_eq!(progress.bytes_done, 24 * 300_000);
    assert_eq!(progress.total_bytes, 24 * 300_000);
    assert!(progress.summary.ends_with("(100%)"), "{}", progress.summary);
    assert!(st.incremental_bytes.is_some_and(|b| b > 0));
    let snapshot = st.snapshot_id.expect("snapshot id");
    assert_eq!(snapshot.len(), 64);
    let labels = done.metadata.labels.expect("labels");
    assert_eq!(labels.get("cairn.dev/node"), Some(&node_b));

    // "Is my data protected?": the controller's per-claim gauges.
    let claim = cairn_kube::metrics::ClaimLabels {
        namespace: c.ns.clone(),
        claim: "data".into(),
    };
    let finished = st
        .completion_time
        .as_ref()
        .expect("completion time")
        .0
        .as_second();
    let gauge = || controller.last_backup.get_or_create(&claim).get();
    for _ in 0..100 {
        if gauge() == finished {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(gauge(), finished);
    assert_eq!(
        controller.last_backup_bytes.get_or_create(&claim).get(),
        24 * 300_000
    );

    // Node A's agent never took part.
    let label = cairn_kube::metrics::OutcomeLabels {
        kind: "backup",
        phase: "Completed",
    };
    assert_eq!(
        agent_a.metrics.outcomes.get_or_create(&label).get(),
        0,
        "node A ran it"
    );
    assert_eq!(agent_b.metrics.outcomes.get_or_create(&label).get(), 1);

    // Each agent's heartbeat Lease is owned by its Node.
    let lease: k8s_openapi::api::coordination::v1::Lease = c
        .api()
        .get(&format!("cairn-agent-{node_b}"))
        .await
        .expect("lease");
    let owner = &lease.metadata.owner_references.expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", node_b.as_str())
    );

    // The CLI restores it byte for byte.
    let out = c.scratch.path().join("cli-restore");
    let status = std::process::Command::new(cli())
        .args([
            "-r",
            repo_path.to_str().expect("utf-8"),
            "restore",
            &snapshot[..12],
            "--target",
        ])
        .arg(&out)
        .env("CAIRN_PASSWORD", PASSWORD)
        .status()
        .expect("run cairn");
    assert!(status.success(), "cairn restore failed");
    assert_eq!(
        tree(&out),
        tree(&volume),
        "the CLI restore differs from the volume"
    );

    // A VolumeRestore fills a second claim, mounted by a pod on node A.
    let pv2 = c.create_claim("copy").await;
    let uid2 = c.create_pod("reader", &node_a, "copy").await;
    let target = c.volume_dir(&uid2, &pv2);
    let vr = VolumeRestore::new(
        "back",
        VolumeRestoreSpec {
            repository: repository(),
            source_pvc: Some(PvcRef {
                name: "data".into(),
                namespace: None,
            }),
            target_pvc: PvcRef {
                name: "copy".into(),
                namespace: None,
            },
            ..Default::default()
        },
    );
    c.api::<VolumeRestore>()
        .create(&PostParams::default(), &vr)
        .await
        .expect("create restore");
    let restored: VolumeRestore = c
        .wait_for("back", "Completed", LONG, |vr: &VolumeRestore| {
            vr.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    let st = restored.status.expect("status");
    assert_eq!(st.phase, Phase::Completed, "{:?}", st.message);
    assert_eq!(st.node.as_deref(), Some(node_a.as_str()));
    assert_eq!(st.snapshot_id.as_deref(), Some(snapshot.as_str()));
    assert_eq!(
        tree(&target),
        tree(&volume),
        "the restored claim differs from the source"
    );
    drop((agent_a, agent_b));
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unmounted_claim_is_backed_up_through_a_helper_pod_that_is_then_deleted() {
    let Some(mut c) = cluster("backup-helper").await else {
        return;
    };
    let node = c.create_node("only").await;
    let pv = c.create_claim("idle").await;
    let repo_path = c.init_repository("repo").await;
    c.create_repository_object("main", &repo_path, None).await;
    c.start_controller(std::sync::Arc::new(cairn_kube::clock::SystemClock));
    let _agent = c.start_agent(&node);
    let vb = VolumeBackup::new(
        "idle-now",
        VolumeBackupSpec {
            pvc: PvcRef {
                name: "idle".into(),
                namespace: None,
            },
            repository: repository(),
            ..Default::default()
        },
    );
    c.api::<VolumeBackup>()
        .create(&PostParams::default(), &vb)
        .await
        .expect("create");

    // Stand in for the kubelet: when the helper pod appears, mount the
    // volume (fill its directory) and report it running.
    let pods = c.api::<Pod>();
    let helper: Pod = wait_until("helper pod", LONG, || {
        let pods = pods.clone();
        async move {
            let l = pods
                .list(&ListParams::default().labels("cairn.dev/helper=backup"))
                .await
                .ok()?;
            l.items.into_iter().next()
        }
    })
    .await;
    let spec = helper.spec.clone().expect("spec");
    let affinity = serde_json::to_string(&spec.affinity).expect("json");
    assert!(
        spec.node_name.is_none() && affinity.contains(&format!("[\"{node}\"]")),
        "the scheduler places it on {node}: {affinity}"
    );
    let volume = spec.volumes.expect("volumes")[0]
        .persistent_volume_claim
        .clone()
        .expect("claim");
    assert_eq!(
        (volume.claim_name.as_str(), volume.read_only),
        ("idle", Some(true))
    );
    let helper_name = helper.metadata.name.clone().expect("name");
    let dir = c.volume_dir(helper.metadata.uid.as_deref().expect("uid"), &pv);
    fill(&dir, 5, 10_000);
    c.schedule_and_run(&helper).await;

    let done: VolumeBackup = c
        .wait_for("idle-now", "Completed", LONG, phase_is(Phase::Completed))
        .await;
    let st = done.status.expect("status");
    assert!(st.source.expect("source").helper_pod);
    wait_until("helper pod deleted", LONG, || {
        let pods = pods.clone();
        let name = helper_name.clone();
        async move { pods.get_opt(&name).await.ok()?.is_none().then_some(()) }
    })
    .await;
    let repo = c.open_repository(&repo_path).await;
    assert_eq!(repo.list_snapshots().await.expect("list").len(), 1);
    c.cleanup().await;
}
