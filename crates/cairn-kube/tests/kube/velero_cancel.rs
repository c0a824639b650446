//! Velero cancels a DataUpload (`spec.cancel: true`) on an operation
//! timeout, a backup deletion or its own restart, in whatever phase the
//! upload is. cairn ends each in `Canceled`, never `Failed`, and leaves
//! the repository clean. `Prepared` is cairn's job assigned to a node and
//! not started there: queued behind another on a busy agent (which ends it
//! when told), or on a node whose agent stopped before it could (the
//! controller ends it once the agent's Lease has expired).

use cairn::Maintenance as _;
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
use crate::velero_fakes::{
    LONG, S3, create, create_backup, data_upload, operation_selector, velero,
};
use crate::velero_writes::{Writes, phases, record};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_ends_canceled_in_every_phase() {
    let Some((mut c, s3)) = setup("velero-cancel").await else {
        return;
    };
    let node = c.create_node("n").await;
    start(&mut c);
    // One job at a time: a second one waits, Assigned (Prepared).
    let mut agent = c.agent_config(&node);
    agent.max_concurrent = 1;
    let _agent = c.start_agent_with(agent);
    let src = c.create_namespace("src").await;
    let backup = create_backup(&c, "b1", &src, "default", "cairn").await;

    cancel_at_once(&mut c, &backup, &src, &node).await;
    cancel_accepted(&mut c, &backup, &src, &node).await;
    derived_repository(&c, &s3).await;
    let running = start_slow(&mut c, &backup, &src, &node).await;
    cancel_queued(&mut c, &backup, &src, &node).await;
    cancel_in_progress(&c, running).await;
    the_repository_is_clean(&c, &s3).await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_while_prepared_ends_canceled_when_the_nodes_agent_stopped() {
    let Some((mut c, s3)) = setup("velero-cancel-idle").await else {
        return;
    };
    let node = c.create_node("idle").await;
    start(&mut c);
    let src = c.create_namespace("src").await;
    let backup = create_backup(&c, "b1", &src, "default", "cairn").await;
    cancel_prepared(&mut c, &backup, &src, &node).await;
    the_repository_is_clean(&c, &s3).await;
    c.cleanup().await;
}

/// No snapshot in the repository of the location `default`, and `check
/// --read-data` finds nothing wrong: what was uploaded is indexed.
async fn the_repository_is_clean(c: &Cluster, s3: &S3) {
    let url = s3.url(&format!("{}/cairn", c.ns));
    assert!(list_snapshots(c, &url).is_empty(), "no snapshot was made");
    let store = cairn::Store::open(&url, cairn::Create::Never).expect("store");
    let repo = cairn::Repository::open(store, PASSWORD.as_bytes(), Default::default())
        .await
        .expect("open");
    let report = repo
        .check({
            let mut o = CheckOptions::default();
            o.read_data = true;
            o
        })
        .await
        .expect("check");
    assert!(
        report.errors.is_empty() && report.warnings.is_empty(),
        "{report:?}"
    );
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

/// (c) Canceled while Prepared on a node whose agent then stops: its Lease
/// was renewed (so the job was placed there), and stops being renewed
/// when the cancel comes. A live agent ends a job it was told to stop; for
/// one that is gone, the controller does once the Lease has expired.
async fn cancel_prepared(c: &mut Cluster, backup: &DynamicObject, src: &str, node: &str) {
    let lease = lease_without_agent(c, node);
    let claim = small_claim(c, src, "prepared", node).await;
    let (writes, du, vs) = new_upload(c, backup, &claim, false).await;
    serve_upload(c, &du, &claim, &vs).await;
    let prepared = writes.reached("Prepared").await;
    let st = &prepared.data["status"];
    assert_eq!(st["node"], node, "{st}");
    cancel(c, &du.name_any()).await;
    lease.abort();
    ends_canceled(writes, "canceled while Prepared, its agent gone").await;
    c.api::<Lease>()
        .delete(&agent_lease(node), &DeleteParams::default())
        .await
        .expect("delete the lease");
}

/// (c) Canceled while Prepared: queued on the agent of `node` behind a
/// running job.
async fn cancel_queued(c: &mut Cluster, backup: &DynamicObject, src: &str, node: &str) {
    let claim = small_claim(c, src, "queued", node).await;
    let (writes, du, vs) = new_upload(c, backup, &claim, false).await;
    serve_upload(c, &du, &claim, &vs).await;
    let prepared = writes.reached("Prepared").await;
    let st = &prepared.data["status"];
    assert_eq!(st["node"], node, "{st}");
    cancel(c, &du.name_any()).await;
    ends_canceled(writes, "canceled while Prepared").await;
}

/// A DataUpload that runs for a minute unless canceled: a few MiB that
/// cannot be compressed, uploaded at 64 KiB/s. Returns once it is
/// InProgress.
async fn start_slow(
    c: &mut Cluster,
    backup: &DynamicObject,
    src: &str,
    node: &str,
) -> (String, Writes) {
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
    (du.name_any(), writes)
}

/// (d) Canceled while InProgress: the slow upload `name`.
async fn cancel_in_progress(c: &Cluster, (name, writes): (String, Writes)) {
    let running = writes.phases();
    assert_eq!(
        running.last().map(String::as_str),
        Some("InProgress"),
        "{running:?}"
    );
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
