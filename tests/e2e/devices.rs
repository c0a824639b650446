//! Block devices as content streams, on loop devices (root only; skipped
//! where loop devices cannot be attached): a device given as a path is
//! backed up as its content, `--read-special` does it for devices inside a
//! directory, and a restore writes the content into another device.

use std::ffi::OsStr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::source::xorshift;
use crate::common::{Repo, field_u64};

const LEN: u64 = 4 << 20;

/// A loop device over an image file, detached on drop.
struct Loop(PathBuf);

impl Loop {
    fn attach(image: &Path) -> Option<Loop> {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(image)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIP devices: losetup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Loop(PathBuf::from(
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn image(path: &Path, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; LEN as usize];
    let mut rng = xorshift(seed);
    // Scattered data, zeros between.
    for off in [0usize, 1 << 20, 3 << 20] {
        rng.fill(&mut data[off..off + 300_000]);
    }
    std::fs::write(path, &data).expect("write image");
    data
}

fn read_device(dev: &Path) -> Vec<u8> {
    let f = std::fs::File::open(dev).expect("open device");
    let mut buf = vec![0u8; LEN as usize];
    f.read_exact_at(&mut buf, 0).expect("read device");
    buf
}

#[test]
fn block_devices_round_trip_as_content_streams() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP devices: not running as root");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = image(&tmp.path().join("a.img"), 31);
    std::fs::write(tmp.path().join("b.img"), xorshift(5).bytes(LEN as usize)).expect("write");
    let Some(a) = Loop::attach(&tmp.path().join("a.img")) else {
        return;
    };
    let Some(b) = Loop::attach(&tmp.path().join("b.img")) else {
        return;
    };
    let name =
        a.0.file_name()
            .expect("a name")
            .to_str()
            .expect("utf-8")
            .to_owned();
    let repo = Repo::init(tmp.path().join("repo"));

    // Given directly: read as content.
    let summary = repo
        .run([OsStr::new("backup"), a.0.as_os_str(), OsStr::new("--json")])
        .success()
        .json();
    assert_eq!(field_u64(&summary, "bytes_read"), LEN, "{summary:#}");
    let dumped = repo
        .command(["dump", &format!("latest:/{name}")])
        .output()
        .expect("dump");
    assert!(dumped.stdout == data, "dump of the device differs");

    // Restored into another device: every byte, zeros included.
    let out = repo
        .run([
            OsStr::new("restore"),
            OsStr::new(&format!("latest:/{name}")),
            OsStr::new("--target"),
            b.0.as_os_str(),
            OsStr::new("--json"),
        ])
        .success()
        .json();
    assert_eq!(field_u64(&out["outcome"], "bytes_written"), LEN, "{out:#}");
    assert!(read_device(&b.0) == data, "restored device differs");

    // Inside a directory: a node only, unless --read-special.
    let dir = tmp.path().join("dir");
    std::fs::create_dir(&dir).expect("mkdir");
    let rdev = std::fs::metadata(&a.0).expect("stat").rdev();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("disk"),
        rustix::fs::FileType::BlockDevice,
        rustix::fs::Mode::from(0o600),
        rdev,
    )
    .expect("mknod");
    let plain = repo.backup_json(&dir);
    assert_eq!(field_u64(&plain, "bytes_read"), 0, "{plain:#}");
    let special = repo
        .run([
            OsStr::new("backup"),
            dir.as_os_str(),
            OsStr::new("--read-special"),
            OsStr::new("--json"),
        ])
        .success()
        .json();
    assert_eq!(field_u64(&special, "bytes_read"), LEN, "{special:#}");
    let target = tmp.path().join("restored");
    repo.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
    ])
    .success();
    let m = std::fs::symlink_metadata(target.join("disk")).expect("stat");
    assert!(m.is_file(), "a device with content restores as a file");
    assert!(std::fs::read(target.join("disk")).expect("read") == data);
}
