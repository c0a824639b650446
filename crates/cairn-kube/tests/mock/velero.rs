//! The Velero executors against the mock API: what a DataUpload's and a
//! DataDownload's reconciles write, in which order, and that a write on a
//! stale DataUpload is refused rather than applied.

use std::sync::Arc;

use cairn_kube::controller::velero::{download, upload};
use http::Method;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use crate::context;
use cairn_testkit::kube::mock::ApiServer;

const DU: &str = "/apis/velero.io/v2alpha1/namespaces/velero/datauploads/b1-x7k2p";
const VB: &str = "/apis/cairn.dev/v1alpha1/namespaces/velero/volumebackups/b1-x7k2p";
const BSL: &str = "/apis/velero.io/v1/namespaces/velero/backupstoragelocations/default";
const REPO: &str = "/apis/cairn.dev/v1alpha1/namespaces/velero/backuprepositories/velero-default";
const VS: &str = "/apis/snapshot.storage.k8s.io/v1/namespaces/shop/volumesnapshots/velero-db-x1";
const VSC: &str = "/apis/snapshot.storage.k8s.io/v1/volumesnapshotcontents/snapcontent-1";

fn location() -> Value {
    json!({
        "apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
        "metadata": {"name": "default", "namespace": "velero"},
        "spec": {"provider": "aws", "objectStorage": {"bucket": "b", "prefix": "p"},
                 "config": {"region": "r", "s3Url": "http://127.0.0.1:9", "s3ForcePathStyle": "true"},
                 "credential": {"name": "cloud-credentials", "key": "cloud"}},
    })
}

fn data_upload(mover: &str) -> Value {
    json!({
        "apiVersion": "velero.io/v2alpha1", "kind": "DataUpload",
        "metadata": {"name": "b1-x7k2p", "namespace": "velero", "uid": "du-uid",
                     "labels": {"velero.io/backup-name": "b1", "velero.io/backup-uid": "backup-uid"}},
        "spec": {"snapshotType": "CSI",
                 "csiSnapshot": {"volumeSnapshot": "velero-db-x1", "snapshotClass": "csi", "storageClass": "fast", "driver": "d"},
                 "sourcePVC": "db", "sourceNamespace": "shop", "datamover": mover,
                 "backupStorageLocation": "default", "operationTimeout": "10m0s"},
    })
}

fn object(api: &ApiServer, path: &str) -> Arc<DynamicObject> {
    Arc::new(serde_json::from_value(api.get(path).expect(path)).expect("object"))
}

#[tokio::test]
async fn another_movers_upload_gets_no_request_at_all() {
    let api = ApiServer::default();
    api.put(DU, data_upload("velero"));
    upload::reconcile(object(&api, DU), context(&api))
        .await
        .expect("reconcile");
    assert!(api.sent().is_empty(), "{:?}", api.sent());
}

#[tokio::test]
async fn a_new_upload_makes_the_repository_and_the_job_then_says_accepted() {
    let api = ApiServer::default();
    api.put(BSL, location());
    api.put(DU, data_upload("cairn"));
    upload::reconcile(object(&api, DU), context(&api))
        .await
        .expect("reconcile");
    assert_eq!(
        api.writes(),
        [
            "POST /apis/cairn.dev/v1alpha1/namespaces/velero/backuprepositories",
            "POST /apis/cairn.dev/v1alpha1/namespaces/velero/volumebackups",
            &format!("PATCH {DU}"),
        ]
    );
    let repo = api.get(REPO).expect("repository");
    assert_eq!(
        repo["spec"]["url"],
        "s3://b/p/cairn?endpoint=http://127.0.0.1:9&region=r&allow-http=true&path-style=true"
    );
    assert_eq!(repo["spec"]["credentialsSecretRef"]["key"], "cloud");
    let vb = api.get(VB).expect("job");
    assert_eq!(
        vb["spec"]["pvc"],
        json!({"name": "db", "namespace": "shop"})
    );
    assert_eq!(vb["spec"]["snapshot"]["volumeSnapshotName"], "velero-db-x1");
    assert_eq!(
        vb["spec"]["tags"],
        json!(["velero-backup-uid=backup-uid", "velero-backup=b1"])
    );
    assert_eq!(vb["metadata"]["ownerReferences"][0]["uid"], "du-uid");
    let du = api.get(DU).expect("du");
    assert_eq!(du["status"]["phase"], "Accepted");

    // Nothing changed: the next look writes nothing.
    let before = api.writes().len();
    upload::reconcile(object(&api, DU), context(&api))
        .await
        .expect("reconcile");
    assert_eq!(api.writes().len(), before, "{:?}", api.writes());
}

