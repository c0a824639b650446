//! A copy of a tree (as a volume cloned from a snapshot is: new inode
//! numbers and change times, the same sizes and modification times) is
//! read again in full by the strict comparison, and not at all by the
//! size-and-mtime one; a file changed in the copy is read either way.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use cairn_core::format::{Source, Timestamp};
use cairn_fs::{BackupOptions, ChangeDetection, ParentChoice, Progress};
use cairn_repo::{InitOptions, Repository};
use cairn_store::Store;

fn options(dir: &Path, parent: ParentChoice, how: ChangeDetection) -> BackupOptions {
    let mut o = BackupOptions::default();
    // Both trees are one source: the clone stands in for the volume.
    o.paths = vec![dir.to_owned()];
    o.hostname = "h".into();
    o.parent = parent;
    o.source = Source::Filesystem;
    o.time = Timestamp { secs: 1, nanos: 0 };
    o.change_detection = how;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_is_unchanged_by_size_and_mtime_but_not_by_inode_and_ctime() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let orig = tmp.path().join("orig");
    std::fs::create_dir(&orig).expect("mkdir");
    for i in 0..20u8 {
        std::fs::write(orig.join(format!("f{i}")), vec![i; 40_000]).expect("write");
    }
    let repo = Repository::init(
        Store::memory(),
        b"pw",
        InitOptions::insecure_fast_for_tests(),
    )
    .await
    .expect("init");
    let first = cairn_fs::backup(
        &repo,
        options(&orig, ParentChoice::None, ChangeDetection::Strict),
        Arc::new(Progress::default()),
    )
    .await
    .expect("backup");
    let parent = ParentChoice::Snapshot(first.snapshot_id);

    let clone = tmp.path().join("clone");
    let ok = Command::new("cp")
        .arg("-a")
        .arg(&orig)
        .arg(&clone)
        .status()
        .expect("cp")
        .success();
    assert!(ok, "cp -a");
    // One file really changed in the clone, with its size kept.
    std::fs::write(clone.join("f3"), vec![99u8; 40_000]).expect("write");

    let strict = cairn_fs::backup(
        &repo,
        options(&clone, parent.clone(), ChangeDetection::Strict),
        Arc::new(Progress::default()),
    )
    .await
    .expect("strict backup");
    assert_eq!(
        strict.snapshot.stats.files_unchanged, 0,
        "new inodes: all read"
    );

    let loose = cairn_fs::backup(
        &repo,
        options(&clone, parent, ChangeDetection::SizeAndMtime),
        Arc::new(Progress::default()),
    )
    .await
    .expect("size-and-mtime backup");
    let st = loose.snapshot.stats;
    assert_eq!(st.files_unchanged, 19, "{st:?}");
    assert_eq!(st.files_changed, 1, "the rewritten file is read: {st:?}");
    assert_eq!(st.bytes_read, 40_000, "{st:?}");
}
