//! A backup of a CSI snapshot: the controller takes a VolumeSnapshot of the
//! claim, makes a temporary claim from it once it is ready, an agent backs
//! that up through a helper pod with the original claim recorded as the
//! source, and the temporary objects are removed. The test stands in for
//! the snapshot controller (readyToUse), the provisioner (a volume for the
//! temporary claim) and the kubelet (a copy of the volume with new inodes
//! and change times, as a clone has). A second backup of unchanged data
//! reads nothing. (That a claim or snapshot put in place of cairn's is
//! refused is decided in `trust::check_snapshot_lineage` and
//! `controller::snapshot`, tested without a cluster.)

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cairn_kube::controller::snapshot::snapshots;
use cairn_kube::crd::{
    Phase, PvcRef, RepositoryRef, SnapshotPolicy, VolumeBackup, VolumeBackupSpec,
};
use cairn_kube::names::snapshot_object;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::Client;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::{Cluster, apply_crd, cluster, fill, wait_until};

const LONG: Duration = Duration::from_secs(120);

static SNAPSHOT_CRDS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Installs the vendored external-snapshotter CRDs once, as a cluster with
/// CSI snapshots has them.
pub(crate) async fn snapshot_crds(client: &Client) {
    SNAPSHOT_CRDS
        .get_or_init(|| install_snapshot_crds(client.clone()))
        .await;
}

async fn install_snapshot_crds(client: Client) {
    let dir = cairn_testkit::workspace_root().join("tests/fixtures/external-snapshotter-v4.2.1");
    for kind in [
        "volumesnapshotclasses",
        "volumesnapshotcontents",
        "volumesnapshots",
    ] {
        let file = dir.join(format!("snapshot.storage.k8s.io_{kind}.yaml"));
        let text = std::fs::read_to_string(&file).expect("vendored CRD");
        apply_crd(&client, &text, &file.display().to_string()).await;
    }
}

/// A copy of `from` at `to` with new inodes and change times, the same
/// modification times: what a volume cloned from a snapshot looks like.
pub(crate) fn clone_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    let ok = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .expect("cp")
        .success();
    assert!(ok, "cp -a");
}

