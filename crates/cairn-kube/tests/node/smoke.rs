//! The node runs pods: cairn's own image, and a local PersistentVolume's
//! claim, mounted where the agent looks for volumes.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

use crate::common::{MINUTE, container_log, node, rand_hex, wait_until};

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// The image that scripts/image.sh builds starts on a real container
/// runtime, as a non-root user, and its `cairn` is this version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_image_runs_as_non_root_on_the_node() {
    let Some(node) = node("cairn_image_runs").await else {
        return;
    };
    let pod = node
        .run_pod(
            json!({
                "metadata": {"name": "version"},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    // The kubelet refuses to start an image whose user is
                    // root (or not numeric) under runAsNonRoot.
                    "securityContext": {"runAsNonRoot": true},
                    "containers": [{
                        "name": "cairn",
                        "image": node.image,
                        "imagePullPolicy": "Never",
                        "command": ["/usr/local/bin/cairn", "--version"],
                    }],
                },
            }),
            "the cairn --version pod to succeed",
            |pod| phase(pod) == Some("Succeeded"),
        )
        .await;
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(node.name.as_str()),
        "the scheduler placed the pod on the test node"
    );
    let log = container_log(&pod, "cairn");
    let want = format!("cairn {}", env!("CARGO_PKG_VERSION"));
    assert!(
        log.lines().any(|l| l.ends_with(&want)),
        "the container printed {want:?}; its log: {log:?}"
    );
    node.cleanup().await;
}

/// A claim bound to a local PersistentVolume is mounted into a running pod
/// at the kubelet's volume path, the place the agent reads volumes from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_volume_claim_appears_under_the_kubelet_pods_dir() {
    let Some(node) = node("local_volume").await else {
        return;
    };
    let host_dir = tempfile::tempdir().expect("tempdir");
    let pv_name = format!("{}-data", node.ns);
    let class = format!("local-{}", rand_hex());
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": class,
            "local": {"path": host_dir.path()},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{
                "key": "kubernetes.io/hostname", "operator": "In", "values": [node.name],
            }]}]}},
        },
    }))
    .expect("pv");
    let pvs: Api<PersistentVolume> = Api::all(node.client.clone());
    pvs.create(&PostParams::default(), &pv)
        .await
        .expect("create pv");
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": class,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }))
    .expect("claim");
    Api::<PersistentVolumeClaim>::namespaced(node.client.clone(), &node.ns)
        .create(&PostParams::default(), &claim)
        .await
        .expect("create claim");

    let token = rand_hex();
    let proof = format!("{token}\n");
    let script = format!(
        "echo {token} > /data/proof && trap 'exit 0' TERM && while :; do sleep 1 & wait $!; done"
    );
    let pod = node
        .run_pod(
            json!({
                "metadata": {"name": "writer"},
                "spec": {
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "name": "writer",
                        "image": node.busybox,
                        "imagePullPolicy": "Never",
                        "command": ["/bin/sh", "-c", script],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                },
            }),
            "the writer pod to run",
            |pod| phase(pod) == Some("Running"),
        )
        .await;
    let uid = pod.metadata.uid.clone().expect("uid");
    let path =
        format!("/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~local-volume/{pv_name}/proof");
    let found = wait_until(
        "the pod's file in the kubelet's volume path",
        MINUTE,
        || {
            let path = path.clone();
            async move {
                std::fs::read_to_string(&path)
                    .ok()
                    .filter(|s| !s.is_empty())
            }
        },
    )
    .await;
    assert_eq!(found, proof, "{path} holds what the pod wrote");

    node.pods()
        .delete("writer", &DeleteParams::default())
        .await
        .expect("delete pod");
    let pods = node.pods();
    wait_until("the writer pod to be gone", MINUTE, || {
        let pods = pods.clone();
        async move { pods.get_opt("writer").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let _ = pvs.delete(&pv_name, &DeleteParams::default()).await;
    node.cleanup().await;
}
