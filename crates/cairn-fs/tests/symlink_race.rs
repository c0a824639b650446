//! Symlink races while running as root: a thread swaps a directory of the
//! source (or of the restore target) for a symlink to a sentinel directory
//! outside it, in a tight loop, while a backup (or a restore) runs. Nothing
//! outside the source may be read into a snapshot, and nothing outside the
//! target may be created, written, chmod-ed or chown-ed.
//!
//! Each round uses a fixed seed (tree shape and the racer's timing), and
//! the number of rounds is fixed, so the test is bounded and repeatable in
//! what it tries, if not in how the scheduler interleaves the two sides.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cairn_core::Kind;
use cairn_core::format::{Source, Timestamp};
use cairn_fs::{BackupOptions, ParentChoice, Progress, RestoreOptions};
use cairn_repo::{InitOptions, Repository};
use cairn_store::Store;
use cairn_testkit::XorShift;

/// Rounds of each race, one seed each.
const ROUNDS: u64 = 16;
/// Files in the raced directory.
const FILES: u64 = 120;

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A thread that, until stopped, moves `dir` aside and puts a symlink to
/// `outside` in its place, then moves it back; the spins between the steps
/// come from `seed`. Returns how many swaps it made.
struct Racer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Racer {
    fn start(dir: PathBuf, outside: PathBuf, seed: u64) -> Racer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let aside = dir.with_extension("aside");
        let thread = std::thread::spawn(move || {
            let mut rng = XorShift::new(seed);
            let mut swaps = 0u64;
            let spin = |rng: &mut XorShift| {
                for _ in 0..rng.below(2000) {
                    std::hint::spin_loop();
                }
            };
            while !flag.load(Ordering::Relaxed) {
                if std::fs::rename(&dir, &aside).is_err() {
                    std::thread::yield_now();
                    continue;
                }
                if std::os::unix::fs::symlink(&outside, &dir).is_ok() {
                    swaps += 1;
                    spin(&mut rng);
                    let _ = std::fs::remove_file(&dir);
                }
                let _ = std::fs::rename(&aside, &dir);
                spin(&mut rng);
            }
            // Leave the real directory in place.
            if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
                let _ = std::fs::remove_file(&dir);
            }
            let _ = std::fs::rename(&aside, &dir);
            swaps
        });
        Racer { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("racer thread")
    }
}

/// Everything about a directory tree that a write, chmod or chown would
/// change: per path, its mode, owner, size, mtime and content.
type State = BTreeMap<PathBuf, (u32, u32, u32, u64, (i64, i64), Vec<u8>)>;

fn state(dir: &Path) -> State {
    let mut out = State::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p).expect("lstat sentinel");
        let content = if m.is_file() {
            std::fs::read(&p).expect("read sentinel")
        } else {
            Vec::new()
        };
        if m.is_dir() {
            for e in std::fs::read_dir(&p).expect("list sentinel") {
                todo.push(e.expect("entry").path());
            }
        }
        out.insert(
            p,
            (
                m.mode(),
                m.uid(),
                m.gid(),
                m.size(),
                (m.mtime(), m.mtime_nsec()),
                content,
            ),
        );
    }
    out
}

async fn repository() -> Repository {
    Repository::init(
        Store::memory(),
        b"pw",
        InitOptions::insecure_fast_for_tests(),
    )
    .await
    .expect("init")
}

fn options(dir: &Path) -> BackupOptions {
    let mut o = BackupOptions::default();
    o.paths = vec![dir.to_owned()];
    o.hostname = "h".into();
    o.username = "u".into();
    o.parent = ParentChoice::None;
    o.source = Source::Filesystem;
    o.time = Timestamp { secs: 1, nanos: 0 };
    o.program_version = "test".into();
    o
}

fn canary(seed: u64, i: u64) -> Vec<u8> {
    format!("CANARY {seed} {i}: a secret outside the source").into_bytes()
}

