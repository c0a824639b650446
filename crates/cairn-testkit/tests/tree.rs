//! The tree builder makes what it is asked for, and the digest sees every
//! difference a restore could introduce.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cairn_testkit::{
    EntryKind, TreeBuilder, assert_same_tree, differences, hard_link_groups, noise, text,
    tree_digest, tree_digest_with_times,
};

fn hex(b: &[u8]) -> String {
    blake3::hash(b).to_hex().to_string()
}

/// One of each: content, noise, text, nesting, empty directory, symlinks
/// (relative, dangling), a hard link, a sparse file, a FIFO, unusual modes,
/// a read-only directory with a file inside, names that are not UTF-8 or
/// hold a newline, times before 1970.
fn build(root: &Path) -> PathBuf {
    let mut t = TreeBuilder::new(root);
    t.file("a/hello.txt", "hello\n")
        .noise_file("a/b/noise.bin", 3, 3 << 20 | 5)
        .text_file("text.txt", 4, 10_000)
        .dir("empty")
        .symlink("links/rel", "../a/hello.txt")
        .symlink("links/dangling", "no/such/file")
        .hard_link("a/hello-again.txt", "a/hello.txt")
        .sparse(
            "disk.img",
            16 << 20,
            &[(0, noise(5, 4096)), (8 << 20, noise(6, 1 << 20))],
        )
        .fifo("pipe")
        .file(OsStr::from_bytes(b"odd \xff\xfe name"), "not utf-8")
        .file("new\nline", "a newline in the name")
        .symlink(
            OsStr::from_bytes(b"links/odd"),
            OsStr::from_bytes(b"\xfe\xff"),
        )
        .file("modes/setgid", "g")
        .mode("modes/setgid", 0o2750)
        .file("modes/setuid", "#!/bin/sh\n")
        .mode("modes/setuid", 0o4755)
        .dir("modes/sticky")
        .mode("modes/sticky", 0o1777)
        .file("locked/inside", "x")
        .mode("locked", 0o555)
        .mtime("a/hello.txt", -12_345_678, 900_000_001)
        .mtime("links/rel", 1_000_000_000, 7)
        .mtime("a", 1_600_000_000, 123_456_789)
        .mtime("a/b", 1_500_000_000, 1)
        .atime("a/b", 1_400_000_000, 2);
    t.finish()
}

