//! The cluster around cairn's Velero jobs, played by the test: the CSI
//! snapshot controller (a VolumeSnapshotContent with a handle, the
//! VolumeSnapshot made ready), the provisioner (a volume for each claim
//! cairn makes) and the kubelet (helper pods Running, their volumes in the
//! kubelet-like directory). One DataUpload run end to end lives here too,
//! as several tests need finished backups.

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_kube::crd::{PvcRef, VolumeBackup, VolumeRestore};
use cairn_kube::names::{helper_pod, snapshot_object};
use cairn_testkit::kube::objects;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::common::{Cluster, PASSWORD, wait_until};
use crate::provision::provision_in;
use crate::snapshot::clone_tree;
use crate::velero_fakes::{BackedUp, LONG, create, data_upload, operation_selector, velero};
use crate::velero_writes::{Writes, assert_forward, phase, phases, record};

/// The CSI driver, StorageClass and VolumeSnapshotClass of the volumes
/// Velero backs up.
pub(crate) const DRIVER: &str = objects::DRIVER;
pub(crate) const STORAGE_CLASS: &str = "cairn-test";
pub(crate) const SNAPSHOT_CLASS: &str = "csi-test";

fn snapshot_api(client: &Client, ns: Option<&str>, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", kind);
    let r = ApiResource::from_gvk(&gvk);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &r),
        None => Api::all_with(client.clone(), &r),
    }
}

/// VolumeSnapshots of namespace `ns`.
pub(crate) fn snapshots(c: &Cluster, ns: &str) -> Api<DynamicObject> {
    snapshot_api(&c.client, Some(ns), "VolumeSnapshot")
}

/// VolumeSnapshotContents.
pub(crate) fn contents(c: &Cluster) -> Api<DynamicObject> {
    snapshot_api(&c.client, None, "VolumeSnapshotContent")
}

/// A claim of a namespace Velero backs up: bound to a volume, mounted by a
/// running pod, with `content` standing for what the volume holds.
pub(crate) struct SourceClaim {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) content: PathBuf,
}

impl SourceClaim {
    /// The claim as a DataUpload names it.
    pub(crate) fn backed_up(&self) -> BackedUp<'_> {
        BackedUp {
            namespace: &self.namespace,
            name: &self.name,
            uid: &self.uid,
            storage_class: STORAGE_CLASS,
        }
    }
}

/// Makes claim `name` (of [`STORAGE_CLASS`]) in namespace `ns` with a
/// running pod on `node`; `fill` writes its content.
pub(crate) async fn source_claim(
    c: &mut Cluster,
    ns: &str,
    name: &str,
    node: &str,
    fill: impl FnOnce(&Path),
) -> SourceClaim {
    c.create_claim_in(ns, name, STORAGE_CLASS).await;
    c.create_pod_in(ns, &format!("app-{name}"), node, name)
        .await;
    let pvc = Api::<PersistentVolumeClaim>::namespaced(c.client.clone(), ns)
        .get(name)
        .await
        .expect("the claim");
    let content = c.scratch.path().join(format!("{ns}-{name}"));
    std::fs::create_dir_all(&content).expect("mkdir");
    fill(&content);
    SourceClaim {
        namespace: ns.to_owned(),
        name: name.to_owned(),
        uid: pvc.uid().expect("uid"),
        content,
    }
}

/// Velero's VolumeSnapshot of `claim` for `backup` (as its CSI plugin
/// makes it, before the DataUpload); returns its name.
pub(crate) async fn take_snapshot(c: &Cluster, backup: &str, claim: &SourceClaim) -> String {
    let classes = snapshot_api(&c.client, None, "VolumeSnapshotClass");
    let class = json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": SNAPSHOT_CLASS}, "driver": DRIVER, "deletionPolicy": "Delete",
    });
    let class: DynamicObject = serde_json::from_value(class).expect("class");
    match classes.create(&PostParams::default(), &class).await {
        Err(kube::Error::Api(e)) if e.code != 409 => panic!("snapshot class: {e}"),
        _ => {}
    }
    let vs = json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {
            "generateName": format!("velero-{}-", claim.name),
            "labels": {"backup": "yes", "velero.io/backup-name": backup},
        },
        "spec": {
            "source": {"persistentVolumeClaimName": claim.name},
            "volumeSnapshotClassName": SNAPSHOT_CLASS,
        },
    });
    create(&snapshots(c, &claim.namespace), vs).await.name_any()
}

