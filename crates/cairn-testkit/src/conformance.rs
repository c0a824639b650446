//! The storage conformance suite: what cairn relies on from every backend,
//! one named check per property, so an embedder can run the same checks
//! against their own [`Store`] (`run_all(store, Traits::default())`).
//!
//! Each check writes under a prefix of its own (its name) and panics with
//! the store's description when the backend breaks the contract. Run each
//! check once per empty store (or per fresh prefix of a bucket).

use std::sync::Arc;

use bytes::Bytes;
use cairn_store::{FaultConfig, FaultStore, Store, StoreError};

use crate::noise::noise;

/// What a backend guarantees beyond the common contract.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Traits {
    /// A create-only put of an existing object is refused
    /// ([`StoreError::AlreadyExists`]) and leaves the object as it was.
    /// Some S3 servers (Garage) ignore `If-None-Match` on PUT.
    pub honours_create_only: bool,
}

impl Default for Traits {
    /// Everything honoured.
    fn default() -> Traits {
        Traits {
            honours_create_only: true,
        }
    }
}

/// Objects the listing check writes: more than one S3 page (1000 keys).
pub const LISTED: usize = 1050;
/// Concurrent writers in [`concurrent_writes`].
pub const WRITERS: u64 = 32;
/// Size of the object [`large_objects`] writes: above the multipart
/// threshold, so it goes up in parts.
pub const LARGE: usize = 40 << 20;

/// A put is read back whole, and its size is what HEAD reports.
pub async fn round_trip(store: &Store) {
    let name = store.describe();
    store
        .put("round_trip/one", Bytes::from_static(b"hello"))
        .await
        .expect("put");
    assert_eq!(
        &store.get("round_trip/one").await.expect("get")[..],
        b"hello",
        "{name}"
    );
    assert_eq!(store.head("round_trip/one").await.expect("head"), 5);
}

