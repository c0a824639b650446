//! Scheduled repository maintenance on a fake clock: the controller starts
//! a maintenance Job when the schedule is due, and records what the Job's
//! run reported. There is no kubelet here, so the test plays it: it runs
//! `cairn-controller maintain` with the Job's own arguments (the Secrets
//! written where the Job mounts them), and gives the report back the way a
//! kubelet does, as the container's termination message.

use cairn::Maintenance as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn::{BackupOptions, InitOptions, OpenOptions, ParentChoice, Repository, Store};
use cairn::{PruneOptions, Source, StoreOptions, Timestamp};
use cairn_kube::clock::{FileClock, FixedClock};
use cairn_kube::crd::{
    BackupRepository, BackupRepositorySpec, Maintenance, SecretKeyRef, SecretRef,
};
use cairn_kube::maintain::{MaintainArgs, Report};
use cairn_kube::names::{MAINTENANCE_JOB_LABEL, MAINTENANCE_OF_LABEL};
use clap::Parser;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::{PASSWORD, cluster, noise, wait_until};

const DAY: i64 = 86_400;
const AWS: [&str; 3] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"];

#[derive(Parser)]
struct Maintain {
    #[command(flatten)]
    args: MaintainArgs,
}

/// A repository whose history is three days old: snapshots `old` and
/// `kept`, `old` forgotten and marked by a prune two days ago, so a prune
/// now may delete its data. Returns the bytes only `old` holds.
async fn seed(url: &str, now: i64) -> u64 {
    let at = now - 3 * DAY;
    let store = Store::open(url, cairn::Create::IfMissing).expect("store");
    Repository::init(store, PASSWORD.as_bytes(), {
        let mut o = InitOptions::new("seed", "test", at);
        o.data_pack_size = Some(256 * 1024);
        o
    })
    .await
    .expect("init");
    let open = |t: i64| async move {
        let mut opts = OpenOptions::default();
        opts.clock = Arc::new(FixedClock::new(t));
        let store = Store::open_with(url, &StoreOptions::default()).expect("store");
        Repository::open(store, PASSWORD.as_bytes(), opts)
            .await
            .expect("open")
    };
    let dirs = tempfile::tempdir().expect("tempdir");
    let mut ids = Vec::new();
    for (i, name) in ["old", "kept"].iter().enumerate() {
        let dir = dirs.path().join(name);
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("data"), noise(i as u64 + 7, 3 << 20)).expect("write");
        let t = at + 60 * (i as i64 + 1);
        let repo = open(t).await;
        let out = cairn::backup(
            &repo,
            {
                let mut o = BackupOptions::default();
                o.paths = vec![dir];
                o.hostname = "seed".into();
                o.parent = ParentChoice::None;
                o.source = Source::Filesystem;
                o.time = Timestamp { secs: t, nanos: 0 };
                o
            },
            Arc::new(cairn::Progress::default()),
        )
        .await
        .expect("backup");
        ids.push(out.snapshot_id);
    }
    let repo = open(at + 600).await;
    assert!(repo.forget_snapshot(&ids[0]).await.expect("forget"));
    let repo = open(now - 2 * DAY).await;
    let marked = repo
        .prune(PruneOptions::default())
        .await
        .expect("first prune");
    assert!(
        marked.blobs_tombstoned > 0,
        "the first prune marks: {marked:?}"
    );
    3 << 20
}

/// Writes the repository's Secrets where the Job mounts them, and returns
/// the Job's arguments with those paths.
fn as_the_kubelet_would(job: &Job, dir: &Path) -> MaintainArgs {
    let c = &job
        .spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .as_ref()
        .expect("pod")
        .containers[0];
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/cairn-controller".to_owned()][..])
    );
    let args = c.args.clone().expect("args");
    assert_eq!(args[0], "maintain");
    let mut parsed = Maintain::try_parse_from(
        std::iter::once("cairn-controller".to_owned()).chain(args[1..].iter().cloned()),
    )
    .expect("the Job's arguments parse")
    .args;
    std::fs::write(dir.join("password"), format!("{PASSWORD}\n")).expect("write");
    let settings = dir.join("settings");
    std::fs::create_dir_all(&settings).expect("mkdir");
    for k in AWS {
        std::fs::write(settings.join(k), std::env::var(k).expect(k)).expect("write");
    }
    assert!(
        parsed.settings_dir.is_some(),
        "the credentials are passed on"
    );
    parsed.password_file = dir.join("password");
    parsed.settings_dir = Some(settings.clone());
    parsed.cache_dir = Some(dir.join("cache"));
    parsed.report = None;
    if parsed.copy_to_url.is_some() {
        assert!(parsed.copy_to_password_file.is_some() && parsed.copy_to_settings_dir.is_some());
        std::fs::write(dir.join("copy-password"), ARCHIVE_PASSWORD).expect("write");
        parsed.copy_to_password_file = Some(dir.join("copy-password"));
        parsed.copy_to_settings_dir = Some(settings);
    }
    parsed
}

