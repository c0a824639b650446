//! A restore into a claim that does not exist yet: the controller creates
//! it from the restore's template (naming the node of a live agent for a
//! provisioner that waits for its first consumer), the test plays the
//! provisioner and the kubelet, and the new claim holds the backed-up
//! files.

use std::sync::Arc;

use cairn::{BackupOptions, Source};
use std::time::Duration;

use cairn_kube::crd::{
    BackupRepository, ClaimTemplate, Phase, PvcRef, RepositoryRef, VolumeBackup, VolumeBackupSpec,
    VolumeRestore, VolumeRestoreSpec,
};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{ListParams, PostParams};

use std::path::PathBuf;

use crate::common::{Cluster, cluster, fill, tree, wait_until};

const LONG: Duration = Duration::from_secs(120);

/// A VolumeBackup `name` of claim `data`, run to Completed.
async fn back_up_data(c: &Cluster, name: &str) {
    let vb = VolumeBackup::new(
        name,
        VolumeBackupSpec {
            pvc: PvcRef {
                name: "data".into(),
                namespace: None,
            },
            repository: repository(),
            ..Default::default()
        },
    );
    c.api::<VolumeBackup>()
        .create(&PostParams::default(), &vb)
        .await
        .expect("backup");
    let done: VolumeBackup = c
        .wait_for(name, "a final phase", LONG, |v: &VolumeBackup| {
            v.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    let st = done.status.expect("status");
    assert_eq!(st.phase, Phase::Completed, "{:?}", st.message);
}

fn repository() -> RepositoryRef {
    RepositoryRef {
        name: "main".into(),
        namespace: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_creates_its_missing_target_claim_and_fills_it() {
    let Some(mut c) = cluster("restore-new").await else {
        return;
    };
    let node = c.create_node("n").await;
    let pv = c.create_claim("data").await;
    let uid = c.create_pod("app", &node, "data").await;
    let volume = c.volume_dir(&uid, &pv);
    fill(&volume, 6, 20_000);
    let repo_path = c.init_repository("repo").await;
    c.create_repository_object("main", &repo_path, None).await;
    c.start_controller(Arc::new(cairn_kube::clock::SystemClock));
    let _agent = c.start_agent(&node);

    back_up_data(&c, "before").await;

    let vr = VolumeRestore::new(
        "rebuild",
        VolumeRestoreSpec {
            repository: repository(),
            source_pvc: Some(PvcRef {
                name: "data".into(),
                namespace: None,
            }),
            target_pvc: PvcRef {
                name: "rebuilt".into(),
                namespace: None,
            },
            create_target_pvc: Some(ClaimTemplate {
                size: "2Gi".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    c.api::<VolumeRestore>()
        .create(&PostParams::default(), &vr)
        .await
        .expect("restore");

    let target = provision_and_mount(&mut c, "rebuild", "rebuilt", &node).await;
    let restored: VolumeRestore = c
        .wait_for("rebuild", "a final phase", LONG, |v: &VolumeRestore| {
            v.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    let st = restored.status.expect("status");
    assert_eq!(st.phase, Phase::Completed, "{:?}", st.message);
    assert_eq!(
        tree(&target),
        tree(&volume),
        "the new claim holds the backup"
    );
    c.cleanup().await;
}

/// Plays the provisioner for the claim `claim` that the restore `restore`
/// makes (checking what it asks for) and the kubelet for the restore's
/// helper pod; returns the directory the helper pod mounts.
async fn provision_and_mount(c: &mut Cluster, restore: &str, claim: &str, node: &str) -> PathBuf {
    // The provisioner: a volume for the claim the controller created.
    let pvcs = c.api::<PersistentVolumeClaim>();
    let vrs = c.api::<VolumeRestore>();
    let created = wait_until("the target claim", LONG, || {
        let (pvcs, vrs) = (pvcs.clone(), vrs.clone());
        async move {
            let st = vrs.get(restore).await.ok()?.status;
            let ended = st.as_ref().filter(|s| s.phase.is_terminal());
            assert!(ended.is_none(), "the restore ended early: {ended:?}");
            pvcs.get_opt(claim).await.ok()?
        }
    })
    .await;
    let spec = created.spec.clone().expect("spec");
    let size = spec
        .resources
        .and_then(|r| r.requests)
        .and_then(|r| r.get("storage").cloned());
    assert_eq!(size.map(|q| q.0), Some("2Gi".to_owned()));
    let annotations = created.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("volume.kubernetes.io/selected-node"),
        Some(&node.to_owned()),
        "a provisioner that waits for a consumer learns a node with an agent"
    );
    let pv2 = crate::provision::provision(c, claim, "2Gi").await;

    // The kubelet: the helper pod mounts the new, empty volume.
    let pods = c.api::<Pod>();
    let helper: Pod = wait_until("the restore's helper pod", LONG, || {
        let pods = pods.clone();
        async move {
            let l = pods
                .list(&ListParams::default().labels("cairn.dev/helper=restore"))
                .await
                .ok()?;
            l.items.into_iter().next()
        }
    })
    .await;
    let target = c.volume_dir(helper.metadata.uid.as_deref().expect("uid"), &pv2);
    c.schedule_and_run(&helper).await;

    target
}

/// Two clusters write into one repository on S3 (Garage) under their own
/// names. The old
/// cluster's snapshot of a claim is listed by `cairn snapshots --cluster`,
/// and a VolumeRestore in an administrator namespace of the new cluster
/// names it with `sourceCluster` and restores it into a claim it creates,
/// though this cluster has a newer snapshot of a claim of the same name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_administrator_restores_another_clusters_snapshot_into_a_new_claim() {
    let Some(s3) = crate::common::s3_base("the two-cluster test") else {
        return;
    };
    let Some(mut c) = cluster("restore-west").await else {
        return;
    };
    let node = c.create_node("n").await;
    let url = crate::common::s3_prefix(&s3, &c.ns);
    cairn::Repository::init(
        cairn::Store::open(&url, cairn::Create::IfMissing).expect("store"),
        crate::common::PASSWORD.as_bytes(),
        cairn::InitOptions::insecure_fast_for_tests(),
    )
    .await
    .expect("init on S3");
    // The lost cluster "west" backed up claim `data` of this namespace.
    let west = c.scratch.path().join("west");
    std::fs::create_dir_all(&west).expect("mkdir");
    fill(&west, 4, 15_000);
    let repo = cairn::Repository::open(
        cairn::Store::open(&url, cairn::Create::Never).expect("store"),
        crate::common::PASSWORD.as_bytes(),
        Default::default(),
    )
    .await
    .expect("open");
    cairn::backup(
        &repo,
        {
            let mut o = BackupOptions::default();
            o.paths = vec![west.clone()];
            o.hostname = "west-node".into();
            o.parent = cairn::ParentChoice::None;
            o.source = Source::KubernetesVolume {
                cluster: "west".into(),
                namespace: c.ns.clone(),
                name: "data".into(),
            };
            o.time = cairn::Timestamp {
                secs: cairn_kube::kubeutil::wall_now() - 3600,
                nanos: 0,
            };
            o
        },
        Arc::new(cairn::Progress::default()),
    )
    .await
    .expect("the west cluster's backup");
    // This cluster ("test") has a newer snapshot of its own `data`.
    let pv = c.create_claim("data").await;
    let uid = c.create_pod("app", &node, "data").await;
    fill(&c.volume_dir(&uid, &pv), 2, 1_000);
    crate::maintenance::secrets(&c).await;
    c.api::<BackupRepository>()
        .create(
            &PostParams::default(),
            &BackupRepository::new("main", crate::maintenance::repository(&url, "pw", None)),
        )
        .await
        .expect("repository");
    c.start_controller(Arc::new(cairn_kube::clock::SystemClock));
    let _agent = c.start_agent(&node);
    back_up_data(&c, "here").await;

    // The CLI tells the clusters apart.
    let listed = |args: &[&str]| -> usize {
        let out = std::process::Command::new(crate::common::cli())
            .args(["-r", url.as_str(), "snapshots", "--json"])
            .args(args)
            .env("CAIRN_PASSWORD", crate::common::PASSWORD)
            .env("CAIRN_CACHE_DIR", c.scratch.path().join("cli-cache"))
            .output()
            .expect("run cairn");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v.as_array().map_or(0, Vec::len)
    };
    assert_eq!(listed(&["--cluster", "west"]), 1);
    assert_eq!(listed(&["--cluster", "test"]), 1);
    assert_eq!(listed(&["--claim", &format!("{}/", c.ns)]), 2);
    assert_eq!(
        listed(&["--claim", &format!("{}/data", c.ns), "--cluster", "west"]),
        1
    );

    let vr = VolumeRestore::new(
        "from-west",
        VolumeRestoreSpec {
            repository: repository(),
            source_pvc: Some(PvcRef {
                name: "data".into(),
                namespace: None,
            }),
            source_cluster: Some("west".into()),
            target_pvc: PvcRef {
                name: "west-data".into(),
                namespace: None,
            },
            create_target_pvc: Some(ClaimTemplate {
                size: "2Gi".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    c.api::<VolumeRestore>()
        .create(&PostParams::default(), &vr)
        .await
        .expect("restore");
    let target = provision_and_mount(&mut c, "from-west", "west-data", &node).await;
    let restored: VolumeRestore = c
        .wait_for("from-west", "a final phase", LONG, |v: &VolumeRestore| {
            v.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    let st = restored.status.expect("status");
    assert_eq!(st.phase, Phase::Completed, "{:?}", st.message);
    assert_eq!(tree(&target), tree(&west), "the west cluster's files");
    c.cleanup().await;
}
