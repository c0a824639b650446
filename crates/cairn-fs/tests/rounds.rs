//! A restore writes the files it planned every
//! [`cairn_fs::RESTORE_ROUND`] files, so its memory does not grow with the
//! snapshot's file count: what spans rounds (a hard link whose first name
//! was written in an earlier round, a directory's metadata, a file of
//! many chunks) restores as in one round, and a cancelled restore stops
//! its walk at the first round instead of planning everything first.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use cairn_core::format::{Node, Snapshot, Source, Timestamp};
use cairn_fs::{BackupOptions, ParentChoice, Progress, RESTORE_ROUND, RestoreOptions};
use cairn_testkit::{FaultPlan, MemoryRepository, TreeBuilder, tree_digest_with_times};

/// `a/` holds a file of many chunks and more small files than a round;
/// `b/` comes after them in the walk, with a hard link to the first of
/// them and a file of its own.
fn source(dir: &Path) -> std::path::PathBuf {
    let mut t = TreeBuilder::new(dir.join("src"));
    t.noise_file("a/big", 1, 3 << 20);
    for i in 0..RESTORE_ROUND + 10 {
        let name = format!("a/f{i:05}");
        if i % 50 == 0 {
            t.file(&name, format!("file {i}\n"));
        } else {
            t.file(&name, "");
        }
    }
    t.file("b/late", "written in the last round\n")
        .hard_link("b/link", "a/f00000")
        .mode("b", 0o750)
        .mtime("b", 1_500_000_000, 7)
        .mtime("a", 1_400_000_000, 3);
    t.finish()
}

async fn backed_up() -> (tempfile::TempDir, MemoryRepository, Snapshot) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = source(tmp.path());
    let m = MemoryRepository::new(b"pw").await;
    let mut o = BackupOptions::default();
    o.paths = vec![src];
    o.hostname = "h".into();
    o.parent = ParentChoice::None;
    o.source = Source::Filesystem;
    o.time = Timestamp { secs: 1, nanos: 0 };
    o.program_version = "test".into();
    let out = cairn_fs::backup(&m.repo, o, Arc::new(Progress::default()))
        .await
        .expect("backup");
    (tmp, m, out.snapshot)
}

fn options(target: &Path) -> RestoreOptions {
    let mut o = RestoreOptions::new(target);
    o.owners = Some(false);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_spans_rounds_restores_as_in_one() {
    let (tmp, m, snapshot) = backed_up().await;
    let dst = tmp.path().join("dst");
    let progress = Arc::new(Progress::default());
    let out = cairn_fs::restore(&m.repo, &snapshot, options(&dst), progress.clone())
        .await
        .expect("restore");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let files = RESTORE_ROUND as u64 + 12;
    assert_eq!((out.files, out.hardlinks), (files, 1));
    assert_eq!(
        tree_digest_with_times(&tmp.path().join("src")),
        tree_digest_with_times(&dst)
    );
    let (first, link) = (dst.join("a/f00000"), dst.join("b/link"));
    let (first, link) = (first.metadata().expect("a"), link.metadata().expect("b"));
    assert_eq!((first.ino(), first.nlink()), (link.ino(), 2));
    // The totals shown end as what was restored.
    let (_, _, total_files, total_bytes) = progress.get();
    assert_eq!(total_files, files);
    assert_eq!(total_bytes, out.bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_restore_stops_its_walk_at_the_first_round() {
    let (tmp, m, snapshot) = backed_up().await;
    let dst = tmp.path().join("dst");
    let progress = Arc::new(Progress::default());
    progress.cancel();
    let r = cairn_fs::restore(&m.repo, &snapshot, options(&dst), progress).await;
    assert!(matches!(r, Err(cairn_fs::Error::Cancelled)), "{r:?}");
    // The walk made `a` and planned a round in it, then stopped: `b`,
    // after it, was never reached.
    assert!(dst.join("a").is_dir());
    assert!(!dst.join("b").exists());
}

/// The node at `path` (names from the snapshot's root, which may hold the
/// backed-up directory under its own name).
async fn node_at(repo: &cairn_repo::Repository, snapshot: &Snapshot, path: &[&str]) -> Node {
    let mut tree = repo.load_tree(&snapshot.tree).await.expect("root");
    if let [only] = tree.nodes.as_slice()
        && only.name == b"src"
    {
        let id = only.subtree.expect("src tree");
        tree = repo.load_tree(&id).await.expect("src");
    }
    let (last, dirs) = path.split_last().expect("a path");
    for name in dirs {
        let dir = tree.nodes.iter().find(|n| n.name == name.as_bytes());
        let id = dir.and_then(|n| n.subtree).expect("a directory");
        tree = repo.load_tree(&id).await.expect("tree");
    }
    let node = tree.nodes.into_iter().find(|n| n.name == last.as_bytes());
    node.expect("in the snapshot")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_whose_first_name_failed_in_an_earlier_round_is_not_made() {
    let (tmp, m, snapshot) = backed_up().await;
    let first = node_at(&m.repo, &snapshot, &["a", "f00000"]).await;
    let pack = m.repo.locate(&first.content[0]).expect("indexed").pack;
    let h = pack.to_hex();
    let faulty = m
        .faulty(
            &FaultPlan::new()
                .fail_reads()
                .under(format!("data/{}/{h}", &h[..2])),
        )
        .await;
    let dst = tmp.path().join("dst");
    let progress = Arc::new(Progress::default());
    let out = cairn_fs::restore(&faulty, &snapshot, options(&dst), progress)
        .await
        .expect("files fail one by one");
    let named = |p: &str| out.errors.iter().find(|w| w.path == dst.join(p));
    assert!(named("a/f00000").is_some(), "{:?}", out.errors);
    let link = named("b/link").expect("the link is named");
    assert!(link.message.contains("not linked"), "{}", link.message);
    assert!(!dst.join("b/link").exists());
}