const ARCHIVE_PASSWORD: &str = "the archive's own password";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_maintenance_job_reclaims_the_space_of_forgotten_snapshots() {
    let Some(s3_url) = crate::common::s3_base("the maintenance test") else {
        return;
    };
    let Some(mut c) = cluster("maintenance").await else {
        return;
    };
    let url = crate::common::s3_prefix(&s3_url, &c.ns);
    let now = cairn_kube::kubeutil::wall_now();
    let only_old = seed(&url, now).await;

    let creds: serde_json::Map<String, serde_json::Value> = AWS
        .iter()
        .filter_map(|k| Some((k.to_string(), json!(std::env::var(k).ok()?))))
        .collect();
    for (name, data) in [("s3", json!(creds)), ("pw", json!({"password": PASSWORD}))] {
        let s: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .expect("secret");
        c.api::<Secret>()
            .create(&PostParams::default(), &s)
            .await
            .expect("secret");
    }
    let repo = BackupRepository::new(
        "main",
        BackupRepositorySpec {
            url,
            password_secret_ref: SecretKeyRef {
                name: "pw".into(),
                key: None,
            },
            credentials_secret_ref: Some(SecretRef {
                name: "s3".into(),
                ..Default::default()
            }),
            maintenance: Some(Maintenance {
                schedule: "0 * * * *".into(),
                read_data_subset: Some("100%".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    let created = c
        .api::<BackupRepository>()
        .create(&PostParams::default(), &repo)
        .await
        .expect("repository");
    let uid = created.metadata.uid.expect("uid");

    // Before the first due time nothing runs; then the clock passes the
    // next full hour.
    let now_file = c.scratch.path().join("now");
    std::fs::write(&now_file, now.to_string()).expect("clock");
    c.start_controller(Arc::new(FileClock(now_file.clone())));
    let repos = c.api::<BackupRepository>();
    wait_until(
        "the next run to be scheduled",
        Duration::from_secs(60),
        || {
            let repos = repos.clone();
            async move {
                let st = repos.get("main").await.ok()?.status?.maintenance?;
                st.next_schedule_time
            }
        },
    )
    .await;
    let jobs = c.api::<Job>();
    let selector = format!("{MAINTENANCE_OF_LABEL}={uid}");
    let listed = jobs
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("jobs");
    assert!(listed.items.is_empty(), "nothing runs before it is due");
    let due = (now / 3600 + 1) * 3600;
    std::fs::write(&now_file, (due + 5).to_string()).expect("clock");

    let job = wait_until("the maintenance Job", Duration::from_secs(60), || {
        let (jobs, selector) = (jobs.clone(), selector.clone());
        async move {
            let list = jobs
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            list.items.into_iter().next()
        }
    })
    .await;
    let name = job.metadata.name.clone().expect("name");
    let pod_spec = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod");
    assert_eq!(pod_spec.automount_service_account_token, Some(false));
    assert_eq!(
        pod_spec.containers[0].image.as_deref(),
        Some("cairn.test/cairn:maintenance")
    );

    // The kubelet's part: run it, and report back as it would.
    let scratch = c.scratch.path().join("job");
    std::fs::create_dir_all(&scratch).expect("mkdir");
    let report = cairn_kube::maintain::run(&as_the_kubelet_would(&job, &scratch))
        .await
        .expect("maintenance run");
    assert!(report.ok, "{report:?}");
    assert!(
        report.reclaimed_bytes >= only_old,
        "the forgotten snapshot's {only_old} bytes are freed: {report:?}"
    );
    assert_eq!(report.snapshots, 1);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-x"), "labels": {MAINTENANCE_JOB_LABEL: name}},
        "spec": {"nodeName": "nowhere", "containers": [{"name": "maintain", "image": "i"}]},
    }))
    .expect("pod");
    let pods = c.api::<Pod>();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod");
    let terminated = json!({"status": {"phase": "Succeeded", "containerStatuses": [{
        "name": "maintain", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "message": report.to_bounded_json()}},
    }]}});
    pods.patch_status(
        &format!("{name}-x"),
        &PatchParams::default(),
        &Patch::Merge(terminated),
    )
    .await
    .expect("pod status");
    let t = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let done = json!({"status": {"succeeded": 1, "startTime": t, "completionTime": t, "conditions": [
        {"type": "Complete", "status": "True", "lastProbeTime": t, "lastTransitionTime": t},
    ]}});
    jobs.patch_status(&name, &PatchParams::default(), &Patch::Merge(done))
        .await
        .expect("job status");

    let recorded = wait_until("the run to be recorded", Duration::from_secs(60), || {
        let repos = repos.clone();
        async move {
            let st = repos.get("main").await.ok()?.status?.maintenance?;
            (st.phase.as_deref() == Some("Succeeded")).then_some(st)
        }
    })
    .await;
    assert_eq!(recorded.job.as_deref(), Some(name.as_str()));
    assert_eq!(recorded.reclaimed_bytes, Some(report.reclaimed_bytes));
    assert!(recorded.last_success_time.is_some());
    assert!(
        recorded
            .summary
            .as_deref()
            .is_some_and(|s| s.contains("no problems")),
        "{recorded:?}"
    );
    assert_eq!(
        Report::parse(&report.to_bounded_json()).expect("round trip"),
        report
    );
    c.cleanup().await;
}