/// A DataUpload whose job completed, with Velero's snapshot and content.
fn completed(api: &ApiServer) {
    api.put(BSL, location());
    let mut du = data_upload("cairn");
    du["status"] = json!({"phase": "InProgress", "node": "n1"});
    api.put(DU, du);
    api.put(
        VB,
        json!({
            "apiVersion": "cairn.dev/v1alpha1", "kind": "VolumeBackup",
            "metadata": {"name": "b1-x7k2p", "namespace": "velero", "uid": "vb-uid",
                         "ownerReferences": [{"apiVersion": "velero.io/v2alpha1", "kind": "DataUpload",
                                              "name": "b1-x7k2p", "uid": "du-uid"}]},
            "spec": {"pvc": {"name": "db", "namespace": "shop"}, "repository": {"name": "velero-default"},
                     "snapshot": {"volumeSnapshotClassName": "csi", "volumeSnapshotName": "velero-db-x1"}},
            "status": {"phase": "Completed", "node": "n1", "snapshotId": "ab".repeat(32),
                       "progress": {"totalBytes": 300, "bytesDone": 300, "totalFiles": 3, "filesDone": 3},
                       "incrementalBytes": 42},
        }),
    );
    api.put(
        VS,
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
               "metadata": {"name": "velero-db-x1", "namespace": "shop"},
               "spec": {"source": {"persistentVolumeClaimName": "db"}},
               "status": {"readyToUse": true, "boundVolumeSnapshotContentName": "snapcontent-1"}}),
    );
    api.put(
        VSC,
        json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
               "metadata": {"name": "snapcontent-1"}, "spec": {"deletionPolicy": "Retain"}}),
    );
}

#[tokio::test]
async fn completion_disposes_of_the_snapshot_first_then_writes_every_field_in_one_update() {
    let api = ApiServer::default();
    completed(&api);
    upload::reconcile(object(&api, DU), context(&api))
        .await
        .expect("reconcile");
    assert_eq!(
        api.writes(),
        [
            format!("PATCH {VSC}"),
            format!("DELETE {VS}"),
            format!("DELETE {VSC}"),
            format!("PATCH {DU}"),
        ]
    );
    let sent = api.sent();
    let to_delete = sent
        .iter()
        .find(|s| s.method == Method::PATCH && s.path == VSC)
        .expect("content patched");
    assert_eq!(to_delete.body["spec"]["deletionPolicy"], "Delete");
    let last = sent.last().expect("a write");
    let status = &last.body["status"];
    assert_eq!(status["phase"], "Completed");
    assert_eq!(status["snapshotID"], "ab".repeat(32));
    assert_eq!(status["progress"]["totalBytes"], 300);
    assert_eq!(status["incrementalBytes"], 42);
    assert_eq!(status["nodeOS"], "linux");
    assert!(status["completionTimestamp"].is_string());
    assert!(
        last.body["metadata"]["resourceVersion"].is_string(),
        "written on the version read"
    );
}

#[tokio::test]
async fn a_write_on_a_changed_upload_is_refused_not_applied() {
    let api = ApiServer::default();
    completed(&api);
    let stale = object(&api, DU);
    // Velero sets cancel meanwhile.
    let mut du = api.get(DU).expect("du");
    du["spec"]["cancel"] = json!(true);
    api.put(DU, du);
    let err = upload::reconcile(stale, context(&api)).await;
    assert!(err.is_err(), "a stale write must fail");
    assert_eq!(
        api.get(DU).expect("du")["status"]["phase"],
        "InProgress",
        "the stale Completed was not applied"
    );
    // The next look sees the cancel.
    upload::reconcile(object(&api, DU), context(&api))
        .await
        .expect("reconcile");
    assert_eq!(api.get(DU).expect("du")["status"]["phase"], "Canceled");
}

const DD: &str = "/apis/velero.io/v2alpha1/namespaces/velero/datadownloads/r1-q8w";
const VR: &str = "/apis/cairn.dev/v1alpha1/namespaces/velero/volumerestores/r1-q8w";
const RESTORE_CLAIM: &str = "/api/v1/namespaces/velero/persistentvolumeclaims/r1-q8w";
const TARGET: &str = "/api/v1/namespaces/shop2/persistentvolumeclaims/db";
const PV: &str = "/api/v1/persistentvolumes/pv-1";

