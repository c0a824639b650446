//! cairn as Velero's data mover: the controller handles the DataUploads
//! and DataDownloads in Velero's namespace that name `cairn`, in a
//! repository it derives from their BackupStorageLocation (on the test S3
//! server). The tests stand in for Velero (`velero_fakes`) and for the
//! snapshot controller, provisioner, scheduler and kubelet
//! (`velero_cluster`); the Velero namespace is the test's namespace, an
//! administrator namespace. Velero's contract: docs/VELERO.md.

use std::sync::Arc;
use std::time::Duration;

use cairn_kube::clock::SystemClock;
use cairn_kube::controller;
use cairn_kube::crd::{BackupRepository, VolumeBackup, VolumeRestore};
use cairn_kube::http::Health;
use cairn_kube::metrics::Metrics;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::DynamicObject;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::common::{Cluster, VeleroConfig, cluster, fill, tree, wait_until};
use crate::snapshot::snapshot_crds;
use crate::velero_cluster::{
    DRIVER, FORWARD, SNAPSHOT_CLASS, SourceClaim, cairn, list_snapshots, make_ready,
    serve_download, snapshots, source_claim, take_snapshot, upload,
};
use crate::velero_fakes::{
    LONG, S3, UploadResult, create, create_backup, create_location, create_restore, create_secrets,
    create_target_claim, data_download, data_upload, operation_selector, request_deletion, velero,
    velero_crds,
};
use crate::velero_writes::{Writes, assert_forward, phase, phases, record};

/// A test cluster with Velero's CRDs, its `default` location on the test
/// S3 server (under the namespace's name) and the Secrets; None (skip)
/// without an apiserver or an S3 server.
pub(crate) async fn setup(test: &str) -> Option<(Cluster, S3)> {
    let base = crate::common::s3_base(test)?;
    let c = cluster(test).await?;
    velero_crds(&c.client).await;
    snapshot_crds(&c.client).await;
    let s3 = S3::parse(&base);
    create_secrets(&c).await;
    create_location(&c, &s3, "default", &c.ns, "ReadWrite").await;
    Some((c, s3))
}

/// The controller with Velero support for the test's namespace.
pub(crate) fn start(c: &mut Cluster) {
    let velero = VeleroConfig::new(&c.ns);
    c.start_controller_with(Arc::new(SystemClock), Some(velero));
}

/// Waits for the repository the controller derives from the location
/// `default` when a job first uses it (at `<prefix>/cairn/` in its
/// bucket) to be created and Ready.
pub(crate) async fn derived_repository(c: &Cluster, s3: &S3) -> BackupRepository {
    let repo: BackupRepository = c
        .wait_for("velero-default", "checked", LONG, |r: &BackupRepository| {
            r.status.as_ref().is_some_and(|s| s.phase.is_some())
        })
        .await;
    let st = repo.status.clone().expect("status");
    assert_eq!(st.phase.as_deref(), Some("Ready"), "{:?}", st.message);
    let (start, params) = s3.repository(&c.ns);
    let url = &repo.spec.url;
    assert!(url.starts_with(&start), "{url} is not under {start}");
    for p in params {
        assert!(url.split(['?', '&']).any(|q| q == p), "{url} lacks {p}");
    }
    repo
}

