use super::*;

/// Bytes of `path` in the page cache, from util-linux's `fincore`.
fn resident(path: &Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux) runs");
    assert!(out.status.success(), "fincore: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("fincore prints a number")
}

/// Writes `len` bytes to `path`, on disk, and drops them from the cache.
fn cold_file(path: &Path, len: usize) {
    let f = std::fs::File::create(path).expect("create");
    std::io::Write::write_all(&mut &f, &vec![7u8; len]).expect("write");
    f.sync_all().expect("fsync");
    rustix::fs::fadvise(&f, 0, None, Advice::DontNeed).expect("fadvise");
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn small_regular_files_are_read_into_the_cache_and_nothing_else_is() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path();
    std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
    cold_file(&root.join("a/1"), 4096);
    cold_file(&root.join("a/b/2"), 8192);
    cold_file(&root.join("big"), (SMALL + 4096) as usize);
    cold_file(&root.join("empty"), 0);
    std::os::unix::fs::symlink("big", root.join("link")).expect("symlink");
    let evictable = resident(&root.join("a/1")) == 0;

    let p = ContentPrefetch::start(vec![root.to_owned()], Arc::default(), DISTANCE);
    wait_for("the prefetch ends", || p.done());
    let counts = p.finish();
    // a/1 and a/b/2; not the large file, the empty one, or the symlink.
    assert_eq!(counts.files.load(Ordering::Relaxed), 2);
    assert_eq!(counts.bytes.load(Ordering::Relaxed), 4096 + 8192);
    assert_eq!(counts.waits.load(Ordering::Relaxed), 0);
    if evictable {
        wait_for("a/1 and a/b/2 are in the cache", || {
            resident(&root.join("a/1")) == 4096 && resident(&root.join("a/b/2")) == 8192
        });
        assert_eq!(resident(&root.join("big")), 0, "the large file was read");
    } else {
        eprintln!("pages cannot be dropped from this file system's cache: residency not checked");
    }
}

#[test]
fn it_stays_within_its_distance_of_the_walk_and_follows_it_past_skipped_files() {
    let t = tempfile::tempdir().expect("tempdir");
    let names: Vec<PathBuf> = (1..=7).map(|i| t.path().join(format!("f{i}"))).collect();
    for n in &names {
        std::fs::write(n, [1u8; 100]).expect("write");
    }
    let progress = Arc::new(Progress::default());
    let p = ContentPrefetch::start(vec![t.path().to_owned()], progress.clone(), 150);
    let files = || p.counts.files.load(Ordering::Relaxed);
    let stays = |n| {
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(files(), n, "it went beyond its distance");
    };

    // f1 starts at 0 and f2 at 100, within 150 of the walk's 0 bytes; f3
    // starts at 200 and waits.
    wait_for("f1 and f2 are read ahead", || files() == 2);
    stays(2);

    // The walk reads 100 bytes: f3 (at 200) is within 150 of it, f4 (at
    // 300) is not.
    progress.add(0, 100);
    wait_for("f3 is read ahead", || files() == 3);
    stays(3);

    // The walk is at f4 having read only 100 bytes (it left out f2 and
    // f3, say): the prefetch counts from there again, so f4 is at 100 and
    // f5 at 200, and f6, at 300, waits.
    progress.set_current(&names[3]);
    wait_for("f4 and f5 are read ahead", || files() == 5);
    stays(5);
    let counts = p.finish();
    assert!(counts.waits.load(Ordering::Relaxed) >= 2);
}

#[test]
fn a_dropped_prefetch_is_told_to_stop_and_not_waited_for() {
    let t = tempfile::tempdir().expect("tempdir");
    let p = ContentPrefetch::start(vec![t.path().to_owned()], Arc::default(), DISTANCE);
    let stop = p.stop.clone();
    drop(p);
    assert!(stop.load(Ordering::Relaxed));
}

/// A directory of another file system below the path (a mount the walk
/// may exclude, or one that hangs) is not entered: in a tenant's volume,
/// a mount is not the prefetch's to read.
#[test]
fn directories_of_another_device_are_not_entered() {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(t.path().join("mnt")).expect("mkdir");
    std::fs::write(t.path().join("top"), [1u8; 100]).expect("write");
    std::fs::write(t.path().join("mnt/below"), [1u8; 100]).expect("write");
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let visit = |dev_offset: u64| {
        let dir = rustix::fs::open(t.path(), flags, Mode::empty()).expect("open");
        let dev = at::fstat(dir.as_fd()).expect("fstat").dev();
        let counts = Arc::new(Counts::default());
        let mut state = State {
            progress: Arc::default(),
            distance: DISTANCE,
            stop: Arc::default(),
            counts: counts.clone(),
            ahead: 0,
        };
        state.visit(
            dir,
            &mut t.path().to_owned(),
            dev.wrapping_add(dev_offset),
            0,
        );
        counts.files.load(Ordering::Relaxed)
    };
    assert_eq!(visit(0), 2, "top and mnt/below");
    // As if `t` were another device than its subdirectories: only `top`.
    assert_eq!(visit(1), 1);
}