/// Reads and HEADs of what does not exist say [`StoreError::NotFound`].
pub async fn missing_objects(store: &Store) {
    let name = store.describe();
    for missing in [
        store.get("missing_objects/none").await.err(),
        store.head("missing_objects/none").await.err(),
    ] {
        assert!(
            matches!(missing, Some(StoreError::NotFound { .. })),
            "{name}: {missing:?}"
        );
    }
    assert!(matches!(
        store.get_range("missing_objects/none", 0..1).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Ranged and suffix reads return exactly what was asked, or an error.
pub async fn ranged_reads(store: &Store) {
    let name = store.describe();
    let data = noise(1, 100_000);
    let path = "ranged_reads/noise";
    store
        .put(path, Bytes::from(data.clone()))
        .await
        .expect("put");
    assert_eq!(
        &store.get_range(path, 1000..1010).await.expect("range")[..],
        &data[1000..1010]
    );
    assert_eq!(
        &store.get_range(path, 0..100_000).await.expect("range")[..],
        &data[..]
    );
    let (tail, size) = store.get_suffix(path, 64).await.expect("suffix");
    assert_eq!((&tail[..], size), (&data[100_000 - 64..], 100_000));
    let past_end = store.get_range(path, 99_990..100_010).await;
    assert!(
        past_end.is_err(),
        "{name}: a range past the end must not return short data"
    );
}

/// A create-only put succeeds once; where the backend honours it, a
/// second is refused and the first content stays.
pub async fn create_only(store: &Store, traits: Traits) {
    let name = store.describe();
    let path = "create_only/object";
    store
        .put_new(path, Bytes::from_static(b"first"))
        .await
        .expect("put_new");
    let again = store.put_new(path, Bytes::from_static(b"second")).await;
    if traits.honours_create_only {
        assert!(
            matches!(again, Err(StoreError::AlreadyExists { .. })),
            "{name}: {again:?}"
        );
        assert_eq!(&store.get(path).await.expect("get")[..], b"first");
    }
}

/// Listing follows pagination to the end (S3 pages hold 1000 keys), with
/// every object's size; an empty prefix lists nothing.
pub async fn listing(store: &Store) {
    let name = store.describe();
    futures::future::try_join_all((0..LISTED).map(|i| {
        let store = store.clone();
        async move {
            store
                .put(&format!("listing/{i:05}"), Bytes::from(vec![1u8; 3]))
                .await
        }
    }))
    .await
    .expect("puts");
    let mut listed = store.list("listing").await.expect("list");
    listed.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(listed.len(), LISTED, "{name}");
    assert_eq!(listed[7].path, "listing/00007");
    assert!(listed.iter().all(|o| o.size == 3));
    assert!(
        store
            .list("listing-nothing-here")
            .await
            .expect("list")
            .is_empty()
    );
}

/// Concurrent writers to distinct names and to one shared name: every
/// distinct object is intact, and the shared one is one writer's whole.
pub async fn concurrent_writes(store: &Store) {
    futures::future::try_join_all((0..WRITERS).map(|i| {
        let store = store.clone();
        async move {
            store
                .put(
                    &format!("concurrent_writes/{i}"),
                    Bytes::from(noise(i, 10_000)),
                )
                .await?;
            store
                .put("concurrent_writes/shared", Bytes::from(noise(99, 10_000)))
                .await
        }
    }))
    .await
    .expect("concurrent puts");
    for i in 0..WRITERS {
        assert_eq!(
            store
                .get(&format!("concurrent_writes/{i}"))
                .await
                .expect("get"),
            noise(i, 10_000)
        );
    }
    assert_eq!(
        store.get("concurrent_writes/shared").await.expect("get"),
        noise(99, 10_000)
    );
}

/// A large object goes up in parts and comes back whole, also in ranges
/// across the middle.
pub async fn large_objects(store: &Store) {
    let name = store.describe();
    let big = noise(7, LARGE);
    let path = "large_objects/object";
    store
        .put(path, Bytes::from(big.clone()))
        .await
        .expect("multipart put");
    assert_eq!(store.head(path).await.expect("head"), big.len() as u64);
    let mid = LARGE as u64 / 2;
    let got = store
        .get_range(path, mid - 5..mid + 5)
        .await
        .expect("range");
    assert_eq!(&got[..], &big[mid as usize - 5..mid as usize + 5]);
    assert!(
        store.get(path).await.expect("get") == big,
        "{name}: big object differs"
    );
}

/// Deletes remove, and deleting what is already gone is not an error.
pub async fn deletes(store: &Store) {
    let path = "deletes/one";
    store
        .put(path, Bytes::from_static(b"hello"))
        .await
        .expect("put");
    store.delete(path).await.expect("delete");
    store.delete(path).await.expect("delete again");
    assert!(matches!(
        store.get(path).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Requests and bytes are counted: this check's own puts, list and
/// upload show in the store's metrics.
pub async fn requests_are_counted(store: &Store) {
    let name = store.describe();
    let before = store.metrics();
    for i in 0..3 {
        store
            .put(
                &format!("requests_are_counted/{i}"),
                Bytes::from(noise(i, 1000)),
            )
            .await
            .expect("put");
    }
    store.list("requests_are_counted").await.expect("list");
    let after = store.metrics();
    assert!(
        after.puts >= before.puts + 3
            && after.lists > before.lists
            && after.bytes_up >= before.bytes_up + 3000,
        "{name}: {before:?} then {after:?}"
    );
}

/// `store`'s backend behind a fault layer configured by `config`.
fn through(store: &Store, config: FaultConfig, what: &str) -> Store {
    Store::from_object_store(
        Arc::new(FaultStore::new(store.object_store().clone(), config)),
        format!("{what} {}", store.describe()),
    )
}

/// Reads that come back short, break off, or are altered are never
/// returned as data: short ones are [`StoreError::ShortRead`], broken-off
/// ones errors, altered ones keep their length (authenticated decryption
/// above the store refuses them).
pub async fn truncated_reads_are_never_data(store: &Store) {
    let path = "truncated_reads/x";
    let data = noise(3, 4096);
    store
        .put(path, Bytes::from(data.clone()))
        .await
        .expect("put");
    let truncating = through(
        store,
        FaultConfig {
            truncate_rate: 1.0,
            ..Default::default()
        },
        "truncating",
    );
    for r in [
        truncating.get(path).await,
        truncating.get_range(path, 10..2000).await,
    ] {
        assert!(matches!(r, Err(StoreError::ShortRead { .. })), "{r:?}");
    }
    // A download that breaks off part-way is an error, not a short result.
    let breaking = through(
        store,
        FaultConfig {
            fail_reads_after_bytes: Some(1000),
            ..Default::default()
        },
        "breaking",
    );
    let r = breaking.get(path).await;
    assert!(
        r.as_ref()
            .err()
            .is_some_and(|e| e.to_string().contains("after 1000 bytes")),
        "{r:?}"
    );
    assert_eq!(
        &breaking
            .get_range(path, 0..500)
            .await
            .expect("within the limit")[..],
        &data[..500]
    );
    // A flipped bit passes the length check: the store cannot know. It is
    // the repository's authenticated decryption that refuses such bytes
    // (tested with the repository), so here it only must not be short.
    let corrupting = through(
        store,
        FaultConfig {
            corrupt_rate: 1.0,
            ..Default::default()
        },
        "corrupting",
    );
    let got = corrupting.get(path).await.expect("get");
    assert_eq!(got.len(), data.len());
    assert_ne!(&got[..], &data[..]);
}

/// Every check, in order, on one store; then the store's metrics must
/// show the whole run's requests.
pub async fn run_all(store: Store, traits: Traits) {
    let name = store.describe().to_owned();
    eprintln!("conformance of {name}: round_trip");
    round_trip(&store).await;
    eprintln!("conformance of {name}: missing_objects");
    missing_objects(&store).await;
    eprintln!("conformance of {name}: ranged_reads");
    ranged_reads(&store).await;
    eprintln!("conformance of {name}: create_only");
    create_only(&store, traits).await;
    eprintln!("conformance of {name}: listing");
    listing(&store).await;
    eprintln!("conformance of {name}: concurrent_writes");
    concurrent_writes(&store).await;
    eprintln!("conformance of {name}: large_objects");
    large_objects(&store).await;
    eprintln!("conformance of {name}: deletes");
    deletes(&store).await;
    eprintln!("conformance of {name}: requests_are_counted");
    requests_are_counted(&store).await;
    eprintln!("conformance of {name}: truncated_reads_are_never_data");
    truncated_reads_are_never_data(&store).await;
    let m = store.metrics();
    assert!(
        m.puts >= LISTED as u64 + WRITERS && m.lists >= 2 && m.bytes_up > LARGE as u64,
        "{name}: {m:?}"
    );
}
