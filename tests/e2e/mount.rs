//! `cairn mount`: a mounted snapshot reads back as its source (`ls`, `cat`,
//! `cp -a`, `diff -r`), the layout lists every snapshot by id, time, host
//! and tag, a 1 MiB read in a 1 GiB file fetches a chunk or two and not the
//! file, a backup made while mounted shows up, a damaged chunk reads as
//! EIO, and unmounting by `fusermount3 -u`, SIGTERM or Ctrl-C is clean.
//!
//! They need root, /dev/fuse and fusermount3 (Debian's fuse3); where one is
//! missing they print SKIP, unless `CAIRN_REQUIRE_FUSE` is set, as
//! scripts/test.sh does, when they fail.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::compare::{assert_no_differences, tree_differences};
use crate::common::source::{BIG_FILE, RELATIVE_LINK, SINGLE_FILE, TreeSpec, generate, xorshift};
use crate::common::{Repo, Run, field_str, field_u64};

const MIB: u64 = 1 << 20;

/// Whether this machine can mount; if not, says why (or fails when
/// `CAIRN_REQUIRE_FUSE` is set).
fn fuse_ready(test: &str) -> bool {
    let missing = if !Path::new("/dev/fuse").exists() {
        Some("/dev/fuse is missing")
    } else if !on_path("fusermount3") {
        Some("fusermount3 is not installed (Debian package fuse3)")
    } else if !rustix::process::geteuid().is_root() {
        Some("mounting and reading every recorded owner's files needs root")
    } else {
        None
    };
    let Some(why) = missing else {
        return true;
    };
    assert!(
        std::env::var_os("CAIRN_REQUIRE_FUSE").is_none(),
        "CAIRN_REQUIRE_FUSE is set but {why}"
    );
    eprintln!("SKIP {test}: {why}");
    false
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Whether `dir` is a mount point, from the kernel's mount table.
fn is_mounted(dir: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.to_str().expect("temporary paths are UTF-8");
    table.lines().any(|l| l.split(' ').nth(4) == Some(dir))
}

/// Polls `cond` until it holds; panics after a minute (a hung mount, not
/// a slow one: nothing here takes more than a second).
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How a test ends the mount.
enum Unmount {
    Fusermount,
    Sigterm,
    /// What Ctrl-C sends.
    Sigint,
}

/// A running `cairn mount --json`; unmounted (and the process reaped) on
/// drop if the test did not stop it.
struct Mounted {
    child: Option<Child>,
    dir: PathBuf,
    out: PathBuf,
    err: PathBuf,
}

impl Mounted {
    /// Mounts `repo` on `dir` (which must exist) and waits until the kernel
    /// lists the mount.
    fn start(repo: &Repo, dir: &Path, extra: &[&str]) -> Mounted {
        let dir = dir.canonicalize().expect("mount point");
        let out = dir.with_extension("stdout");
        let err = dir.with_extension("stderr");
        let mut cmd = repo.command([OsStr::new("mount"), dir.as_os_str(), OsStr::new("--json")]);
        cmd.args(extra)
            .stdout(File::create(&out).expect("stdout file"))
            .stderr(File::create(&err).expect("stderr file"));
        let child = cmd.spawn().expect("spawn cairn mount");
        let mut m = Mounted {
            child: Some(child),
            dir,
            out,
            err,
        };
        let dir = m.dir.clone();
        wait_for("the repository is mounted", || {
            if let Some(Ok(Some(status))) = m.child.as_mut().map(Child::try_wait) {
                panic!("cairn mount exited with {status}:\n{}", m.stderr());
            }
            is_mounted(&dir)
        });
        m
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Unmounts, checks that cairn exits 0 and the mount is gone, and
    /// returns cairn's JSON report.
    fn stop(mut self, how: Unmount) -> serde_json::Value {
        let mut child = self.child.take().expect("running");
        match how {
            Unmount::Fusermount => {
                tool("fusermount3", [OsStr::new("-u"), self.dir.as_os_str()]).success();
            }
            Unmount::Sigterm => {
                tool("kill", ["-TERM", &child.id().to_string()]).success();
            }
            Unmount::Sigint => {
                tool("kill", ["-INT", &child.id().to_string()]).success();
            }
        }
        let status = child.wait().expect("wait for cairn mount");
        assert!(status.success(), "cairn mount: {status}\n{}", self.stderr());
        assert!(!is_mounted(&self.dir), "still mounted after cairn exited");
        let stdout = std::fs::read_to_string(&self.out).expect("stdout");
        crate::json_schema::check_output("mount", &stdout);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{}", self.stderr()))
    }
}

/// Runs a system tool to completion.
fn tool<I, S>(program: &str, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(program);
    c.args(args).stdin(Stdio::null());
    Run::of(c)
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.dir)
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn link_target(p: &Path) -> String {
    std::fs::read_link(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_string_lossy()
        .into_owned()
}

/// A file of `len` bytes that is a hole but for 1 MiB of noise at 8 MiB.
fn file_with_holes(path: &Path, len: u64) {
    let f = File::create(path).expect("create");
    f.set_len(len).expect("set_len");
    f.write_all_at(&xorshift(7).bytes(MIB as usize), 8 * MIB)
        .expect("write");
}

/// In `dir`: a file owned by 1234:5678, two hard links to one file, and
/// a fifo.
fn special_entries(dir: &Path) {
    std::fs::create_dir(dir).expect("mkdir");
    let owned = dir.join("owned");
    std::fs::write(&owned, b"someone else's\n").expect("write");
    std::os::unix::fs::chown(&owned, Some(1234), Some(5678)).expect("chown");
    std::fs::write(dir.join("linked_a"), b"linked\n").expect("write");
    std::fs::hard_link(dir.join("linked_a"), dir.join("linked_b")).expect("link");
    tool("mkfifo", [dir.join("pipe")]).success();
}

fn short_id(backup: &serde_json::Value) -> String {
    field_str(backup, "snapshot_id")[..8].to_owned()
}

#[test]
fn a_mounted_snapshot_reads_back_as_its_source() {
    if !fuse_ready("mount") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::with_big_file(4_000_000));
    file_with_holes(&src.join("holes.img"), 40 * MIB);
    special_entries(&src.join("special"));
    let repo = Repo::init(tmp.path().join("repo"));
    let backup = repo
        .run([
            OsStr::new("backup"),
            src.as_os_str(),
            OsStr::new("--tag"),
            OsStr::new("daily"),
            OsStr::new("--json"),
        ])
        .success()
        .json();
    let short = short_id(&backup);
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    let m = Mounted::start(&repo, &mnt, &[]);

    // The layout.
    assert_eq!(
        names(&m.dir),
        ["claims", "hosts", "ids", "snapshots", "tags"]
    );
    assert_eq!(names(&m.path("ids")), std::slice::from_ref(&short));
    let times = names(&m.path("snapshots"));
    assert_eq!(times.len(), 2, "one time and latest: {times:?}");
    assert_eq!(times[1], "latest");
    assert_eq!(link_target(&m.path("snapshots/latest")), times[0]);
    assert_eq!(
        link_target(&m.path("snapshots").join(&times[0])),
        format!("../ids/{short}")
    );
    assert_eq!(names(&m.path("tags")), ["daily"]);
    assert_eq!(names(&m.path("tags/daily")), [times[0].clone()]);
    let hosts = names(&m.path("hosts"));
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(names(&m.path("hosts").join(&hosts[0])), [times[0].clone()]);
    assert!(names(&m.path("claims")).is_empty());

    // ls and cat through the mount.
    // The trailing slash follows the link, as a shell user would.
    let snap = m.path("snapshots/latest/");
    let ls = tool("ls", [OsStr::new("-la"), snap.as_os_str()]).success();
    for name in [BIG_FILE, "empty_file", "holes.img", "links", "modes"] {
        assert!(ls.stdout.contains(name), "ls lacks {name}:\n{}", ls.stdout);
    }
    let cat = tool("cat", [snap.join(SINGLE_FILE)]).success();
    assert_eq!(cat.stdout, "three levels down\n");
    let cat = tool("cat", [snap.join(RELATIVE_LINK.0)]).success();
    assert_eq!(cat.stdout, "middle\n", "through a relative symlink");

    // Recorded owners, link counts and kinds.
    let special = snap.join("special");
    let owned = std::fs::metadata(special.join("owned")).expect("stat");
    assert_eq!((owned.uid(), owned.gid()), (1234, 5678));
    let linked = std::fs::metadata(special.join("linked_a")).expect("stat");
    assert_eq!(linked.nlink(), 2, "hard link count as recorded");
    let pipe = std::fs::symlink_metadata(special.join("pipe")).expect("stat");
    assert!(pipe.file_type().is_fifo(), "a fifo shows as one");

    // diff -r against the mount itself, then cp -a out of it: contents,
    // kinds, link targets, modes and times all match the source.
    let diff = |other: &Path| {
        // diff cannot compare fifos; the comparer below checks the pipe.
        let args = ["-r", "--no-dereference", "-x", "pipe"].map(OsStr::new);
        tool(
            "diff",
            args.into_iter().chain([src.as_os_str(), other.as_os_str()]),
        )
        .success();
    };
    diff(&m.path(&format!("ids/{short}")));
    let copy = tmp.path().join("copy");
    let from = m.path(&format!("ids/{short}/"));
    tool("cp", [OsStr::new("-a"), from.as_os_str(), copy.as_os_str()]).success();
    diff(&copy);
    assert_no_differences(&tree_differences(&src, &copy), "cp -a out of the mount");
    assert_no_differences(&tree_differences(&src, &snap), "the mount itself");

    // Read-only: writes fail with EROFS.
    let write = std::fs::write(snap.join("new_file"), b"x").expect_err("a write");
    assert_eq!(write.raw_os_error(), Some(30), "EROFS: {write}");
    let chmod = std::fs::set_permissions(snap.join("empty_file"), PermissionsExt::from_mode(0o600))
        .expect_err("a chmod");
    assert_eq!(chmod.raw_os_error(), Some(30), "EROFS: {chmod}");

    let report = m.stop(Unmount::Fusermount);
    assert!(field_u64(&report, "chunks_fetched") > 0, "{report}");
}

#[test]
fn a_random_read_of_one_mib_in_a_gigabyte_fetches_a_chunk_or_two() {
    if !fuse_ready("mount") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("src");
    // 1 GiB with 16 extents of 4 MiB of noise, one every 64 MiB; holes
    // between them dedup to a few zero chunks, so the noise is what the
    // file's chunks are made of.
    let image = src.join("disk.img");
    let f = File::create(&image).expect("create");
    f.set_len(1 << 30).expect("set_len");
    let mut rng = xorshift(0x6d6f_756e_7431);
    for i in 0..16u64 {
        f.write_all_at(&rng.bytes(4 * MIB as usize), i * 64 * MIB)
            .expect("write");
    }
    drop(f);
    let backup = repo_backup(tmp.path(), &src);
    let (repo, data_chunks) = (backup.0, field_u64(&backup.1, "data_blobs_added"));
    assert!(
        data_chunks >= 16,
        "the noise alone is 64 MiB: {data_chunks} chunks"
    );

    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    let m = Mounted::start(&repo, &mnt, &[]);
    // A random 1 MiB inside a random extent, read with one pread.
    let extent = rng.below(16);
    let offset = extent * 64 * MIB + rng.below(3 * MIB);
    let mounted = File::open(m.path("snapshots/latest/disk.img")).expect("open");
    let mut got = vec![0u8; MIB as usize];
    mounted.read_exact_at(&mut got, offset).expect("read");
    drop(mounted);
    let mut want = vec![0u8; MIB as usize];
    File::open(&image)
        .expect("open")
        .read_exact_at(&mut want, offset)
        .expect("read");
    assert!(got == want, "the bytes at {offset} differ from the source");

    let report = m.stop(Unmount::Fusermount);
    let fetched = field_u64(&report, "chunks_fetched");
    let bytes = field_u64(&report, "chunk_bytes_fetched");
    eprintln!(
        "1 MiB at {offset} of 1 GiB ({data_chunks} data chunks): {fetched} chunks, {bytes} bytes fetched"
    );
    // The 1 MiB spans one to three chunks (1 MiB on average, at least
    // 512 KiB), and the kernel may read ahead into one more.
    assert!(
        (1..=4).contains(&fetched),
        "{fetched} chunks fetched: {report}"
    );
    assert!(bytes <= 4 * 8 * MIB, "{bytes} bytes fetched: {report}");
}

/// A repository in `dir` with one backup of `src`: the repository and the
/// backup's JSON summary.
fn repo_backup(dir: &Path, src: &Path) -> (Repo, serde_json::Value) {
    let repo = Repo::init(dir.join("repo"));
    let json = repo.backup_json(src);
    (repo, json)
}

#[test]
fn a_backup_made_while_mounted_shows_up_without_a_remount() {
    if !fuse_ready("mount") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("src");
    std::fs::write(src.join("f"), b"first").expect("write");
    let (repo, first) = repo_backup(tmp.path(), &src);
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    let m = Mounted::start(&repo, &mnt, &["--refresh-interval", "0"]);
    assert_eq!(names(&m.path("ids")), [short_id(&first)]);
    assert!(names(&m.path("tags")).is_empty());

    std::fs::write(src.join("f"), b"second").expect("write");
    let second = repo
        .run([
            OsStr::new("backup"),
            src.as_os_str(),
            OsStr::new("--tag"),
            OsStr::new("later"),
            OsStr::new("--json"),
        ])
        .success()
        .json();
    let mut ids = vec![short_id(&first), short_id(&second)];
    ids.sort();
    assert_eq!(names(&m.path("ids")), ids);
    assert_eq!(names(&m.path("tags")), ["later"]);
    let latest = std::fs::read(m.path("snapshots/latest/f")).expect("read");
    assert_eq!(latest, b"second");
    let first_f = std::fs::read(m.path(&format!("ids/{}/f", short_id(&first)))).expect("read");
    assert_eq!(first_f, b"first");

    let report = m.stop(Unmount::Sigterm);
    assert!(field_u64(&report, "refreshes") >= 1, "{report}");
}

#[test]
fn mount_says_what_to_install_when_fusermount3_is_missing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = Repo::init(tmp.path().join("repo"));
    let empty_path = tmp.path().join("no-binaries");
    std::fs::create_dir(&empty_path).expect("dir");
    let mut cmd = repo.command([OsStr::new("mount"), tmp.path().as_os_str()]);
    cmd.env("PATH", &empty_path);
    let run = Run::of(cmd).expect_code(1);
    if !Path::new("/dev/fuse").exists() {
        assert!(run.stderr.contains("/dev/fuse"), "{}", run.stderr);
        return;
    }
    assert!(run.stderr.contains("fusermount3"), "{}", run.stderr);
    assert!(run.stderr.contains("fuse3"), "{}", run.stderr);
}

#[test]
fn a_damaged_chunk_reads_as_eio_and_the_rest_still_reads() {
    if !fuse_ready("mount") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("src");
    std::fs::write(src.join("noise"), xorshift(11).bytes(3 * MIB as usize)).expect("write");
    std::fs::write(src.join("small"), b"still readable\n").expect("write");
    let (repo, _) = repo_backup(tmp.path(), &src);
    // The largest pack holds the noise: flip a byte in its middle, inside
    // one of the noise's chunks.
    let (pack, size) = repo
        .objects()
        .into_iter()
        .filter(|(p, _)| p.starts_with("data/"))
        .max_by_key(|(_, size)| *size)
        .expect("a data pack");
    let path = repo.path.join(&pack);
    let mut bytes = std::fs::read(&path).expect("read pack");
    bytes[size as usize / 2] ^= 0x40;
    std::fs::write(&path, bytes).expect("write pack");

    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    let m = Mounted::start(&repo, &mnt, &[]);
    let err = std::fs::read(m.path("snapshots/latest/noise")).expect_err("a damaged chunk");
    assert_eq!(err.raw_os_error(), Some(5), "EIO: {err}");
    let small = std::fs::read(m.path("snapshots/latest/small")).expect("read");
    assert_eq!(small, b"still readable\n");
    let missing = std::fs::metadata(m.path("snapshots/latest/nothing")).expect_err("no such file");
    assert_eq!(missing.raw_os_error(), Some(2), "ENOENT: {missing}");
    let stderr = m.stderr();
    m.stop(Unmount::Sigint);
    assert!(
        stderr.contains("chunk"),
        "the damaged chunk is named:\n{stderr}"
    );
}
