//! Objects written into a local repository as they are made
//! (`Store::spool`): what a `put` would store, durable and in place only
//! once published, and nothing left behind otherwise.

use cairn_store::{Create, ObjectClass, Store, StoreOptions};

fn local(dir: &std::path::Path) -> Store {
    Store::open(dir.to_str().expect("utf8"), Create::Never).expect("open")
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("under dir");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_published_spool_is_the_object_a_put_would_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = local(dir.path());
    let before = store.metrics();
    let mut spool = store.spool("data").expect("local").expect("open");
    let body: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    for piece in body.chunks(100_000).chain([&body[..0], &body[..3]]) {
        spool.write(piece).expect("write");
    }
    assert_eq!(spool.len(), body.len() as u64 + 3);
    // Until published it is a temporary file, which prune's leftovers
    // collect if the process dies here.
    let staged = store.staging_files().expect("staging");
    assert_eq!(staged.len(), 1, "{staged:?}");
    assert!(staged[0].path.starts_with("data/spool#"), "{staged:?}");
    assert!(store.list("data/").await.expect("list").is_empty());

    store
        .publish(spool, "data/ab/abcdef", ObjectClass::Data)
        .await
        .expect("publish");
    let mut want = body.clone();
    want.extend_from_slice(&body[..3]);
    assert_eq!(
        &store.get("data/ab/abcdef").await.expect("get")[..],
        &want[..]
    );
    assert_eq!(files(dir.path()), ["data/ab/abcdef"]);
    let after = store.metrics();
    assert_eq!(after.puts, before.puts + 1);
    assert_eq!(after.bytes_up, before.bytes_up + want.len() as u64);
}

#[tokio::test]
async fn a_spool_dropped_or_refused_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = local(dir.path());
    let mut spool = store.spool("data").expect("local").expect("open");
    spool.write(b"abandoned").expect("write");
    assert_eq!(files(dir.path()).len(), 1);
    drop(spool);
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));

    // A path that is not a plain object path is refused, and the
    // temporary file goes with the spool.
    for bad in ["../outside", "data/../x", "data//x", "data/x#1", "/abs"] {
        let mut spool = store.spool("data").expect("local").expect("open");
        spool.write(b"x").expect("write");
        let refused = store.publish(spool, bad, ObjectClass::Data).await;
        assert!(refused.is_err(), "{bad}");
        assert!(
            files(dir.path()).is_empty(),
            "{bad}: {:?}",
            files(dir.path())
        );
    }
    assert!(
        !dir.path()
            .parent()
            .expect("parent")
            .join("outside")
            .exists()
    );
    for bad in ["", "..", "data/..", "a#1"] {
        assert!(store.spool(bad).expect("local").is_err(), "{bad}");
    }
}

#[test]
fn only_plain_local_stores_spool() {
    assert!(Store::memory().spool("data").is_none());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = StoreOptions::default();
    opts.limit_upload_kib = Some(1024);
    // An upload limit applies to puts: objects are then made in memory.
    let limited = Store::open_with(dir.path().to_str().expect("utf8"), &opts).expect("open");
    assert!(limited.spool("data").is_none());
    assert!(local(dir.path()).spool("data").is_some());
}

#[tokio::test]
async fn a_range_read_now_is_the_range_a_get_range_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = local(dir.path());
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    store
        .put("data/ab/abcdef", body.clone().into())
        .await
        .expect("put");
    let before = store.metrics();
    let now = store
        .get_range_now("data/ab/abcdef", 1000..61_000)
        .expect("local")
        .expect("read");
    assert_eq!(&now[..], &body[1000..61_000]);
    let after = store.metrics();
    assert_eq!(after.range_gets, before.range_gets + 1);
    assert_eq!(after.bytes_down, before.bytes_down + 60_000);
    // Past the end: an error, never fewer bytes.
    match store.get_range_now("data/ab/abcdef", 90_000..110_000) {
        Some(Err(cairn_store::StoreError::ShortRead { expected, got, .. })) => {
            assert_eq!((expected, got), (20_000, 10_000));
        }
        other => panic!("expected a short read, got {other:?}"),
    }
    assert!(matches!(
        store.get_range_now("data/ab/missing", 0..1),
        Some(Err(cairn_store::StoreError::NotFound { .. }))
    ));
    for bad in ["../outside", "data/../config", "/etc/passwd", ""] {
        assert!(
            matches!(store.get_range_now(bad, 0..1), Some(Err(_))),
            "{bad}"
        );
    }
}

#[test]
fn only_plain_local_stores_read_now() {
    assert!(Store::memory().get_range_now("config", 0..1).is_none());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = StoreOptions::default();
    opts.limit_download_kib = Some(1024);
    // A download limit applies to reads: they then go through the store.
    let limited = Store::open_with(dir.path().to_str().expect("utf8"), &opts).expect("open");
    assert!(limited.get_range_now("config", 0..1).is_none());
}

/// Bytes of `path` in the page cache, as `fincore` (util-linux) counts
/// them: it asks the kernel (`mincore`), reading nothing.
fn cached_bytes(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number of bytes")
}

/// Spools `len` bytes in pieces of odd sizes into a store in `dir` and
/// publishes them; returns them and the object's file.
async fn spool_into(dir: &std::path::Path, len: usize) -> (Vec<u8>, std::path::PathBuf) {
    let store = local(dir);
    let mut spool = store.spool("data").expect("local").expect("open");
    let body: Vec<u8> = (0..len as u32).map(|i| (i % 253) as u8).collect();
    for piece in body.chunks(333_333) {
        spool.write(piece).expect("write");
    }
    store
        .publish(spool, "data/cd/cdef", ObjectClass::Data)
        .await
        .expect("publish");
    (body, dir.join("data/cd/cdef"))
}

#[tokio::test]
async fn a_spool_on_a_local_disk_bypasses_the_page_cache_but_for_its_last_block() {
    // This machine's disk (ext4): written with O_DIRECT, a whole buffer at
    // a time, and its last 100 bytes through the page cache.
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("tempdir");
    let (body, file) = spool_into(dir.path(), 3 * (1 << 20) + 100).await;
    let cached = cached_bytes(&file);
    assert!(cached <= 4096, "only the last block cached: {cached}");
    assert!(std::fs::read(&file).expect("read back") == body);

    // tmpfs: through the page cache, the same bytes.
    let shm = tempfile::tempdir_in("/dev/shm").expect("shm");
    let (body, file) = spool_into(shm.path(), 2 * (1 << 20) + 5).await;
    assert!(std::fs::read(&file).expect("read back") == body);
}
