//! Repository maintenance on a schedule, on the real node: the controller
//! starts a Job from its own image in the repository's namespace, the
//! kubelet runs `cairn-controller maintain` with the repository's Secrets
//! mounted, and the run's report comes back through the container's
//! termination message into the repository's status.
//!
//! Prune deletes data only a grace period (at least an hour) after a run
//! marked it, so the history the run acts on is written first from this
//! host with a clock set back: two backups three days ago, retention
//! forgetting the older one, and a maintenance run marking its data two
//! days ago. The scheduled run on the node then reclaims that space.

use cairn::Maintenance as _;
use std::sync::Arc;

use cairn::{BackupOptions, OpenOptions, ParentChoice, PruneOptions, Repository, Source, Store};
use cairn_kube::clock::FixedClock;
use cairn_kube::crd::BackupRepository;
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::common::{MINUTE, node, rand_hex, wait_until};
use crate::fixture::{AGENT, PASSWORD, create_repository, deployed, kubectl, objects, s3_url};

const DAY: i64 = 86_400;

async fn open_at(prefix: &str, t: i64) -> Repository {
    let store = Store::open(&s3_url(prefix, false), cairn::Create::Never).expect("store");
    let mut opts = OpenOptions::default();
    opts.clock = Arc::new(FixedClock::new(t));
    Repository::open(store, PASSWORD.as_bytes(), opts)
        .await
        .expect("open repository")
}

/// Two backups three days ago, the older forgotten, its data marked two
/// days ago; returns the bytes only the older one held.
async fn old_history(prefix: &str, now: i64) -> u64 {
    let dirs = tempfile::tempdir().expect("tempdir");
    let mut ids = Vec::new();
    for (i, name) in ["old", "kept"].iter().enumerate() {
        let dir = dirs.path().join(name);
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(
            dir.join("data"),
            cairn_testkit::noise(i as u64 + 1, 4 << 20),
        )
        .expect("write");
        let t = now - 3 * DAY + 60 * i as i64;
        let repo = open_at(prefix, t).await;
        let out = cairn::backup(
            &repo,
            {
                let mut o = BackupOptions::default();
                o.paths = vec![dir];
                o.hostname = "seed".into();
                o.parent = ParentChoice::None;
                o.source = Source::Filesystem;
                o.time = cairn::Timestamp { secs: t, nanos: 0 };
                o
            },
            Arc::new(cairn::Progress::default()),
        )
        .await
        .expect("backup");
        ids.push(out.snapshot_id);
    }
    let repo = open_at(prefix, now - 3 * DAY + 600).await;
    assert!(repo.forget_snapshot(&ids[0]).await.expect("forget"));
    let marked = open_at(prefix, now - 2 * DAY)
        .await
        .prune(PruneOptions::default())
        .await
        .expect("the earlier run");
    assert!(marked.blobs_tombstoned > 0, "{marked:?}");
    4 << 20
}

/// A BackupRepository with a maintenance policy gets a Job on the node at
/// the next minute; the run frees the forgotten snapshot's data, and the
/// repository's status says how much, with no problem found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_maintenance_job_on_the_node_reclaims_forgotten_space() {
    let Some(node) = node("maintenance").await else {
        return;
    };
    deployed(&node).await;
    // The controller must not be redeployed under the run (the block test
    // does so, holding this for writing).
    let _installation = AGENT.read().await;
    let name = format!("maint-{}", rand_hex());
    // A namespace keeping its own repository: the administrator lets cairn
    // read repository Secrets there, as docs/KUBERNETES.md says (the
    // maintenance Job mounts them; the controller checks the repository).
    let rbac = cairn_testkit::workspace_root().join("deploy/base/rbac-secrets.yaml");
    kubectl(&["apply", "-n", &node.ns, "-f", &rbac.to_string_lossy()]);
    create_repository(&node.client, &node.ns, &name, &[], None).await;
    let now = cairn_kube::kubeutil::wall_now();
    let only_old = old_history(&name, now).await;
    let (_, before) = objects(&name, "data").await;

    let repos: Api<BackupRepository> = Api::namespaced(node.client.clone(), &node.ns);
    let policy = json!({"spec": {"maintenance": {
        "schedule": "* * * * *",
        "readDataSubset": "100%",
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    }}});
    repos
        .patch(&name, &PatchParams::default(), &Patch::Merge(&policy))
        .await
        .expect("maintenance policy");
    let status = wait_until("a maintenance run to be recorded", 4 * MINUTE, || {
        let (repos, name) = (repos.clone(), name.clone());
        async move {
            let st = repos.get(&name).await.ok()?.status?.maintenance?;
            matches!(st.phase.as_deref(), Some("Succeeded" | "Failed")).then_some(st)
        }
    })
    .await;
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    let reclaimed = status.reclaimed_bytes.unwrap_or(0);
    assert!(
        reclaimed >= only_old,
        "the forgotten snapshot's {only_old} bytes are freed: {status:?}"
    );
    assert!(status.problems.is_empty(), "{status:?}");
    assert!(status.last_success_time.is_some());
    let (_, after) = objects(&name, "data").await;
    assert!(
        before - after >= only_old,
        "data/ shrank from {before} to {after} bytes"
    );
    // The Job ran on the node, from the controller's image.
    let jobs: Api<Job> = Api::namespaced(node.client.clone(), &node.ns);
    let list = jobs
        .list(&ListParams::default().labels(cairn_kube::names::MAINTENANCE_OF_LABEL))
        .await
        .expect("jobs");
    let job = list.items.first().expect("a maintenance Job");
    let image = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone());
    assert_eq!(image.as_deref(), Some(node.image.as_str()));
    node.cleanup().await;
}
