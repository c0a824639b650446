//! Settings objects (docs/FORMAT.md §17) come from storage, which may be
//! hostile: the one with the highest sequence is in force, a damaged or
//! renamed one is left out and named, and a store that cannot honour
//! storage classes or object lock refuses them before anything is written.

mod common;

use bytes::Bytes;
use cairn_core::format::{Lock, LockMode};
use cairn_repo::{Error, SettingsChange};
use common::{T0, reopen, repo};

fn no_change_but_a_new_sequence() -> SettingsChange {
    let mut c = SettingsChange::new();
    // The bucket's default class: all a local store can take.
    c.data_class = Some(String::new());
    c
}

async fn settings_objects(repo: &cairn_repo::Repository) -> Vec<String> {
    let mut v: Vec<String> = repo
        .store()
        .list("settings")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.path)
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn the_highest_sequence_is_in_force_after_reopening() {
    let (repo, clock) = repo().await;
    assert_eq!(repo.settings(), None, "a new repository has the defaults");
    let first = repo
        .change_settings(&no_change_but_a_new_sequence())
        .await
        .expect("first");
    let second = repo
        .change_settings(&no_change_but_a_new_sequence())
        .await
        .expect("second");
    assert_eq!((first.sequence, second.sequence), (1, 2));
    assert_eq!(second.written, T0);
    assert_eq!(settings_objects(&repo).await.len(), 2);
    let again = reopen(&repo, clock).await;
    assert_eq!(again.settings(), Some(second));
    assert!(again.damaged().is_empty());
}

#[tokio::test]
async fn a_damaged_or_renamed_settings_object_is_left_out_and_named() {
    let (repo, clock) = repo().await;
    let first = repo
        .change_settings(&no_change_but_a_new_sequence())
        .await
        .expect("first");
    repo.change_settings(&no_change_but_a_new_sequence())
        .await
        .expect("second");
    let names = settings_objects(&repo).await;
    // Find the newer object and flip one bit of it.
    let mut newer = None;
    for n in &names {
        let probe = reopen(&repo, clock.clone()).await;
        let b = probe.store().get(n).await.expect("get");
        let mut bad = b.to_vec();
        bad[30] ^= 1;
        probe.store().put(n, Bytes::from(bad)).await.expect("put");
        let s = reopen(&repo, clock.clone()).await;
        probe.store().put(n, b).await.expect("restore the object");
        if s.settings() == Some(first.clone()) {
            newer = Some(n.clone());
            assert_eq!(s.damaged().len(), 1, "{:?}", s.damaged());
            assert_eq!(&s.damaged()[0].object, n);
        }
    }
    let newer = newer.expect("damaging the newer object falls back to the older one");

    // The older object's bytes under a made-up name do not open: the
    // name is bound into the seal.
    let older = names.iter().find(|n| **n != newer).expect("two objects");
    let bytes = repo.store().get(older).await.expect("get");
    let forged = format!("settings/{}", "ab".repeat(32));
    repo.store().put(&forged, bytes).await.expect("plant");
    let s = reopen(&repo, clock).await;
    assert!(
        s.damaged().iter().any(|d| d.object == forged),
        "{:?}",
        s.damaged()
    );
    assert_eq!(s.settings().map(|x| x.sequence), Some(2));
}

#[tokio::test]
async fn a_local_store_refuses_storage_classes_and_object_lock_and_writes_nothing() {
    let (repo, _) = repo().await;
    let mut classes = SettingsChange::new();
    classes.data_class = Some("GLACIER".into());
    let mut lock = SettingsChange::new();
    lock.lock = Some(Some(Lock {
        mode: LockMode::Compliance,
        seconds: 60,
    }));
    let mut bad_name = SettingsChange::new();
    bad_name.metadata_class = Some("standard".into());
    for change in [classes, lock, bad_name] {
        let e = repo.change_settings(&change).await.expect_err("refused");
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    }
    assert!(settings_objects(&repo).await.is_empty());
    assert_eq!(repo.settings(), None);
}
