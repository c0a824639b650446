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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_reads_another_copy_when_the_indexed_pack_is_gone() {
    let src = tempfile::tempdir().expect("tempdir");
    // One file of one chunk (restored by pack) and one of several chunks
    // (restored chunk by chunk).
    let small = noise(1, 12_000); // below the test chunker's 16 KiB minimum
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

    // Remove the pack of the copy the index names, for as many chunks as
    // can lose one copy without losing both: which copy the index names is
    // whichever index file was read first, so two chunks packed together
    // may be named in different backups' packs, and deleting both packs
    // would delete both copies of each.
    let reader = reopen(&store, clock.clone()).await;
    let mut small_chunks = BTreeSet::new();
    let mut big_chunks = BTreeSet::new();
    // One directory is stored as its listing: the files are the root's.
    for node in reader.load_tree(&snap.tree).await.expect("tree").nodes {
        let out = if node.name == b"small" {
            &mut small_chunks
        } else {
            &mut big_chunks
        };
        out.extend(node.content.iter().copied());
    }
    assert_eq!(small_chunks.len(), 1, "the small file is one chunk");
    assert!(big_chunks.len() > 1, "the big file is several chunks");
    let mut copies = Vec::new();
    for id in small_chunks.iter().chain(&big_chunks) {
        let packs: BTreeSet<Id> = reader
            .blob_copies(id)
            .await
            .expect("copies")
            .iter()
            .map(|l| l.pack)
            .collect();
        assert_eq!(packs.len(), 2, "{id}: two copies in two packs");
        copies.push((*id, reader.locate(id).expect("indexed").pack, packs));
    }
    let mut gone: BTreeSet<Id> = BTreeSet::new();
    let mut fallback = BTreeSet::new();
    for (id, indexed, _) in &copies {
        let mut with = gone.clone();
        with.insert(*indexed);
        if copies.iter().all(|(_, _, packs)| !packs.is_subset(&with)) {
            gone = with;
        }
        if gone.contains(indexed) {
            fallback.insert(*id);
        }
    }
    assert!(
        small_chunks.is_subset(&fallback),
        "the small file reads another copy"
    );
    assert!(
        !fallback.is_disjoint(&big_chunks),
        "the big file reads another copy"
    );
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
