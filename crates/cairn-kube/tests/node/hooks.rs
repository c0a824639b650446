//! Application hooks run through the pods/exec API in the pods that mount
//! the claim: the pre hook before the agent reads, the post hook after,
//! and the post hook even when the pre hook failed the backup.

use std::collections::BTreeMap;

use cairn_kube::crd::{Phase, VolumeBackup};
use kube::Api;
use serde_json::{Value, json};

use crate::common::{MINUTE, Node, node};
use crate::fixture::{AGENT, CAIRN_NS, deployed, open_repository};
use crate::volumes::{completed, delete_pvs, local_claim, start_backup, watch_job};

/// A pod of busybox mounting claim `data` at /data, with `annotations`.
async fn app(node: &Node, name: &str, annotations: Value) {
    node.run_pod(
        json!({
            "metadata": {"name": name, "annotations": annotations},
            "spec": {
                "automountServiceAccountToken": false,
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "app",
                    "image": node.busybox,
                    "imagePullPolicy": "Never",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        }),
        "the claim's pod to run",
        |pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
    )
    .await;
}

fn sh(script: &str) -> String {
    serde_json::to_string(&["/bin/sh", "-c", script]).expect("json")
}

/// The pre hook writes a marker into the volume and the snapshot has it;
/// the post hook writes another after the read, which the snapshot lacks
/// and the volume has. Both outcomes are in the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_and_post_hooks_run_around_the_read_of_a_live_volume() {
    let Some(node) = node("hooks").await else {
        return;
    };
    let deployed = deployed(&node).await;
    let _agent = AGENT.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("data.txt"), "application data\n").expect("write");
    let pv = local_claim(&node, "data", dir.path(), false).await;
    app(
        &node,
        "app",
        json!({
            "pre.hook.backup.cairn.dev/command": sh("echo frozen > /data/pre-marker && echo pre-ok"),
            "pre.hook.backup.cairn.dev/timeout": "1m",
            "post.hook.backup.cairn.dev/command": sh("echo thawed > /data/post-marker"),
        }),
    )
    .await;
    start_backup(&node, "hooked", "data", (CAIRN_NS, &deployed.admin_repo)).await;
    let backups: Api<VolumeBackup> = Api::namespaced(node.client.clone(), &node.ns);
    completed(&backups, "hooked", 3 * MINUTE).await;
    // The agent ends the backup; the controller then runs the post hook.
    let done = watch_job(
        &backups,
        "hooked",
        MINUTE,
        |_| {},
        |s| s.hooks.as_ref().is_some_and(|h| h.post_done),
    )
    .await;
    let hooks = done.hooks.clone().expect("status.hooks");
    assert!(hooks.pre_done && hooks.post_done, "{hooks:?}");
    assert_eq!(hooks.pre.len(), 1, "{hooks:?}");
    assert_eq!(
        (hooks.pre[0].result.as_str(), hooks.pre[0].exit_code),
        ("Succeeded", Some(0)),
        "{hooks:?}"
    );
    assert_eq!(hooks.pre[0].message.as_deref(), Some("pre-ok"));
    assert_eq!(hooks.post[0].result, "Succeeded", "{hooks:?}");

    // The snapshot was read after the pre hook and before the post hook.
    let repo = open_repository(&deployed.admin_repo).await;
    let (_, snap) = repo
        .find_snapshot(&done.snapshot_id.expect("snapshot id"))
        .await
        .expect("snapshot");
    let out = tempfile::tempdir().expect("tempdir");
    let opts = cairn::RestoreOptions {
        target: out.path().to_path_buf(),
        owners: Some(false),
        ..Default::default()
    };
    cairn::restore(&repo, &snap, opts, Default::default())
        .await
        .expect("restore");
    let restored: BTreeMap<String, String> = std::fs::read_dir(out.path())
        .expect("read_dir")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap_or_default())
        })
        .collect();
    assert_eq!(
        restored.get("pre-marker").map(String::as_str),
        Some("frozen\n"),
        "{restored:?}"
    );
    assert!(!restored.contains_key("post-marker"), "{restored:?}");
    let post = std::fs::read_to_string(dir.path().join("post-marker")).expect("post marker");
    assert_eq!(post, "thawed\n");
    delete_pvs(&node.client, &[&pv]).await;
    node.cleanup().await;
}

/// A pre hook that exits non-zero fails the backup (on-error defaults to
/// Fail) before anything is read, and the post hook still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_hook_fails_the_backup_and_the_post_hook_still_runs() {
    let Some(node) = node("hook-fails").await else {
        return;
    };
    let deployed = deployed(&node).await;
    let _agent = AGENT.read().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("data.txt"), "application data\n").expect("write");
    let pv = local_claim(&node, "data", dir.path(), false).await;
    app(
        &node,
        "app",
        json!({
            "pre.hook.backup.cairn.dev/command": sh("echo cannot freeze >&2; exit 3"),
            "post.hook.backup.cairn.dev/command": sh("echo thawed > /data/post-marker"),
        }),
    )
    .await;
    start_backup(&node, "refused", "data", (CAIRN_NS, &deployed.admin_repo)).await;
    let backups: Api<VolumeBackup> = Api::namespaced(node.client.clone(), &node.ns);
    let st = watch_job(
        &backups,
        "refused",
        3 * MINUTE,
        |_| {},
        |s| s.phase.is_terminal() && s.hooks.as_ref().is_some_and(|h| h.post_done),
    )
    .await;
    assert_eq!(st.phase, Phase::Failed, "{:?}", st.message);
    let message = st.message.clone().unwrap_or_default();
    assert!(
        message.contains("pre-backup hook") && message.contains("cannot freeze"),
        "{message}"
    );
    assert!(st.snapshot_id.is_none(), "nothing was backed up");
    let hooks = st.hooks.expect("status.hooks");
    assert_eq!(hooks.pre[0].exit_code, Some(3), "{hooks:?}");
    assert_eq!(hooks.post[0].result, "Succeeded", "{hooks:?}");
    let post = std::fs::read_to_string(dir.path().join("post-marker")).expect("post marker");
    assert_eq!(post, "thawed\n");
    delete_pvs(&node.client, &[&pv]).await;
    node.cleanup().await;
}
