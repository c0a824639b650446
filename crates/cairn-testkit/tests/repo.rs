//! In-memory repositories on a fixed clock, and faults planned in words.

use cairn_core::Kind;
use cairn_repo::BlobWriter;
use cairn_store::Store;
use cairn_testkit::{
    FaultPlan, MemoryRepository, T0, conformance, faulty, memory_repository, noise,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_repository_runs_on_a_clock_the_test_moves() {
    let repo = memory_repository(b"pw").await;
    assert_eq!(repo.clock().now(), T0);
    assert!(!repo.store().list("keys").await.expect("list").is_empty());

    let m = MemoryRepository::with(b"pw", |o| o.data_pack_size = Some(64 << 10)).await;
    m.advance(86_400);
    assert_eq!(m.repo.clock().now(), T0 + 86_400);
    let other = m.reopen().await;
    assert_eq!(other.clock().now(), T0 + 86_400);
    m.clock.set(T0);
    assert_eq!(other.clock().now(), T0);
}

/// Stores incompressible blobs of 50 kB, one per seed, through `repo`.
async fn write_blobs(
    repo: &cairn_repo::Repository,
    seeds: std::ops::Range<u64>,
) -> cairn_repo::Result<Vec<cairn_core::Id>> {
    let writer = BlobWriter::new(repo)?;
    let (writer, ids) = tokio::task::spawn_blocking(move || {
        let ids: Vec<_> = seeds
            .map(|i| {
                writer
                    .add_blob(Kind::Data, &noise(i, 50_000))
                    .map(|(id, _)| id)
            })
            .collect();
        (writer, ids)
    })
    .await
    .expect("join");
    // The upload's own error, if any, is the one to report.
    let finished = writer.finish().await;
    let ids = ids.into_iter().collect::<cairn_repo::Result<Vec<_>>>();
    finished?;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_plan_fails_writes_after_the_nth_and_damages_reads() {
    let m = MemoryRepository::with(b"pw", |o| o.data_pack_size = Some(64 << 10)).await;
    let broken = m
        .faulty(&FaultPlan::new().fail_writes_after(2).under("data/"))
        .await;
    let err = write_blobs(&broken, 0..8).await.expect_err("uploads fail");
    assert!(err.to_string().contains("injected write failure"), "{err}");
    // The two packs that went through are stored, nothing else.
    assert_eq!(m.store().list("data").await.expect("list").len(), 2);

    let ids = write_blobs(&m.repo, 0..3).await.expect("clean writes");
    for plan in [
        FaultPlan::new().corrupt_reads().under("data/"),
        FaultPlan::new().truncate_reads().under("data/"),
        FaultPlan::new().fail_reads().under("data/"),
        FaultPlan::new().archived().under("data/"),
    ] {
        let r = m.faulty(&plan).await.read_blob(Kind::Data, &ids[0]).await;
        assert!(r.is_err(), "{plan:?}: {r:?}");
    }
    let good = m.reopen().await.read_blob(Kind::Data, &ids[0]).await;
    assert_eq!(good.expect("read"), noise(0, 50_000));

    // The fault layer counts what it let through.
    let f = faulty(&m.store(), &FaultPlan::new().under("data/"));
    let repo = f.open(b"pw").await.expect("open");
    write_blobs(&repo, 10..13).await.expect("writes");
    assert!(f.faults.writes() >= 1, "{}", f.faults.writes());
}

/// A check has teeth: a store that returns short reads fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "ShortRead")]
async fn a_conformance_check_fails_a_store_that_breaks_the_contract() {
    let store = faulty(&Store::memory(), &FaultPlan::new().truncate_reads()).store;
    conformance::round_trip(&store).await;
}
