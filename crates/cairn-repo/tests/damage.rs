//! A damaged or hostile repository stays usable and cannot exhaust the
//! client: damaged index files, snapshots and key files are left out and
//! named, `repair index` rebuilds without them, `check` does not trust
//! the local cache, and limits hold.

mod common;

use cairn_repo::Maintenance;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use cairn_core::format::{KdfParams, KeyFile};
use cairn_core::{FixedClock, Id, OsRandom};
use cairn_repo::{Error, OpenOptions, ReadData, Repository};
use cairn_store::{Cache, Store};
use common::{PASSWORD, T0, backup, content, repo, restore};
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

fn files(n: u64) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| (format!("f{i}"), content(i + 100 * n, 20_000)))
        .collect()
}

async fn first(repo: &Repository, prefix: &str) -> String {
    repo.store().list(prefix).await.expect("list")[0]
        .path
        .clone()
}

/// Flips one bit in the stored object at `path`.
async fn flip(store: &Store, path: &str, at: usize) {
    let mut b = store.get(path).await.expect("get").to_vec();
    let at = at % b.len();
    b[at] ^= 0x10;
    store.put(path, Bytes::from(b)).await.expect("put");
}

async fn open(store: Store, opts: OpenOptions) -> cairn_repo::Result<Repository> {
    Repository::open(store, PASSWORD, opts).await
}

#[tokio::test]
async fn damaged_index_file_leaves_the_repository_usable_and_repairable() {
    let (repo, _) = repo().await;
    let snap = backup(&repo, "h", &files(3)).await;
    let index = first(&repo, "index/").await;
    flip(repo.store(), &index, 40).await;

    let again = open(repo.store().clone(), OpenOptions::default())
        .await
        .expect("a damaged index file must not make the repository unopenable");
    let damaged = again.damaged();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0].object, index);
    assert_eq!(again.list_snapshots().await.expect("list").len(), 1);

    let report = again
        .repair_index(cairn_repo::RunMode::Apply)
        .await
        .expect("repair index");
    assert_eq!(report.unreadable_index_files.len(), 1, "{report:?}");
    assert_eq!(report.unreadable_index_files[0].0, index);
    let fixed = open(repo.store().clone(), OpenOptions::default())
        .await
        .expect("open");
    assert!(fixed.damaged().is_empty(), "{:?}", fixed.damaged());
    assert_eq!(restore(&fixed, &snap).await, files(3));
}

#[tokio::test]
async fn damaged_snapshot_is_left_out_of_the_listing_and_named() {
    let (repo, clock) = repo().await;
    backup(&repo, "a", &files(1)).await;
    clock.set(T0 + 10);
    let good = backup(&repo, "b", &files(2)).await;
    let ids = repo.snapshot_ids().await.expect("ids");
    let bad = ids.into_iter().find(|i| *i != good).expect("two snapshots");
    flip(repo.store(), &format!("snapshots/{bad}"), 50).await;

    let again = open(repo.store().clone(), OpenOptions::default())
        .await
        .expect("open");
    let listed = again.list_snapshots().await.expect("listing survives");
    assert_eq!(
        listed.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![good]
    );
    let named: Vec<String> = again.damaged().into_iter().map(|d| d.object).collect();
    assert_eq!(named, vec![format!("snapshots/{bad}")]);
}

/// A store with a local cache, as the CLI uses, and a table directory.
fn cached(dir: &std::path::Path) -> (Store, OpenOptions) {
    let cache = Arc::new(Cache::open(&dir.join("cache")).expect("cache"));
    let mut opts = OpenOptions::default();
    opts.index_dir = Some(dir.join("table"));
    (Store::memory().with_cache(cache), opts)
}

/// A new repository in a [`cached`] store.
async fn init_cached(dir: &std::path::Path) -> (Repository, Store, OpenOptions) {
    let (store, opts) = cached(dir);
    let repo = Repository::init(
        store.clone(),
        PASSWORD,
        cairn_repo::InitOptions::insecure_fast_for_tests(),
    )
    .await
    .expect("init");
    (repo, store, opts)
}

