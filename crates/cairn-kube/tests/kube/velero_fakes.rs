//! Stand-ins for Velero in the data-mover tests: its CRDs (vendored in
//! tests/fixtures/velero-v1.18.1), a BackupStorageLocation on the test S3
//! server with its INI credentials, Backups and Restores, and DataUploads,
//! DataDownloads and DeleteBackupRequests built as Velero builds them
//! (`newDataUpload` and `newDataDownload` of its CSI plugin). Velero's
//! objects are plain JSON here, never cairn's types, so the tests check
//! what cairn reads against what Velero writes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::common::{Cluster, PASSWORD, apply_crd, s3_prefix};

/// How long anything may take (generous: a loaded machine).
pub(crate) const LONG: Duration = Duration::from_secs(120);

static VELERO_CRDS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Installs the vendored Velero CRDs once.
pub(crate) async fn velero_crds(client: &Client) {
    VELERO_CRDS
        .get_or_init(|| install_velero_crds(client.clone()))
        .await;
}

async fn install_velero_crds(client: Client) {
    let dir = cairn_testkit::workspace_root().join("tests/fixtures/velero-v1.18.1");
    for kind in [
        "backups",
        "restores",
        "backupstoragelocations",
        "deletebackuprequests",
        "datauploads",
        "datadownloads",
    ] {
        let file = dir.join(format!("velero.io_{kind}.yaml"));
        let text = std::fs::read_to_string(&file).expect("vendored CRD");
        // The test apiserver refuses empty strings in custom resources and
        // their defaults (see the fixtures' README): the location's two
        // `default: ""` go, and the DataDownload's `targetVolume.pv`, which
        // Velero leaves empty, is no longer required.
        let dropped = match kind {
            "backupstoragelocations" => r#"default: """#,
            "datadownloads" => "- pv",
            _ => "",
        };
        let text: String = text
            .lines()
            .filter(|l| l.trim() != dropped)
            .map(|l| format!("{l}\n"))
            .collect();
        apply_crd(&client, &text, &file.display().to_string()).await;
    }
}

/// Velero's objects of `kind` in namespace `ns`.
pub(crate) fn velero(client: &Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let (version, plural) = match kind {
        "DataUpload" => ("v2alpha1", "datauploads"),
        "DataDownload" => ("v2alpha1", "datadownloads"),
        "Backup" => ("v1", "backups"),
        "Restore" => ("v1", "restores"),
        "BackupStorageLocation" => ("v1", "backupstoragelocations"),
        "DeleteBackupRequest" => ("v1", "deletebackuprequests"),
        _ => panic!("not a Velero kind these tests use: {kind}"),
    };
    let gvk = GroupVersionKind::gvk("velero.io", version, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// Creates `obj` (JSON) through `api`; returns it as stored.
pub(crate) async fn create(api: &Api<DynamicObject>, obj: Value) -> DynamicObject {
    let what = format!("{} {}", obj["kind"], obj["metadata"]);
    let o: DynamicObject = serde_json::from_value(obj).expect("object");
    api.create(&PostParams::default(), &o)
        .await
        .unwrap_or_else(|e| panic!("create {what}: {e}"))
}

/// Velero's `label.GetValidName`: the value itself when it fits a label,
/// else its first 57 characters and 6 hex digits of a hash (Velero's is
/// SHA-256; any hash keeps different values apart).
pub(crate) fn valid_label(v: &str) -> String {
    if v.len() <= 63 {
        return v.to_owned();
    }
    format!("{}{}", &v[..57], &blake3::hash(v.as_bytes()).to_hex()[..6])
}

/// The test S3 server as a BackupStorageLocation names it, taken apart
/// from `CAIRN_TEST_S3_URL` (`s3://bucket[/prefix]?endpoint=…&region=…`).
pub(crate) struct S3 {
    base: String,
    pub(crate) bucket: String,
    /// The base URL's own prefix in the bucket ("" for none).
    prefix: String,
    pub(crate) endpoint: String,
    pub(crate) region: String,
}

impl S3 {
    pub(crate) fn parse(base: &str) -> S3 {
        let rest = base
            .strip_prefix("s3://")
            .unwrap_or_else(|| panic!("not an s3:// URL: {base}"));
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        let param = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_owned)
        };
        S3 {
            base: base.to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            endpoint: param("endpoint").expect("the S3 URL names its endpoint"),
            region: param("region").unwrap_or_else(|| "us-east-1".into()),
        }
    }

    /// A location's `objectStorage.prefix` for `name`, under the base's.
    pub(crate) fn location_prefix(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// The cairn URL of `path` under the base (e.g. `<prefix>/cairn`).
    pub(crate) fn url(&self, path: &str) -> String {
        s3_prefix(&self.base, path)
    }

    /// What the derived repository's URL starts with for the location
    /// prefix `name`, and the query parameters it must carry.
    pub(crate) fn repository(&self, name: &str) -> (String, [String; 2]) {
        (
            format!("s3://{}/{}/cairn?", self.bucket, self.location_prefix(name)),
            [
                format!("endpoint={}", self.endpoint),
                format!("region={}", self.region),
            ],
        )
    }
}

/// Velero's `cloud-credentials` Secret (an AWS INI file holding the keys
/// of this process's environment) and cairn's repository password Secret.
pub(crate) async fn create_secrets(c: &Cluster) {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} for the test S3 server"));
    let ini = format!(
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        var("AWS_ACCESS_KEY_ID"),
        var("AWS_SECRET_ACCESS_KEY")
    );
    for (name, data) in [
        ("cloud-credentials", json!({"cloud": ini})),
        (
            "cairn-repo-credentials",
            json!({"repository-password": PASSWORD}),
        ),
    ] {
        let s: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .expect("secret");
        c.api::<Secret>()
            .create(&PostParams::default(), &s)
            .await
            .expect("secret");
    }
}