/// The secrets of two repositories: S3 credentials (`s3`), and the
/// passwords `pw` and `archive-pw`.
pub(crate) async fn secrets(c: &crate::common::Cluster) {
    let creds: serde_json::Map<String, serde_json::Value> = AWS
        .iter()
        .filter_map(|k| Some((k.to_string(), json!(std::env::var(k).ok()?))))
        .collect();
    for (name, data) in [
        ("s3", json!(creds)),
        ("pw", json!({"password": PASSWORD})),
        ("archive-pw", json!({"password": ARCHIVE_PASSWORD})),
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

pub(crate) fn repository(
    url: &str,
    password: &str,
    maintenance: Option<Maintenance>,
) -> BackupRepositorySpec {
    BackupRepositorySpec {
        url: url.to_owned(),
        password_secret_ref: SecretKeyRef {
            name: password.into(),
            key: None,
        },
        credentials_secret_ref: Some(SecretRef {
            name: "s3".into(),
            ..Default::default()
        }),
        maintenance,
        ..Default::default()
    }
}

/// `copyTo` on a maintenance policy: the run copies every snapshot the
/// archive lacks into it (sealed with the archive's own keys), and the
/// next run copies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_maintenance_run_copies_new_snapshots_into_the_archive_it_names() {
    let Some(s3_url) = crate::common::s3_base("the copy test") else {
        return;
    };
    let Some(mut c) = cluster("maint-copy").await else {
        return;
    };
    let main_url = crate::common::s3_prefix(&s3_url, &format!("{}/main", c.ns));
    let archive_url = crate::common::s3_prefix(&s3_url, &format!("{}/archive", c.ns));
    let now = cairn_kube::kubeutil::wall_now();
    // One snapshot left in the main repository (and one forgotten), none
    // in the archive.
    seed(&main_url, now).await;
    Repository::init(
        Store::open(&archive_url, cairn::Create::IfMissing).expect("store"),
        ARCHIVE_PASSWORD.as_bytes(),
        InitOptions::insecure_fast_for_tests(),
    )
    .await
    .expect("init archive");
    secrets(&c).await;
    let policy = Maintenance {
        schedule: "0 * * * *".into(),
        prune: Some(false),
        check: Some(false),
        copy_to: Some("archive".into()),
        ..Default::default()
    };
    for (name, spec) in [
        ("archive", repository(&archive_url, "archive-pw", None)),
        ("main", repository(&main_url, "pw", Some(policy))),
    ] {
        c.api::<BackupRepository>()
            .create(&PostParams::default(), &BackupRepository::new(name, spec))
            .await
            .expect("repository");
    }
    let now_file = c.scratch.path().join("now");
    std::fs::write(&now_file, ((now / 3600 + 1) * 3600 + 5).to_string()).expect("clock");
    c.start_controller(Arc::new(FileClock(now_file.clone())));
    let jobs = c.api::<Job>();
    let job = wait_until("the maintenance Job", Duration::from_secs(60), || {
        let jobs = jobs.clone();
        async move {
            let list = jobs
                .list(&ListParams::default().labels(MAINTENANCE_OF_LABEL))
                .await
                .ok()?;
            list.items.into_iter().next()
        }
    })
    .await;
    let scratch = c.scratch.path().join("job");
    std::fs::create_dir_all(&scratch).expect("mkdir");
    let args = as_the_kubelet_would(&job, &scratch);
    assert_eq!(args.copy_to_url.as_deref(), Some(archive_url.as_str()));
    let report = cairn_kube::maintain::run(&args).await.expect("run");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.snapshots_copied, 1, "{report:?}");
    assert!(
        report.summary().contains("copied 1 snapshot ("),
        "{}",
        report.summary()
    );
    let archive = Repository::open(
        Store::open(&archive_url, cairn::Create::Never).expect("store"),
        ARCHIVE_PASSWORD.as_bytes(),
        OpenOptions::default(),
    )
    .await
    .expect("open archive");
    assert_eq!(archive.list_snapshots().await.expect("list").len(), 1);
    let again = cairn_kube::maintain::run(&args).await.expect("run again");
    assert_eq!(again.snapshots_copied, 0, "{again:?}");
    c.cleanup().await;
}
