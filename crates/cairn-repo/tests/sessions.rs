//! Writer sessions: announced before the first upload, ended once the
//! snapshot is stored, stale after the timeout, and a writer whose own
//! session went stale does not store its snapshot.

mod common;

use cairn_core::{Clock, Kind};
use cairn_repo::{BlobWriter, Error, SELF_EXPIRY, SESSION_TIMEOUT};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_is_visible_while_it_runs_and_done_after_its_snapshot() {
    let (repo, _clock) = repo().await;
    let writer = BlobWriter::new(&repo).expect("writer");
    let writer = tokio::task::spawn_blocking(move || {
        writer.add_blob(Kind::Data, b"x").expect("add");
        writer
    })
    .await
    .expect("join");
    // add_blob returned, so the session was announced.
    let live = repo.list_sessions(T0).await.expect("sessions");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].session.id, writer.session());
    assert_eq!(live[0].session.started, T0);
    assert!(!live[0].stale);
    assert!(
        repo.list_sessions(T0 + SESSION_TIMEOUT)
            .await
            .expect("sessions")[0]
            .stale
    );
    writer.finish().await.expect("finish");
    // Still there: nothing references its blobs until the snapshot exists.
    assert_eq!(count(&repo, "sessions").await, 1);
    let snap = backup(&repo, "h", &[("f".into(), content(1, 100))]).await;
    // Both writers of this handle ended with a done record naming the
    // snapshot, which prune keeps for the grace period.
    let left = repo.list_sessions(T0).await.expect("sessions");
    assert_eq!(left.len(), 2);
    assert!(
        left.iter()
            .all(|s| s.session.done == Some(snap) && !s.stale)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_whose_session_expired_does_not_store_its_snapshot() {
    let (repo, clock) = repo().await;
    let writer = BlobWriter::new(&repo).expect("writer");
    let writer = tokio::task::spawn_blocking(move || {
        writer.add_blob(Kind::Data, b"y").expect("add");
        writer
    })
    .await
    .expect("join");
    writer.finish().await.expect("finish");
    clock.set(T0 + SELF_EXPIRY);
    let s = cairn_core::format::Snapshot {
        time: cairn_core::format::Timestamp { secs: T0, nanos: 0 },
        tree: cairn_core::Id::ZERO,
        hostname: "h".into(),
        username: "u".into(),
        paths: vec![],
        root_layout: cairn_core::format::RootLayout::Directory,
        source: cairn_core::format::Source::Filesystem,
        tags: vec![],
        parent: None,
        stats: Default::default(),
        program_version: "t".into(),
    };
    let e = repo.save_snapshot(&s).await.expect_err("must refuse");
    assert!(matches!(e, Error::SessionExpired { .. }), "{e}");
    assert_eq!(count(&repo, "snapshots").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_refreshed_as_the_clock_advances() {
    let (repo, clock) = repo().await;
    let writer = BlobWriter::new(&repo).expect("writer");
    // Each blob fills a 64 KiB pack, so every add finishes a pack and the
    // uploader checks the clock.
    let c2 = clock.clone();
    let writer = tokio::task::spawn_blocking(move || {
        for i in 0..12u64 {
            c2.set(T0 + i as i64 * 200);
            writer
                .add_blob(Kind::Data, &content(i, 70 * 1024))
                .expect("add");
        }
        writer
    })
    .await
    .expect("join");
    writer.finish().await.expect("finish");
    let s = repo.list_sessions(clock.now()).await.expect("sessions");
    assert_eq!(s.len(), 1);
    assert!(s[0].session.refreshed > T0, "{s:?}");
    assert!(s[0].session.refreshed <= clock.now());
}