/// A BackupStorageLocation `name` on the test S3 server, under the prefix
/// `prefix`, as `velero install --provider aws` makes one for an
/// S3-compatible server.
pub(crate) async fn create_location(
    c: &Cluster,
    s3: &S3,
    name: &str,
    prefix: &str,
    access_mode: &str,
) {
    let bsl = json!({
        "apiVersion": "velero.io/v1",
        "kind": "BackupStorageLocation",
        "metadata": {"name": name},
        "spec": {
            "provider": "aws",
            "default": name == "default",
            "objectStorage": {"bucket": s3.bucket, "prefix": s3.location_prefix(prefix)},
            "config": {"region": s3.region, "s3Url": s3.endpoint, "s3ForcePathStyle": "true"},
            "credential": {"name": "cloud-credentials", "key": "cloud"},
            "accessMode": access_mode,
        },
        "status": {"phase": "Available"},
    });
    create(&velero(&c.client, &c.ns, "BackupStorageLocation"), bsl).await;
}

/// A Backup `name` of `namespace` that moves snapshot data with `mover`
/// ("" for Velero's own) into `location`, as `velero backup create` makes
/// it.
pub(crate) async fn create_backup(
    c: &Cluster,
    name: &str,
    namespace: &str,
    location: &str,
    mover: &str,
) -> DynamicObject {
    let mut backup = json!({
        "apiVersion": "velero.io/v1",
        "kind": "Backup",
        "metadata": {"name": name},
        "spec": {
            "includedNamespaces": [namespace],
            "snapshotMoveData": true,
            "datamover": mover,
            "storageLocation": location,
            "csiSnapshotTimeout": "10m0s",
            "itemOperationTimeout": "4h0m0s",
            "ttl": "720h0m0s",
        },
        "status": {"phase": "WaitingForPluginOperations"},
    });
    omit_empty(&mut backup["spec"], "datamover");
    create(&velero(&c.client, &c.ns, "Backup"), backup).await
}

/// A Restore `name` of `backup` from namespace `from` into `to`, as
/// `velero restore create --namespace-mappings from:to` makes it.
pub(crate) async fn create_restore(
    c: &Cluster,
    name: &str,
    backup: &str,
    from: &str,
    to: &str,
) -> DynamicObject {
    let restore = json!({
        "apiVersion": "velero.io/v1",
        "kind": "Restore",
        "metadata": {"name": name},
        "spec": {"backupName": backup, "namespaceMapping": {from: to}},
        "status": {"phase": "WaitingForPluginOperations"},
    });
    create(&velero(&c.client, &c.ns, "Restore"), restore).await
}

/// Leaves out `obj[key]` when it is empty, as Go's `omitempty` does (the
/// `datamover` fields).
fn omit_empty(obj: &mut Value, key: &str) {
    let empty = obj[key].as_str().is_none_or(str::is_empty);
    if let (true, Some(o)) = (empty, obj.as_object_mut()) {
        o.remove(key);
    }
}

/// The owner reference Velero puts on what it makes for `owner`.
fn owned_by(owner: &DynamicObject, kind: &str) -> Value {
    json!([{
        "apiVersion": "velero.io/v1",
        "kind": kind,
        "name": owner.name_any(),
        "uid": owner.uid().expect("uid"),
        "controller": true,
    }])
}

/// A claim Velero backs up, as far as a DataUpload names it.
pub(crate) struct BackedUp<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
    pub(crate) uid: &'a str,
    pub(crate) storage_class: &'a str,
}

/// The label selecting what Velero made for one claim in one backup or
/// restore (`velero.io/async-operation-id`).
pub(crate) fn operation_selector(o: &Value) -> String {
    let id = o["metadata"]["labels"]["velero.io/async-operation-id"]
        .as_str()
        .expect("an operation id");
    format!("velero.io/async-operation-id={id}")
}