/// A backup never reads through a directory swapped for a symlink: no
/// snapshot holds a canary file's content or a name only the sentinel has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_never_reads_through_a_directory_swapped_for_a_symlink() {
    if !root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let repo = repository().await;
    let mut leaks: Vec<String> = Vec::new();
    let (mut swaps, mut rounds_raced) = (0, 0);
    for seed in 1..=ROUNDS {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (src, outside) = (tmp.path().join("src"), tmp.path().join("outside"));
        let raced = src.join("d");
        std::fs::create_dir_all(&raced).expect("mkdir");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("only-outside"), b"x").expect("write");
        let mut canaries = std::collections::HashSet::new();
        for i in 0..FILES {
            // The same names inside and outside, so a name listed in the
            // real directory is opened through the symlink.
            let name = format!("c{i}");
            std::fs::write(raced.join(&name), format!("innocent {seed} {i}")).expect("write");
            std::fs::write(outside.join(&name), canary(seed, i)).expect("write");
            canaries.insert(repo.keys().blob_id(Kind::Data, &canary(seed, i)));
        }
        let before = state(&outside);
        let racer = Racer::start(raced.clone(), outside.clone(), seed);
        let out = cairn_fs::backup(&repo, options(&src), Arc::new(Progress::default())).await;
        let n = racer.stop();
        swaps += n;
        rounds_raced += u64::from(n > 0);
        let out = out.expect("backup");
        let root = cairn_fs::resolve(&repo, &out.snapshot, b"/")
            .await
            .expect("root");
        let mut found = Vec::new();
        for e in cairn_fs::walk(&repo, &root, b"", true).await.expect("walk") {
            if e.node.content.iter().any(|c| canaries.contains(c)) {
                found.push(format!("canary in {}", String::from_utf8_lossy(&e.path)));
            }
            if e.node.name == b"only-outside" {
                found.push(format!("listing in {}", String::from_utf8_lossy(&e.path)));
            }
        }
        if !found.is_empty() {
            let n = found.len();
            found.truncate(3);
            leaks.push(format!("seed {seed}: {n} entries, first {found:?}"));
        }
        assert_eq!(state(&outside), before, "seed {seed}: the sentinel changed");
    }
    eprintln!("{swaps} swaps in {ROUNDS} rounds");
    // A race that never happened proves nothing.
    assert!(
        rounds_raced * 2 >= ROUNDS,
        "the racer swapped in only {rounds_raced} rounds"
    );
    assert!(leaks.is_empty(), "read outside the source: {leaks:#?}");
}

/// A snapshot of a directory `d` (mode 0777, owned by 4242) holding files
/// and subdirectories.
async fn snapshot_to_restore(repo: &Repository) -> cairn_core::format::Snapshot {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("d");
    for sub in ["", "e", "e/f"] {
        let dir = d.join(sub);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for i in 0..FILES / 3 {
            std::fs::write(dir.join(format!("f{i}")), format!("restored {sub} {i}")).expect("w");
        }
    }
    for sub in ["e/f", "e", ""] {
        let dir = d.join(sub);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        std::os::unix::fs::chown(&dir, Some(4242), Some(4242)).expect("chown");
    }
    let out = cairn_fs::backup(repo, options(tmp.path()), Arc::new(Progress::default()))
        .await
        .expect("backup");
    out.snapshot
}