#[tokio::test]
async fn check_reports_damage_that_a_warm_cache_hides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, store, opts) = init_cached(dir.path()).await;
    backup(&repo, "h", &files(2)).await;
    // Warm the cache: index table, snapshots and trees.
    let warm = open(store.clone(), opts.clone()).await.expect("open");
    let clean = warm.check_with(ReadData::All).await.expect("check");
    assert!(clean.is_ok(), "{:?}", clean.errors);
    for prefix in ["index/", "snapshots/"] {
        let path = first(&repo, prefix).await;
        let raw = Store::from_object_store(store.object_store().clone(), "raw".into());
        flip(&raw, &path, 33).await;
        let again = open(store.clone(), opts.clone()).await.expect("open");
        let report = again.check_with(ReadData::All).await.expect("check");
        assert!(
            report.errors.iter().any(|e| e.object == path),
            "check misses the damaged {path}: {:?}",
            report.errors
        );
        flip(&raw, &path, 33).await;
    }
}

#[tokio::test]
async fn planted_key_file_is_refused_before_any_key_derivation() {
    let (repo, _) = repo().await;
    // A key file with costly parameters (1000 passes, within the old
    // bounds), named to sort first and not after its content.
    let master = cairn_core::MasterKey::generate(&OsRandom);
    let mut planted = KeyFile::create(
        &master,
        b"x",
        KdfParams::INSECURE_FAST,
        0,
        "h",
        "u",
        &OsRandom,
    )
    .expect("key")
    .encode();
    planted[14..18].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(KeyFile::decode(&planted).expect("decode").kdf.t_cost, 1000);
    let name = format!("keys/{}", Id::ZERO);
    repo.store()
        .put(&name, Bytes::from(planted))
        .await
        .expect("put");
    let again = open(repo.store().clone(), OpenOptions::default())
        .await
        .expect("open with the real key file");
    let damaged = again.damaged();
    assert!(
        damaged
            .iter()
            .any(|d| d.object == name && d.problem.contains("BLAKE3")),
        "{damaged:?}"
    );
    assert_eq!(again.list_keys().await.expect("keys").len(), 1);
    // The damaged file can still be removed by its name.
    assert_eq!(again.remove_key("0000").await.expect("remove"), Id::ZERO);
    assert!(repo.store().get(&name).await.is_err());
}

#[tokio::test]
async fn index_table_cannot_outgrow_its_limit() {
    let (repo, _) = repo().await;
    backup(&repo, "h", &files(20)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = OpenOptions::default();
    opts.index_dir = Some(dir.path().to_owned());
    opts.index_table_limit = 1000;
    match open(repo.store().clone(), opts).await {
        Err(Error::IndexTooLarge { needed, limit }) => {
            assert_eq!(limit, 1000);
            assert!(needed > limit);
        }
        other => panic!("expected IndexTooLarge, got {other:?}"),
    }
}

/// Records the order of listings and writes, and can make suffix reads of
/// packs short (as a server returning fewer bytes than asked does).
#[derive(Debug)]
struct Probe {
    inner: Arc<dyn ObjectStore>,
    log: Mutex<Vec<String>>,
    short_suffix: Mutex<bool>,
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Probe({})", self.inner)
    }
}

impl Probe {
    fn note(&self, what: String) {
        self.log.lock().expect("log").push(what);
    }
}