/// The snapshot controller: a content with a snapshot handle for the
/// VolumeSnapshot `vs` of `claim`, and the snapshot ready to use. Returns
/// the content's name.
pub(crate) async fn make_ready(c: &Cluster, claim: &SourceClaim, vs: &str) -> String {
    let vss = snapshots(c, &claim.namespace);
    let snap = vss.get(vs).await.expect("the VolumeSnapshot");
    let uid = snap.uid().expect("uid");
    let name = format!("snapcontent-{uid}");
    let pv = objects::volume_name(&claim.namespace, &claim.name);
    let vsc = json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
        "metadata": {"name": name},
        "spec": {
            "deletionPolicy": "Delete",
            "driver": DRIVER,
            "source": {"volumeHandle": pv},
            "volumeSnapshotClassName": SNAPSHOT_CLASS,
            "volumeSnapshotRef": {
                "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                "name": vs, "namespace": claim.namespace, "uid": uid,
            },
        },
    });
    create(&contents(c), vsc).await;
    let now = k8s_openapi::jiff::Timestamp::now();
    let handle = json!({"status": {
        "snapshotHandle": format!("snap-{uid}"),
        "readyToUse": true,
        "restoreSize": 1u64 << 30,
        "creationTime": now.as_nanosecond() as i64,
    }});
    contents(c)
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(handle))
        .await
        .expect("content ready");
    let ready = json!({"status": {
        "boundVolumeSnapshotContentName": name,
        "readyToUse": true,
        "restoreSize": "1Gi",
        "creationTime": now.to_string(),
    }});
    vss.patch_status(vs, &PatchParams::default(), &Patch::Merge(ready))
        .await
        .expect("snapshot ready");
    name
}

/// Panics if the DataUpload or DataDownload `name` (of `kind`) has ended:
/// what the test waits for will not come.
async fn assert_running(c: &Cluster, kind: &str, name: &str, waiting_for: &str) {
    let o = velero(&c.client, &c.ns, kind).get(name).await.ok();
    if let Some(o) = o.filter(|o| matches!(phase(o), "Completed" | "Failed" | "Canceled")) {
        panic!(
            "waiting for {waiting_for}, but {kind} {name} ended: {}",
            o.data["status"]
        );
    }
}

