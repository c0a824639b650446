//! One thousand single-bit flips across every kind of repository object,
//! each against a warm local cache: `check` reports every one, `restore`
//! never writes a wrong byte, and after `repair index` every snapshot
//! whose data is intact restores byte-identical.
//!
//! In-process through the library (the same calls the commands make), on a
//! small repository copied fresh for each flip, so the thousand runs take
//! seconds rather than a thousand CLI invocations.

use cairn::Maintenance;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn::layers::core::Kind;
use cairn::layers::store::Cache;
use cairn::{
    BackupOptions, Id, InitOptions, KdfParams, NodeKind, OpenOptions, Progress, ReadData,
    Repository, RestoreOptions, Store,
};
use cairn_testkit::XorShift;

use crate::common::compare::{regular_files, tree_differences};

const FLIPS: usize = 1000;
const SEED: u64 = 0x00c0_ffee_d00d_f11e;
const PASSWORD: &[u8] = b"bit flips";
const SECOND_PASSWORD: &[u8] = b"the other key";

/// What an object is, for choosing flips across kinds and for knowing
/// which snapshots a flip may damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Object {
    Config,
    Key,
    Index,
    Snapshot,
    TreePack,
    DataPack,
}

const KINDS: [Object; 6] = [
    Object::Config,
    Object::Key,
    Object::Index,
    Object::Snapshot,
    Object::TreePack,
    Object::DataPack,
];

fn bytes(n: u64, len: usize) -> Vec<u8> {
    let mut g = XorShift::new(n);
    // Half compressible, half not, so both sealed forms are exercised.
    (0..len)
        .map(|i| {
            if i % 2048 < 1024 {
                (i / 7) as u8
            } else {
                g.next_u64() as u8
            }
        })
        .collect()
}

fn write(path: &Path, content: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, content).expect("write source");
}

/// Two source trees with nothing in common, so damage to one snapshot's
/// packs leaves the other intact.
fn sources(root: &Path) -> [PathBuf; 2] {
    let a = root.join("a");
    write(&a.join("one"), &bytes(1, 20_000));
    write(&a.join("two"), &bytes(2, 80_000));
    write(&a.join("sub/three"), &bytes(3, 5_000));
    write(&a.join("sub/empty"), b"");
    let b = root.join("b");
    write(&b.join("four"), &bytes(4, 50_000));
    write(&b.join("deeper/five"), &bytes(5, 3_000));
    [a, b]
}

fn open_store(repo: &Path, cache: &Path, create: bool) -> Store {
    let url = format!("file://{}", repo.display());
    let c = Arc::new(Cache::open(cache).expect("cache"));
    let create = if create {
        cairn::Create::IfMissing
    } else {
        cairn::Create::Never
    };
    Store::open(&url, create).expect("store").with_cache(c)
}

fn open_opts(cache: &Path) -> OpenOptions {
    let mut o = OpenOptions::default();
    o.index_dir = Some(cache.join("index"));
    o
}

async fn open(repo: &Path, cache: &Path) -> cairn::layers::repo::Result<Repository> {
    open_with(repo, cache, PASSWORD).await
}

async fn open_with(
    repo: &Path,
    cache: &Path,
    password: &[u8],
) -> cairn::layers::repo::Result<Repository> {
    Repository::open(open_store(repo, cache, false), password, open_opts(cache)).await
}

/// Builds the repository: two snapshots, two key files; then warms the
/// cache (index table, snapshots, trees) as a first `check --with-cache`
/// and restore would.
async fn build(repo_dir: &Path, cache: &Path, src: &[PathBuf; 2]) {
    let mut init = InitOptions::insecure_fast_for_tests();
    init.data_pack_size = Some(64 * 1024);
    let store = open_store(repo_dir, cache, true);
    let repo = Repository::init(store, PASSWORD, init).await.expect("init");
    repo.add_key(SECOND_PASSWORD, KdfParams::INSECURE_FAST, "h", "u", 0)
        .await
        .expect("second key");
    for (i, dir) in src.iter().enumerate() {
        let mut opts = BackupOptions::default();
        opts.paths = vec![dir.clone()];
        opts.hostname = format!("host{i}");
        opts.username = "u".into();
        opts.program_version = "test".into();
        cairn::backup(&repo, opts, Arc::new(Progress::default()))
            .await
            .expect("backup");
    }
    let warm = open(repo_dir, cache).await.expect("open");
    let report = warm
        .check_using(ReadData::All, cairn::MetadataSource::Cache)
        .await
        .expect("check");
    assert!(report.is_ok(), "{:?}", report.errors);
    for (id, snap) in warm.list_snapshots().await.expect("list") {
        let out = cache.parent().expect("parent").join(format!("warm-{id}"));
        cairn::restore(
            &warm,
            &snap,
            restore_opts(&out),
            Arc::new(Progress::default()),
        )
        .await
        .expect("warm restore");
        std::fs::remove_dir_all(&out).expect("rm");
    }
}