#[async_trait]
impl ObjectStore for Probe {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.note(format!("put {location}"));
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        mut options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let short = *self.short_suffix.lock().expect("flag");
        if short
            && location.as_ref().starts_with("data/")
            && matches!(options.range, Some(GetRange::Suffix(_)))
        {
            options.range = Some(GetRange::Suffix(4));
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.note(format!(
            "list {}",
            prefix.map(|p| p.to_string()).unwrap_or_default()
        ));
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

async fn probed() -> (Repository, Arc<Probe>) {
    let (repo, _) = repo().await;
    backup(&repo, "h", &files(3)).await;
    let probe = Arc::new(Probe {
        inner: repo.store().object_store().clone(),
        log: Mutex::new(Vec::new()),
        short_suffix: Mutex::new(false),
    });
    let store = Store::from_object_store(probe.clone(), "probe".into());
    let clock = Arc::new(FixedClock::new(T0));
    let mut opts = OpenOptions::default();
    opts.clock = clock;
    (open(store, opts).await.expect("open"), probe)
}

#[tokio::test]
async fn repair_index_lists_index_files_before_packs_inside_a_session() {
    let (repo, probe) = probed().await;
    // The backup's own "done" record, which prune keeps for a while.
    let names = |list: Vec<cairn_store::ObjectInfo>| -> Vec<String> {
        list.into_iter().map(|o| o.path).collect()
    };
    let before = names(repo.store().list("sessions/").await.expect("list"));
    probe.log.lock().expect("log").clear();
    repo.repair_index(cairn_repo::RunMode::Apply)
        .await
        .expect("repair");
    let log = probe.log.lock().expect("log").clone();
    let at = |what: &str| {
        log.iter()
            .position(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} in {log:#?}"))
    };
    let session = at("put sessions/");
    let index = at("list index");
    let data = at("list data");
    assert!(session < index, "session announced after listing: {log:#?}");
    assert!(index < data, "packs listed before index files: {log:#?}");
    assert_eq!(
        names(repo.store().list("sessions/").await.expect("list")),
        before,
        "repair left its session behind"
    );
}

#[tokio::test]
async fn short_pack_suffix_read_is_an_error_naming_the_pack_not_a_panic() {
    let (repo, probe) = probed().await;
    *probe.short_suffix.lock().expect("flag") = true;
    let report = repo
        .repair_index(cairn_repo::RunMode::DryRun)
        .await
        .expect("repair dry run");
    assert!(!report.unreadable_packs.is_empty(), "{report:?}");
    for (object, problem) in &report.unreadable_packs {
        assert!(object.starts_with("data/"), "{object}");
        assert!(problem.contains(object.as_str()), "{problem}");
    }
}

/// A backup that looked its blobs up in a table still being verified
/// (ADR 0028) stores its snapshot only if the table passed: over a damaged
/// one it stores none, the table is removed, and the next run rebuilds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_over_a_table_found_damaged_while_in_use_stores_no_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (repo, store, mut opts) = init_cached(dir.path()).await;
    let data = files(3);
    backup(&repo, "h", &data).await;
    // An open builds the table; one byte of a record is then flipped.
    drop(open(store.clone(), opts.clone()).await.expect("open"));
    let table = dir.path().join("table").join("index.table");
    let mut bytes = std::fs::read(&table).expect("table");
    bytes[64 + 40] ^= 1;
    std::fs::write(&table, &bytes).expect("damage");
    opts.overlap_table_check = true;
    let damaged = open(store.clone(), opts.clone())
        .await
        .expect("a table being verified opens at once");
    let snapshots = damaged.snapshot_ids().await.expect("list").len();
    let writer = cairn_repo::BlobWriter::new(&damaged).expect("writer");
    let (writer, root) = tokio::task::spawn_blocking(move || {
        let root = common::add_tree(&writer, &data);
        (writer, root)
    })
    .await
    .expect("join");
    writer.finish().await.expect("finish");
    let snap = cairn_testkit::snapshot_of(root, T0, "h");
    match damaged.save_snapshot(&snap).await {
        Err(Error::IndexTableDamaged { detail }) => {
            assert!(detail.contains("checksum"), "{detail}")
        }
        other => panic!("a snapshot over a damaged table: {other:?}"),
    }
    // Asked again, the handle still refuses.
    assert!(matches!(
        damaged.save_snapshot(&snap).await,
        Err(Error::IndexTableDamaged { .. })
    ));
    assert_eq!(damaged.snapshot_ids().await.expect("list").len(), snapshots);
    assert!(!table.exists(), "the damaged table is still there");
    // The next run builds a new table, which passes.
    let again = open(store, opts).await.expect("open");
    again
        .save_snapshot(&snap)
        .await
        .expect("save over a sound table");
    assert_eq!(
        again.snapshot_ids().await.expect("list").len(),
        snapshots + 1
    );
}