/// Plays the provisioner and the kubelet for the DataUpload `du` of
/// `claim` from the snapshot `vs`: checks the VolumeBackup cairn makes
/// for it, gives the temporary claim made from the snapshot a volume, and
/// runs the helper pod over a clone of the claim's content. Returns the
/// VolumeBackup.
pub(crate) async fn serve_upload(
    c: &mut Cluster,
    du: &DynamicObject,
    claim: &SourceClaim,
    vs: &str,
) -> VolumeBackup {
    let name = du.name_any();
    let vbs = c.api::<VolumeBackup>();
    let vb = wait_until("the VolumeBackup of the DataUpload", LONG, || async {
        assert_running(c, "DataUpload", &name, "its VolumeBackup").await;
        vbs.get_opt(&name).await.ok()?
    })
    .await;
    let owner = vb
        .owner_references()
        .iter()
        .find(|o| o.kind == "DataUpload");
    assert_eq!(
        owner.map(|o| (o.name.as_str(), o.uid.as_str())),
        Some((name.as_str(), du.uid().expect("uid").as_str())),
        "the VolumeBackup is owned by the DataUpload"
    );
    assert_eq!(
        vb.spec.pvc,
        PvcRef {
            name: claim.name.clone(),
            namespace: Some(claim.namespace.clone()),
        },
        "the backup's source is Velero's source claim"
    );

    let temp = snapshot_object(&name, &vb.uid().expect("uid"));
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(c.client.clone(), &claim.namespace);
    let made = wait_until("the claim made from Velero's snapshot", LONG, || async {
        assert_running(c, "DataUpload", &name, "the temporary claim").await;
        pvcs.get_opt(&temp).await.ok()?
    })
    .await;
    let source = made.spec.and_then(|s| s.data_source).expect("dataSource");
    assert_eq!(
        (
            source.api_group.as_deref(),
            source.kind.as_str(),
            source.name.as_str()
        ),
        (Some("snapshot.storage.k8s.io"), "VolumeSnapshot", vs),
        "the temporary claim is made from Velero's snapshot"
    );
    let pv = provision_in(c, &claim.namespace, &temp, "1Gi").await;

    let pods = Api::<Pod>::namespaced(c.client.clone(), &claim.namespace);
    let helper_name = helper_pod("backup", &name);
    let helper = wait_until("the backup's helper pod", LONG, || async {
        assert_running(c, "DataUpload", &name, "the helper pod").await;
        pods.get_opt(&helper_name).await.ok()?
    })
    .await;
    clone_tree(
        &claim.content,
        &c.volume_dir(&helper.uid().expect("uid"), &pv),
    );
    c.schedule_and_run(&helper).await;
    vb
}

/// The phases a DataUpload or DataDownload goes through when it succeeds.
pub(crate) const FORWARD: [&str; 5] = ["New", "Accepted", "Prepared", "InProgress", "Completed"];

/// Backs up `claim` for `backup` as Velero and cairn do it together: the
/// snapshot, the DataUpload, cairn's job through the stand-ins. Checks the
/// phases, the write that completes it, and that Velero's snapshot and
/// the temporary claim are gone afterwards. Returns that write.
pub(crate) async fn upload(
    c: &mut Cluster,
    backup: &DynamicObject,
    claim: &SourceClaim,
    node: &str,
) -> DynamicObject {
    let vs = take_snapshot(c, &backup.name_any(), claim).await;
    let content = make_ready(c, claim, &vs).await;
    let du = data_upload(backup, &vs, &claim.backed_up(), SNAPSHOT_CLASS, DRIVER);
    let dus = velero(&c.client, &c.ns, "DataUpload");
    let writes: Writes = record(&dus, &operation_selector(&du)).await;
    let du = create(&dus, du).await;
    let vb = serve_upload(c, &du, claim, &vs).await;
    let writes = writes.end().await;
    let seen = phases(&writes);
    assert_eq!(
        seen.last().map(String::as_str),
        Some("Completed"),
        "{seen:?}: {:?}",
        writes.last().map(|o| &o.data["status"])
    );
    assert_forward(&seen, &FORWARD);

    // Velero copies the DataUpload into the backup when it completes:
    // what it needs must come in that same write.
    let done = writes
        .iter()
        .find(|o| phase(o) == "Completed")
        .expect("the completing write")
        .clone();
    let st = &done.data["status"];
    let id = st["snapshotID"].as_str().unwrap_or_default();
    assert!(
        id.len() == 64 && id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
        "snapshotID is a cairn snapshot id: {st}"
    );
    assert_eq!(
        st["progress"]["totalBytes"].as_u64(),
        Some(file_bytes(&claim.content)),
        "totalBytes counts the volume's files: {st}"
    );
    assert_eq!(st["nodeOS"], "linux", "{st}");
    assert_eq!(st["node"], node, "{st}");
    assert!(st["completionTimestamp"].is_string(), "{st}");

    // Velero hands its snapshot over: cairn disposes of it.
    let temp = snapshot_object(&done.name_any(), &vb.uid().expect("uid"));
    let (vss, vscs) = (snapshots(c, &claim.namespace), contents(c));
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(c.client.clone(), &claim.namespace);
    wait_until(
        "Velero's snapshot and the temporary claim to go",
        LONG,
        || async {
            let gone = vss.get_opt(&vs).await.ok()?.is_none()
                && vscs.get_opt(&content).await.ok()?.is_none()
                && pvcs.get_opt(&temp).await.ok()?.is_none();
            gone.then_some(())
        },
    )
    .await;
    done
}

