//! The end-to-end path against a real S3 server (Garage on loopback, started
//! by scripts/garage.sh; `CAIRN_TEST_S3_URL` and the `AWS_*` variables point
//! at it). Without it these tests print SKIP, unless `CAIRN_REQUIRE_S3` is
//! set, as the test script does, when they fail.

use std::path::Path;

use crate::common::compare::{assert_no_differences, tree_differences};
use crate::common::source::{TreeSpec, generate};
use crate::common::{CHEAP_KDF, Repo, Run, field_u64};

/// A fresh location under the Garage bucket, unique to this test.
pub(crate) fn s3_location(test: &str) -> Option<String> {
    let Ok(base) = std::env::var("CAIRN_TEST_S3_URL") else {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_S3").is_none(),
            "CAIRN_REQUIRE_S3 is set but CAIRN_TEST_S3_URL is not: start Garage with scripts/garage.sh"
        );
        eprintln!("SKIP {test}: CAIRN_TEST_S3_URL is not set (scripts/test.sh starts Garage)");
        return None;
    };
    let (head, query) = base.split_once('?').unwrap_or((&base, ""));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Some(format!(
        "{}/{test}-{}-{nanos}?{query}",
        head.trim_end_matches('/'),
        std::process::id()
    ))
}

/// A repository on S3 with its own cache directory.
struct S3Repo {
    repo: Repo,
    cache: tempfile::TempDir,
}

impl S3Repo {
    fn init(url: &str) -> S3Repo {
        let s = S3Repo {
            repo: Repo::at(url, "s3 test password"),
            cache: tempfile::tempdir().expect("tempdir"),
        };
        let out = s
            .run(["init", "--json"].into_iter().chain(CHEAP_KDF))
            .success()
            .json();
        assert_eq!(
            out["create_only_writes_honoured"], false,
            "Garage ignores If-None-Match"
        );
        s
    }

    fn command<'a>(
        &self,
        args: impl IntoIterator<Item = &'a str>,
        env: &[(&str, &str)],
    ) -> std::process::Command {
        let mut c = self.repo.command(args);
        c.env("CAIRN_CACHE_DIR", self.cache.path());
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn run<'a>(&self, args: impl IntoIterator<Item = &'a str>) -> Run {
        Run::of(self.command(args, &[]))
    }

    fn backup(&self, dir: &Path, env: &[(&str, &str)]) -> serde_json::Value {
        let dir = dir.to_str().expect("utf-8 path");
        Run::of(self.command(["backup", dir, "--json"], env))
            .success()
            .json()
    }

    fn restore_and_compare(&self, source: &Path, env: &[(&str, &str)]) {
        let out = tempfile::tempdir().expect("tempdir");
        let target = out.path().join("restored");
        let t = target.to_str().expect("utf-8 path");
        Run::of(self.command(["restore", "latest", "--target", t], env)).success();
        assert_no_differences(&tree_differences(source, &target), "restore from S3");
    }
}

#[test]
fn backup_no_change_backup_restore_and_check_against_garage() {
    let Some(url) = s3_location("roundtrip") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::with_big_file(5_000_000));
    let r = S3Repo::init(&url);

    let first = r.backup(&src, &[]);
    assert!(field_u64(&first, "data_packs_written") >= 1);
    // The second run may store new trees (reading files updated their
    // access times); the third sees a settled tree.
    r.backup(&src, &[]);
    let third = r.backup(&src, &[]);
    assert_eq!(field_u64(&third, "bytes_read"), 0, "{third:#}");
    assert_eq!(field_u64(&third, "data_packs_written"), 0);
    assert_eq!(field_u64(&third, "tree_packs_written"), 0);
    let storage = &third["storage"];
    let requests = field_u64(storage, "requests");
    // Config, key listing and key, index and snapshot listings, session
    // bookkeeping, the snapshot itself: a handful, not one per file or tree.
    assert!(
        requests <= 16,
        "a no-change backup made {requests} requests: {storage:#}"
    );
    assert!(field_u64(storage, "cache_hits") > 0, "{storage:#}");
    assert_eq!(
        field_u64(storage, "range_gets"),
        0,
        "trees came from the cache: {storage:#}"
    );

    r.restore_and_compare(&src, &[]);
    let check = r.run(["check", "--read-data", "--json"]).success().json();
    assert!(
        check["errors"].as_array().is_some_and(|e| e.is_empty()),
        "{check:#}"
    );
}

