//! Restore fidelity: a tree with every kind of entry and metadata cairn
//! promises to carry is backed up and restored, and the two trees are
//! compared field by field: lstat fields (kind and mode, owner, size,
//! mtime and atime to the nanosecond, link count, device number, allocated
//! blocks), extended attributes, hard-link identities, symlink targets and
//! contents. Cases the machine cannot build (not root, no ACL support) are
//! skipped and named on stderr.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};

use crate::common::source::{XorShift, xorshift};
use crate::common::{Repo, field_u64};

/// lstat fields that a restore must reproduce (not inode or ctime, which
/// no restore can choose).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stat {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    atime: (i64, i64),
    nlink: u64,
    rdev: u64,
    blocks: u64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Other names of the same inode, relative to the root.
    same_inode: Vec<PathBuf>,
}

/// What reading an entry gives: a content hash or a symlink target.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    File(u64),
    Link(PathBuf),
    None,
}

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

fn xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut list = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(p, &mut list[..])
        .unwrap_or_else(|e| panic!("llistxattr {}: {e}", p.display()));
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = list[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let mut v = vec![0u8; 65536];
            let len = rustix::fs::lgetxattr(p, name, &mut v[..])
                .unwrap_or_else(|e| panic!("lgetxattr {}: {e}", p.display()));
            (name.to_vec(), v[..len].to_vec())
        })
        .collect();
    out.sort();
    out
}

/// Names in a directory, read without touching its access time.
fn names(dir: &Path) -> Vec<Vec<u8>> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOATIME,
        Mode::empty(),
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    let mut out: Vec<Vec<u8>> = rustix::fs::Dir::new(fd)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_bytes().to_vec())
        .filter(|n| n != b"." && n != b"..")
        .collect();
    out.sort();
    out
}

/// Every entry's stat below `root` (each taken before anything reads it).
fn stats(root: &Path) -> BTreeMap<PathBuf, Stat> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<PathBuf>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for name in names(&root.join(&rel)) {
            let r = rel.join(OsStr::from_bytes(&name));
            let p = root.join(&r);
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            if m.is_dir() {
                stack.push(r.clone());
            }
            inodes
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(r.clone());
            out.insert(
                r,
                Stat {
                    mode: m.mode(),
                    uid: m.uid(),
                    gid: m.gid(),
                    size: m.size(),
                    mtime: (m.mtime(), m.mtime_nsec()),
                    atime: (m.atime(), m.atime_nsec()),
                    nlink: m.nlink(),
                    rdev: m.rdev(),
                    blocks: m.blocks(),
                    xattrs: xattrs(&p),
                    same_inode: Vec::new(),
                },
            );
        }
    }
    for group in inodes.values().filter(|g| g.len() > 1) {
        for p in group {
            let others: Vec<PathBuf> = group.iter().filter(|o| *o != p).cloned().collect();
            if let Some(s) = out.get_mut(p) {
                s.same_inode = others;
            }
        }
    }
    out
}

/// Contents and symlink targets, read after the stats were taken.
fn data(root: &Path, entries: &BTreeMap<PathBuf, Stat>) -> BTreeMap<PathBuf, Data> {
    entries
        .iter()
        .map(|(rel, st)| {
            let p = root.join(rel);
            let d = match st.mode & 0o170000 {
                0o100000 => {
                    let fd = rustix::fs::open(&p, OFlags::RDONLY | OFlags::NOATIME, Mode::empty())
                        .expect("open");
                    let mut f = std::fs::File::from(fd);
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = f.read(&mut buf).expect("read");
                        if n == 0 {
                            break;
                        }
                        buf[..n].hash(&mut h);
                    }
                    Data::File(h.finish())
                }
                0o120000 => Data::Link(std::fs::read_link(&p).expect("readlink")),
                _ => Data::None,
            };
            (rel.clone(), d)
        })
        .collect()
}

