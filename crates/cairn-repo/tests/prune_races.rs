//! Prune against the interleavings that used to lose data: a prune paused
//! past its session's lifetime while another runs, a listing of
//! `snapshots/` that lags behind a writer that just ended, an index entry
//! whose pack is gone, and packs that a killed backup left unindexed.

mod common;

use cairn_core::{Id, Kind};
use cairn_repo::Maintenance;
use cairn_repo::{BlobWriter, CheckOptions, Error, PruneOptions, Repository, SESSION_TIMEOUT};
use common::*;

const GRACE: i64 = cairn_repo::MIN_GRACE;

fn opts() -> PruneOptions {
    let mut o = PruneOptions::default();
    o.grace = GRACE;
    o
}

async fn assert_clean(repo: &Repository) {
    let r = repo
        .check({
            let mut o = CheckOptions::default();
            o.read_data = true;
            o
        })
        .await
        .expect("check");
    assert!(r.is_ok(), "{:#?}", r.errors);
}

/// A snapshot `old` of blobs `a` and `b` that is then forgotten, and a
/// snapshot `keep` of `c`; returns `keep`.
async fn history(repo: &Repository) -> (Id, Vec<(String, Vec<u8>)>) {
    let old = backup(
        repo,
        "old",
        &[
            ("a".into(), content(1, 20_000)),
            ("b".into(), content(2, 20_000)),
        ],
    )
    .await;
    repo.store()
        .delete(&format!("snapshots/{old}"))
        .await
        .expect("forget");
    let kept = vec![("c".to_owned(), content(3, 20_000))];
    (backup(repo, "keep", &kept).await, kept)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_paused_past_its_session_timeout_writes_nothing() {
    let g = gated_repo().await;
    let (keep, kept) = history(&g.repo).await;
    g.clock.set(T0 + 10);
    let p0 = g.repo.prune(opts()).await.expect("phase 1");
    assert_eq!(p0.blobs_tombstoned, 3, "{p0:#?}");

    // P1 starts just before the tombstones ripen and stops while it walks
    // the trees (a long walk, a paused process).
    g.clock.set(T0 + 10 + GRACE - 30);
    let (reached, release) = g.gate.pause_at("snapshots/");
    let p1_repo = open_on(&g.plain, g.clock.clone()).await;
    let p1 = tokio::spawn(async move { p1_repo.prune(opts()).await });
    reached.await.expect("P1 reached its walk");

    // Meanwhile P1's session goes stale; P2 removes it, deletes the ripe
    // blobs' pack and compacts the index.
    g.clock.set(T0 + 10 + GRACE - 30 + SESSION_TIMEOUT);
    let p2_repo = open_on(&g.plain, g.clock.clone()).await;
    let p2 = p2_repo.prune(opts()).await.expect("P2");
    assert!(p2.stale_sessions_removed >= 1, "{p2:#?}");
    assert!(p2.packs_deleted >= 1, "{p2:#?}");

    // P1 resumes: its session lapsed, so it stops before writing.
    release.send(()).expect("release");
    let e = p1.await.expect("join").expect_err("P1 must stop");
    assert!(
        matches!(e, Error::SessionExpired { .. } | Error::SessionLost { .. }),
        "{e}"
    );
    let reader = open_on(&g.plain, g.clock.clone()).await;
    assert_clean(&reader).await;
    assert_eq!(restore(&reader, &keep).await, kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_snapshot_listing_cannot_delete_what_a_just_ended_writer_saved() {
    let g = gated_repo().await;
    let a = content(1, 20_000);
    let old = backup(
        &g.repo,
        "old",
        &[("a".into(), a.clone()), ("b".into(), content(2, 20_000))],
    )
    .await;
    g.repo
        .store()
        .delete(&format!("snapshots/{old}"))
        .await
        .expect("forget");

    // W starts before the tombstones exist and deduplicates against `a`.
    let w_repo = open_on(&g.plain, g.clock.clone()).await;
    let writer = BlobWriter::new(&w_repo).expect("writer");
    let a2 = a.clone();
    let (writer, root) = tokio::task::spawn_blocking(move || {
        let (_, new) = writer.add_blob(Kind::Data, &a2).expect("add");
        assert!(!new, "deduplicated");
        let root = add_tree(&writer, &[("a".to_owned(), a2)]);
        (writer, root)
    })
    .await
    .expect("join");
    g.clock.set(T0 + 10);
    let p0 = g.repo.prune(opts()).await.expect("phase 1");
    assert_eq!(p0.blobs_tombstoned, 3, "{p0:#?}");

    // W runs past the tombstones' grace period, then stores its snapshot
    // and ends.
    g.clock.set(T0 + 1500);
    let writer = keep_alive(&w_repo, writer, 91).await;
    g.clock.set(T0 + 3000);
    let writer = keep_alive(&w_repo, writer, 92).await;
    g.clock.set(T0 + 10 + GRACE + 5);
    writer.finish().await.expect("finish");
    let snap = commit(&w_repo, "w", root).await;

    // A prune whose listing of `snapshots/` does not show it yet.
    g.gate.hide("snapshots/");
    g.clock.set(T0 + 10 + GRACE + 20);
    let p = g.repo.prune(opts()).await.expect("prune");
    assert_eq!(p.snapshots_from_sessions, 1, "{p:#?}");
    let reader = open_on(&g.plain, g.clock.clone()).await;
    assert_eq!(restore(&reader, &snap).await, vec![("a".to_owned(), a)]);
    assert_clean(&reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedup_target_whose_pack_is_gone_is_stored_again() {
    let (repo, clock) = repo().await;
    let a = content(7, 30_000);
    backup(&repo, "h", &[("a".into(), a.clone())]).await;
    // The pack disappears while an index file still lists it (a replayed
    // or lagging index file, a lost object).
    let pack = repo
        .locate(&repo.keys().blob_id(Kind::Data, &a))
        .expect("a")
        .pack;
    let hex = pack.to_hex();
    repo.store()
        .delete(&format!("data/{}/{hex}", &hex[..2]))
        .await
        .expect("delete");

    let w = reopen(&repo, clock.clone()).await;
    let writer = BlobWriter::new(&w).expect("writer");
    let a2 = a.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let (_, new) = writer.add_blob(Kind::Data, &a2).expect("add");
        assert!(new, "an index entry alone is not a copy");
        writer
    })
    .await
    .expect("join");
    writer.finish().await.expect("finish");
    let reader = reopen(&repo, clock).await;
    let id = reader.keys().blob_id(Kind::Data, &a);
    assert_eq!(reader.read_blob(Kind::Data, &id).await.expect("read"), a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_falls_back_to_another_copy() {
    let (repo, clock) = repo().await;
    let a = content(8, 30_000);
    let old = backup(&repo, "old", &[("a".into(), a.clone())]).await;
    repo.store()
        .delete(&format!("snapshots/{old}"))
        .await
        .expect("forget");
    clock.set(T0 + 10);
    repo.prune(opts()).await.expect("phase 1");
    // A tombstoned blob is stored again: two copies in two packs.
    clock.set(T0 + 20);
    let w = reopen(&repo, clock.clone()).await;
    backup(&w, "new", &[("a".into(), a.clone())]).await;

    let reader = reopen(&repo, clock).await;
    let id = reader.keys().blob_id(Kind::Data, &a);
    assert_eq!(reader.blob_copies(&id).await.expect("copies").len(), 2);
    let first = reader.locate(&id).expect("indexed").pack;
    let hex = first.to_hex();
    repo.store()
        .delete(&format!("data/{}/{hex}", &hex[..2]))
        .await
        .expect("delete");
    assert_eq!(reader.read_blob(Kind::Data, &id).await.expect("read"), a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_adopts_packs_a_killed_backup_left_unindexed_after_the_grace() {
    let g = gated_repo().await;
    let (keep, kept) = history(&g.repo).await;
    // A backup uploads a pack and is killed before its index file.
    let w = open_on(&g.plain, g.clock.clone()).await;
    let writer = BlobWriter::new(&w).expect("writer");
    let orphan = content(42, 70 * 1024);
    let o2 = orphan.clone();
    let before = count(&g.repo, "data").await;
    let writer = tokio::task::spawn_blocking(move || {
        writer.add_blob(Kind::Data, &o2).expect("add");
        writer
    })
    .await
    .expect("join");
    while count(&g.repo, "data").await == before {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(writer);
    let found = g.repo.check_leftovers().await.expect("leftovers");
    assert_eq!(found.unindexed_packs.len(), 1, "{found:?}");

    g.clock.set(T0 + 100);
    let p = g.repo.prune(opts()).await.expect("prune");
    assert_eq!(p.packs_adopted, 0, "too young: its writer may still run");

    g.clock.set(T0 + 100 + GRACE + 1);
    let p = g.repo.prune(opts()).await.expect("prune");
    assert_eq!(p.packs_adopted, 1, "{p:#?}");
    let reader = open_on(&g.plain, g.clock.clone()).await;
    assert!(
        reader
            .check_leftovers()
            .await
            .expect("leftovers")
            .is_empty()
    );
    let id = reader.keys().blob_id(Kind::Data, &orphan);
    assert_eq!(
        reader.read_blob(Kind::Data, &id).await.expect("read"),
        orphan
    );
    assert_eq!(restore(&reader, &keep).await, kept);
    assert_clean(&reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prunes_started_together_never_both_delete() {
    for round in 0..50u64 {
        let (repo, clock) = repo().await;
        let files = vec![("k".to_owned(), content(round, 9_000))];
        let keep = backup(&repo, "keep", &files).await;
        let old = backup(&repo, "old", &[("g".into(), content(round + 1000, 9_000))]).await;
        repo.store()
            .delete(&format!("snapshots/{old}"))
            .await
            .expect("forget");
        clock.set(T0 + 10);
        repo.prune(opts()).await.expect("phase 1");
        clock.set(T0 + 10 + GRACE + 1);
        let a = reopen(&repo, clock.clone()).await;
        let b = reopen(&repo, clock.clone()).await;
        let (ra, rb) = tokio::join!(a.prune(opts()), b.prune(opts()));
        let deleted = |r: &Result<cairn_repo::PruneReport, Error>| {
            r.as_ref().map(|r| r.blobs_deleted > 0).unwrap_or(false)
        };
        for r in [&ra, &rb] {
            if let Err(e) = r {
                assert!(
                    matches!(e, Error::PruneRunning { .. } | Error::PruneConflict(_)),
                    "round {round}: {e}"
                );
            }
        }
        assert!(
            !(deleted(&ra) && deleted(&rb)),
            "round {round}: both deleted: {ra:?} {rb:?}"
        );
        let reader = reopen(&repo, clock.clone()).await;
        assert_clean(&reader).await;
        assert_eq!(restore(&reader, &keep).await, files);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_keeps_packs_a_lagging_listing_does_not_show_yet() {
    let g = gated_repo().await;
    let one = vec![("one".to_owned(), content(21, 20_000))];
    let two = vec![("two".to_owned(), content(22, 20_000))];
    let s1 = backup(&g.repo, "a", &one).await;
    let s2 = backup(&g.repo, "b", &two).await;
    let packs_before = g.repo.index().packs().expect("packs").len();
    // The listing of `data/` shows nothing yet; the packs are there.
    g.gate.hide("data/");
    g.clock.set(T0 + 10);
    let p = g.repo.prune(opts()).await.expect("prune");
    assert!(
        p.index_files_before > p.index_files_after,
        "compacted: {p:#?}"
    );
    assert_eq!(p.packs_missing, 0, "{p:#?}");
    let reader = open_on(&g.plain, g.clock.clone()).await;
    assert_eq!(reader.index().packs().expect("packs").len(), packs_before);
    assert_eq!(restore(&reader, &s1).await, one);
    assert_eq!(restore(&reader, &s2).await, two);
}
