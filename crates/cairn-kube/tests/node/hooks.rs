//! Application hooks run through the pods/exec API in the pods that mount
//! the claim: the pre hook before the agent reads, the post hook after,
//! and the post hook even when the pre hook failed the backup.

use std::path::Path;

use cairn_kube::crd::{JobStatus, Phase, VolumeBackup};
use kube::Api;
use serde_json::{Value, json};

use crate::common::{MINUTE, node};
use crate::fixture::{AGENT, CAIRN_NS, deployed, restore_snapshot};
use crate::volumes::{claim_pod, delete_pvs, local_claim, start_backup, watch_job};

fn sh(script: &str) -> String {
    serde_json::to_string(&["/bin/sh", "-c", script]).expect("json")
}

/// Backs up claim `data` (a local volume in `dir`) of a busybox pod with
/// `hooks` as annotations; returns the backup's status once it has ended
/// and its post hooks have run (the agent ends a backup, the controller
/// runs the post hooks after) and the repository's prefix.
async fn hooked_backup(test: &str, dir: &Path, hooks: Value) -> Option<(JobStatus, String)> {
    let node = node(test).await?;
    let deployed = deployed(&node).await;
    let _agent = AGENT.read().await;
    std::fs::write(dir.join("data.txt"), "application data\n").expect("write");
    let pv = local_claim(&node, "data", dir, false).await;
    claim_pod(&node, "app", hooks).await;
    start_backup(&node, "hooked", "data", (CAIRN_NS, &deployed.admin_repo)).await;
    let backups: Api<VolumeBackup> = Api::namespaced(node.client.clone(), &node.ns);
    let st = watch_job(
        &backups,
        "hooked",
        3 * MINUTE,
        |_| {},
        |s| s.phase.is_terminal() && s.hooks.as_ref().is_some_and(|h| h.post_done),
    )
    .await;
    delete_pvs(&node.client, &[&pv]).await;
    node.cleanup().await;
    Some((st, deployed.admin_repo.clone()))
}

/// The pre hook writes a marker into the volume and the snapshot has it;
/// the post hook writes another after the read, which the snapshot lacks
/// and the volume has. Both outcomes are in the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_and_post_hooks_run_around_the_read_of_a_live_volume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hooks = json!({
        "pre.hook.backup.cairn.dev/command": sh("echo frozen > /data/pre-marker && echo pre-ok"),
        "pre.hook.backup.cairn.dev/timeout": "1m",
        "post.hook.backup.cairn.dev/command": sh("echo thawed > /data/post-marker"),
    });
    let Some((st, repo)) = hooked_backup("hooks", dir.path(), hooks).await else {
        return;
    };
    assert_eq!(st.phase, Phase::Completed, "{:?}", st.message);
    let hooks = st.hooks.clone().expect("status.hooks");
    assert_eq!(hooks.pre.len(), 1, "{hooks:?}");
    assert_eq!(
        (hooks.pre[0].result.as_str(), hooks.pre[0].exit_code),
        ("Succeeded", Some(0)),
        "{hooks:?}"
    );
    assert_eq!(hooks.pre[0].message.as_deref(), Some("pre-ok"));
    assert_eq!(hooks.post[0].result, "Succeeded", "{hooks:?}");

    // The snapshot was read after the pre hook and before the post hook.
    let out = restore_snapshot(&repo, &st.snapshot_id.expect("snapshot id")).await;
    let pre = std::fs::read_to_string(out.path().join("pre-marker")).expect("pre marker");
    assert_eq!(pre, "frozen\n");
    assert!(!out.path().join("post-marker").exists());
    let post = std::fs::read_to_string(dir.path().join("post-marker")).expect("post marker");
    assert_eq!(post, "thawed\n");
}

/// A pre hook that exits non-zero fails the backup (on-error defaults to
/// Fail) before anything is read, and the post hook still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_hook_fails_the_backup_and_the_post_hook_still_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hooks = json!({
        "pre.hook.backup.cairn.dev/command": sh("echo cannot freeze >&2; exit 3"),
        "post.hook.backup.cairn.dev/command": sh("echo thawed > /data/post-marker"),
    });
    let Some((st, _)) = hooked_backup("hook-fails", dir.path(), hooks).await else {
        return;
    };
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
}
