//! The objects a scenario creates, as the apiserver tier has always made
//! them: pure functions of their names, so what a test stands on can be
//! checked without a server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
};
use serde_json::{Value, json};

/// The CSI driver the scenario's volumes name.
pub const DRIVER: &str = "test.cairn.dev";

/// The longest test namespace name: room for `-<suffix>` of extra
/// namespaces, nodes and volumes within the 63 characters of a name.
const MAX_NAMESPACE: usize = 50;

/// The namespace of test `test` with random `hex`: `test` with `_` as `-`,
/// then `-` and the first six hex digits, shortened from the front to 50
/// characters (the random tail is what makes it unique), never starting
/// with `-`.
pub fn namespace_name(test: &str, hex: &str) -> String {
    let hex = &hex[..hex.len().min(6)];
    let full = format!("{}-{hex}", test.replace('_', "-"));
    let skip = full.chars().count().saturating_sub(MAX_NAMESPACE);
    full.chars()
        .skip(skip)
        .collect::<String>()
        .trim_start_matches('-')
        .to_owned()
}

/// The name of the volume bound to claim `claim` of namespace `ns`.
pub fn volume_name(ns: &str, claim: &str) -> String {
    format!("{ns}-{claim}")
}

fn typed<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> T {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A Namespace.
pub fn namespace(name: &str) -> Namespace {
    typed("namespace", json!({"metadata": {"name": name}}))
}

/// A Node labelled with its hostname, as a kubelet registers it.
pub fn node(name: &str) -> Node {
    typed(
        "node",
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}),
    )
}

/// How a volume goes when its claim does (`persistentVolumeReclaimPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reclaim {
    /// Kept: what a scenario's pre-bound volumes say.
    Retain,
    /// Deleted: what a dynamic provisioner's volumes say.
    Delete,
}

/// A CSI volume of `size` and storage class `class` (empty: none) reserved
/// for claim `claim` of namespace `ns`, named [`volume_name`].
pub fn volume(
    ns: &str,
    claim: &str,
    class: &str,
    size: &str,
    reclaim: Reclaim,
) -> PersistentVolume {
    let name = volume_name(ns, claim);
    let policy = match reclaim {
        Reclaim::Retain => "Retain",
        Reclaim::Delete => "Delete",
    };
    typed(
        "pv",
        json!({
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": policy,
                "storageClassName": class,
                "csi": {"driver": DRIVER, "volumeHandle": name},
                "claimRef": {"namespace": ns, "name": claim},
            }
        }),
    )
}

/// A claim of 1Gi of storage class `class` naming the volume `pv`,
/// labelled `labels`.
pub fn claim(
    name: &str,
    pv: &str,
    class: &str,
    labels: &BTreeMap<String, String>,
) -> PersistentVolumeClaim {
    typed(
        "pvc",
        json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": class,
                "volumeName": pv,
            }
        }),
    )
}

/// A pod on `node` with one container mounting `claim` at `/data`.
pub fn pod(name: &str, node: &str, claim: &str) -> Pod {
    typed(
        "pod",
        json!({
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "app", "image": "app", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
            }
        }),
    )
}

/// A Secret of `data` (as `stringData`).
pub fn secret<'a>(name: &str, data: impl IntoIterator<Item = (&'a str, &'a str)>) -> Secret {
    let data: BTreeMap<&str, &str> = data.into_iter().collect();
    typed(
        "secret",
        json!({"metadata": {"name": name}, "stringData": data}),
    )
}

/// The Binding that places pod `pod` on `node`, as the scheduler posts it.
pub fn binding(pod: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    })
}

/// The node a helper pod's required node affinity names (the first value
/// of the first `matchFields` term), if any.
pub fn affinity_node(pod: &Pod) -> Option<String> {
    let affinity =
        serde_json::to_value(pod.spec.as_ref().and_then(|s| s.affinity.as_ref())).ok()?;
    affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0]["matchFields"][0]["values"][0]
        .as_str()
        .map(str::to_owned)
}