/// The DataUpload Velero's CSI plugin makes for the snapshot `vs` of
/// `claim` in `backup` (`newDataUpload`).
pub(crate) fn data_upload(
    backup: &DynamicObject,
    vs: &str,
    claim: &BackedUp<'_>,
    class: &str,
    driver: &str,
) -> Value {
    let (name, uid) = (backup.name_any(), backup.uid().expect("uid"));
    let spec = &backup.data["spec"];
    let mut du = json!({
        "apiVersion": "velero.io/v2alpha1",
        "kind": "DataUpload",
        "metadata": {
            "generateName": format!("{name}-"),
            "ownerReferences": owned_by(backup, "Backup"),
            "labels": {
                "velero.io/backup-name": valid_label(&name),
                "velero.io/backup-uid": uid,
                "velero.io/pvc-uid": claim.uid,
                "velero.io/async-operation-id": valid_label(&format!("du-{uid}.{}", claim.uid)),
            },
        },
        "spec": {
            "snapshotType": "CSI",
            "csiSnapshot": {
                "volumeSnapshot": vs,
                "storageClass": claim.storage_class,
                "snapshotClass": class,
                "driver": driver,
            },
            "sourcePVC": claim.name,
            "sourceNamespace": claim.namespace,
            "datamover": spec["datamover"],
            "backupStorageLocation": spec["storageLocation"],
            "operationTimeout": spec["csiSnapshotTimeout"],
        },
    });
    omit_empty(&mut du["spec"], "datamover");
    du
}

/// What a restore learns of a DataUpload from the backup (Velero's
/// `DataUploadResult`, which its restore keeps in a ConfigMap).
pub(crate) struct UploadResult {
    pub(crate) location: String,
    pub(crate) mover: String,
    pub(crate) snapshot_id: String,
    pub(crate) source_namespace: String,
    pub(crate) node_os: String,
    pub(crate) size: u64,
    /// The backed-up claim's uid (in the restore's operation id).
    pub(crate) pvc_uid: String,
}

impl UploadResult {
    /// The result of the completed DataUpload `du`.
    pub(crate) fn of(du: &DynamicObject) -> UploadResult {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        UploadResult {
            location: text(&du.data["spec"]["backupStorageLocation"]),
            mover: text(&du.data["spec"]["datamover"]),
            snapshot_id: text(&du.data["status"]["snapshotID"]),
            source_namespace: text(&du.data["spec"]["sourceNamespace"]),
            node_os: text(&du.data["status"]["nodeOS"]),
            size: du.data["status"]["progress"]["totalBytes"]
                .as_u64()
                .unwrap_or(0),
            pvc_uid: du.labels()["velero.io/pvc-uid"].clone(),
        }
    }
}

/// The DataDownload Velero's CSI plugin makes to restore `result` into
/// the claim `claim` of namespace `namespace` for `restore`
/// (`newDataDownload`), but for `targetVolume.pv`: Velero writes it empty,
/// which the test apiserver refuses, so it is left out.
pub(crate) fn data_download(
    restore: &DynamicObject,
    result: &UploadResult,
    namespace: &str,
    claim: &str,
) -> Value {
    let (name, uid) = (restore.name_any(), restore.uid().expect("uid"));
    let mut dd = json!({
        "apiVersion": "velero.io/v2alpha1",
        "kind": "DataDownload",
        "metadata": {
            "generateName": format!("{name}-"),
            "ownerReferences": owned_by(restore, "Restore"),
            "labels": {
                "velero.io/restore-name": valid_label(&name),
                "velero.io/restore-uid": uid,
                "velero.io/async-operation-id":
                    valid_label(&format!("dd-{uid}.{}", result.pvc_uid)),
            },
        },
        "spec": {
            "targetVolume": {"pvc": claim, "namespace": namespace},
            "backupStorageLocation": result.location,
            "datamover": result.mover,
            "snapshotID": result.snapshot_id,
            "snapshotSize": result.size,
            "sourceNamespace": result.source_namespace,
            "operationTimeout": "10m0s",
            "nodeOS": result.node_os,
        },
    });
    omit_empty(&mut dd["spec"], "datamover");
    dd
}

/// The claim Velero restores for a data-mover restore: no volume, and a
/// selector that only the volume the mover rebinds to it matches. Returns
/// the selector's `velero.io/dynamic-pv-restore` value.
pub(crate) async fn create_target_claim(c: &Cluster, namespace: &str, name: &str) -> String {
    let random: String = blake3::hash(c.ns.as_bytes()).to_hex()[..5].to_owned();
    let value = valid_label(&format!("{namespace}.{name}.{random}"));
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "",
            "volumeName": "",
            "selector": {"matchLabels": {"velero.io/dynamic-pv-restore": value}},
        },
    }))
    .expect("pvc");
    Api::<PersistentVolumeClaim>::namespaced(c.client.clone(), namespace)
        .create(&PostParams::default(), &pvc)
        .await
        .expect("create the target claim");
    value
}

/// The DeleteBackupRequest `velero backup delete` makes for `backup`.
pub(crate) async fn request_deletion(c: &Cluster, backup: &DynamicObject) -> DynamicObject {
    let name = backup.name_any();
    let dbr = json!({
        "apiVersion": "velero.io/v1",
        "kind": "DeleteBackupRequest",
        "metadata": {
            "generateName": format!("{name}-"),
            "labels": {
                "velero.io/backup-name": valid_label(&name),
                "velero.io/backup-uid": backup.uid().expect("uid"),
            },
        },
        "spec": {"backupName": name},
    });
    create(&velero(&c.client, &c.ns, "DeleteBackupRequest"), dbr).await
}
