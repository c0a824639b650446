//! The controller's executor for backups of CSI snapshots: takes the
//! VolumeSnapshot of the claim, makes a temporary claim from it once it is
//! ready (both in the claim's namespace, named
//! [`snapshot_object`](crate::names::snapshot_object)), and deletes them
//! when the backup ends, keeping the newest `keepSnapshots` snapshots.
//! [`super::assign`] places the job on the temporary claim once it exists.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};

use super::Context;
use super::assign::Exposure;
use super::placement::mounted_volume_name;
use crate::Result;
use crate::crd::{Phase, SnapshotPolicy};
use crate::job::Job;
use crate::kubeutil::{ignore_conflict, ignore_missing};
use crate::names::{OWNER_UID_LABEL, SELECTED_NODE_ANNOTATION, SNAPSHOT_OF_LABEL, label_value};

/// The API group of CSI snapshots.
pub const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";

/// VolumeSnapshots of namespace `ns` (snapshot.storage.k8s.io/v1).
pub fn snapshots(client: &Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(SNAPSHOT_GROUP, "v1", "VolumeSnapshot");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

/// VolumeSnapshotContents (cluster-scoped, snapshot.storage.k8s.io/v1).
pub fn contents(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(SNAPSHOT_GROUP, "v1", "VolumeSnapshotContent");
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

fn labels<J: Job>(job: &J, claim: &str) -> Value {
    let mut l = json!({ OWNER_UID_LABEL: job.uid_str() });
    if let Some(v) = label_value(claim) {
        l[SNAPSHOT_OF_LABEL] = json!(v);
    }
    l
}

/// An owner reference to the job when it lives in the claim's namespace
/// (so the garbage collector removes what a lost clean-up leaves).
fn owners<J: Job>(job: &J, ns: &str) -> Value {
    match job.controller_owner_ref(&()) {
        Some(o) if job.ns() == ns => json!([o]),
        _ => Value::Null,
    }
}

/// The claim the VolumeSnapshot `vs` was taken from, if it is one.
pub fn snapshot_source(vs: &DynamicObject) -> Option<&str> {
    vs.data
        .get("spec")?
        .get("source")?
        .get("persistentVolumeClaimName")?
        .as_str()
}

/// Makes progress on exposing `job`'s snapshot; says where it stands.
pub async fn expose<J: Job>(ctx: &Context, job: &J, policy: &SnapshotPolicy) -> Result<Exposure> {
    match ready_snapshot(ctx, job, policy).await? {
        Ok(vs) => claim_from(ctx, job, &vs).await,
        Err(waiting_or_failed) => Ok(waiting_or_failed),
    }
}

/// Makes the claim of the ready snapshot `vs` (or checks the one there).
async fn claim_from<J: Job>(ctx: &Context, job: &J, vs: &DynamicObject) -> Result<Exposure> {
    let (ns, claim) = job.claim();
    let (_, name) = job.reach();
    let vs_name = job.snapshot_name();
    let status = vs.data.get("status");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(existing) = claims.get_opt(&name).await? {
        let from = existing.spec.as_ref().and_then(|s| s.data_source.as_ref());
        return Ok(match from {
            Some(d) if d.kind == "VolumeSnapshot" && d.name == vs_name => Exposure::Ready,
            _ => Exposure::Failed(format!(
                "claim {ns}/{name} exists and was not made from VolumeSnapshot {vs_name}"
            )),
        });
    }
    let Some(source) = claims.get_opt(&claim).await? else {
        return Ok(Exposure::Failed(format!(
            "PersistentVolumeClaim {claim} not found"
        )));
    };
    let spec = source.spec.unwrap_or_default();
    let size = status
        .and_then(|s| s.get("restoreSize"))
        .cloned()
        .or_else(|| {
            let req = spec.resources.as_ref()?.requests.as_ref()?.get("storage")?;
            serde_json::to_value(req).ok()
        });
    // With a WaitForFirstConsumer class, the provisioner waits for a node
    // to be chosen; a helper pod bound to a node directly never chooses
    // one, so the claim names the node whose pod mounts the original claim
    // (the annotation the scheduler would set; other classes ignore it).
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let node = pods
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|p| mounted_volume_name(p, &claim).is_some())
        .find_map(|p| p.spec.as_ref()?.node_name.clone());
    let annotations = node.map(|n| json!({ SELECTED_NODE_ANNOTATION: n }));
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": labels(job, &claim),
            "annotations": annotations,
            "ownerReferences": owners(job, &ns),
        },
        "spec": {
            "storageClassName": spec.storage_class_name,
            "accessModes": spec.access_modes,
            "volumeMode": spec.volume_mode,
            "resources": {"requests": {"storage": size}},
            "dataSource": {"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": vs_name},
        },
    }))
    .map_err(invalid)?;
    ignore_conflict(claims.create(&PostParams::default(), &pvc).await)?;
    Ok(Exposure::Ready)
}

