//! Ctrl-C stops a backup cleanly: no snapshot, the uploads in flight are
//! indexed, the repository checks clean and the next backup completes.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use crate::common::compare::{assert_no_differences, tree_differences};
use crate::common::source::xorshift;
use crate::common::{Repo, Run, field_u64};

#[test]
fn interrupted_backup_saves_no_snapshot_and_leaves_a_clean_repository() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let mut rng = xorshift(41);
    for i in 0..8 {
        std::fs::write(src.join(format!("f{i}")), rng.bytes(1 << 20)).expect("write");
    }
    let repo = Repo::init(tmp.path().join("repo"));
    // Slow uploads (1 MiB/s for 8 MiB) leave time to interrupt: half a
    // second in, the backup is reading or waiting for its upload.
    let mut cmd = repo.command(["--limit-upload", "1024", "backup"]);
    cmd.arg(&src).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let run = Run::from_output(
        "interrupted backup".into(),
        child.wait_with_output().expect("wait"),
    );
    let run = run.expect_code(1);
    assert!(run.stderr.contains("backup interrupted"), "{}", run.stderr);

    let listed = repo.run(["snapshots", "--json"]).success().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
    let check = repo.run(["check", "--read-data"]).success();
    assert!(!check.stdout.contains("warning"), "{}", check.stdout);

    let out = repo.backup_json(&src);
    assert_eq!(field_u64(&out, "files_new"), 8);
    repo.run(["check", "--read-data"]).success();
    let dst = tmp.path().join("dst");
    repo.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        dst.as_os_str(),
    ])
    .success();
    assert_no_differences(
        &tree_differences(&src, &dst),
        "restore after an interrupted backup",
    );
}