#[test]
fn the_builder_makes_every_entry_and_the_digest_describes_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = build(&tmp.path().join("src"));
    // Before anything reads the directory (which may move its atime).
    let b = std::fs::metadata(root.join("a/b")).expect("stat");
    assert_eq!((b.atime(), b.atime_nsec()), (1_400_000_000, 2));
    let d = tree_digest(&root);
    let e = |p: &str| {
        d.get(Path::new(p))
            .unwrap_or_else(|| panic!("{p} in {d:#?}"))
    };

    assert_eq!(e("a/hello.txt").kind, EntryKind::File);
    assert_eq!(e("a/hello.txt").hash, Some(hex(b"hello\n")));
    assert_eq!(e("a/hello.txt").size, 6);
    let n = e("a/b/noise.bin");
    assert_eq!(
        (n.size, n.hash.clone()),
        (3 << 20 | 5, Some(hex(&noise(3, 3 << 20 | 5))))
    );
    assert_eq!(e("text.txt").hash, Some(hex(&text(4, 10_000))));
    assert_eq!(e("empty").kind, EntryKind::Dir);
    assert_eq!(e("empty").size, 0);
    assert_eq!(e("links/rel").kind, EntryKind::Symlink);
    assert_eq!(e("links/rel").target, Some(PathBuf::from("../a/hello.txt")));
    assert_eq!(
        e("links/dangling").target,
        Some(PathBuf::from("no/such/file"))
    );
    assert_eq!(e("pipe").kind, EntryKind::Fifo);
    assert_eq!(e("modes/setuid").mode, 0o4755);
    assert_eq!(e("modes/sticky").mode, 0o1777);
    assert_eq!(e("modes/setgid").mode, 0o2750);
    assert_eq!(e("new\nline").hash, Some(hex(b"a newline in the name")));
    let odd = d
        .get(Path::new(OsStr::from_bytes(b"odd \xff\xfe name")))
        .expect("a name that is not UTF-8");
    assert_eq!(odd.hash, Some(hex(b"not utf-8")));
    assert_eq!(
        e("links/odd").target,
        Some(PathBuf::from(OsStr::from_bytes(b"\xfe\xff")))
    );
    assert_eq!(e("locked").mode, 0o555);
    assert_eq!(e("locked/inside").hash, Some(hex(b"x")));

    let mut image = vec![0u8; 16 << 20];
    image[..4096].copy_from_slice(&noise(5, 4096));
    image[8 << 20..9 << 20].copy_from_slice(&noise(6, 1 << 20));
    assert_eq!(e("disk.img").hash, Some(hex(&image)));
    let m = std::fs::metadata(root.join("disk.img")).expect("stat");
    assert!(
        m.blocks() * 512 < 4 << 20,
        "holes were written: {} blocks",
        m.blocks()
    );

    assert_eq!(
        hard_link_groups(&root),
        vec![vec![
            PathBuf::from("a/hello-again.txt"),
            PathBuf::from("a/hello.txt")
        ]]
    );

    // Times were applied after everything else: creating a/b and
    // a/hello-again.txt did not move a's mtime.
    let t = tree_digest_with_times(&root);
    let mt = |p: &str| t[Path::new(p)].mtime.expect("mtime");
    assert_eq!(mt("a/hello.txt"), (-12_345_678, 900_000_001));
    assert_eq!(mt("links/rel"), (1_000_000_000, 7));
    assert_eq!(mt("a"), (1_600_000_000, 123_456_789));
    assert_eq!(mt("a/b"), (1_500_000_000, 1));
    assert!(tree_digest(&root).values().all(|e| e.mtime.is_none()));

    // Let the temporary directory go.
    std::fs::set_permissions(
        root.join("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
}

#[test]
fn the_digest_reports_every_kind_of_difference() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a");
    let mut t = TreeBuilder::new(&a);
    t.sample(6, 5000).file("mode", "m").file("kind", "k");
    t.finish();
    let b = tmp.path().join("b");
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&a)
        .arg(&b)
        .status()
        .expect("run cp -a");
    assert!(cp.success());
    assert_same_tree(&a, &b);
    assert_eq!(
        differences(&tree_digest_with_times(&a), &tree_digest_with_times(&b)),
        Vec::<String>::new()
    );

    // One change of each kind.
    let mut f = std::fs::read(b.join("d0/f0.bin")).expect("read");
    f[4000] ^= 1;
    std::fs::write(b.join("d0/f0.bin"), f).expect("write");
    std::fs::write(b.join("d1/f1.bin"), b"shorter").expect("write");
    std::fs::set_permissions(
        b.join("mode"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    std::fs::remove_file(b.join("link")).expect("rm");
    std::os::unix::fs::symlink("elsewhere", b.join("link")).expect("ln");
    std::fs::remove_file(b.join("d2/f2.bin")).expect("rm");
    std::fs::write(b.join("extra"), b"").expect("write");
    std::fs::remove_file(b.join("kind")).expect("rm");
    std::fs::create_dir(b.join("kind")).expect("mkdir");

    let diffs = differences(&tree_digest(&a), &tree_digest(&b));
    for (path, what) in [
        ("d0/f0.bin", "hash"),
        ("d1/f1.bin", "size: 7"),
        ("mode", "mode: 384"),
        ("link", "elsewhere"),
        ("d2/f2.bin", "missing"),
        ("extra", "unexpected"),
        ("kind", "Dir"),
    ] {
        assert!(
            diffs
                .iter()
                .any(|d| d.starts_with(&format!("{path}: ")) && d.contains(what)),
            "{path}: {what} not reported in {diffs:#?}"
        );
    }
    assert_eq!(diffs.len(), 7, "{diffs:#?}");

    // Times differ only where asked for.
    let c = tmp.path().join("c");
    let mut t = TreeBuilder::new(&c);
    t.sample(6, 5000).file("mode", "m").file("kind", "k");
    t.finish();
    assert_same_tree(&a, &c);
    let timed = differences(&tree_digest_with_times(&a), &tree_digest_with_times(&c));
    assert!(!timed.is_empty());
}

#[test]
#[should_panic(expected = "dropped without finish()")]
fn a_builder_dropped_before_finish_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut t = TreeBuilder::new(tmp.path());
    t.file("f", "x").mode("f", 0o600);
}

#[test]
fn the_sample_tree_is_the_one_the_kubernetes_tests_fill_volumes_with() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut t = TreeBuilder::new(tmp.path());
    t.sample(4, 100);
    t.finish();
    let names: Vec<String> = tree_digest(tmp.path())
        .keys()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "d0",
            "d0/f0.bin",
            "d0/f3.bin",
            "d1",
            "d1/f1.bin",
            "d2",
            "d2/f2.bin",
            "empty",
            "link"
        ]
    );
    assert_eq!(
        std::fs::read(tmp.path().join("d0/f3.bin")).expect("read"),
        noise(4, 100)
    );
}
