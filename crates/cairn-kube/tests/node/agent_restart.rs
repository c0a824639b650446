//! The agent's pod deleted mid-backup: the DaemonSet's new pod resumes the
//! job to Completed and uploads only what the first one had not.

use std::io::Write;

use cairn_kube::crd::{Phase, VolumeBackup};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use serde_json::json;

use crate::common::{MINUTE, node, wait_until};
use crate::fixture::{AGENT, CAIRN_NS, create_repository, deployed, indexed_bytes, objects};
use crate::volumes::{claim_pod, delete_pvs, local_claim, start_backup, watch_job};

/// Incompressible data in the claim: 12 files of 32 MiB, enough for more
/// packs than a backup uploads before it writes an index file (8).
const FILES: usize = 12;
const FILE_BYTES: usize = 32 << 20;
/// The repository's upload limit, so the backup takes long enough to be
/// interrupted after its first index file (about 25 s for the whole).
const LIMIT_KIB: u64 = 16 << 10;

fn fill_random(dir: &std::path::Path) {
    let mut random = std::fs::File::open("/dev/urandom").expect("urandom");
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..FILES {
        let mut f = std::fs::File::create(dir.join(format!("{i:02}.bin"))).expect("create");
        for _ in 0..FILE_BYTES / buf.len() {
            std::io::Read::read_exact(&mut random, &mut buf).expect("read");
            f.write_all(&buf).expect("write");
        }
    }
}

/// The agent's pod on the node (not one being deleted).
async fn agent_pod(client: &kube::Client) -> Option<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), CAIRN_NS);
    let list = pods
        .list(&ListParams::default().labels("app.kubernetes.io/name=cairn-agent"))
        .await
        .ok()?;
    list.items
        .into_iter()
        .find(|p| p.metadata.deletion_timestamp.is_none())
}

fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Deletes the agent's pod and waits until it is gone; returns its uid.
async fn delete_agent_pod(client: &kube::Client) -> Option<String> {
    let old = agent_pod(client).await.expect("the agent's pod");
    let pods: Api<Pod> = Api::namespaced(client.clone(), CAIRN_NS);
    let old_name = old.metadata.name.clone().expect("name");
    pods.delete(&old_name, &DeleteParams::default())
        .await
        .expect("delete the agent's pod");
    let old_uid = old.metadata.uid.clone();
    wait_until("the old agent pod to be gone", 2 * MINUTE, || {
        let (pods, old_name, old_uid) = (pods.clone(), old_name.clone(), old_uid.clone());
        async move {
            let pod = pods.get_opt(&old_name).await.ok()?;
            pod.is_none_or(|p| p.metadata.uid != old_uid).then_some(())
        }
    })
    .await;
    old_uid
}

/// Waits for the DaemonSet's next agent pod to be Ready.
async fn wait_for_new_agent(client: &kube::Client, old_uid: Option<String>) {
    wait_until("a new Ready agent pod", 2 * MINUTE, || {
        let (client, old_uid) = (client.clone(), old_uid.clone());
        async move {
            let pod = agent_pod(&client).await?;
            (pod.metadata.uid != old_uid && is_ready(&pod)).then_some(())
        }
    })
    .await;
}

/// Deleting the agent's pod while a backup uploads: the DaemonSet's next
/// pod takes the job over (a new agent, attempt 2) and completes it, and
/// what the first pod uploaded and indexed is reused: the second run stores
/// less than the whole claim by at least half the bytes of the packs
/// indexed when the first pod was gone (it would store all of it again
/// otherwise). Packs uploaded after the last index file are not reused: a
/// backup indexes every 8 packs, and the deleted agent does not index on
/// its way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_agent_pod_mid_backup_resumes_the_job_reusing_uploads() {
    let Some(node) = node("agent-restart").await else {
        return;
    };
    deployed(&node).await;
    // No other job runs while the agent is away.
    let _agent = AGENT.write().await;
    let repo = format!("slow-{}", crate::common::rand_hex());
    // In the administrator namespace, where cairn may read its Secrets.
    create_repository(&node.client, CAIRN_NS, &repo, &[&node.ns], Some(LIMIT_KIB)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    fill_random(dir.path());
    let total = (FILES * FILE_BYTES) as u64;
    let pv = local_claim(&node, "data", dir.path(), false).await;
    claim_pod(&node, "app", json!({})).await;

    start_backup(&node, "big", "data", (CAIRN_NS, &repo)).await;
    let backups: Api<VolumeBackup> = Api::namespaced(node.client.clone(), &node.ns);
    let first = watch_job(
        &backups,
        "big",
        3 * MINUTE,
        |_| {},
        |s| {
            assert!(
                !s.phase.is_terminal(),
                "the backup ended before the agent was deleted: {s:?}"
            );
            s.phase == Phase::InProgress && s.progress.as_ref().is_some_and(|p| p.bytes_done > 0)
        },
    )
    .await;
    let first_agent = first.agent.clone().expect("status.agent");
    // What a killed backup leaves for the next run to reuse is what it
    // indexed: a backup writes an index file every 8 packs (and when it
    // ends, which a killed process does not).
    wait_until("an index file in the bucket", 2 * MINUTE, || {
        let repo = repo.clone();
        async move { (objects(&repo, "index").await.0 > 0).then_some(()) }
    })
    .await;
    let still = backups.get("big").await.expect("backup");
    let phase = still.status.as_ref().map(|s| s.phase);
    assert_eq!(
        phase,
        Some(Phase::InProgress),
        "still uploading when the agent goes"
    );

    let old_uid = delete_agent_pod(&node.client).await;
    let (packs, uploaded) = objects(&repo, "data").await;
    let indexed = indexed_bytes(&repo).await;
    wait_for_new_agent(&node.client, old_uid).await;

    let done = watch_job(
        &backups,
        "big",
        5 * MINUTE,
        |_| {},
        |s| s.phase.is_terminal(),
    )
    .await;
    assert_eq!(done.phase, Phase::Completed, "{:?}", done.message);
    assert_eq!(
        done.attempts, 2,
        "one interrupted run, one resumed: {done:?}"
    );
    assert_ne!(
        done.agent.as_deref(),
        Some(first_agent.as_str()),
        "a new agent finished it"
    );
    let stored = done.incremental_bytes.expect("status.incrementalBytes");
    eprintln!(
        "agent deleted mid-backup: {packs} packs ({uploaded} bytes, {indexed} of them indexed) \
         in the bucket when its pod was gone; the resumed run stored {stored} of {total} bytes"
    );
    assert!(indexed > 0, "the first run indexed some of its packs");
    assert!(
        stored < total - indexed / 2,
        "the resumed run reused the {indexed} bytes of packs indexed before: it stored \
         {stored} of {total} bytes"
    );
    delete_pvs(&node.client, &[&pv]).await;
    node.cleanup().await;
}