/// The URL of the repository of the `default` location (for the CLI).
fn repository_url(c: &Cluster, s3: &S3) -> String {
    s3.url(&format!("{}/cairn", c.ns))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_data_upload_moves_a_snapshot_and_a_data_download_restores_it_elsewhere() {
    let Some((mut c, s3)) = setup("velero-move").await else {
        return;
    };
    let node = c.create_node("n").await;
    start(&mut c);
    let _agent = c.start_agent(&node);
    let src = c.create_namespace("src").await;
    let claim = source_claim(&mut c, &src, "db", &node, |d| fill(d, 8, 20_000)).await;
    let backup = create_backup(&c, "b1", &src, "default", "cairn").await;

    let done = upload(&mut c, &backup, &claim, &node).await;
    derived_repository(&c, &s3).await;
    let id = done.data["status"]["snapshotID"].as_str().expect("id");
    let url = repository_url(&c, &s3);
    the_snapshot_is_tagged_and_restores(&c, &url, id, &backup, &claim);

    let dst = c.create_namespace("dst").await;
    restore_elsewhere(&mut c, &done, &claim, &dst).await;
    c.cleanup().await;
}

/// The snapshot `id` is in the repository at `url` with Velero's backup
/// in its tags and the original claim as its source, and the CLI restores
/// exactly the claim's content.
fn the_snapshot_is_tagged_and_restores(
    c: &Cluster,
    url: &str,
    id: &str,
    backup: &DynamicObject,
    claim: &SourceClaim,
) {
    let listed = list_snapshots(c, url);
    let snap = listed
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not listed: {listed:?}"));
    let tags: Vec<&str> = snap["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let uid = backup.uid().expect("uid");
    for tag in [
        format!("velero-backup-uid={uid}"),
        "velero-backup=b1".into(),
    ] {
        assert!(tags.contains(&tag.as_str()), "{tag} not in {tags:?}");
    }
    let source = &snap["source"];
    assert_eq!(source["kind"], "kubernetes_volume", "{source}");
    assert_eq!(source["namespace"], claim.namespace.as_str(), "{source}");
    assert_eq!(source["name"], claim.name.as_str(), "{source}");

    let restored = c.scratch.path().join("cli-restore");
    let target = restored.to_str().expect("utf-8");
    cairn(c, url, &["restore", id, "--target", target]);
    assert_eq!(tree(&restored), tree(&claim.content), "byte for byte");
}

/// Velero's restore of the completed DataUpload `done` into namespace
/// `dst`: its claim `db`, waiting for a volume, ends Bound to the volume
/// cairn filled, through Velero's rebind sequence.
async fn restore_elsewhere(c: &mut Cluster, done: &DynamicObject, claim: &SourceClaim, dst: &str) {
    let restore = create_restore(c, "r1", "b1", &claim.namespace, dst).await;
    let selector = create_target_claim(c, dst, "db").await;
    let targets = Api::<PersistentVolumeClaim>::namespaced(c.client.clone(), dst);
    let target = targets.get("db").await.expect("target claim");
    let result = UploadResult::of(done);
    let dds = velero(&c.client, &c.ns, "DataDownload");
    let dd = data_download(&restore, &result, dst, "db");
    let writes = record(&dds, &operation_selector(&dd)).await;
    let dd = create(&dds, dd).await;
    let (pv, dir) = serve_download(c, &dd, &result.snapshot_id, &target).await;
    let writes = writes.end().await;
    let seen = phases(&writes);
    assert_eq!(
        seen.last().map(String::as_str),
        Some("Completed"),
        "{seen:?}: {:?}",
        writes.last().map(|o| &o.data["status"])
    );
    assert_forward(&seen, &FORWARD);

    // Rebound by kube-controller-manager's binder, as Velero leaves it.
    let bound = targets.get("db").await.expect("target claim");
    let spec = bound.spec.expect("spec");
    assert_eq!(spec.volume_name.as_deref(), Some(pv.as_str()));
    let phase = bound.status.and_then(|s| s.phase);
    assert_eq!(phase.as_deref(), Some("Bound"));
    let volume = Api::<PersistentVolume>::all(c.client.clone())
        .get(&pv)
        .await
        .expect("the volume");
    let vspec = volume.spec.clone().expect("spec");
    let claim_ref = vspec.claim_ref.expect("claimRef");
    assert_eq!(
        (claim_ref.namespace.as_deref(), claim_ref.name.as_deref()),
        (Some(dst), Some("db"))
    );
    assert_eq!(
        volume.labels().get("velero.io/dynamic-pv-restore"),
        Some(&selector),
        "the volume matches the claim's selector"
    );
    assert_eq!(
        vspec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete"),
        "the reclaim policy is back"
    );
    let pvcs = c.api::<PersistentVolumeClaim>();
    let name = dd.name_any();
    wait_until("the restore claim to go", LONG, || async {
        pvcs.get_opt(&name).await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(tree(&dir), tree(&claim.content), "the restored volume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_data_movers_are_left_alone() {
    let Some((mut c, _s3)) = setup("velero-others").await else {
        return;
    };
    let node = c.create_node("n").await;
    start(&mut c);
    let src = c.create_namespace("src").await;
    let dst = c.create_namespace("dst").await;
    let claim = source_claim(&mut c, &src, "db", &node, |d| fill(d, 1, 100)).await;
    let (dus, dds) = (
        velero(&c.client, &c.ns, "DataUpload"),
        velero(&c.client, &c.ns, "DataDownload"),
    );
    // Velero's built-in mover takes "velero" and "".
    let mut uploads = Vec::new();
    for (name, mover) in [("bv", "velero"), ("be", "")] {
        let backup = create_backup(&c, name, &src, "default", mover).await;
        let (_, du, vs) = new_upload(&c, &backup, &claim, false).await;
        uploads.push((du.name_any(), vs));
    }
    let restore = create_restore(&c, "rv", "bv", &src, &dst).await;
    create_target_claim(&c, &dst, "db").await;
    let mut result = other_result(&claim, "velero");
    let dd = create(&dds, data_download(&restore, &result, &dst, "db")).await;

    // cairn's own, canceled at once, show that the controller looked.
    let backup = create_backup(&c, "bc", &src, "default", "cairn").await;
    let (writes, _, _) = new_upload(&c, &backup, &claim, true).await;
    assert_eq!(
        phases(&writes.end().await).last().map(String::as_str),
        Some("Canceled")
    );
    let restore = create_restore(&c, "rc", "bc", &src, &dst).await;
    result.mover = "cairn".into();
    create_target_claim(&c, &dst, "other").await;
    let mut control = data_download(&restore, &result, &dst, "other");
    control["spec"]["cancel"] = json!(true);
    let writes = record(&dds, &operation_selector(&control)).await;
    create(&dds, control).await;
    assert_eq!(
        phases(&writes.end().await).last().map(String::as_str),
        Some("Canceled")
    );
    // A few more of the controller's periods (it looks again every 0.5 s).
    tokio::time::sleep(Duration::from_secs(3)).await;

    let untouched = |o: &DynamicObject| {
        o.data
            .get("status")
            .is_none_or(|s| s.as_object().is_none_or(|m| m.is_empty()))
    };
    for (name, vs) in &uploads {
        let du = dus.get(name).await.expect("the DataUpload");
        assert!(untouched(&du), "{name}: {}", du.data["status"]);
        let vb = c.api::<VolumeBackup>().get_opt(name).await.expect("get");
        assert!(vb.is_none(), "a VolumeBackup for {name}");
        let kept = snapshots(&c, &src).get_opt(vs).await.expect("get");
        assert!(kept.is_some(), "Velero's snapshot {vs} stays Velero's");
    }
    let name = dd.name_any();
    let dd = dds.get(&name).await.expect("the DataDownload");
    assert!(untouched(&dd), "{name}: {}", dd.data["status"]);
    let vr = c.api::<VolumeRestore>().get_opt(&name).await.expect("get");
    assert!(vr.is_none(), "a VolumeRestore for {name}");
    let pvc = c
        .api::<PersistentVolumeClaim>()
        .get_opt(&name)
        .await
        .expect("get");
    assert!(pvc.is_none(), "a restore claim for {name}");
    c.cleanup().await;
}

/// Velero's snapshot of `claim` (ready) and the DataUpload for it in
/// `backup` (with `spec.cancel` set when `cancel`), created; returns the
/// record of its writes, the DataUpload and the snapshot's name.
pub(crate) async fn new_upload(
    c: &Cluster,
    backup: &DynamicObject,
    claim: &SourceClaim,
    cancel: bool,
) -> (Writes, DynamicObject, String) {
    let vs = take_snapshot(c, &backup.name_any(), claim).await;
    make_ready(c, claim, &vs).await;
    let mut du = data_upload(backup, &vs, &claim.backed_up(), SNAPSHOT_CLASS, DRIVER);
    if cancel {
        du["spec"]["cancel"] = json!(true);
    }
    let dus = velero(&c.client, &c.ns, "DataUpload");
    let writes = record(&dus, &operation_selector(&du)).await;
    (writes, create(&dus, du).await, vs)
}

/// A backup result as another mover would have left it.
fn other_result(claim: &SourceClaim, mover: &str) -> UploadResult {
    UploadResult {
        location: "default".into(),
        mover: mover.into(),
        snapshot_id: "5e0a2c3f7d1b4e6a8c9f0b1d2e3a4c5b".into(),
        source_namespace: claim.namespace.clone(),
        node_os: "linux".into(),
        size: 100,
        pvc_uid: claim.uid.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn velero_support_needs_an_administrator_namespace() {
    let Some(mut c) = cluster("velero-admin").await else {
        return;
    };
    velero_crds(&c.client).await;
    c.admins = cairn_kube::trust::Admins::new([format!("{}-admin", c.ns)]);
    let velero = VeleroConfig::new(&c.ns);
    let config = c.controller_config(Arc::new(SystemClock), Some(velero));
    let (metrics, _) = Metrics::controller();
    let run = controller::run(
        c.client.clone(),
        config,
        metrics,
        Arc::new(Health::default()),
    );
    let outcome = tokio::time::timeout(LONG, run).await;
    let err = outcome
        .expect("the controller refuses to start instead of running")
        .expect_err("the controller refuses to start");
    assert!(
        err.to_string().contains(&c.ns),
        "the error names the namespace: {err}"
    );
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_backup_request_forgets_the_backups_snapshots() {
    let Some((mut c, s3)) = setup("velero-delete").await else {
        return;
    };
    let node = c.create_node("n").await;
    start(&mut c);
    let _agent = c.start_agent(&node);
    let src = c.create_namespace("src").await;
    let db = source_claim(&mut c, &src, "db", &node, |d| fill(d, 3, 10_000)).await;
    let web = source_claim(&mut c, &src, "web", &node, |d| fill(d, 2, 5_000)).await;
    let b1 = create_backup(&c, "b1", &src, "default", "cairn").await;
    let b2 = create_backup(&c, "b2", &src, "default", "cairn").await;
    let id = |du: DynamicObject| du.data["status"]["snapshotID"].as_str().map(str::to_owned);
    let mut of_b1 = Vec::new();
    for claim in [&db, &web] {
        of_b1.push(id(upload(&mut c, &b1, claim, &node).await).expect("id"));
    }
    let of_b2 = id(upload(&mut c, &b2, &db, &node).await).expect("id");
    let url = repository_url(&c, &s3);
    assert_eq!(list_snapshots(&c, &url).len(), 3);

    let dbr = request_deletion(&c, &b1).await;
    let dbrs = velero(&c.client, &c.ns, "DeleteBackupRequest");
    let name = dbr.name_any();
    let count = wait_until("the DeleteBackupRequest to be handled", LONG, || async {
        let o = dbrs.get(&name).await.ok()?;
        o.annotations()
            .get("cairn.dev/forgotten-snapshots")
            .cloned()
    })
    .await;
    assert_eq!(count, of_b1.len().to_string());
    let left: Vec<Value> = list_snapshots(&c, &url);
    let ids: Vec<&str> = left.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(
        ids,
        [of_b2.as_str()],
        "only b2's snapshot stays (b1 had {of_b1:?})"
    );
    let uid = format!("velero-backup-uid={}", b2.uid().expect("uid"));
    assert!(
        left[0]["tags"]
            .as_array()
            .is_some_and(|t| t.contains(&json!(uid))),
        "{}",
        left[0]
    );
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_location_is_never_written() {
    let Some((mut c, s3)) = setup("velero-read-only").await else {
        return;
    };
    let prefix = format!("{}-ro", c.ns);
    create_location(&c, &s3, "ro", &prefix, "ReadOnly").await;
    let node = c.create_node("n").await;
    start(&mut c);
    let _agent = c.start_agent(&node);
    let src = c.create_namespace("src").await;
    let claim = source_claim(&mut c, &src, "db", &node, |d| fill(d, 2, 1_000)).await;
    let backup = create_backup(&c, "b1", &src, "ro", "cairn").await;
    let (writes, _, _) = new_upload(&c, &backup, &claim, false).await;
    let writes = writes.end().await;
    let last = writes.last().expect("a write");
    assert_eq!(phase(last), "Failed", "{:?}", phases(&writes));
    let message = last.data["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("ReadOnly"), "{message}");

    let store = cairn::Store::open(&s3.url(&prefix), cairn::Create::Never).expect("store");
    let written = store.list("").await.expect("list the location's prefix");
    assert!(written.is_empty(), "written under {prefix}: {written:?}");
    c.cleanup().await;
}
