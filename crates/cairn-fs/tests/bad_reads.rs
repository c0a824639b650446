//! Reads that come back corrupted or short are never accepted as data: a
//! restore through such a store reports every affected file and writes none
//! of them, and a good store afterwards restores everything.

use std::sync::Arc;

use cairn_core::format::{Source, Timestamp};
use cairn_fs::{BackupOptions, ParentChoice, Progress, RestoreOptions};
use cairn_testkit::{FaultPlan, MemoryRepository, noise};

const PASSWORD: &[u8] = b"pw";

async fn restore_through(
    m: &MemoryRepository,
    faults: FaultPlan,
    snapshot: &cairn_core::format::Snapshot,
) -> (cairn_fs::RestoreOutcome, tempfile::TempDir) {
    let repo = m.faulty(&faults).await;
    let dst = tempfile::tempdir().expect("tempdir");
    let out = cairn_fs::restore(
        &repo,
        snapshot,
        {
            let mut o = RestoreOptions::default();
            o.target = dst.path().to_owned();
            o.owners = Some(false);
            o
        },
        Arc::new(Progress::default()),
    )
    .await
    .expect("the restore itself runs; files fail one by one");
    (out, dst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_or_short_pack_reads_never_become_file_content() {
    let src = tempfile::tempdir().expect("tempdir");
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("f{i}"), noise(i as u64, 300_000 + i * 1000)))
        .collect();
    for (name, data) in &files {
        std::fs::write(src.path().join(name), data).expect("write");
    }
    let m = MemoryRepository::new(PASSWORD).await;
    let repo = m.repo.clone();
    let out = cairn_fs::backup(
        &repo,
        {
            let mut o = BackupOptions::default();
            o.paths = vec![src.path().to_owned()];
            o.hostname = "h".into();
            o.username = "u".into();
            o.tags = vec![];
            o.parent = ParentChoice::None;
            o.source = Source::Filesystem;
            o.time = Timestamp { secs: 1, nanos: 0 };
            o.program_version = "test".into();
            o
        },
        Arc::new(Progress::default()),
    )
    .await
    .expect("backup");

    // With every pack read damaged, even the root tree is refused.
    for (what, faults) in [
        ("corrupted", FaultPlan::new().corrupt_reads().under("data/")),
        (
            "truncated",
            FaultPlan::new().truncate_reads().under("data/"),
        ),
    ] {
        let faulty = m.faulty(&faults).await;
        let r = faulty.load_tree(&out.snapshot.tree).await;
        assert!(r.is_err(), "{what}: a damaged tree read must be refused");
    }

    // Damage only the reads of one data pack: the files with chunks there
    // fail, none is written with wrong bytes, no temporary file is left.
    for (what, faults) in [
        ("corrupted", FaultPlan::new().corrupt_reads()),
        ("truncated", FaultPlan::new().truncate_reads()),
    ] {
        // The fault store damages reads under `prefix`; aim it at the packs
        // that hold data blobs, leaving the tree pack readable.
        let tree_pack = repo.locate(&out.snapshot.tree).expect("indexed").pack;
        let data_packs: Vec<_> = {
            let root = repo.load_tree(&out.snapshot.tree).await.expect("tree");
            root.nodes
                .iter()
                .flat_map(|n| n.content.iter())
                .map(|c| repo.locate(c).expect("indexed").pack)
                .filter(|p| *p != tree_pack)
                .collect()
        };
        assert!(!data_packs.is_empty());
        let h = data_packs[0].to_hex();
        let faults = faults.under(format!("data/{}/{h}", &h[..2]));
        let (outcome, dst) = restore_through(&m, faults, &out.snapshot).await;
        assert!(
            !outcome.errors.is_empty(),
            "{what}: damaged reads must fail files"
        );
        for (name, data) in &files {
            match std::fs::read(dst.path().join(name)) {
                Ok(got) => assert!(got == *data, "{what}: {name} was written with wrong bytes"),
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{what}: {name}"),
            }
        }
        let leftovers: Vec<_> = std::fs::read_dir(dst.path())
            .expect("read_dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("cairn-restore"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{what}: temporary files left: {leftovers:?}"
        );
    }

    // The data itself was never harmed: a clean store restores everything.
    let (outcome, dst) = restore_through(&m, FaultPlan::new(), &out.snapshot).await;
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    for (name, data) in &files {
        assert!(
            std::fs::read(dst.path().join(name)).expect("read") == *data,
            "{name}"
        );
    }
}
