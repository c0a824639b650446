//! A claim that no pod mounts is backed up through a helper pod that the
//! controller starts on the node (with the image given by
//! `--helper-image`) and removes afterwards.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cairn_kube::crd::VolumeBackup;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher::{self, Event};

use crate::common::{MINUTE, node, rand_hex, wait_until};
use crate::fixture::{AGENT, CAIRN_NS, deployed, restore_snapshot};
use crate::volumes::{completed, delete_pvs, local_claim, start_backup};

/// Every state seen of each helper pod (label cairn.dev/helper) of `pods`:
/// (its node, its phase).
type Seen = Arc<Mutex<BTreeMap<String, Vec<(Option<String>, Option<String>)>>>>;

/// Watches the helper pods of a namespace from now on; returns once the
/// watch is established, so no pod created later is missed.
async fn watch_helpers(pods: Api<Pod>) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let record = seen.clone();
    let task = tokio::spawn(async move {
        let config = watcher::Config::default().labels(cairn_kube::names::HELPER_KIND_LABEL);
        let mut events = watcher::watcher(pods, config).boxed();
        let mut ready = Some(ready_tx);
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::InitDone) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                    let state = (
                        pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                        pod.status.as_ref().and_then(|s| s.phase.clone()),
                    );
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    record
                        .lock()
                        .expect("lock")
                        .entry(name)
                        .or_default()
                        .push(state);
                }
                _ => {}
            }
        }
    });
    ready_rx.await.expect("the watch of helper pods started");
    (seen, task)
}

/// A claim bound but mounted by no pod: the controller starts a helper pod
/// on the node (the kubelet runs it, mounting the claim), the agent backs
/// the volume up through it, and the helper is removed afterwards. The
/// snapshot holds the claim's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmounted_claim_is_backed_up_through_a_helper_pod_on_the_node() {
    let Some(node) = node("helper").await else {
        return;
    };
    let deployed = deployed(&node).await;
    let _agent = AGENT.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = BTreeMap::new();
    for (i, name) in ["a.bin", "sub/b.bin", "sub/deeper/c.txt"]
        .iter()
        .enumerate()
    {
        let content = format!("{} {}\n", rand_hex(), "x".repeat(100_000 * (i + 1)));
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &content).expect("write");
        files.insert(name.to_string(), content);
    }
    let pv = local_claim(&node, "data", dir.path(), false).await;

    let (seen, watch) = watch_helpers(node.pods()).await;
    start_backup(&node, "unmounted", "data", (CAIRN_NS, &deployed.admin_repo)).await;
    let backups: Api<VolumeBackup> = Api::namespaced(node.client.clone(), &node.ns);
    let done = completed(&backups, "unmounted", 3 * MINUTE).await;
    let source = done.source.clone().expect("status.source");
    assert!(source.helper_pod, "read through a helper pod: {source:?}");

    // The helper existed and is gone once the job is done. A kubelet 1.20
    // that is told of the deletion while it starts the container misses
    // it until its next periodic sync of the pod (about a minute).
    let pods = node.pods();
    let helper = source.pod_name.clone();
    wait_until("the helper pod to be gone", 3 * MINUTE, || {
        let (pods, helper) = (pods.clone(), helper.clone());
        async move { pods.get_opt(&helper).await.ok()?.is_none().then_some(()) }
    })
    .await;
    watch.abort();
    let seen = seen.lock().expect("lock").clone();
    let states = seen
        .get(&helper)
        .unwrap_or_else(|| panic!("helper pod {helper} was seen: {seen:?}"));
    // On the node: the kubelet there mounted the claim for it, or the
    // agent, which reads volumes only through the kubelet's pods
    // directory, would not have found the files checked below. (Its
    // container need not have started by then: volumes are mounted first.)
    assert!(
        states
            .iter()
            .any(|(on, _)| on.as_deref() == Some(node.name.as_str())),
        "helper pod {helper} was placed on node {}: {states:?}",
        node.name
    );

    // The snapshot holds the claim's files.
    let out = restore_snapshot(
        &deployed.admin_repo,
        &done.snapshot_id.expect("snapshot id"),
    )
    .await;
    for (name, content) in &files {
        let got = std::fs::read_to_string(out.path().join(name))
            .unwrap_or_else(|e| panic!("{name} restored: {e}"));
        assert!(got == *content, "{name} restored as backed up");
    }
    delete_pvs(&node.client, &[&pv]).await;
    node.cleanup().await;
}
