//! Local PersistentVolumes on the node (a directory, or a loop device for
//! block mode), their claims, and the backup and restore jobs on them.

use std::path::Path;
use std::time::Duration;

use cairn_kube::crd::{
    JobStatus, Phase, PvcRef, RepositoryRef, VolumeBackup, VolumeBackupSpec, VolumeRestore,
    VolumeRestoreSpec,
};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::common::{MINUTE, Node, rand_hex, wait_until};

/// A local PersistentVolume of `path` (a directory, or with `block` a
/// device) on the node, in a storage class of its own, and a claim
/// `name` in the node's namespace bound to it. Returns the volume's name.
pub(crate) async fn local_claim(node: &Node, name: &str, path: &Path, block: bool) -> String {
    let pv_name = format!("{}-{name}", node.ns);
    let class = format!("local-{}", rand_hex());
    let mode = if block { "Block" } else { "Filesystem" };
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "2Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": class,
            "volumeMode": mode,
            "local": {"path": path},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{
                "key": "kubernetes.io/hostname", "operator": "In", "values": [node.name],
            }]}]}},
        },
    }))
    .expect("pv");
    Api::<PersistentVolume>::all(node.client.clone())
        .create(&PostParams::default(), &pv)
        .await
        .unwrap_or_else(|e| panic!("creating pv {pv_name}: {e}"));
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": class,
            "volumeMode": mode,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }))
    .expect("claim");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(node.client.clone(), &node.ns);
    claims
        .create(&PostParams::default(), &claim)
        .await
        .unwrap_or_else(|e| panic!("creating claim {}/{name}: {e}", node.ns));
    wait_until("the claim to bind", MINUTE, || {
        let claims = claims.clone();
        async move {
            let c = claims.get(name).await.ok()?;
            (c.status?.phase.as_deref() == Some("Bound")).then_some(())
        }
    })
    .await;
    pv_name
}

/// Deletes PersistentVolumes (cluster-wide objects, which a namespace's
/// deletion leaves).
pub(crate) async fn delete_pvs(client: &Client, names: &[&str]) {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    for name in names {
        let _ = pvs.delete(name, &DeleteParams::default()).await;
    }
}

/// A VolumeBackup of `claim` in the node's namespace into `repo`.
pub(crate) async fn start_backup(node: &Node, name: &str, claim: &str, repo: (&str, &str)) {
    let vb = VolumeBackup::new(
        name,
        VolumeBackupSpec {
            pvc: PvcRef {
                name: claim.into(),
                namespace: None,
            },
            repository: RepositoryRef {
                name: repo.1.into(),
                namespace: Some(repo.0.into()),
            },
            ..Default::default()
        },
    );
    Api::<VolumeBackup>::namespaced(node.client.clone(), &node.ns)
        .create(&PostParams::default(), &vb)
        .await
        .unwrap_or_else(|e| panic!("creating backup {}/{name}: {e}", node.ns));
}

/// A VolumeRestore `ns/name` of `snapshot` from `repo` into `target`.
pub(crate) async fn start_restore(
    client: &Client,
    (ns, name): (&str, &str),
    repo: (&str, &str),
    snapshot: &str,
    target: (&str, &str),
) {
    let vr = VolumeRestore::new(
        name,
        VolumeRestoreSpec {
            repository: RepositoryRef {
                name: repo.1.into(),
                namespace: Some(repo.0.into()),
            },
            snapshot: Some(snapshot.into()),
            source_pvc: None,
            target_pvc: PvcRef {
                name: target.1.into(),
                namespace: Some(target.0.into()),
            },
            ..Default::default()
        },
    );
    Api::<VolumeRestore>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &vr)
        .await
        .unwrap_or_else(|e| panic!("creating restore {ns}/{name}: {e}"));
}

/// Polls a job's status until `done` holds, passing every status seen to
/// `seen`; returns the status that satisfied `done`.
pub(crate) async fn watch_job<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    mut seen: impl FnMut(&JobStatus),
    done: impl Fn(&JobStatus) -> bool,
) -> JobStatus
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + HasJobStatus,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(st) = api
            .get(name)
            .await
            .ok()
            .and_then(|j| j.job_status().cloned())
        {
            seen(&st);
            if done(&st) {
                return st;
            }
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for job {name}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for a job to end, and asserts it Completed.
pub(crate) async fn completed<K>(api: &Api<K>, name: &str, timeout: Duration) -> JobStatus
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + HasJobStatus,
{
    let st = watch_job(api, name, timeout, |_| {}, |s| s.phase.is_terminal()).await;
    assert_eq!(st.phase, Phase::Completed, "job {name}: {:?}", st.message);
    st
}

/// The status of a backup or a restore.
pub(crate) trait HasJobStatus {
    fn job_status(&self) -> Option<&JobStatus>;
}

impl HasJobStatus for VolumeBackup {
    fn job_status(&self) -> Option<&JobStatus> {
        self.status.as_ref()
    }
}

impl HasJobStatus for VolumeRestore {
    fn job_status(&self) -> Option<&JobStatus> {
        self.status.as_ref()
    }
}

/// A busybox pod named `name` that keeps claim `data` mounted at /data,
/// with `annotations`; returns once it runs.
pub(crate) async fn claim_pod(node: &Node, name: &str, annotations: serde_json::Value) {
    node.run_pod(
        serde_json::json!({
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