/// Creates a snapshot backup `name` of claim `claim` and plays the
/// snapshot controller, the provisioner and the kubelet for it, with
/// `content` as the cloned volume. Returns the finished job.
/// A VolumeBackup of a CSI snapshot of `claim` into repository `main`.
fn snapshot_job(name: &str, claim: &str, keep_snapshots: u32) -> VolumeBackup {
    VolumeBackup::new(
        name,
        VolumeBackupSpec {
            pvc: PvcRef {
                name: claim.into(),
                namespace: None,
            },
            repository: RepositoryRef {
                name: "main".into(),
                namespace: None,
            },
            snapshot: Some(SnapshotPolicy {
                volume_snapshot_class_name: "csi-test".into(),
                keep_snapshots,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
}

async fn snapshot_backup(
    c: &mut Cluster,
    name: &str,
    claim: &str,
    content: &Path,
    keep_snapshots: u32,
) -> VolumeBackup {
    let vb = snapshot_job(name, claim, keep_snapshots);
    let created = c
        .api::<VolumeBackup>()
        .create(&PostParams::default(), &vb)
        .await
        .expect("create");
    let object = snapshot_object(name, created.metadata.uid.as_deref().expect("uid"));

    // The snapshot controller: the VolumeSnapshot becomes ready.
    let vss = snapshots(&c.client, &c.ns);
    let vs = wait_until("the VolumeSnapshot", LONG, || {
        let (vss, object) = (vss.clone(), object.clone());
        async move { vss.get_opt(&object).await.ok()? }
    })
    .await;
    assert_eq!(
        vs.data["spec"]["source"]["persistentVolumeClaimName"],
        claim
    );
    assert_eq!(vs.data["spec"]["volumeSnapshotClassName"], "csi-test");
    let ready = json!({"status": {"readyToUse": true, "restoreSize": "1Gi"}});
    vss.patch_status(&object, &PatchParams::default(), &Patch::Merge(ready))
        .await
        .expect("snapshot ready");

    // The provisioner: a volume for the claim made from the snapshot.
    let pvcs = c.api::<PersistentVolumeClaim>();
    let temp = wait_until("the claim made from the snapshot", LONG, || {
        let (pvcs, object) = (pvcs.clone(), object.clone());
        async move { pvcs.get_opt(&object).await.ok()? }
    })
    .await;
    let source = temp
        .spec
        .as_ref()
        .and_then(|s| s.data_source.clone())
        .expect("dataSource");
    assert_eq!(
        (source.kind.as_str(), source.name.as_str()),
        ("VolumeSnapshot", object.as_str())
    );
    let selected = temp
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("volume.kubernetes.io/selected-node"));
    assert_eq!(
        selected.map(String::as_str),
        Some(c.nodes()[0].as_str()),
        "a WaitForFirstConsumer provisioner learns the node of the claim's pod"
    );
    let pv_name = crate::provision::provision(c, &object, "1Gi").await;

    // The kubelet: the helper pod mounts the clone.
    let pods = c.api::<Pod>();
    let uid = created.metadata.uid.clone().expect("uid");
    let helper: Pod = wait_until("the helper pod", LONG, || {
        let (pods, uid) = (pods.clone(), uid.clone());
        async move {
            let l = pods
                .list(&ListParams::default().labels(&format!("cairn.dev/owner-uid={uid}")))
                .await
                .ok()?;
            l.items.into_iter().next()
        }
    })
    .await;
    let mounted = helper
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .expect("volumes");
    assert_eq!(
        mounted[0]
            .persistent_volume_claim
            .as_ref()
            .map(|p| p.claim_name.as_str()),
        Some(object.as_str()),
        "the helper mounts the claim made from the snapshot"
    );
    clone_tree(
        content,
        &c.volume_dir(helper.metadata.uid.as_deref().expect("uid"), &pv_name),
    );
    c.schedule_and_run(&helper).await;

    let done: VolumeBackup = c
        .wait_for(name, "a final phase", LONG, |v: &VolumeBackup| {
            v.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    // Everything temporary goes: the claim, the snapshot, the helper pod.
    wait_until("the temporary objects to be deleted", LONG, || {
        let (pvcs, vss, pods, object, uid) = (
            pvcs.clone(),
            vss.clone(),
            pods.clone(),
            object.clone(),
            uid.clone(),
        );
        async move {
            let claim_gone = pvcs
                .get_opt(&object)
                .await
                .ok()?
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some());
            // A kept snapshot stays; the others go.
            let vs_gone = keep_snapshots > 0 || vss.get_opt(&object).await.ok()?.is_none();
            let helpers = pods
                .list(&ListParams::default().labels(&format!("cairn.dev/owner-uid={uid}")))
                .await
                .ok()?;
            let pods_gone = helpers
                .items
                .iter()
                .all(|p| p.metadata.deletion_timestamp.is_some());
            (claim_gone && vs_gone && pods_gone).then_some(())
        }
    })
    .await;
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_backup_records_the_claim_and_an_unchanged_second_one_reads_nothing() {
    let Some(mut c) = cluster("snapshot").await else {
        return;
    };
    snapshot_crds(&c.client).await;
    let node = c.create_node("n").await;
    c.create_claim("db").await;
    // The live volume's content (a pod mounts it; the backup never reads it).
    let live = c.scratch.path().join("live");
    std::fs::create_dir_all(&live).expect("mkdir");
    fill(&live, 12, 30_000);
    c.create_pod("app", &node, "db").await;
    let repo_path = c.init_repository("repo").await;
    c.create_repository_object("main", &repo_path, None).await;
    c.start_controller(Arc::new(cairn_kube::clock::SystemClock));
    let _agent = c.start_agent(&node);

    let first = snapshot_backup(&mut c, "first", "db", &live, 0).await;
    let st = first.status.expect("status");
    assert_eq!(st.phase, Phase::Completed, "{:?}", st.message);
    let second = snapshot_backup(&mut c, "second", "db", &live, 0).await;
    let st2 = second.status.expect("status");
    assert_eq!(st2.phase, Phase::Completed, "{:?}", st2.message);

    let repo = c.open_repository(&repo_path).await;
    let snaps = repo.list_snapshots().await.expect("list");
    assert_eq!(snaps.len(), 2);
    for (_, s) in &snaps {
        assert!(
            matches!(&s.source, cairn::Source::KubernetesVolume { namespace, name, .. } if namespace == &c.ns && name == "db"),
            "recorded as the original claim: {:?}",
            s.source
        );
    }
    // By the id its status gives: two backups within one second have the
    // same time, so the newest by time may be either.
    let second_id = st2.snapshot_id.clone().expect("snapshot id");
    let (_, newer) = snaps
        .iter()
        .find(|(id, _)| id.to_hex() == second_id)
        .expect("the second backup's snapshot");
    let first_id = st.snapshot_id.expect("snapshot id");
    assert_eq!(
        newer.parent.map(|p| p.to_hex()),
        Some(first_id),
        "the first is the parent"
    );
    assert_eq!(
        newer.stats.bytes_read, 0,
        "an unchanged clone is not read: {:?}",
        newer.stats
    );
    // fill() writes 12 files and an empty one.
    assert_eq!(newer.stats.files_unchanged, 13, "{:?}", newer.stats);

    // keepSnapshots: 1 keeps the newest snapshot of the claim, and only it.
    let vss = snapshots(&c.client, &c.ns);
    let names = |vb: &VolumeBackup| {
        snapshot_object(
            &vb.metadata.name.clone().unwrap_or_default(),
            vb.metadata.uid.as_deref().unwrap_or_default(),
        )
    };
    let third = snapshot_backup(&mut c, "third", "db", &live, 1).await;
    assert!(
        vss.get_opt(&names(&third)).await.expect("get").is_some(),
        "kept"
    );
    let fourth = snapshot_backup(&mut c, "fourth", "db", &live, 1).await;
    assert!(
        vss.get_opt(&names(&fourth)).await.expect("get").is_some(),
        "the newest is kept"
    );
    wait_until("the older kept snapshot to go", LONG, || {
        let (vss, old) = (vss.clone(), names(&third));
        async move { vss.get_opt(&old).await.ok()?.is_none().then_some(()) }
    })
    .await;
    c.cleanup().await;
}

/// Hooks bracket the snapshot: a pre hook that fails the backup stops it
/// before any VolumeSnapshot is taken (and the post hooks still run); one
/// that may fail (`on-error: Continue`) lets it go on. Annotations that
/// cannot be used are such failures, recorded as `Invalid` without an exec
/// (this tier has no kubelet; the node tier runs real hooks).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pre_hooks_come_before_the_snapshot_and_post_hooks_always_run() {
    let Some(mut c) = cluster("snapshot-hooks").await else {
        return;
    };
    snapshot_crds(&c.client).await;
    let node = c.create_node("n").await;
    c.create_claim("db").await;
    let live = c.scratch.path().join("live");
    std::fs::create_dir_all(&live).expect("mkdir");
    fill(&live, 3, 10_000);
    c.create_pod("app", &node, "db").await;
    let annotate = |on_error: &str| {
        json!({"metadata": {"annotations": {
            "pre.hook.backup.cairn.dev/command": "[not json",
            "pre.hook.backup.cairn.dev/on-error": on_error,
            "post.hook.backup.cairn.dev/command": "[also not json",
            "post.hook.backup.cairn.dev/on-error": "Continue",
        }}})
    };
    let pods = c.api::<Pod>();
    pods.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(annotate("Fail")),
    )
    .await
    .expect("annotate");
    let repo_path = c.init_repository("repo").await;
    c.create_repository_object("main", &repo_path, None).await;
    c.start_controller(Arc::new(cairn_kube::clock::SystemClock));
    let _agent = c.start_agent(&node);

    let vb = snapshot_job("refused", "db", 0);
    let created = c
        .api::<VolumeBackup>()
        .create(&PostParams::default(), &vb)
        .await
        .expect("create");
    let done: VolumeBackup = c
        .wait_for(
            "refused",
            "failed, post hooks run",
            LONG,
            |v: &VolumeBackup| {
                v.status.as_ref().is_some_and(|s| {
                    s.phase.is_terminal() && s.hooks.as_ref().is_some_and(|h| h.post_done)
                })
            },
        )
        .await;
    let st = done.status.expect("status");
    assert_eq!(st.phase, Phase::Failed);
    let message = st.message.unwrap_or_default();
    assert!(message.contains("pre-backup hook"), "{message}");
    let hooks = st.hooks.expect("hooks");
    assert_eq!(hooks.pre[0].result, "Invalid", "{hooks:?}");
    assert_eq!(hooks.post[0].result, "Invalid", "{hooks:?}");
    let object = snapshot_object("refused", created.metadata.uid.as_deref().expect("uid"));
    let vss = snapshots(&c.client, &c.ns);
    assert!(
        vss.get_opt(&object).await.expect("get").is_none(),
        "no snapshot is taken after a failed pre hook"
    );

    // With on-error: Continue the same hook lets the backup go on.
    pods.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(annotate("Continue")),
    )
    .await
    .expect("annotate");
    let ok = snapshot_backup(&mut c, "continued", "db", &live, 0).await;
    let st = ok.status.expect("status");
    assert_eq!(st.phase, Phase::Completed, "{:?}", st.message);
    let hooks = st.hooks.expect("hooks");
    assert!(hooks.pre_done && hooks.post_done, "{hooks:?}");
    assert!(!hooks.pre[0].fails_backup(), "{hooks:?}");
    c.cleanup().await;
}