#[test]
fn transient_faults_and_latency_are_absorbed_by_retries() {
    let Some(url) = s3_location("faults") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::with_big_file(3_000_000));
    let r = S3Repo::init(&url);
    // 5% of HTTP requests fail with 503 before reaching Garage, each with
    // added latency; object_store's retries must hide every one of them.
    let faults = [("CAIRN_TEST_HTTP_FAULTS", "rate=0.05,latency-ms=3,seed=11")];
    r.backup(&src, &faults);
    r.restore_and_compare(&src, &faults);
    let faults = [("CAIRN_TEST_HTTP_FAULTS", "rate=0.05,latency-ms=3,seed=12")];
    let check = Run::of(r.command(["check", "--read-data", "--json"], &faults))
        .success()
        .json();
    assert!(
        check["errors"].as_array().is_some_and(|e| e.is_empty()),
        "{check:#}"
    );
}

#[test]
fn permanent_failure_mid_backup_leaves_a_clean_repository_and_the_next_backup_reuses_packs() {
    let Some(url) = s3_location("permanent") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::with_big_file(40_000_000));
    let r = S3Repo::init(&url);
    // After the first pack is stored (whole, or its multipart upload
    // completed: packs are streamed in parts), every further request for a
    // pack is refused for good (403, not retried); the rest of the store
    // keeps answering.
    let failed = Run::of(r.command(
        ["backup", src.to_str().expect("utf-8"), "--json"],
        &[(
            "CAIRN_TEST_HTTP_FAULTS",
            "fail-after-objects=1,fail-path=/data/",
        )],
    ))
    .expect_code(1);
    assert_eq!(
        failed.stderr.lines().count(),
        1,
        "one line: {}",
        failed.stderr
    );

    let check = r.run(["check", "--json"]).success().json();
    assert!(
        check["errors"].as_array().is_some_and(|e| e.is_empty()),
        "{check:#}"
    );
    let next = r.backup(&src, &[]);
    assert!(
        field_u64(&next, "bytes_added") < 40_000_000,
        "the second backup should reuse what the first uploaded: {next:#}"
    );
    r.restore_and_compare(&src, &[]);
}

#[test]
fn wrong_endpoint_credentials_and_bucket_fail_with_one_clear_line() {
    let Some(url) = s3_location("failures") else {
        return;
    };
    let (head, query) = url.split_once('?').expect("query");
    let cases = [
        (
            // Nothing listens on port 9 of loopback.
            format!(
                "{head}?{}",
                query.replace(
                    &query[query.find("endpoint=").expect("endpoint")..]
                        .split('&')
                        .next()
                        .expect("param")
                        .to_owned(),
                    "endpoint=http://127.0.0.1:9",
                )
            ),
            vec![],
            "connect",
        ),
        (
            url.clone(),
            vec![("AWS_SECRET_ACCESS_KEY", "wrong")],
            "denied",
        ),
        (
            format!("s3://no-such-bucket-cairn?{query}"),
            vec![],
            "bucket",
        ),
    ];
    for (location, env, expect) in cases {
        let repo = Repo::at(&location, "pw");
        let mut c = repo.command(["init"].into_iter().chain(CHEAP_KDF));
        c.env(
            "CAIRN_CACHE_DIR",
            std::env::temp_dir().join("cairn-e2e-unused-cache"),
        );
        for (k, v) in &env {
            c.env(k, v);
        }
        let run = Run::of(c).expect_code(1);
        let line = run.stderr.trim();
        assert_eq!(
            run.stderr.lines().count(),
            1,
            "{location}: one line, got:\n{}",
            run.stderr
        );
        assert!(
            line.to_lowercase().contains(expect),
            "{location}: {line:?} should mention {expect:?}"
        );
        assert!(
            line.contains("s3://"),
            "{location}: the message names the URL: {line:?}"
        );
    }
}