fn set_times(p: &Path, atime: (i64, i64), mtime: (i64, i64)) {
    let ts = |(s, n): (i64, i64)| Timespec {
        tv_sec: s,
        tv_nsec: n as _,
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: ts(atime),
            last_modification: ts(mtime),
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", p.display()));
}

/// A POSIX ACL in the kernel's xattr encoding: version 2, then (tag, perm,
/// id) entries sorted by tag.
fn acl(user_perm: u16, extra_user: u32, group_perm: u16, other_perm: u16) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, user_perm, u32::MAX),
        (0x02, 4, extra_user),
        (0x04, group_perm, u32::MAX),
        (0x10, group_perm, u32::MAX),
        (0x20, other_perm, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

struct Builder {
    src: PathBuf,
    rng: XorShift,
    skipped: Vec<String>,
}

impl Builder {
    fn skip(&mut self, case: &str, why: String) {
        eprintln!("SKIP fidelity case {case}: {why}");
        self.skipped.push(case.to_owned());
    }

    fn file(&mut self, rel: &str, len: usize, mode: u32) -> PathBuf {
        let p = self.src.join(rel);
        let mut data = vec![0u8; len];
        self.rng.fill(&mut data);
        std::fs::write(&p, &data).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    fn xattr(&mut self, case: &str, p: &Path, name: &str, value: &[u8]) {
        if let Err(e) = rustix::fs::lsetxattr(p, name, value, XattrFlags::empty()) {
            self.skip(case, format!("cannot set {name}: {e}"));
        }
    }

    fn build(&mut self) {
        let s = self.src.clone();
        std::fs::create_dir_all(&s).expect("mkdir");
        // Plain files with every special mode bit.
        self.file("plain", 10_000, 0o640);
        self.file("setuid", 100, 0o4755);
        self.file("setgid", 100, 0o2750);
        std::fs::write(s.join("empty"), b"").expect("write");
        std::fs::create_dir(s.join("sticky")).expect("mkdir");
        std::fs::set_permissions(s.join("sticky"), std::fs::Permissions::from_mode(0o1777))
            .expect("chmod");
        std::fs::create_dir(s.join("empty_dir")).expect("mkdir");
        std::fs::create_dir(s.join("private_dir")).expect("mkdir");
        self.file("private_dir/inside", 50, 0o600);
        std::fs::set_permissions(
            s.join("private_dir"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("chmod");

        // Names: not UTF-8, 255 bytes long, and a deep path.
        let odd = s.join(OsStr::from_bytes(b"not \xff\xfe utf-8"));
        std::fs::write(&odd, b"odd name").expect("write");
        let long = "L".repeat(255);
        self.file(&long, 300, 0o644);
        let mut deep = s.join("deep");
        for i in 0..28 {
            deep.push(format!("{i:02}-{}", "d".repeat(96)));
        }
        std::fs::create_dir_all(&deep).expect("mkdir deep");
        std::fs::write(deep.join("bottom.txt"), b"the bottom").expect("write");

        // Hard links: three names, two directories.
        let a = self.file("links_a", 70_000, 0o644);
        std::fs::create_dir(s.join("links_dir")).expect("mkdir");
        std::fs::hard_link(&a, s.join("links_b")).expect("link");
        std::fs::hard_link(&a, s.join("links_dir/links_c")).expect("link");

        // Symlinks, one dangling, one with a long target.
        std::os::unix::fs::symlink("plain", s.join("sym")).expect("symlink");
        std::os::unix::fs::symlink("/no/such/target", s.join("dangling")).expect("symlink");
        std::os::unix::fs::symlink("t".repeat(300), s.join("long_target")).expect("symlink");

        // A FIFO.
        rustix::fs::mknodat(CWD, s.join("fifo"), FileType::Fifo, Mode::from(0o640), 0)
            .expect("mkfifo");

        // A sparse file: 64 MiB, data in three places, one at the end.
        let sparse = std::fs::File::create(s.join("sparse")).expect("create");
        sparse.set_len(64 << 20).expect("set_len");
        for off in [0u64, 20 << 20, (64 << 20) - 8192] {
            let mut block = vec![0u8; 8192];
            self.rng.fill(&mut block);
            sparse.write_all_at(&block, off).expect("write");
        }
        drop(sparse);

        // Extended attributes in the user namespace.
        self.xattr(
            "user xattrs",
            &s.join("plain"),
            "user.comment",
            b"a comment",
        );
        self.xattr("user xattrs", &s.join("plain"), "user.empty", b"");
        self.xattr(
            "user xattrs",
            &s.join("sticky"),
            "user.dir",
            b"on a directory",
        );
        let binary: Vec<u8> = (0..=255u8).collect();
        self.xattr("user xattrs", &s.join("empty"), "user.binary", &binary);

        // ACLs: an access ACL on a file, a default ACL on a directory and
        // a file that inherits it.
        self.xattr(
            "posix ACLs",
            &s.join("setgid"),
            "system.posix_acl_access",
            &acl(7, 1000, 5, 0),
        );
        std::fs::create_dir(s.join("acl_dir")).expect("mkdir");
        self.xattr(
            "posix ACLs",
            &s.join("acl_dir"),
            "system.posix_acl_default",
            &acl(6, 1001, 4, 0),
        );
        self.file("acl_dir/inherits", 10, 0o644);

        if root() {
            // Ownership, on a file, a directory and a symlink.
            for p in ["plain", "private_dir", "sym", "links_a"] {
                std::os::unix::fs::lchown(s.join(p), Some(1234), Some(5678)).expect("lchown");
            }
            // Privileged namespaces; chown clears capabilities, so after it.
            self.xattr("trusted xattrs", &s.join("plain"), "trusted.t", b"trusted");
            self.xattr("trusted xattrs", &s.join("sym"), "trusted.on_link", b"x");
            // VFS_CAP_REVISION_2, CAP_NET_BIND_SERVICE permitted.
            let mut cap = 0x0200_0000u32.to_le_bytes().to_vec();
            cap.extend_from_slice(&[0x00, 0x04, 0, 0, 0, 0, 0, 0]);
            cap.extend_from_slice(&[0u8; 8]);
            self.xattr(
                "security.capability",
                &s.join("links_a"),
                "security.capability",
                &cap,
            );
            // Device nodes.
            for (name, ft, dev) in [
                (
                    "null_again",
                    FileType::CharacterDevice,
                    rustix::fs::makedev(1, 3),
                ),
                (
                    "loop_again",
                    FileType::BlockDevice,
                    rustix::fs::makedev(7, 200),
                ),
            ] {
                if let Err(e) = rustix::fs::mknodat(CWD, s.join(name), ft, Mode::from(0o600), dev) {
                    self.skip("device nodes", format!("mknod: {e}"));
                }
            }
        } else {
            for case in [
                "ownership",
                "trusted xattrs",
                "security.capability",
                "device nodes",
            ] {
                self.skip(case, "not running as root".into());
            }
        }

        // Times last, deepest first, so nothing changes them afterwards:
        // nanoseconds, one before 1970, atimes both before and after mtime.
        let mut all: Vec<PathBuf> = stats(&s).into_keys().collect();
        all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for (i, rel) in all.iter().enumerate() {
            let i = i as i64;
            let mtime = if i == 3 {
                (-86_400 * 365, 123_456_789)
            } else {
                (1_600_000_000 + i * 1000, (i * 7_919_777) % 1_000_000_000)
            };
            let atime = (
                mtime.0 + if i % 2 == 0 { 3600 } else { -3600 },
                999_999_999 - i,
            );
            set_times(&s.join(rel), atime, mtime);
        }
    }
}

fn differences(
    exp: &BTreeMap<PathBuf, Stat>,
    act: &BTreeMap<PathBuf, Stat>,
    exp_data: &BTreeMap<PathBuf, Data>,
    act_data: &BTreeMap<PathBuf, Data>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, e) in exp {
        match act.get(p) {
            None => out.push(format!("{p:?}: missing")),
            Some(a) if a != e => out.push(format!("{p:?}:\n  expected {e:?}\n  restored {a:?}")),
            Some(_) => {}
        }
        if exp_data.get(p) != act_data.get(p) {
            out.push(format!("{p:?}: content or target differs"));
        }
    }
    for p in act.keys().filter(|p| !exp.contains_key(*p)) {
        out.push(format!("{p:?}: unexpected"));
    }
    out
}

#[test]
fn round_trip_keeps_every_kind_of_entry_and_metadata() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut b = Builder {
        src: tmp.path().join("src"),
        rng: xorshift(55),
        skipped: Vec::new(),
    };
    b.build();
    let expected = stats(&b.src);
    let repo = Repo::init(tmp.path().join("repo"));
    let summary = repo.backup_json(&b.src);
    assert_eq!(summary["warnings"], serde_json::json!([]), "{summary:#}");
    let expected_data = data(&b.src, &expected);

    let target = tmp.path().join("restored");
    let out = repo
        .run([
            OsStr::new("restore"),
            OsStr::new("latest"),
            OsStr::new("--target"),
            target.as_os_str(),
            OsStr::new("--json"),
        ])
        .success()
        .json();
    assert_eq!(field_u64(&out["outcome"], "hardlinks"), 2, "{out:#}");
    let actual = stats(&target);
    let actual_data = data(&target, &actual);
    let diffs = differences(&expected, &actual, &expected_data, &actual_data);
    assert!(
        diffs.is_empty(),
        "{} differences (skipped cases: {:?}):\n{}",
        diffs.len(),
        b.skipped,
        diffs.join("\n")
    );
    // The sparse file's holes stayed holes.
    let sparse = &actual[Path::new("sparse")];
    assert!(
        sparse.blocks * 512 < 1 << 20,
        "sparse file allocates {} bytes",
        sparse.blocks * 512
    );
    eprintln!(
        "fidelity: {} entries compared, sparse file allocates {} KiB of {} MiB; skipped: {:?}",
        expected.len(),
        sparse.blocks / 2,
        sparse.size >> 20,
        b.skipped
    );
}
