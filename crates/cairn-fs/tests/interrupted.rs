//! A backup that fails part-way leaves the repository valid, and the next
//! backup reuses the packs the failed one managed to upload and index.

use cairn_repo::Maintenance;
use std::sync::Arc;

use cairn_core::SeededRandom;
use cairn_core::format::{Source, Timestamp};
use cairn_fs::{BackupOptions, ParentChoice, Progress, RestoreOptions};
use cairn_repo::{CheckOptions, InitOptions, OpenOptions, Repository};
use cairn_store::Store;
use cairn_testkit::{FaultPlan, faulty, noise};

const PASSWORD: &[u8] = b"pw";

/// A source directory of `n` files `f0`, `f1`, … of `len` incompressible
/// bytes each, the i-th from seed `seed + i`.
fn source(n: u64, len: usize, seed: u64) -> tempfile::TempDir {
    let src = tempfile::tempdir().expect("tempdir");
    for i in 0..n {
        std::fs::write(src.path().join(format!("f{i}")), noise(seed + i, len)).expect("write");
    }
    src
}

/// Distinct chunks of the files at the root of a snapshot.
async fn distinct_chunks(repo: &Repository, out: &cairn_fs::BackupOutcome) -> u64 {
    let root = repo.load_tree(&out.snapshot.tree).await.expect("tree");
    let distinct: std::collections::HashSet<_> = root
        .nodes
        .iter()
        .flat_map(|n| n.content.iter().copied())
        .collect();
    distinct.len() as u64
}

fn options(dir: &std::path::Path) -> BackupOptions {
    let mut o = BackupOptions::default();
    o.paths = vec![dir.to_owned()];
    o.hostname = "h".into();
    o.username = "u".into();
    o.tags = vec![];
    o.parent = ParentChoice::Auto;
    o.source = Source::Filesystem;
    o.time = Timestamp { secs: 1, nanos: 0 };
    o.program_version = "test".into();
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_backup_leaves_a_valid_repository_and_the_next_one_reuses_its_packs() {
    let src = source(4, 3 << 20, 1);
    let plain = Store::memory();
    let mut init = InitOptions::insecure_fast_for_tests();
    init.data_pack_size = Some(256 * 1024);
    init.rng = Arc::new(SeededRandom::new(9));
    Repository::init(plain.clone(), PASSWORD, init)
        .await
        .expect("init");

    // Uploads of packs start failing for good after 20 packs.
    let repo = faulty(
        &plain,
        &FaultPlan::new().fail_writes_after(20).under("data/"),
    )
    .open(PASSWORD)
    .await
    .expect("open");
    let err = cairn_fs::backup(&repo, options(src.path()), Arc::new(Progress::default()))
        .await
        .expect_err("the backup must fail when uploads fail");
    assert!(err.to_string().contains("injected write failure"), "{err}");

    // The repository is valid: no snapshot, nothing referenced is missing.
    let repo = Repository::open(plain.clone(), PASSWORD, OpenOptions::default())
        .await
        .expect("reopen");
    assert!(repo.list_snapshots().await.expect("list").is_empty());
    let report = repo
        .check({
            let mut o = CheckOptions::default();
            o.read_data = true;
            o
        })
        .await
        .expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);
    let indexed_before = repo.index().len() as u64;
    // Every pack uploaded before the failure is indexed, including those
    // after the last periodic index file: nothing is left for prune.
    assert_eq!(
        repo.index().packs().expect("packs").len(),
        20,
        "uploaded packs missing from the index"
    );
    assert!(
        report.warnings.is_empty(),
        "unindexed packs left behind: {:?}",
        report.warnings
    );

    // The next backup completes and does not upload again what was indexed.
    let out = cairn_fs::backup(&repo, options(src.path()), Arc::new(Progress::default()))
        .await
        .expect("second backup");
    let total_chunks = distinct_chunks(&repo, &out).await;
    assert_eq!(
        out.writer.data_blobs + indexed_before,
        total_chunks,
        "the second backup must add exactly the chunks that were not indexed"
    );
    let report = repo
        .check({
            let mut o = CheckOptions::default();
            o.read_data = true;
            o
        })
        .await
        .expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);

    let dst = tempfile::tempdir().expect("tempdir");
    let restored = cairn_fs::restore(
        &repo,
        &out.snapshot,
        {
            let mut o = RestoreOptions::default();
            o.target = dst.path().to_owned();
            o.path = Vec::new();
            o.owners = Some(false);
            o
        },
        Arc::new(Progress::default()),
    )
    .await
    .expect("restore");
    assert!(restored.errors.is_empty(), "{:?}", restored.errors);
    for i in 0..4 {
        let name = format!("f{i}");
        let a = std::fs::read(src.path().join(&name)).expect("read");
        let b = std::fs::read(dst.path().join(&name)).expect("read");
        assert!(a == b, "{name} differs after restore");
    }
}