/// Takes the claim's VolumeSnapshot if there is none yet; returns it once
/// it is ready, or where it stands.
async fn ready_snapshot<J: Job>(
    ctx: &Context,
    job: &J,
    policy: &SnapshotPolicy,
) -> Result<std::result::Result<DynamicObject, Exposure>> {
    let (ns, claim) = job.claim();
    let name = job.snapshot_name();
    let vss = snapshots(&ctx.client, &ns);
    let Some(vs) = vss.get_opt(&name).await? else {
        if policy.volume_snapshot_name.is_some() {
            return Ok(Err(Exposure::Failed(format!(
                "VolumeSnapshot {ns}/{name} not found"
            ))));
        }
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("{SNAPSHOT_GROUP}/v1"),
            "kind": "VolumeSnapshot",
            "metadata": {
                "name": name,
                "labels": labels(job, &claim),
                "ownerReferences": owners(job, &ns),
            },
            "spec": {
                "volumeSnapshotClassName": policy.volume_snapshot_class_name,
                "source": {"persistentVolumeClaimName": claim},
            },
        }))
        .map_err(invalid)?;
        ignore_conflict(vss.create(&PostParams::default(), &obj).await)?;
        return Ok(Err(Exposure::Waiting(format!(
            "took VolumeSnapshot {name} of claim {claim}; waiting for it to be ready"
        ))));
    };
    if snapshot_source(&vs) != Some(claim.as_str()) {
        return Ok(Err(Exposure::Failed(format!(
            "VolumeSnapshot {ns}/{name} exists and is not a snapshot of claim {claim}"
        ))));
    }
    let status = vs.data.get("status");
    if let Some(msg) = status
        .and_then(|s| s.get("error"))
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
    {
        return Ok(Err(Exposure::Failed(format!(
            "VolumeSnapshot {name} failed: {}",
            crate::kubeutil::truncate(msg.to_owned(), 500)
        ))));
    }
    let ready = status
        .and_then(|s| s.get("readyToUse"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !ready {
        return Ok(Err(Exposure::Waiting(format!(
            "waiting for VolumeSnapshot {name} to be ready"
        ))));
    }
    Ok(Ok(vs))
}

/// Deletes what `job` made once it ended (or is being deleted): its
/// temporary claim, and its VolumeSnapshot unless the backup completed and
/// the policy keeps snapshots; then the claim's oldest kept snapshots
/// beyond `keepSnapshots`. Only objects labelled as cairn's are touched.
pub async fn clean_up<J: Job>(ctx: &Context, job: &J, policy: &SnapshotPolicy) -> Result<()> {
    let (ns, claim) = job.claim();
    let (_, name) = job.reach();
    let uid = job.uid_str();
    let ours = |o: &kube::core::ObjectMeta| {
        o.labels.as_ref().and_then(|l| l.get(OWNER_UID_LABEL)) == Some(&uid)
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(c) = claims.get_opt(&name).await? {
        if ours(&c.metadata) && c.metadata.deletion_timestamp.is_none() {
            ignore_missing(claims.delete(&name, &DeleteParams::default()).await)?;
        }
    }
    let vss = snapshots(&ctx.client, &ns);
    let keep = job.phase() == Phase::Completed && !job.deleting() && policy.keep_snapshots > 0;
    if !keep {
        if let Some(vs) = vss.get_opt(&name).await? {
            if ours(vs.meta()) && vs.meta().deletion_timestamp.is_none() {
                ignore_missing(vss.delete(&name, &DeleteParams::default()).await)?;
            }
        }
        return Ok(());
    }
    let Some(label) = label_value(&claim) else {
        return Ok(());
    };
    let mut kept: Vec<DynamicObject> = vss
        .list(&ListParams::default().labels(&format!("{SNAPSHOT_OF_LABEL}={label}")))
        .await?
        .items
        .into_iter()
        .filter(|v| snapshot_source(v) == Some(claim.as_str()))
        .filter(|v| v.meta().deletion_timestamp.is_none())
        .collect();
    // This backup's own snapshot first (timestamps have one-second
    // resolution), then the newest.
    kept.sort_by_key(|v| {
        (
            v.name_any() != name,
            std::cmp::Reverse(v.meta().creation_timestamp.clone().map(|t| t.0)),
        )
    });
    for old in kept.iter().skip(policy.keep_snapshots as usize) {
        ignore_missing(vss.delete(&old.name_any(), &DeleteParams::default()).await)?;
    }
    Ok(())
}

fn invalid(e: serde_json::Error) -> crate::Error {
    crate::Error::Invalid(format!("building a snapshot object: {e}"))
}
