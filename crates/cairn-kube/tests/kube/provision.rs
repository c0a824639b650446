//! The test's stand-in for a provisioner: a PersistentVolume for a claim
//! cairn created, bound to it.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::Cluster;

/// Creates a volume of `size` for the claim `claim` of the test's
/// namespace and binds the claim to it; returns the volume's name.
pub(crate) async fn provision(c: &mut Cluster, claim: &str, size: &str) -> String {
    let ns = c.ns.clone();
    provision_in(c, &ns, claim, size).await
}

/// Creates a volume of `size` (reclaim policy Delete, the claim's storage
/// class) for the claim `claim` of namespace `ns` and binds the claim to
/// it; returns the volume's name.
pub(crate) async fn provision_in(c: &mut Cluster, ns: &str, claim: &str, size: &str) -> String {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), ns);
    let class = pvcs
        .get(claim)
        .await
        .expect("the claim")
        .spec
        .and_then(|s| s.storage_class_name)
        .unwrap_or_default();
    let pv_name = format!("{ns}-{claim}");
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": class,
            "csi": {"driver": "test.cairn.dev", "volumeHandle": pv_name},
            "claimRef": {"namespace": ns, "name": claim},
        }
    }))
    .expect("pv");
    Api::<PersistentVolume>::all(c.client.clone())
        .create(&PostParams::default(), &pv)
        .await
        .expect("create pv");
    c.pvs.push(pv_name.clone());
    pvcs.patch(
        claim,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"volumeName": pv_name}})),
    )
    .await
    .expect("bind");
    pvcs.patch_status(
        claim,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Bound"}})),
    )
    .await
    .expect("bound");
    pv_name
}