/// A backup cancelled part-way returns `Cancelled`, indexes what it
/// uploaded, leaves no snapshot and a repository that checks clean; the
/// next backup reuses the uploaded chunks. A cancelled restore stops too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_backup_and_restore_stop_and_leave_the_repository_clean() {
    let src = source(8, 4 << 20, 11);
    let mut init = InitOptions::insecure_fast_for_tests();
    init.data_pack_size = Some(256 * 1024);
    let repo = Repository::init(Store::memory(), PASSWORD, init)
        .await
        .expect("init");

    let progress = Arc::new(Progress::default());
    let watcher = {
        let progress = progress.clone();
        std::thread::spawn(move || {
            // Cancel once some, but far from all, of the 32 MiB is read.
            while progress.get().1 < 6 << 20 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            progress.cancel();
        })
    };
    let err = cairn_fs::backup(&repo, options(src.path()), progress.clone())
        .await
        .expect_err("a cancelled backup must not succeed");
    watcher.join().expect("watcher");
    assert!(matches!(err, cairn_fs::Error::Cancelled), "{err}");
    let read = progress.get().1;
    assert!(
        read < 32 << 20,
        "cancel did not stop the backup ({read} bytes read)"
    );
    assert!(repo.list_snapshots().await.expect("list").is_empty());
    let report = repo
        .check({
            let mut o = CheckOptions::default();
            o.read_data = true;
            o
        })
        .await
        .expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let indexed = repo.index().len() as u64;
    assert!(indexed > 0, "the uploads before the cancel must be indexed");

    let out = cairn_fs::backup(&repo, options(src.path()), Arc::new(Progress::default()))
        .await
        .expect("second backup");
    assert_eq!(
        out.writer.data_blobs + indexed,
        distinct_chunks(&repo, &out).await
    );

    let progress = Arc::new(Progress::default());
    progress.cancel();
    let dst = tempfile::tempdir().expect("tempdir");
    let err = cairn_fs::restore(
        &repo,
        &out.snapshot,
        {
            let mut o = RestoreOptions::default();
            o.target = dst.path().to_owned();
            o.owners = Some(false);
            o
        },
        progress,
    )
    .await
    .expect_err("a cancelled restore must not succeed");
    assert!(matches!(err, cairn_fs::Error::Cancelled), "{err}");
}

/// A backup with a parent snapshot takes its totals as the estimate of
/// its own size, so a progress display has an ETA without a second walk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_with_a_parent_estimates_its_totals_from_it() {
    let src = source(3, 1000, 0);
    let repo = Repository::init(
        Store::memory(),
        PASSWORD,
        InitOptions::insecure_fast_for_tests(),
    )
    .await
    .expect("init");
    let first = Arc::new(Progress::default());
    let out = cairn_fs::backup(&repo, options(src.path()), first.clone())
        .await
        .expect("first backup");
    assert_eq!(first.get().3, 0, "no parent, no estimate");
    let second = Arc::new(Progress::default());
    cairn_fs::backup(&repo, options(src.path()), second.clone())
        .await
        .expect("second backup");
    let (_, _, files, bytes) = second.get();
    assert_eq!(bytes, out.snapshot.stats.bytes_total);
    assert_eq!(files, 3);
}

/// Small files are written under temporary names and renamed only after a
/// sync of their file system, a batch at a time. A restore of more files
/// than one batch leaves no temporary name behind, and one cancelled
/// part-way leaves none either: every name it left holds the complete file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_are_renamed_only_complete_and_a_cancel_leaves_no_temporary_names() {
    let src = tempfile::tempdir().expect("tempdir");
    for d in 0..10 {
        std::fs::create_dir(src.path().join(format!("d{d}"))).expect("mkdir");
        for i in 0..600 {
            // 1–4 KiB each: about 15 MiB, several ranged reads of 2 MiB.
            let data = noise(d * 1000 + i, 1024 + (i as usize * 37) % 3072);
            std::fs::write(src.path().join(format!("d{d}/f{i}")), data).expect("write");
        }
    }
    let store = Store::memory();
    let repo = Repository::init(
        store.clone(),
        PASSWORD,
        InitOptions::insecure_fast_for_tests(),
    )
    .await
    .expect("init");
    let out = cairn_fs::backup(&repo, options(src.path()), Arc::new(Progress::default()))
        .await
        .expect("backup");
    let restore_into = async |repo: &Repository, dst: &std::path::Path, progress: Arc<Progress>| {
        let mut o = RestoreOptions::default();
        o.target = dst.to_owned();
        o.owners = Some(false);
        cairn_fs::restore(repo, &out.snapshot, o, progress).await
    };
    // What is under `dst`: no temporary names, every file whole.
    let files_in = |dst: &std::path::Path| {
        let mut n = 0;
        for d in std::fs::read_dir(dst).expect("read_dir") {
            for f in std::fs::read_dir(d.expect("entry").path()).expect("read_dir") {
                let f = f.expect("entry").path();
                let rel = f.strip_prefix(dst).expect("below");
                let name = rel.to_string_lossy().into_owned();
                assert!(!name.contains("cairn-restore"), "{name} was left behind");
                let want = std::fs::read(src.path().join(rel)).expect("source");
                assert!(
                    std::fs::read(&f).expect("read") == want,
                    "{name} is not whole"
                );
                n += 1;
            }
        }
        n
    };

    let whole = tempfile::tempdir().expect("tempdir");
    let done = restore_into(&repo, whole.path(), Arc::new(Progress::default()))
        .await
        .expect("restore");
    assert_eq!(done.files, 6000);
    assert_eq!(files_in(whole.path()), 6000);

    let progress = Arc::new(Progress::default());
    let watcher = {
        let progress = progress.clone();
        std::thread::spawn(move || {
            while progress.get().1 == 0 {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            progress.cancel();
        })
    };
    // Every read of the cancelled restore takes 100 ms, so the watcher
    // cancels it long before its last range is read and its files are
    // published, however loaded the machine (without it, one range held
    // every file and the cancel could come after the last publish).
    let slow = faulty(
        &store,
        &FaultPlan::new().latency(std::time::Duration::from_millis(100)),
    )
    .open(PASSWORD)
    .await
    .expect("open");
    let cut = tempfile::tempdir().expect("tempdir");
    let err = restore_into(&slow, cut.path(), progress)
        .await
        .expect_err("a cancelled restore must not succeed");
    watcher.join().expect("watcher");
    assert!(matches!(err, cairn_fs::Error::Cancelled), "{err}");
    assert!(files_in(cut.path()) < 6000);
}