fn restored(api: &ApiServer) {
    api.put(
        DD,
        json!({
            "apiVersion": "velero.io/v2alpha1", "kind": "DataDownload",
            "metadata": {"name": "r1-q8w", "namespace": "velero", "uid": "dd-uid"},
            "spec": {"targetVolume": {"pvc": "db", "pv": "", "namespace": "shop2"},
                     "backupStorageLocation": "default", "datamover": "cairn",
                     "snapshotID": "ab".repeat(32), "sourceNamespace": "shop"},
            "status": {"phase": "InProgress"},
        }),
    );
    api.put(
        VR,
        json!({
            "apiVersion": "cairn.dev/v1alpha1", "kind": "VolumeRestore",
            "metadata": {"name": "r1-q8w", "namespace": "velero", "uid": "vr-uid",
                         "ownerReferences": [{"apiVersion": "velero.io/v2alpha1", "kind": "DataDownload",
                                              "name": "r1-q8w", "uid": "dd-uid"}]},
            "spec": {"repository": {"name": "velero-default"}, "targetPvc": {"name": "r1-q8w"}},
            "status": {"phase": "Completed", "node": "n1",
                       "progress": {"totalBytes": 10, "bytesDone": 10, "totalFiles": 1, "filesDone": 1}},
        }),
    );
    api.put(
        RESTORE_CLAIM,
        json!({"metadata": {"name": "r1-q8w", "namespace": "velero", "labels": {"cairn.dev/owner-uid": "vr-uid"}},
               "spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}}),
    );
    api.put(
        TARGET,
        json!({"metadata": {"name": "db", "namespace": "shop2"},
               "spec": {"volumeName": "", "selector": {"matchLabels": {"velero.io/dynamic-pv-restore": "shop2.db.x"}}},
               "status": {"phase": "Pending"}}),
    );
    api.put(
        PV,
        json!({"metadata": {"name": "pv-1"},
               "spec": {"persistentVolumeReclaimPolicy": "Delete",
                        "claimRef": {"namespace": "velero", "name": "r1-q8w", "uid": "rc-uid"}}}),
    );
}

#[tokio::test]
async fn a_completed_download_hands_the_volume_over_in_veleros_order() {
    let api = ApiServer::default();
    restored(&api);
    let mut looks = 0;
    while api.get(DD).expect("dd")["status"]["phase"] != "Completed" {
        looks += 1;
        assert!(looks < 12, "no end: {:?}", api.writes());
        download::reconcile(object(&api, DD), context(&api))
            .await
            .expect("reconcile");
        // The binder: a volume and claim pointing at each other are bound.
        let pv = api.get(PV).expect("pv");
        if pv["spec"]["claimRef"]["name"] == "db"
            && api.get(TARGET).expect("t")["spec"]["volumeName"] == "pv-1"
        {
            let mut t = api.get(TARGET).expect("target");
            t["status"]["phase"] = json!("Bound");
            api.put(TARGET, t);
        }
    }
    assert_eq!(
        api.writes(),
        [
            format!("PATCH {PV}"),
            format!("DELETE {RESTORE_CLAIM}"),
            format!("PATCH {TARGET}"),
            format!("PATCH {PV}"),
            format!("PATCH {PV}"),
            format!("PATCH {DD}"),
        ]
    );
    let sent = api.sent();
    let pv_patches: Vec<&Value> = sent
        .iter()
        .filter(|s| s.method == Method::PATCH && s.path == PV)
        .map(|s| &s.body)
        .collect();
    assert_eq!(
        pv_patches[0]["spec"]["persistentVolumeReclaimPolicy"],
        "Retain"
    );
    assert_eq!(
        pv_patches[1]["spec"]["claimRef"]["uid"],
        Value::Null,
        "no uid: the binder fills it"
    );
    assert_eq!(
        pv_patches[2]["spec"]["persistentVolumeReclaimPolicy"],
        "Delete"
    );
    let pv = api.get(PV).expect("pv");
    assert_eq!(
        pv["metadata"]["labels"]["velero.io/dynamic-pv-restore"],
        "shop2.db.x"
    );
    assert_eq!(pv["spec"]["claimRef"]["namespace"], "shop2");
    assert!(pv["spec"]["claimRef"].get("uid").is_none_or(Value::is_null));
    assert_eq!(api.get(TARGET).expect("t")["spec"]["volumeName"], "pv-1");
    assert!(api.get(RESTORE_CLAIM).is_none());
    assert_eq!(
        api.get(DD).expect("dd")["status"]["progress"]["totalBytes"],
        10
    );
}