fn restore_opts(target: &Path) -> RestoreOptions {
    let mut o = RestoreOptions::default();
    o.target = target.to_owned();
    o.owners = Some(false);
    o
}

/// Every object of the pristine repository by kind, and for each snapshot
/// the source it came from and the packs it needs.
struct Layout {
    objects: BTreeMap<Object, Vec<String>>,
    source_of: BTreeMap<Id, PathBuf>,
    packs_of: BTreeMap<Id, BTreeSet<String>>,
}

fn pack_path(id: &Id) -> String {
    let h = id.to_hex();
    format!("data/{}/{h}", &h[..2])
}

async fn layout(repo_dir: &Path, cache: &Path, src: &[PathBuf; 2]) -> Layout {
    let repo = open(repo_dir, cache).await.expect("open");
    let mut objects: BTreeMap<Object, Vec<String>> = BTreeMap::new();
    let by_pack = repo.index().entries_by_pack().expect("entries");
    for o in repo.store().list("").await.expect("list") {
        let kind = match o.path.split('/').next() {
            Some("config") => Object::Config,
            Some("keys") => Object::Key,
            Some("index") => Object::Index,
            Some("snapshots") => Object::Snapshot,
            Some("data") => {
                let id = o.path.rsplit('/').next().expect("name");
                let id: Id = id.parse().expect("pack id");
                let tree = by_pack[&id].iter().any(|e| e.kind == Kind::Tree);
                if tree {
                    Object::TreePack
                } else {
                    Object::DataPack
                }
            }
            _ => continue,
        };
        objects.entry(kind).or_default().push(o.path);
    }
    for k in KINDS {
        assert!(objects.contains_key(&k), "no {k:?} in {objects:?}");
    }
    assert!(objects[&Object::Key].len() == 2);
    let mut source_of = BTreeMap::new();
    let mut packs_of = BTreeMap::new();
    for (id, snap) in repo.list_snapshots().await.expect("snapshots") {
        let i: usize = snap
            .hostname
            .trim_start_matches("host")
            .parse()
            .expect("host");
        source_of.insert(id, src[i].clone());
        let mut packs = BTreeSet::new();
        let mut stack = vec![snap.tree];
        while let Some(t) = stack.pop() {
            packs.insert(pack_path(&repo.locate(&t).expect("tree").pack));
            for n in repo.load_tree(&t).await.expect("tree").nodes {
                match n.kind {
                    NodeKind::Dir => stack.extend(n.subtree),
                    _ => {
                        for c in &n.content {
                            packs.insert(pack_path(&repo.locate(c).expect("chunk").pack));
                        }
                    }
                }
            }
        }
        packs_of.insert(id, packs);
    }
    assert_eq!(source_of.len(), 2);
    let [p, q]: [&BTreeSet<String>; 2] = [
        &packs_of[&ids(&source_of)[0]],
        &packs_of[&ids(&source_of)[1]],
    ];
    assert!(p.is_disjoint(q), "the two snapshots share packs");
    Layout {
        objects,
        source_of,
        packs_of,
    }
}

fn ids(m: &BTreeMap<Id, PathBuf>) -> Vec<Id> {
    m.keys().copied().collect()
}

fn copy_tree(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    for e in walkdir::WalkDir::new(from) {
        let e = e.expect("walk");
        let rel = e.path().strip_prefix(from).expect("prefix");
        let dest = to.join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
        } else if e.file_type().is_file() {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

fn flip_bit(path: &Path, at: usize, bit: u8) {
    let mut b = std::fs::read(path).expect("read object");
    b[at] ^= 1 << bit;
    std::fs::write(path, b).expect("write object");
}

/// Restores `snap` into a fresh `out` and checks that every file written
/// is byte-identical to its source; returns true if nothing failed.
async fn restore_checked(repo: &Repository, id: &Id, src: &Path, out: &Path, what: &str) -> bool {
    let _ = std::fs::remove_dir_all(out);
    let snap = match repo.load_snapshot(id).await {
        Ok(s) => s,
        Err(_) => return false,
    };
    let r = cairn::restore(
        repo,
        &snap,
        restore_opts(out),
        Arc::new(Progress::default()),
    )
    .await;
    if out.exists() {
        for rel in regular_files(out) {
            let got = std::fs::read(out.join(&rel)).expect("read restored");
            let want = std::fs::read(src.join(&rel))
                .unwrap_or_else(|e| panic!("{what}: restore invented {}: {e}", rel.display()));
            assert!(
                got == want,
                "{what}: restore wrote wrong bytes into {}",
                rel.display()
            );
        }
    }
    matches!(r, Ok(o) if o.errors.is_empty())
}

#[test]
fn thousand_bit_flips_are_reported_never_restored_and_repaired() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run());
}

