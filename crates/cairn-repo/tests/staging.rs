//! A killed upload to a local repository leaves its temporary file
//! (`NAME#N`), which the store's listings never show: check reports it and
//! prune removes it once it is older than the grace period.

mod common;

use std::sync::Arc;

use cairn_core::FixedClock;
use cairn_repo::{CheckOptions, InitOptions, PruneOptions, Repository};
use cairn_store::Store;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_temporary_files_of_killed_uploads_after_the_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().display().to_string(), false).expect("open");
    let clock = Arc::new(FixedClock::new(T0));
    let opts = InitOptions {
        clock: clock.clone(),
        ..InitOptions::insecure_fast_for_tests()
    };
    let repo = Repository::init(store, PASSWORD, opts).await.expect("init");
    let snap = backup(&repo, "h", &[("f".into(), content(1, 5000))]).await;

    // What a backup killed between writing and renaming a pack leaves.
    let temp = dir.path().join("data/ab");
    std::fs::create_dir_all(&temp).expect("mkdir");
    let temp = temp.join(format!("ab{}#4", "0".repeat(62)));
    std::fs::write(&temp, vec![1u8; 4096]).expect("write");
    let written = std::os::unix::fs::MetadataExt::mtime(&std::fs::metadata(&temp).expect("stat"));

    let report = repo
        .check(CheckOptions { read_data: true })
        .await
        .expect("check");
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    assert!(
        report.warnings.iter().any(|w| w.object.ends_with("#4")),
        "{:#?}",
        report.warnings
    );

    let prune = || PruneOptions {
        grace: cairn_repo::MIN_GRACE,
        ..PruneOptions::default()
    };
    clock.set(written + 60);
    repo.prune(prune()).await.expect("prune");
    assert!(temp.exists(), "too young: its upload may still be running");

    clock.set(written + cairn_repo::MIN_GRACE + 1);
    let report = repo.prune(prune()).await.expect("prune");
    assert!(!temp.exists(), "removed after the grace period");
    assert!(report.stray_objects_deleted >= 1, "{report:#?}");
    // The repository's own objects are untouched.
    assert_eq!(
        restore(&repo, &snap).await,
        [("f".into(), content(1, 5000))]
    );
}
