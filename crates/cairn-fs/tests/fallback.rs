//! A restore reads another copy of a chunk when the indexed copy's pack is
//! gone: the index keeps one location per blob, but every index file lists
//! its own copies, and a chunk stored twice must not be lost with one pack.

use cairn_repo::Maintenance;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use cairn_core::format::{Snapshot, Source, Timestamp};
use cairn_core::{FixedClock, Id};
use cairn_fs::{BackupOptions, ParentChoice, Progress, RestoreOptions};
use cairn_repo::{InitOptions, OpenOptions, PruneOptions, Repository};
use cairn_store::Store;
use cairn_testkit::noise;

const T0: i64 = 1_800_000_000;
const PASSWORD: &[u8] = b"pw";

async fn backup(repo: &Repository, src: &Path, secs: i64) -> Snapshot {
    let mut opts = BackupOptions::default();
    opts.paths = vec![src.to_owned()];
    opts.hostname = "h".into();
    opts.parent = ParentChoice::None;
    opts.source = Source::Filesystem;
    opts.time = Timestamp { secs, nanos: 0 };
    cairn_fs::backup(repo, opts, Arc::new(Progress::default()))
        .await
        .expect("backup")
        .snapshot
}

async fn reopen(store: &Store, clock: Arc<FixedClock>) -> Repository {
    let mut opts = OpenOptions::default();
    opts.clock = clock;
    Repository::open(store.clone(), PASSWORD, opts)
        .await
        .expect("open")
}

/// Every chunk of every file below `tree`.
async fn chunks(repo: &Repository, tree: Id, out: &mut BTreeSet<Id>) {
    let mut todo = vec![tree];
    while let Some(id) = todo.pop() {
        for node in repo.load_tree(&id).await.expect("tree").nodes {
            out.extend(node.content.iter().copied());
            todo.extend(node.subtree);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_reads_another_copy_when_the_indexed_pack_is_gone() {
    let src = tempfile::tempdir().expect("tempdir");
    // One file of one chunk (restored by pack) and one of several chunks
    // (restored chunk by chunk).
    let small = noise(1, 20_000);
    let big = noise(2, 3 << 20);
    std::fs::write(src.path().join("small"), &small).expect("write");
    std::fs::write(src.path().join("big"), &big).expect("write");

    let clock = Arc::new(FixedClock::new(T0));
    let store = Store::memory();
    let mut init = InitOptions::insecure_fast_for_tests();
    init.data_pack_size = Some(64 * 1024);
    init.clock = clock.clone();
    let repo = Repository::init(store.clone(), PASSWORD, init)
        .await
        .expect("init");
    // A first copy of every chunk, left unreferenced and tombstoned, so the
    // next backup stores each chunk again in packs of its own.
    backup(&repo, src.path(), T0).await;
    let old_id = repo.snapshot_ids().await.expect("ids")[0];
    store
        .delete(&format!("snapshots/{old_id}"))
        .await
        .expect("forget");
    clock.set(T0 + 10);
    let mut prune = PruneOptions::default();
    prune.grace = cairn_repo::MIN_GRACE;
    reopen(&store, clock.clone())
        .await
        .prune(prune)
        .await
        .expect("prune, phase 1");
    clock.set(T0 + 20);
    let snap = backup(&reopen(&store, clock.clone()).await, src.path(), T0 + 20).await;

    // Remove the pack of the copy the index names for every chunk.
    let reader = reopen(&store, clock.clone()).await;
    let mut ids = BTreeSet::new();
    chunks(&reader, snap.tree, &mut ids).await;
    assert!(ids.len() > 2, "several chunks: {}", ids.len());
    let mut gone = BTreeSet::new();
    for id in &ids {
        assert_eq!(
            reader.blob_copies(id).await.expect("copies").len(),
            2,
            "{id}"
        );
        gone.insert(reader.locate(id).expect("indexed").pack);
    }
    for pack in &gone {
        let hex = pack.to_hex();
        store
            .delete(&format!("data/{}/{hex}", &hex[..2]))
            .await
            .expect("delete pack");
    }

    let target = tempfile::tempdir().expect("tempdir");
    let mut opts = RestoreOptions::default();
    opts.target = target.path().to_owned();
    let out = cairn_fs::restore(&reader, &snap, opts, Arc::new(Progress::default()))
        .await
        .expect("restore");
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let restored = |name: &str| {
        let found: Vec<_> = walkdir::WalkDir::new(target.path())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_name() == name)
            .collect();
        assert_eq!(found.len(), 1, "{name}");
        std::fs::read(found[0].path()).expect("read")
    };
    assert!(restored("small") == small, "small differs");
    assert!(restored("big") == big, "big differs");
}
