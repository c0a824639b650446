//! A BackupSchedule on a fake clock: each hour it creates a VolumeBackup
//! per selected claim, and retention (keep the last 2) deletes older ones
//! and forgets their snapshots.

use std::sync::Arc;
use std::time::Duration;

use cairn_kube::clock::FileClock;
use cairn_kube::crd::{
    BackupSchedule, BackupScheduleSpec, Phase, RepositoryRef, Retention, VolumeBackup,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ListParams, PostParams};

use crate::common::{cluster, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_on_a_fake_clock_creates_backups_and_applies_retention() {
    let Some(mut c) = cluster("schedule").await else {
        return;
    };
    let node = c.create_node("n").await;
    let pv = c.create_claim("db").await;
    c.create_claim("unselected").await;
    let uid = c.create_pod("app", &node, "db").await;
    let volume = c.volume_dir(&uid, &pv);
    crate::common::fill(&volume, 3, 1000);
    let repo_path = c.init_repository("repo").await;
    c.create_repository_object("main", &repo_path, None).await;

    // The fake clock starts at the real time (a schedule counts due times
    // from its creation) and then jumps from hour to hour.
    let now_file = c.scratch.path().join("now");
    set_clock(&now_file, cairn_kube::kubeutil::wall_now());
    c.start_controller(Arc::new(FileClock(now_file.clone())));
    let _agent = c.start_agent(&node);

    // Every claim here carries backup=yes; this one is taken out.
    let pvcs = c.api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>();
    let relabel = serde_json::json!({"metadata": {"labels": {"backup": "no"}}});
    pvcs.patch(
        "unselected",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(relabel),
    )
    .await
    .expect("relabel");
    let selector = LabelSelector {
        match_labels: Some([("backup".to_owned(), "yes".to_owned())].into()),
        ..Default::default()
    };
    let sched = BackupSchedule::new(
        "hourly",
        BackupScheduleSpec {
            schedule: "0 * * * *".into(),
            repository: RepositoryRef {
                name: "main".into(),
                namespace: None,
            },
            selector: Some(selector),
            retention: Retention {
                keep_last: 2,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let created = c
        .api::<BackupSchedule>()
        .create(&PostParams::default(), &sched)
        .await
        .expect("schedule");
    let created = created
        .metadata
        .creation_timestamp
        .expect("created")
        .0
        .as_second();

    let vbs = c.api::<VolumeBackup>();
    let long = Duration::from_secs(120);
    let mut snapshots = Vec::new();
    for hour in 1..=3 {
        // Just past each following full hour.
        let due = (created / 3600 + hour) * 3600;
        set_clock(&now_file, due + 60);
        let name = format!("hourly-db-{}", minute(due));
        let vb: VolumeBackup = c
            .wait_for(&name, "completed", long, |v: &VolumeBackup| {
                v.status
                    .as_ref()
                    .is_some_and(|s| s.phase == Phase::Completed)
            })
            .await;
        snapshots.push(vb.status.and_then(|s| s.snapshot_id).expect("snapshot"));
        assert_eq!(vb.spec.tags, ["hourly"]);
    }
    let all = vbs.list(&ListParams::default()).await.expect("list").items;
    assert!(
        all.iter().all(|v| v.spec.pvc.name == "db"),
        "only the selected claim is backed up"
    );

    // Retention: the first backup and its snapshot go, two stay.
    let kept = wait_until("retention", long, || {
        let vbs = vbs.clone();
        async move {
            let l = vbs.list(&ListParams::default()).await.ok()?;
            let mut names: Vec<String> = l
                .items
                .into_iter()
                .filter_map(|v| v.metadata.name)
                .collect();
            names.sort();
            (names.len() == 2).then_some(names)
        }
    })
    .await;
    assert!(kept.iter().all(|n| n.starts_with("hourly-db-")), "{kept:?}");
    let repo = c.open_repository(&repo_path).await;
    let ids: Vec<String> = repo
        .list_snapshots()
        .await
        .expect("list")
        .into_iter()
        .map(|(id, _)| id.to_hex())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(
        !ids.contains(&snapshots[0]),
        "the oldest snapshot was forgotten"
    );
    assert!(ids.contains(&snapshots[1]) && ids.contains(&snapshots[2]));

    let s: BackupSchedule = c
        .wait_for("hourly", "status", long, |s: &BackupSchedule| {
            s.status
                .as_ref()
                .is_some_and(|st| st.summary.as_deref() == Some("2 Completed"))
        })
        .await;
    let st = s.status.expect("status");
    assert_eq!(st.phase.as_deref(), Some("Active"));
    assert!(st.next_schedule_time.is_some());
    // "Is my data protected?" at a glance: the one selected claim has a
    // completed backup, and the newest completed when the last one did.
    assert_eq!(st.protected_claims.as_deref(), Some("1/1"));
    assert!(st.unprotected_claims.is_empty());
    let newest = vbs
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .filter_map(|v| v.status.as_ref()?.completion_time.clone())
        .max_by_key(|t| t.0);
    assert_eq!(st.last_successful_time, newest);
    c.cleanup().await;
}

/// Moves the fake clock (atomically: the controller never reads half a file).
fn set_clock(file: &std::path::Path, t: i64) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, t.to_string()).expect("clock");
    std::fs::rename(&tmp, file).expect("clock");
}

/// `yyyymmdd-hhmm` of a time.
fn minute(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .expect("time")
        .format("%Y%m%d-%H%M")
        .to_string()
}