/// A restore as root never writes, chmods or chowns through a directory
/// of the target swapped for a symlink: the sentinel stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_never_writes_through_a_directory_swapped_for_a_symlink() {
    if !root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let repo = repository().await;
    let snapshot = snapshot_to_restore(&repo).await;
    let mut changed = Vec::new();
    let (mut swaps, mut rounds_raced) = (0, 0);
    for seed in 1..=ROUNDS {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (target, outside) = (tmp.path().join("target"), tmp.path().join("outside"));
        std::fs::create_dir_all(outside.join("inner")).expect("mkdir");
        std::fs::write(outside.join("keep"), b"keep me").expect("write");
        std::fs::write(outside.join("f0"), b"not yours").expect("write");
        for p in [&outside, &outside.join("inner")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        std::fs::set_permissions(outside.join("f0"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        let before = state(&outside);
        // `d` is created by the restore; the racer waits for it.
        let racer = Racer::start(target.join("d"), outside.clone(), seed);
        let mut opts = RestoreOptions::default();
        opts.target = target.clone();
        opts.owners = Some(true);
        let r = cairn_fs::restore(&repo, &snapshot, opts, Arc::new(Progress::default())).await;
        let n = racer.stop();
        swaps += n;
        rounds_raced += u64::from(n > 0);
        if let Err(e) = r {
            // Failing is allowed; touching the outside is not.
            eprintln!("seed {seed}: restore failed: {e}");
        }
        let after = state(&outside);
        if after != before {
            let mut diff: Vec<_> = after
                .iter()
                .filter(|(p, v)| before.get(*p) != Some(*v))
                .map(|(p, v)| format!("{} now mode {:o} uid {}", p.display(), v.0, v.1))
                .collect();
            diff.extend(
                before
                    .keys()
                    .filter(|p| !after.contains_key(*p))
                    .map(|p| format!("{} removed", p.display())),
            );
            let n = diff.len();
            diff.truncate(3);
            changed.push(format!("seed {seed}: {n} changes, first {diff:?}"));
        }
    }
    eprintln!("{swaps} swaps in {ROUNDS} rounds");
    // A race that never happened proves nothing.
    assert!(
        rounds_raced * 2 >= ROUNDS,
        "the racer swapped in only {rounds_raced} rounds"
    );
    assert!(changed.is_empty(), "wrote outside the target: {changed:#?}");
}

/// Regression: the last pass of a restore, which gives each directory its
/// mode, owner and times, used to do so by path (`set_permissions` follows
/// symlinks). A directory swapped for a symlink once every file is written
/// must be refused by that pass, not have its mode and owner applied to
/// the symlink's target. `d` holds many subdirectories, and the pass goes
/// deepest first, so `d` comes last: the swap, made as soon as the
/// progress shows every file written, lands before the pass reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_metadata_is_never_applied_through_a_symlink_swapped_in_after_the_files() {
    if !root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let repo = repository().await;
    let src = tempfile::tempdir().expect("tempdir");
    let d = src.path().join("d");
    for i in 0..2000 {
        std::fs::create_dir_all(d.join(format!("s{i}"))).expect("mkdir");
    }
    std::fs::write(d.join("file"), b"written before the swap").expect("write");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::os::unix::fs::chown(&d, Some(4242), Some(4242)).expect("chown");
    let snapshot = cairn_fs::backup(&repo, options(src.path()), Arc::new(Progress::default()))
        .await
        .expect("backup")
        .snapshot;

    let tmp = tempfile::tempdir().expect("tempdir");
    let (target, outside) = (tmp.path().join("target"), tmp.path().join("outside"));
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let before = state(&outside);
    let progress = Arc::new(Progress::default());
    let watch = progress.clone();
    let (restored, aside) = (target.join("d"), target.join("d.aside"));
    let link = outside.clone();
    let swapper = std::thread::spawn(move || {
        loop {
            let (files, _, total, _) = watch.get();
            if total > 0 && files >= total {
                break;
            }
            std::hint::spin_loop();
        }
        std::fs::rename(&restored, &aside).expect("move d aside");
        std::os::unix::fs::symlink(&link, &restored).expect("symlink");
    });
    let mut opts = RestoreOptions::default();
    opts.target = target.clone();
    opts.owners = Some(true);
    let outcome = cairn_fs::restore(&repo, &snapshot, opts, progress)
        .await
        .expect("restore");
    swapper.join().expect("swapper");
    assert_eq!(
        state(&outside),
        before,
        "the last pass chmod-ed or chown-ed through the symlink"
    );
    assert!(
        outcome.errors.iter().any(|w| w.path == target.join("d")),
        "the swapped directory is reported: {:?}",
        outcome.errors.iter().take(3).collect::<Vec<_>>()
    );
}
