//! Restoring an untrusted snapshot (`RestoreOptions::untrusted`): a root
//! restore of someone else's data must not hand them privileges through
//! set-id executables, file capabilities or device nodes.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use cairn_core::format::{Source, Timestamp};
use cairn_fs::{BackupOptions, ParentChoice, Progress, RestoreOptions, RestoreOutcome};
use cairn_repo::{InitOptions, Repository};
use cairn_store::Store;

const CAPABILITY: &str = "security.capability";

/// A version 2 `security.capability` value granting CAP_NET_BIND_SERVICE
/// (bit 10), permitted and effective.
fn capability() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    v.extend_from_slice(&(1u32 << 10).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

fn has_capability(p: &Path) -> bool {
    let mut buf = [0u8; 64];
    rustix::fs::lgetxattr(p, CAPABILITY, &mut buf[..]).is_ok()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .expect("lstat")
        .permissions()
        .mode()
        & 0o7777
}

async fn restore(
    repo: &Repository,
    s: &cairn_core::format::Snapshot,
    target: &Path,
    untrusted: bool,
) -> RestoreOutcome {
    let mut opts = RestoreOptions::default();
    opts.target = target.to_owned();
    opts.owners = Some(true);
    opts.untrusted = untrusted;
    cairn_fs::restore(repo, s, opts, Arc::new(Progress::default()))
        .await
        .expect("restore")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_restore_drops_set_id_bits_capabilities_and_device_nodes() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    let src = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| src.path().join(n);
    for (name, m) in [
        ("suid", 0o4755),
        ("sgid", 0o2755),
        ("capped", 0o755),
        ("plain", 0o644),
    ] {
        std::fs::write(p(name), name).expect("write");
        std::fs::set_permissions(p(name), std::fs::Permissions::from_mode(m)).expect("chmod");
    }
    if let Err(e) = rustix::fs::setxattr(
        p("capped"),
        CAPABILITY,
        &capability(),
        rustix::fs::XattrFlags::empty(),
    ) {
        eprintln!("SKIP: file capabilities not supported here: {e}");
        return;
    }
    let dev = rustix::fs::makedev(1, 3);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from(0o666),
        dev,
    )
    .expect("mknod");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from(0o644),
        0,
    )
    .expect("mkfifo");

    let repo = Repository::init(
        Store::memory(),
        b"pw",
        InitOptions::insecure_fast_for_tests(),
    )
    .await
    .expect("init");
    let mut opts = BackupOptions::default();
    opts.paths = vec![src.path().to_owned()];
    opts.hostname = "h".into();
    opts.parent = ParentChoice::None;
    opts.source = Source::Filesystem;
    opts.time = Timestamp { secs: 1, nanos: 0 };
    let snapshot = cairn_fs::backup(&repo, opts, Arc::new(Progress::default()))
        .await
        .expect("backup")
        .snapshot;

    // Trusted, the snapshot gives all of it back: what the untrusted
    // restore must take away is really there.
    let trusted = tempfile::tempdir().expect("tempdir");
    let out = restore(&repo, &snapshot, trusted.path(), false).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let t = |n: &str| trusted.path().join(n);
    assert_eq!(mode(&t("suid")), 0o4755);
    assert_eq!(mode(&t("sgid")), 0o2755);
    assert!(has_capability(&t("capped")));
    assert!(
        std::fs::symlink_metadata(t("null"))
            .expect("lstat")
            .file_type()
            .is_char_device()
    );
    assert_eq!(out.dropped, 0);

    let untrusted = tempfile::tempdir().expect("tempdir");
    let out = restore(&repo, &snapshot, untrusted.path(), true).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let u = |n: &str| untrusted.path().join(n);
    assert_eq!(mode(&u("suid")), 0o755);
    assert_eq!(mode(&u("sgid")), 0o755);
    assert!(
        !has_capability(&u("capped")),
        "the file capability was restored"
    );
    assert_eq!(mode(&u("capped")), 0o755);
    assert!(
        std::fs::symlink_metadata(u("null")).is_err(),
        "a device node was made"
    );
    assert!(
        std::fs::symlink_metadata(u("fifo"))
            .expect("lstat")
            .file_type()
            .is_fifo()
    );
    assert_eq!(std::fs::read(u("plain")).expect("read"), b"plain");
    assert_eq!(out.dropped, 4, "suid, sgid, capped and the device node");
}
