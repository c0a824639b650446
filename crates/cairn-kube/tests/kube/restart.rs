//! Killing the agent (SIGKILL) mid-backup and starting it again never
//! leaves the job stuck: the new agent process resumes it and it completes.

use cairn::Maintenance as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cairn::CheckOptions;
use cairn_kube::crd::{
    BackupRepository, Phase, PvcRef, RepositoryRef, VolumeBackup, VolumeBackupSpec,
};
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::{Cluster, cluster, tree};

fn spawn_agent(c: &Cluster, node: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cairn-agent"))
        .args([
            "--node-name",
            node,
            "--namespace",
            &c.ns,
            "--admin-namespace",
            &c.ns,
        ])
        .arg("--kubelet-root")
        .arg(c.kubelet())
        .arg("--cache-dir")
        .arg(c.scratch.path().join("agent-cache"))
        .args(["--progress-interval", "200ms", "--lease-interval", "500ms"])
        .args([
            "--metrics-addr",
            "127.0.0.1:0",
            "--cluster-name",
            "test",
            "--log",
            "warn",
        ])
        .env("KUBECONFIG", &c.kubeconfig)
        .stdout(Stdio::null())
        .spawn()
        .expect("start cairn-agent")
}

/// What a test of an interrupted backup starts from.
struct Started {
    node: String,
    volume: std::path::PathBuf,
    repo_path: std::path::PathBuf,
    agent: Child,
    /// The job as seen once it made progress.
    first: VolumeBackup,
}

/// A claim of 24 MB mounted by a pod, an upload limit of 1 MiB/s, the
/// controller and an agent process, and a VolumeBackup `db-now` that has
/// read more than 2 MB.
async fn start_slow_backup(c: &mut Cluster) -> Started {
    let node = c.create_node("n").await;
    let pv = c.create_claim("db").await;
    let uid = c.create_pod("app", &node, "db").await;
    let volume = c.volume_dir(&uid, &pv);
    crate::common::fill(&volume, 24, 1_000_000);
    let repo_path = c.init_repository("repo").await;
    c.create_repository_object("main", &repo_path, Some(1024))
        .await;
    c.start_controller(std::sync::Arc::new(cairn_kube::clock::SystemClock));
    let agent = spawn_agent(c, &node);
    let vb = VolumeBackup::new(
        "db-now",
        VolumeBackupSpec {
            pvc: PvcRef {
                name: "db".into(),
                namespace: None,
            },
            repository: RepositoryRef {
                name: "main".into(),
                namespace: None,
            },
            ..Default::default()
        },
    );
    c.api::<VolumeBackup>()
        .create(&PostParams::default(), &vb)
        .await
        .expect("create");
    let first = c
        .wait_for("db-now", "some progress", LONG, |vb: &VolumeBackup| {
            vb.status.as_ref().is_some_and(|s| {
                s.phase == Phase::InProgress
                    && s.progress
                        .as_ref()
                        .is_some_and(|p| p.bytes_done > 2_000_000)
            })
        })
        .await;
    Started {
        node,
        volume,
        repo_path,
        agent,
        first,
    }
}

/// Lifts the upload limit (a resumed run is then quick).
async fn lift_limit(c: &Cluster) {
    c.api::<BackupRepository>()
        .patch(
            "main",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"limitUploadKib": null}})),
        )
        .await
        .expect("lift the limit");
}

/// Waits for `db-now` to end and stops `agent`; returns the final status.
async fn finish(c: &Cluster, mut agent: Child) -> cairn_kube::crd::JobStatus {
    let done: VolumeBackup = c
        .wait_for("db-now", "a final phase", LONG, |vb: &VolumeBackup| {
            vb.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    agent.kill().expect("stop the agent");
    agent.wait().expect("reap");
    done.status.expect("status")
}

const LONG: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_agent_mid_backup_and_restarting_it_never_leaves_the_job_stuck() {
    let Some(mut c) = cluster("restart").await else {
        return;
    };
    let Started {
        node,
        volume,
        repo_path,
        mut agent,
        first,
    } = start_slow_backup(&mut c).await;
    let first_agent = first.status.and_then(|s| s.agent).expect("agent id");
    agent.kill().expect("SIGKILL the agent");
    agent.wait().expect("reap");
    // Without the limit the second run is quick; it reuses what the first
    // one indexed.
    lift_limit(&c).await;
    let st = finish(&c, spawn_agent(&c, &node)).await;
    assert_eq!(st.phase, Phase::Completed, "{:?}", st.message);
    assert_eq!(st.attempts, 2, "one interrupted run, one resumed run");
    assert_ne!(
        st.agent.as_deref(),
        Some(first_agent.as_str()),
        "the new process finished it"
    );

    let repo = c.open_repository(&repo_path).await;
    let report = repo
        .check({
            let mut o = CheckOptions::default();
            o.read_data = true;
            o
        })
        .await
        .expect("check");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let snapshot = st.snapshot_id.expect("snapshot");
    let out = c.scratch.path().join("restored");
    let (id, snap) = repo.find_snapshot(&snapshot).await.expect("snapshot");
    assert_eq!(id.to_hex(), snapshot);
    let mut opts = cairn::RestoreOptions::default();
    opts.target = out.clone();
    opts.owners = Some(false);
    cairn::restore(&repo, &snap, opts, Default::default())
        .await
        .expect("restore");
    assert_eq!(tree(&out), tree(&volume));
    c.cleanup().await;
}

/// Packs in `data/` that no index file lists.
async fn unindexed_packs(repo: &cairn::Repository) -> usize {
    let packs = repo.list_packs().await.expect("packs");
    let files = repo.read_index_files().await.expect("index files");
    let indexed: std::collections::BTreeSet<_> = files
        .iter()
        .flat_map(|(_, f)| f.packs.iter().map(|p| p.pack))
        .collect();
    packs.keys().filter(|p| !indexed.contains(p)).count()
}

/// SIGTERM (what the kubelet sends when the agent's pod is deleted) makes
/// the agent stop reading, index every pack it uploaded and leave the job
/// in progress, with no final phase: the next agent resumes it and reuses
/// all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_agent_indexes_its_uploads_and_leaves_the_job_to_the_next() {
    let Some(mut c) = cluster("sigterm").await else {
        return;
    };
    let Started {
        node,
        repo_path,
        mut agent,
        ..
    } = start_slow_backup(&mut c).await;
    let term = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .expect("kill");
    assert!(term.success());
    let exit = agent.wait().expect("reap");
    assert!(
        exit.success(),
        "the agent ends cleanly on SIGTERM: {exit:?}"
    );

    let repo = c.open_repository(&repo_path).await;
    assert!(
        !repo.list_packs().await.expect("packs").is_empty(),
        "something was uploaded"
    );
    assert_eq!(
        unindexed_packs(&repo).await,
        0,
        "every uploaded pack is indexed"
    );
    let left: VolumeBackup = c.api::<VolumeBackup>().get("db-now").await.expect("get");
    let st = left.status.expect("status");
    assert_eq!(
        st.phase,
        Phase::InProgress,
        "left for the next agent: {:?}",
        st.message
    );

    lift_limit(&c).await;
    let st = finish(&c, spawn_agent(&c, &node)).await;
    assert_eq!(st.phase, Phase::Completed, "{:?}", st.message);
    assert_eq!(st.attempts, 2);
    c.cleanup().await;
}