/// A temporary directory, in memory where the system has one: the local
/// store syncs every object it writes, which on a disk costs more than
/// everything else the thousand runs do.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let in_memory = shm
        .is_dir()
        .then(|| {
            tempfile::Builder::new()
                .prefix("cairn-bitflip-")
                .tempdir_in(shm)
                .ok()
        })
        .flatten();
    in_memory.unwrap_or_else(|| tempfile::tempdir().expect("tempdir"))
}

async fn run() {
    let tmp = scratch();
    let src = sources(&tmp.path().join("src"));
    let (pristine, pristine_cache) = (tmp.path().join("repo"), tmp.path().join("cache"));
    build(&pristine, &pristine_cache, &src).await;
    let lay = layout(&pristine, &pristine_cache, &src).await;
    let (repo_dir, cache) = (tmp.path().join("work"), tmp.path().join("work-cache"));
    let out = tmp.path().join("out");
    // A fixed-seed generator: the same flips on every run.
    let mut g = XorShift::from_state(SEED);
    let mut per_kind: BTreeMap<Object, usize> = BTreeMap::new();
    for n in 0..FLIPS {
        copy_tree(&pristine, &repo_dir);
        copy_tree(&pristine_cache, &cache);
        let kind = KINDS[n % KINDS.len()];
        let names = &lay.objects[&kind];
        let object = &names[g.below(names.len() as u64) as usize];
        let path = repo_dir.join(object);
        let len = std::fs::metadata(&path).expect("stat").len() as usize;
        let (at, bit) = (g.below(len as u64) as usize, g.below(8) as u8);
        flip_bit(&path, at, bit);
        let what = format!("flip {n}: bit {bit} of byte {at} of {object} ({kind:?})");
        *per_kind.entry(kind).or_default() += 1;

        // The config is needed to open; a key file is too, but each has a
        // spare with the other password. What fails is named.
        let mut password = PASSWORD;
        let repo = match open(&repo_dir, &cache).await {
            Ok(r) => r,
            Err(e) if kind == Object::Config => {
                assert!(e.to_string().contains("config"), "{what}: {e}");
                continue;
            }
            Err(e) => {
                assert_eq!(kind, Object::Key, "{what}: cannot open: {e}");
                assert!(e.to_string().contains(object.as_str()), "{what}: {e}");
                password = SECOND_PASSWORD;
                open_with(&repo_dir, &cache, password)
                    .await
                    .expect("the spare key opens")
            }
        };
        assert_ne!(kind, Object::Config, "{what}: opened anyway");
        let report = repo.check_with(ReadData::All).await.expect("check runs");
        assert!(
            report.errors.iter().any(|e| e.object == *object),
            "{what}: check does not report it: {:?}",
            report.errors
        );
        for (id, s) in &lay.source_of {
            restore_checked(&repo, id, s, &out, &what).await;
        }

        repo.repair_index(cairn::RunMode::Apply)
            .await
            .expect("repair index");
        let repaired = open_with(&repo_dir, &cache, password)
            .await
            .expect("open after repair");
        for (id, s) in &lay.source_of {
            let damaged = match kind {
                Object::Snapshot => object.ends_with(&id.to_hex()),
                Object::TreePack | Object::DataPack => lay.packs_of[id].contains(object),
                _ => false,
            };
            let ok = restore_checked(&repaired, id, s, &out, &what).await;
            if !damaged {
                assert!(
                    ok,
                    "{what}: intact snapshot {id} does not restore after repair"
                );
                let diffs = tree_differences(s, &out);
                assert!(diffs.is_empty(), "{what}: {id}: {diffs:?}");
            }
        }
    }
    assert!(
        per_kind.values().all(|&c| c >= FLIPS / KINDS.len()),
        "{per_kind:?}"
    );
}
