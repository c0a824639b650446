//! An entry that was only read since the parent snapshot keeps the
//! parent's record: its access time alone does not make its tree, and the
//! trees above it, new. `exact_atime` records access times as they are,
//! and an entry with any other change gets its new access time either way.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cairn_core::Id;
use cairn_core::format::{Node, Source, Timestamp};
use cairn_fs::{BackupOptions, BackupOutcome, ParentChoice, Progress};
use cairn_repo::Repository;

fn options(dir: &Path, parent: ParentChoice, exact_atime: bool) -> BackupOptions {
    let mut o = BackupOptions::default();
    o.paths = vec![dir.to_owned()];
    o.hostname = "h".into();
    o.parent = parent;
    o.source = Source::Filesystem;
    o.time = Timestamp { secs: 1, nanos: 0 };
    o.exact_atime = exact_atime;
    o
}

async fn backup(repo: &Repository, dir: &Path, parent: Option<Id>, exact: bool) -> BackupOutcome {
    let parent = parent.map_or(ParentChoice::None, ParentChoice::Snapshot);
    cairn_fs::backup(
        repo,
        options(dir, parent, exact),
        Arc::new(Progress::default()),
    )
    .await
    .expect("backup")
}

/// Sets the access time of `p` (a file or a directory), nothing else.
fn set_atime(p: &Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let f = std::fs::File::open(p).expect("open");
    f.set_times(std::fs::FileTimes::new().set_accessed(t))
        .expect("set atime");
}

/// The access time of `p`, in seconds.
fn accessed(p: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).expect("stat").atime()
}

/// The node at `path` (names joined by `/`) below the tree `root`.
async fn node(repo: &Repository, root: Id, path: &str) -> Node {
    let mut tree = repo.load_tree(&root).await.expect("tree");
    let mut parts = path.split('/').peekable();
    loop {
        let name = parts.next().expect("a name");
        let n = tree.find(name.as_bytes()).expect("listed").clone();
        if parts.peek().is_none() {
            return n;
        }
        tree = repo
            .load_tree(&n.subtree.expect("a directory"))
            .await
            .expect("tree");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_only_read_since_the_parent_keeps_the_parents_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).expect("mkdir");
    std::fs::write(src.join("top.txt"), b"top").expect("write");
    std::fs::write(src.join("sub/deeper/read.txt"), b"read me").expect("write");
    std::fs::write(src.join("sub/changed.txt"), b"old").expect("write");
    let repo = cairn_testkit::MemoryRepository::new(b"pw").await.repo;
    // Access times long past: the kernel (relatime) updates them on the
    // next read. Setting them changes the change time too, so it is done
    // before the first backup.
    for p in ["sub/deeper/read.txt", "sub/deeper", "sub"] {
        set_atime(&src.join(p), 1_000_000_000);
    }
    let first = backup(&repo, &src, None, false).await;
    let root = first.snapshot.tree;
    let recorded = node(&repo, root, "sub/deeper/read.txt").await.atime;

    // Read since (another tool, a server): access times only.
    std::fs::read(src.join("sub/deeper/read.txt")).expect("read");
    std::fs::read_dir(src.join("sub/deeper"))
        .expect("list")
        .for_each(drop);
    std::fs::read_dir(src.join("sub"))
        .expect("list")
        .for_each(drop);
    let read_at = ["sub/deeper/read.txt", "sub/deeper", "sub"].map(|p| accessed(&src.join(p)));
    assert!(
        read_at.iter().all(|&t| t > 1_000_000_000),
        "the file system must update access times on reads (relatime): {read_at:?}"
    );
    let second = backup(&repo, &src, Some(first.snapshot_id), false).await;
    assert_eq!(second.snapshot.tree, root, "the same trees as the parent");
    let s = &second.snapshot.stats;
    assert_eq!((s.dirs_changed, s.files_unchanged), (0, 3), "{s:?}");
    assert_eq!(
        node(&repo, root, "sub/deeper/read.txt").await.atime,
        recorded
    );

    // Recorded as they are when asked for.
    let exact = backup(&repo, &src, Some(first.snapshot_id), true).await;
    assert_ne!(exact.snapshot.tree, root);
    let tree = exact.snapshot.tree;
    for (p, t) in ["sub/deeper/read.txt", "sub/deeper", "sub"]
        .iter()
        .zip(read_at)
    {
        assert_eq!(node(&repo, tree, p).await.atime.secs, t, "{p}");
    }
    assert_eq!(exact.snapshot.stats.dirs_changed, 2, "sub and deeper");

    // A file with any other change gets its access time as it is now.
    std::fs::write(src.join("sub/changed.txt"), b"new content").expect("write");
    set_atime(&src.join("sub/changed.txt"), 1_000_000_300);
    let third = backup(&repo, &src, Some(second.snapshot_id), false).await;
    let changed = node(&repo, third.snapshot.tree, "sub/changed.txt").await;
    assert_eq!(
        changed.atime,
        Timestamp {
            secs: 1_000_000_300,
            nanos: 0
        }
    );
    assert_eq!(changed.size, 11);
    // The only-read file beside it still keeps the first record.
    let kept = node(&repo, third.snapshot.tree, "sub/deeper/read.txt").await;
    assert_eq!(kept.atime, recorded);
}
