//! The read windows a backup keeps for the next one are given back by
//! `release_windows` (cairn-agent calls it between jobs, through
//! `cairn::release_free_memory`). In a test binary of its own: the pool is
//! process-wide, and other tests' backups would fill it meanwhile.

use std::sync::Arc;

use cairn_fs::{BackupOptions, ParentChoice, Progress, release_windows};
use cairn_testkit::{MemoryRepository, noise};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_leaves_windows_for_the_next_and_release_frees_them() {
    let src = tempfile::tempdir().expect("tempdir");
    for i in 0..4u64 {
        let data = noise(i, 300_000);
        std::fs::write(src.path().join(format!("f{i}")), data).expect("write");
    }
    let m = MemoryRepository::new(b"pw").await;
    assert_eq!(release_windows(), 0, "no backup ran yet");
    for round in 0..2 {
        let mut o = BackupOptions::default();
        o.paths = vec![src.path().to_owned()];
        // No parent: every file is read again, through the windows.
        o.parent = ParentChoice::None;
        cairn_fs::backup(&m.repo, o, Arc::new(Progress::default()))
            .await
            .expect("backup");
        let kept = release_windows();
        assert!(
            kept >= 300_000,
            "round {round}: {kept} bytes of windows kept"
        );
        assert_eq!(release_windows(), 0, "round {round}: released twice");
    }
}