/// The bytes of the regular files under `dir`.
pub(crate) fn file_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.expect("walk"))
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().expect("metadata").len())
        .sum()
}

/// Plays the provisioner and the kubelet for the DataDownload `dd` of
/// `snapshot` into `target` (in namespace `ns`): checks the VolumeRestore
/// cairn makes for it and the restore claim, gives that claim a volume
/// and runs the helper pod. Returns the volume's name and the directory
/// the helper pod mounts.
pub(crate) async fn serve_download(
    c: &mut Cluster,
    dd: &DynamicObject,
    snapshot: &str,
    target: &PersistentVolumeClaim,
) -> (String, PathBuf) {
    let name = dd.name_any();
    let vrs = c.api::<VolumeRestore>();
    let vr = wait_until("the VolumeRestore of the DataDownload", LONG, || async {
        assert_running(c, "DataDownload", &name, "its VolumeRestore").await;
        vrs.get_opt(&name).await.ok()?
    })
    .await;
    assert_eq!(vr.spec.snapshot.as_deref(), Some(snapshot), "{:?}", vr.spec);
    assert_eq!(vr.spec.target_pvc.name, name, "{:?}", vr.spec);
    assert!(
        vr.spec
            .target_pvc
            .namespace
            .as_ref()
            .is_none_or(|n| n == &c.ns),
        "the restore claim is in Velero's namespace: {:?}",
        vr.spec
    );

    let pvcs = c.api::<PersistentVolumeClaim>();
    let claim = wait_until("the restore claim", LONG, || async {
        assert_running(c, "DataDownload", &name, "the restore claim").await;
        pvcs.get_opt(&name).await.ok()?
    })
    .await;
    let (made, wanted) = (
        claim.spec.clone().expect("spec"),
        target.spec.clone().expect("spec"),
    );
    assert_eq!(made.access_modes, wanted.access_modes, "access modes");
    assert_eq!(made.storage_class_name, wanted.storage_class_name, "class");
    assert_eq!(
        made.resources.and_then(|r| r.requests),
        wanted.resources.and_then(|r| r.requests),
        "size"
    );
    let pv = provision_in(c, &c.ns.clone(), &name, "1Gi").await;

    let pods = c.api::<Pod>();
    let helper_name = helper_pod("restore", &name);
    let helper = wait_until("the restore's helper pod", LONG, || async {
        assert_running(c, "DataDownload", &name, "the helper pod").await;
        pods.get_opt(&helper_name).await.ok()?
    })
    .await;
    let dir = c.volume_dir(&helper.uid().expect("uid"), &pv);
    c.schedule_and_run(&helper).await;
    (pv, dir)
}

/// Runs the cairn CLI on the repository at `url` with the environment's
/// S3 keys and the test password; returns its output, panicking when it
/// fails.
pub(crate) fn cairn(c: &Cluster, url: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(crate::common::cli())
        .args(["-r", url])
        .args(args)
        .env("CAIRN_PASSWORD", PASSWORD)
        .env("CAIRN_CACHE_DIR", c.scratch.path().join("cli-cache"))
        .output()
        .expect("run cairn");
    assert!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `cairn snapshots --json` of the repository at `url`.
pub(crate) fn list_snapshots(c: &Cluster, url: &str) -> Vec<Value> {
    let out = cairn(c, url, &["snapshots", "--json"]);
    serde_json::from_slice::<Value>(&out)
        .expect("json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}
