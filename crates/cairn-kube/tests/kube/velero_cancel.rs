//! Velero cancels a DataUpload (`spec.cancel: true`) on an operation
//! timeout, a backup deletion or its own restart, in whatever phase the
//! upload is. cairn ends each in `Canceled`, never `Failed`, and leaves
//! the repository clean.

use std::time::Duration;

use cairn::CheckOptions;
use cairn_kube::crd::{BackupRepository, VolumeBackup};
use cairn_kube::names::{AGENT_FINALIZER, agent_lease};
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::common::{Cluster, PASSWORD, fill, noise};
use crate::velero::{derived_repository, new_upload, setup, start};
use crate::velero_cluster::{
    DRIVER, SNAPSHOT_CLASS, SourceClaim, list_snapshots, serve_upload, source_claim, take_snapshot,
};
use crate::velero_fakes::{LONG, create, create_backup, data_upload, operation_selector, velero};
use crate::velero_writes::{Writes, phases, record};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_ends_canceled_in_every_phase() {
    let Some((mut c, s3)) = setup("velero-cancel").await else {
        return;
    };
    let idle = c.create_node("idle").await;
    let busy = c.create_node("busy").await;
    start(&mut c);
    derived_repository(&c, &s3).await;
    let src = c.create_namespace("src").await;
    let backup = create_backup(&c, "b1", &src, "default", "cairn").await;

    // Before any agent runs, so that the job can only go to `idle`.
    cancel_prepared(&mut c, &backup, &src, &idle).await;
    let _agent = c.start_agent(&busy);
    cancel_at_once(&mut c, &backup, &src, &busy).await;
    cancel_accepted(&mut c, &backup, &src, &busy).await;
    cancel_in_progress(&mut c, &backup, &src, &busy).await;

    let url = s3.url(&format!("{}/cairn", c.ns));
    assert!(list_snapshots(&c, &url).is_empty(), "no snapshot was made");
    let store = cairn::Store::open(&url, false).expect("store");
    let repo = cairn::Repository::open(store, PASSWORD.as_bytes(), Default::default())
        .await
        .expect("open");
    let report = repo
        .check(CheckOptions { read_data: true })
        .await
        .expect("check");
    assert!(
        report.errors.is_empty() && report.warnings.is_empty(),
        "{report:?}"
    );
    c.cleanup().await;
}

/// Sets `spec.cancel` on the DataUpload `name`, as Velero does.
async fn cancel(c: &Cluster, name: &str) {
    velero(&c.client, &c.ns, "DataUpload")
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cancel": true}})),
        )
        .await
        .expect("cancel");
}

/// Waits for the end of what `writes` records: Canceled, never Failed.
async fn ends_canceled(writes: Writes, case: &str) {
    let writes = writes.end().await;
    let seen = phases(&writes);
    assert_eq!(
        seen.last().map(String::as_str),
        Some("Canceled"),
        "{case}: {seen:?}, {:?}",
        writes.last().map(|o| &o.data["status"])
    );
    assert!(!seen.iter().any(|p| p == "Failed"), "{case}: {seen:?}");
}

/// A claim of `src` mounted on `node` holding a few small files.
async fn small_claim(c: &mut Cluster, src: &str, name: &str, node: &str) -> SourceClaim {
    source_claim(c, src, name, node, |d| fill(d, 2, 1_000)).await
}

/// (a) Canceled before cairn saw it.
async fn cancel_at_once(c: &mut Cluster, backup: &DynamicObject, src: &str, node: &str) {
    let claim = small_claim(c, src, "at-once", node).await;
    let (writes, _, _) = new_upload(c, backup, &claim, true).await;
    ends_canceled(writes, "canceled when created").await;
}

/// (b) Canceled while Accepted: the snapshot is never ready, so cairn
/// waits.
async fn cancel_accepted(c: &mut Cluster, backup: &DynamicObject, src: &str, node: &str) {
    let claim = small_claim(c, src, "unready", node).await;
    let vs = take_snapshot(c, &backup.name_any(), &claim).await;
    let du = data_upload(backup, &vs, &claim.backed_up(), SNAPSHOT_CLASS, DRIVER);
    let dus = velero(&c.client, &c.ns, "DataUpload");
    let writes = record(&dus, &operation_selector(&du)).await;
    let du = create(&dus, du).await;
    writes.reached("Accepted").await;
    cancel(c, &du.name_any()).await;
    ends_canceled(writes, "canceled while Accepted").await;
}

/// A live agent's Lease for `node`, renewed as the agent renews it, with
/// no agent behind it: jobs are placed there and never start.
fn lease_without_agent(c: &Cluster, node: &str) -> JoinHandle<()> {
    let (client, api, node) = (c.client.clone(), c.api::<Lease>(), node.to_owned());
    tokio::spawn(async move {
        let owner = cairn_kube::agent::lease::node_owner(&client, &node).await;
        loop {
            let every = Duration::from_secs(1);
            let _ = cairn_kube::agent::lease::renew(&api, &node, every * 10, owner.clone()).await;
            tokio::time::sleep(every).await;
        }
    })
}

/// (c) Canceled while Prepared: the helper pod runs on a node whose agent
/// never starts the job.
async fn cancel_prepared(c: &mut Cluster, backup: &DynamicObject, src: &str, node: &str) {
    let lease = lease_without_agent(c, node);
    let claim = small_claim(c, src, "prepared", node).await;
    let (writes, du, vs) = new_upload(c, backup, &claim, false).await;
    serve_upload(c, &du, &claim, &vs).await;
    let prepared = writes.reached("Prepared").await;
    assert_eq!(
        prepared.data["status"]["node"], node,
        "{}",
        prepared.data["status"]
    );
    cancel(c, &du.name_any()).await;
    ends_canceled(writes, "canceled while Prepared").await;
    lease.abort();
    c.api::<Lease>()
        .delete(&agent_lease(node), &DeleteParams::default())
        .await
        .expect("delete the lease");
}

/// (d) Canceled while InProgress: a few MiB that cannot be compressed,
/// uploaded at 64 KiB/s.
async fn cancel_in_progress(c: &mut Cluster, backup: &DynamicObject, src: &str, node: &str) {
    c.api::<BackupRepository>()
        .patch(
            "velero-default",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"limitUploadKib": 64}})),
        )
        .await
        .expect("slow the repository down");
    let claim = source_claim(c, src, "big", node, |d| {
        for i in 0..4 {
            std::fs::write(d.join(format!("f{i}")), noise(i, 1 << 20)).expect("write");
        }
    })
    .await;
    let (writes, du, vs) = new_upload(c, backup, &claim, false).await;
    serve_upload(c, &du, &claim, &vs).await;
    writes.reached("InProgress").await;
    let name = du.name_any();
    cancel(c, &name).await;
    ends_canceled(writes, "canceled while InProgress").await;
    // The agent has let go of the run (and written what it uploaded).
    let vbs = c.api::<VolumeBackup>();
    crate::common::wait_until("the agent to let go", LONG, || async {
        let vb = vbs.get_opt(&name).await.ok()?;
        let held = vb.is_some_and(|v| v.finalizers().iter().any(|f| f == AGENT_FINALIZER));
        (!held).then_some(())
    })
    .await;
}
