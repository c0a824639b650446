//! The embedding example (`examples/backup_to_s3.rs`) runs against the test
//! S3 server: a backup with progress, the list of snapshots, one file
//! restored; a second run finds the files unchanged; a wrong password is
//! told apart by its error kind.

use std::path::PathBuf;
use std::process::Command;

/// The example's binary, built now (a no-op when `cargo test` built it
/// already), so a test run never uses a stale one.
fn example() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let ok = Command::new(cargo)
                .args(["build", "-p", "cairn", "--example", "backup_to_s3"])
                .status()
                .expect("cargo build")
                .success();
            assert!(ok, "building the example failed");
            let exe = std::env::current_exe().expect("test exe");
            let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
            dir.join("examples").join("backup_to_s3")
        })
        .clone()
}

#[test]
fn the_example_backs_up_lists_and_restores_a_file_on_s3() {
    let Ok(base) = std::env::var("CAIRN_TEST_S3_URL") else {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_S3").is_none(),
            "CAIRN_REQUIRE_S3 is set but CAIRN_TEST_S3_URL is not"
        );
        eprintln!("SKIP: CAIRN_TEST_S3_URL is not set (scripts/garage.sh)");
        return;
    };
    let (head, query) = base.split_once('?').unwrap_or((&base, ""));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let url = format!("{}/example-{nanos}?{query}", head.trim_end_matches('/'));
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("sub/file.txt"), "embedded cairn\n".repeat(1000)).expect("write");
    std::fs::write(src.join("other"), b"x").expect("write");
    let out = tmp.path().join("restored.txt");
    let run = |password: &str| {
        Command::new(example())
            .args([url.as_str(), src.to_str().expect("utf-8"), "sub/file.txt"])
            .arg(&out)
            .env("CAIRN_PASSWORD", password)
            .output()
            .expect("run the example")
    };
    for round in 1..=2 {
        let o = run("example password");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "round {round}: {stderr}");
        let listed = String::from_utf8_lossy(&o.stdout).lines().count();
        assert_eq!(
            listed,
            round,
            "one snapshot per run: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        if round == 2 {
            assert!(stderr.contains("0 files read, 2 unchanged"), "{stderr}");
        }
        assert_eq!(
            std::fs::read(&out).expect("restored"),
            std::fs::read(src.join("sub/file.txt")).expect("source")
        );
    }
    let wrong = run("not the password");
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("check the password"), "{stderr}");
}
