//! An embedder tells the failures apart with `cairn::Error::kind()` alone:
//! a wrong password, storage that cannot be reached, storage that refuses
//! the credentials, damaged data, a missing snapshot, a cancelled run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cairn::{
    BackupOptions, Error, ErrorKind, InitOptions, Kind, ParentChoice, Progress, Repository, Store,
    StoreOptions,
};

const PASSWORD: &[u8] = b"error kinds";

async fn local_repo(dir: &Path) -> Repository {
    let store = Store::open(dir.to_str().expect("utf-8"), cairn::Create::IfMissing).expect("store");
    Repository::init(store, PASSWORD, InitOptions::insecure_fast_for_tests())
        .await
        .expect("init")
}

fn options(dir: &Path) -> BackupOptions {
    let mut o = BackupOptions::default();
    o.paths = vec![dir.to_owned()];
    o.hostname = "h".into();
    o.parent = ParentChoice::None;
    o
}

fn kind<T, E: Into<Error>>(r: Result<T, E>) -> Error {
    match r {
        Ok(_) => panic!("expected an error, the call succeeded"),
        Err(e) => e.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_missing_things_conflicts_and_bad_requests() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo_dir = tmp.path().join("repo");
    let repo = local_repo(&repo_dir).await;

    let store =
        Store::open(repo_dir.to_str().expect("utf-8"), cairn::Create::Never).expect("store");
    let e = kind(Repository::open(store, b"not it", Default::default()).await);
    assert_eq!(e.kind(), ErrorKind::WrongPassword, "{e}");
    assert!(!e.is_retryable());

    let e = kind(repo.find_snapshot("deadbeef").await);
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    let empty = tmp.path().join("nothing-here");
    std::fs::create_dir(&empty).expect("mkdir");
    let store = Store::open(empty.to_str().expect("utf-8"), cairn::Create::Never).expect("store");
    let e = kind(Repository::open(store, PASSWORD, Default::default()).await);
    assert_eq!(e.kind(), ErrorKind::NotFound, "no repository there: {e}");

    let store =
        Store::open(repo_dir.to_str().expect("utf-8"), cairn::Create::Never).expect("store");
    let e = kind(Repository::init(store, PASSWORD, InitOptions::insecure_fast_for_tests()).await);
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");

    let e = kind(
        cairn::backup(
            &repo,
            BackupOptions::default(),
            Arc::new(Progress::default()),
        )
        .await,
    );
    assert_eq!(e.kind(), ErrorKind::Invalid, "no paths: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_data_is_corrupt_and_a_cancelled_run_is_cancelled() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    // Incompressible, so the blob fills most of its pack.
    let noise = cairn_testkit::noise(1, 300_000);
    std::fs::write(src.join("f"), noise).expect("write");
    let repo_dir = tmp.path().join("repo");
    let repo = local_repo(&repo_dir).await;

    let cancelled = Arc::new(Progress::default());
    cancelled.cancel();
    let e = kind(cairn::backup(&repo, options(&src), cancelled).await);
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");

    let out = cairn::backup(&repo, options(&src), Arc::new(Progress::default()))
        .await
        .expect("backup");
    let tree = repo.load_tree(&out.snapshot.tree).await.expect("tree");
    let chunk = tree.nodes[0].content[0];
    // One byte in every thousand of every pack flipped.
    for entry in walk(&repo_dir.join("data")) {
        let mut bytes = std::fs::read(&entry).expect("read");
        for b in bytes.iter_mut().step_by(1000) {
            *b ^= 0xff;
        }
        std::fs::write(&entry, bytes).expect("write");
    }
    let e = kind(repo.read_blob(Kind::Data, &chunk).await);
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(
        std::error::Error::source(&e).is_some(),
        "the layer's error is kept"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn s3_settings(secret: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            std::env::var("AWS_ACCESS_KEY_ID").unwrap_or("GK0".into()),
        ),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), secret.to_owned()),
        ("AWS_REGION".to_owned(), "garage".to_owned()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_that_cannot_be_reached_is_transient_and_retryable() {
    // Nothing listens on port 9 of loopback.
    let url = "s3://bucket/repo?endpoint=http://127.0.0.1:9&region=garage&path-style=true&allow-http=true";
    let mut opts = StoreOptions::default();
    opts.settings = s3_settings("secret");
    opts.isolated = true;
    let store = Store::open_with(url, &opts).expect("store");
    let e = kind(Repository::open(store, PASSWORD, Default::default()).await);
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_that_refuses_the_credentials_is_permission_denied() {
    let Ok(base) = std::env::var("CAIRN_TEST_S3_URL") else {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_S3").is_none(),
            "CAIRN_REQUIRE_S3 is set but CAIRN_TEST_S3_URL is not"
        );
        eprintln!("SKIP: CAIRN_TEST_S3_URL is not set (scripts/garage.sh)");
        return;
    };
    let mut opts = StoreOptions::default();
    opts.settings = s3_settings("not-the-secret-key");
    opts.isolated = true;
    let store = Store::open_with(&base, &opts).expect("store");
    let e = kind(Repository::open(store, PASSWORD, Default::default()).await);
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(!e.is_retryable());
}

#[test]
fn a_backup_over_an_index_table_found_damaged_is_worth_running_again() {
    // The table is removed when found damaged: the next run builds a new
    // one (ADR 0028), so the failure is transient.
    let e = Error::from(cairn::layers::repo::Error::IndexTableDamaged {
        detail: "the index table's checksum does not match".into(),
    });
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.is_retryable());
}
