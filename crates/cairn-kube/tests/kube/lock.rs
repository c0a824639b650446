//! A maintenance run of a repository with an Object Lock setting extends
//! its retentions (`cairn lock extend`) and says so in its report, against
//! moto's object-lock bucket (scripts/moto.sh; `CAIRN_TEST_MOTO_LOCK_URL`).
//! No apiserver is needed: the run is called as the Job's container would.
//! Without moto the test prints SKIP, unless `CAIRN_REQUIRE_MOTO` is set.
//! Also here: a Velero backup's deletion while Object Lock still retains
//! its snapshots.

use std::sync::Arc;

use cairn::{BackupOptions, InitOptions, Lock, LockMode, OpenOptions, ParentChoice, Repository};
use cairn::{SettingsChange, Source, Store, Timestamp};
use cairn_kube::maintain::MaintainArgs;

use crate::common::{PASSWORD, noise};

/// A fresh location in moto's lock bucket, or `None` without moto.
fn moto_lock_location(test: &str) -> Option<String> {
    let Ok(base) = std::env::var("CAIRN_TEST_MOTO_LOCK_URL") else {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_MOTO").is_none(),
            "CAIRN_REQUIRE_MOTO is set but CAIRN_TEST_MOTO_LOCK_URL is not"
        );
        eprintln!("SKIP {test}: CAIRN_TEST_MOTO_LOCK_URL is not set (scripts/test.sh starts moto)");
        return None;
    };
    let (head, query) = base.split_once('?').unwrap_or((&base, ""));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Some(format!(
        "{head}/{test}-{}-{nanos}?{query}",
        std::process::id()
    ))
}

/// A repository at `url` with a governance lock of an hour, and one
/// backup in it tagged `tags`; returns the time of the backup.
async fn locked_repository_with_a_backup(url: &str, tags: &[&str]) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut opts = InitOptions::new("seed", "test", now);
    let mut lock = SettingsChange::new();
    lock.lock = Some(Some(Lock {
        mode: LockMode::Governance,
        seconds: 3600,
    }));
    opts.settings = lock;
    let store = Store::open(url, cairn::Create::IfMissing).expect("store");
    Repository::init(store, PASSWORD.as_bytes(), opts)
        .await
        .expect("init");
    let repo = Repository::open(
        Store::open(url, cairn::Create::Never).expect("store"),
        PASSWORD.as_bytes(),
        OpenOptions::default(),
    )
    .await
    .expect("open");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("data"), noise(3, 1 << 20)).expect("write");
    cairn::backup(
        &repo,
        {
            let mut o = BackupOptions::default();
            o.paths = vec![dir.path().to_owned()];
            o.hostname = "seed".into();
            o.parent = ParentChoice::None;
            o.source = Source::Filesystem;
            o.tags = tags.iter().map(|t| t.to_string()).collect();
            o.time = Timestamp {
                secs: now,
                nanos: 0,
            };
            o
        },
        Arc::new(cairn::Progress::default()),
    )
    .await
    .expect("backup");
    now
}

/// The Job's arguments for a prune and check of `url`, with its Secrets
/// written under `files` as the Job mounts them: the password, and the
/// bucket's credentials (moto takes any).
fn maintenance_args(url: &str, files: &std::path::Path) -> MaintainArgs {
    let password = files.join("password");
    std::fs::write(&password, PASSWORD).expect("write");
    let settings = files.join("settings");
    std::fs::create_dir(&settings).expect("mkdir");
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        let v = std::env::var(var).unwrap_or_else(|_| "cairn-moto".into());
        std::fs::write(settings.join(var), v).expect("write");
    }
    MaintainArgs {
        url: url.to_owned(),
        password_file: password,
        settings_dir: Some(settings),
        settings_aws_profile: None,
        ca_cert: None,
        cache_dir: None,
        limit_upload_kib: None,
        prune: true,
        grace_secs: 3600,
        check: true,
        read_data_subset: None,
        copy_to_url: None,
        copy_to_password_file: None,
        copy_to_settings_dir: None,
        copy_to_settings_aws_profile: None,
        copy_to_ca_cert: None,
        copy_to_limit_upload_kib: None,
        report: None,
        test_now_file: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_extends_object_lock_retention_and_reports_it() {
    let Some(url) = moto_lock_location("maintain_lock") else {
        return;
    };
    let now = locked_repository_with_a_backup(&url, &[]).await;
    let files = tempfile::tempdir().expect("tempdir");
    let report = cairn_kube::maintain::run(&maintenance_args(&url, files.path()))
        .await
        .expect("run");
    assert!(report.ok, "{report:?}");
    // Everything was written moments ago with an hour's retention: more
    // than half of it is left, so nothing needs extending yet.
    assert_eq!(report.lock_extended, Some(0), "{report:?}");
    let until = report.lock_earliest_until.expect("a retention date");
    assert!(until > now + 1800, "{report:?}");
    assert!(
        report
            .summary()
            .contains("object lock: 0 retentions extended"),
        "{}",
        report.summary()
    );
    let back = cairn_kube::maintain::Report::parse(&report.to_bounded_json()).expect("parse");
    assert_eq!(back.lock_earliest_until, Some(until));
}

/// A DeleteBackupRequest whose snapshots Object Lock still retains counts
/// them and waits (the controller looks again later) instead of failing
/// its reconcile and retrying every few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_velero_deletion_counts_retained_snapshots_instead_of_failing() {
    use cairn_kube::controller::velero::deletion::{Tally, forget_backup};
    let Some(url) = moto_lock_location("velero_deletion_lock") else {
        return;
    };
    locked_repository_with_a_backup(&url, &["velero-backup-uid=u1"]).await;
    let repo = Repository::open(
        Store::open(&url, cairn::Create::Never).expect("store"),
        PASSWORD.as_bytes(),
        OpenOptions::default(),
    )
    .await
    .expect("open");
    let tally = forget_backup(&repo, "u1")
        .await
        .expect("a retained snapshot is not an error");
    assert_eq!(
        tally,
        Tally {
            forgotten: 0,
            retained: 1
        }
    );
    assert_eq!(repo.list_snapshots().await.expect("list").len(), 1);
    assert_eq!(
        forget_backup(&repo, "u2").await.expect("another backup"),
        Tally::default(),
        "another backup's deletion leaves it alone"
    );
}
