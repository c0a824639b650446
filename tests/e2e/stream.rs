//! Streams and volumes: `backup --stdin`, and a 1 GiB image backed up as
//! one content stream and restored into an existing image file with
//! positional writes.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::process::Stdio;

use crate::common::source::xorshift;
use crate::common::{Repo, Run, field_u64};
use crate::sparse::{GIB, MIB, same_content, sparse_image};

#[test]
fn stdin_is_backed_up_as_one_named_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = Repo::init(tmp.path().join("repo"));
    let data = xorshift(8).bytes(5 << 20);
    let mut cmd = repo.command(["backup", "--stdin", "--stdin-filename", "db.dump", "--json"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || stdin.write_all(&data))
    };
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("join").expect("write stdin");
    let run = Run::from_output("backup --stdin".into(), out).success();
    let summary = run.json();
    assert_eq!(field_u64(&summary, "bytes_read"), data.len() as u64);

    let ls = repo.run(["ls", "latest"]).success();
    assert_eq!(ls.stdout, "/db.dump\n");
    let dumped = repo
        .command(["dump", "latest:db.dump"])
        .output()
        .expect("dump");
    assert!(dumped.stdout == data, "dump differs from what was piped in");

    let target = tmp.path().join("restored");
    repo.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        target.as_os_str(),
    ])
    .success();
    assert!(std::fs::read(target.join("db.dump")).expect("read") == data);

    let r = repo.run(["backup", "--stdin", "/tmp"]).expect_code(2);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
}

#[test]
fn image_round_trip_into_an_existing_image_with_positional_writes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let image = tmp.path().join("disk.img");
    let data = sparse_image(&image, 4242);
    let repo = Repo::init(tmp.path().join("repo"));
    // The image itself, given directly: one entry, one content stream.
    let summary = repo
        .run([
            OsStr::new("backup"),
            image.as_os_str(),
            OsStr::new("--json"),
        ])
        .success()
        .json();
    assert_eq!(field_u64(&summary, "bytes_read"), data, "{summary:#}");

    // A stale image in the way: other bytes where the data goes and where
    // the snapshot has holes, and longer than the content.
    let stale = tmp.path().join("volume.img");
    let f = std::fs::File::create(&stale).expect("create");
    f.set_len(GIB + 4096).expect("set_len");
    let mut junk = xorshift(1);
    for off in [0, 100 * MIB, 700 * MIB, GIB] {
        f.write_all_at(&junk.bytes(4096), off).expect("write");
    }
    drop(f);

    let out = repo
        .run([
            OsStr::new("restore"),
            OsStr::new("latest:/disk.img"),
            OsStr::new("--target"),
            stale.as_os_str(),
            OsStr::new("--json"),
        ])
        .success()
        .json();
    let outcome = &out["outcome"];
    assert_eq!(field_u64(outcome, "bytes"), GIB, "{out:#}");
    assert_eq!(field_u64(outcome, "bytes_written"), data, "{out:#}");
    let m = std::fs::metadata(&stale).expect("stat");
    assert_eq!(m.len(), GIB);
    eprintln!(
        "image restore: {} MiB written, {} MiB allocated of {} MiB",
        data >> 20,
        (m.blocks() * 512) >> 20,
        m.len() >> 20
    );
    assert!(m.blocks() * 512 <= data + MIB, "holes not kept");
    assert!(same_content(&stale, &image), "restored image differs");
}
