//! `BackupOptions::new` fills what every caller would otherwise write: the
//! repository clock's time, this host and user, the automatic parent.

use std::sync::Arc;

use cairn_core::FixedClock;
use cairn_fs::{BackupOptions, ParentChoice};
use cairn_repo::{InitOptions, OpenOptions, Repository};
use cairn_store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_options_take_the_time_from_the_repository_clock() {
    let store = Store::memory();
    Repository::init(store.clone(), b"pw", InitOptions::insecure_fast_for_tests())
        .await
        .expect("init");
    let mut opts = OpenOptions::default();
    opts.clock = Arc::new(FixedClock::new(1_800_000_000));
    let repo = Repository::open(store, b"pw", opts).await.expect("open");
    let o = BackupOptions::new(&repo, vec!["/srv/data".into()]);
    assert_eq!(o.time.secs, 1_800_000_000);
    assert_eq!(o.hostname, cairn_repo::hostname());
    assert!(!o.hostname.is_empty());
    assert_eq!(o.parent, ParentChoice::Auto);
    assert_eq!(o.paths, vec![std::path::PathBuf::from("/srv/data")]);
    assert!(o.program_version.starts_with("cairn "));
}
