//! A killed upload to a local repository leaves its temporary file
//! (`NAME#N`), which the store's listings never show: check reports it and
//! prune removes it once it is older than the grace period.

mod common;

use cairn_repo::Maintenance;
use std::sync::Arc;

use cairn_core::FixedClock;
use cairn_repo::{CheckOptions, InitOptions, PruneOptions, Repository};
use cairn_store::Store;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_temporary_files_of_killed_uploads_after_the_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(
        &dir.path().display().to_string(),
        cairn_store::Create::Never,
    )
    .expect("open");
    let clock = Arc::new(FixedClock::new(T0));
    let mut opts = InitOptions::insecure_fast_for_tests();
    opts.clock = clock.clone();
    let repo = Repository::init(store, PASSWORD, opts).await.expect("init");
    let snap = backup(&repo, "h", &[("f".into(), content(1, 5000))]).await;

    // What a backup killed between writing and renaming a pack leaves, and
    // what a backup still running has: a fresh temporary file.
    let dir_ab = dir.path().join("data/ab");
    std::fs::create_dir_all(&dir_ab).expect("mkdir");
    let old_temp = dir_ab.join(format!("ab{}#4", "0".repeat(62)));
    let fresh = dir_ab.join(format!("ab{}#5", "1".repeat(62)));
    std::fs::write(&old_temp, vec![1u8; 4096]).expect("write");
    std::fs::write(&fresh, vec![2u8; 4096]).expect("write");
    // Aged on the system clock, which stamped it.
    let long_ago = std::time::SystemTime::now()
        - std::time::Duration::from_secs(cairn_repo::MIN_GRACE as u64 + 60);
    std::fs::File::options()
        .write(true)
        .open(&old_temp)
        .and_then(|f| f.set_modified(long_ago))
        .expect("age the file");

    let report = repo
        .check({
            let mut o = CheckOptions::default();
            o.read_data = true;
            o
        })
        .await
        .expect("check");
    assert!(report.errors.is_empty(), "{:#?}", report.errors);
    for name in ["#4", "#5"] {
        assert!(
            report.warnings.iter().any(|w| w.object.ends_with(name)),
            "{name}: {:#?}",
            report.warnings
        );
    }

    // The repository's clock far ahead (a test clock, a wrong setting)
    // must not make the running writer's file look old.
    clock.set(T0 + 100 * cairn_repo::MIN_GRACE);
    let report = repo
        .prune({
            let mut o = PruneOptions::default();
            o.grace = cairn_repo::MIN_GRACE;
            o
        })
        .await
        .expect("prune");
    assert!(!old_temp.exists(), "removed after the grace period");
    assert!(fresh.exists(), "a running upload's file is left alone");
    assert!(report.stray_objects_deleted >= 1, "{report:#?}");
    // The repository's own objects are untouched.
    assert_eq!(
        restore(&repo, &snap).await,
        [("f".into(), content(1, 5000))]
    );
}
