//! The archival side of S3 (storage classes, restores, object lock), which
//! Garage does not implement, against moto on loopback, started by
//! scripts/moto.sh: the `CAIRN_TEST_MOTO_*` variables point at it. Without
//! it these tests print SKIP, unless `CAIRN_REQUIRE_MOTO` is set, as the
//! test script does, when they fail.
//!
//! Restores there take `CAIRN_TEST_MOTO_RESTORE_DELAY` seconds and are
//! counted per object (scripts/moto-server.py); scripts/s3tool.py, run by
//! [`s3tool`], looks at the buckets independently of cairn.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// A fresh location, unique to this test, in moto's plain bucket
/// (`cairn-cold`) or, with `lock`, its object-lock bucket (`cairn-lock`).
pub(crate) fn moto_location(test: &str, lock: bool) -> Option<String> {
    let var = if lock {
        "CAIRN_TEST_MOTO_LOCK_URL"
    } else {
        "CAIRN_TEST_MOTO_URL"
    };
    let Ok(base) = std::env::var(var) else {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_MOTO").is_none(),
            "CAIRN_REQUIRE_MOTO is set but {var} is not: start moto with scripts/moto.sh"
        );
        eprintln!("SKIP {test}: {var} is not set (scripts/test.sh starts moto)");
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

/// The bucket and prefix of a location from [`moto_location`].
pub(crate) fn bucket_and_prefix(url: &str) -> (String, String) {
    let path = url.strip_prefix("s3://").expect("an s3:// URL");
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let (bucket, prefix) = path.split_once('/').expect("a prefix in the URL");
    (bucket.to_owned(), prefix.to_owned())
}

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: source scripts/moto.sh's env"))
}

/// moto's endpoint, `http://127.0.0.1:PORT`.
pub(crate) fn moto_endpoint() -> String {
    env("CAIRN_TEST_MOTO_ENDPOINT")
}

/// How long moto takes to restore an archived object.
pub(crate) fn restore_delay() -> Duration {
    let s = env("CAIRN_TEST_MOTO_RESTORE_DELAY");
    Duration::from_secs_f64(s.parse().unwrap_or_else(|e| panic!("delay {s:?}: {e}")))
}

/// Runs scripts/s3tool.py (`classes|head|versions|attack ENDPOINT BUCKET
/// ARG`) with moto's python and returns what it printed.
pub(crate) fn s3tool<I, S>(args: I) -> serde_json::Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/s3tool.py");
    let mut c = Command::new(env("CAIRN_TEST_MOTO_PYTHON"));
    c.arg(script).args(args);
    let what = format!("{c:?}");
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// RestoreObject requests moto has seen since the last reset, per
/// "bucket/key". Every test using moto shares them: a test that runs
/// alongside others looks only at keys under its own prefix.
pub(crate) fn restore_counts() -> BTreeMap<String, u64> {
    let body = http("GET", "/_cairn/restores");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("restore counts {body:?}: {e}"))
}

/// Forgets every restore count (those of tests running alongside too).
#[expect(dead_code, reason = "for the archival tests to come (issue #16)")]
pub(crate) fn reset_restore_counts() {
    http("DELETE", "/_cairn/restores");
}

/// One HTTP/1.1 request to moto, by hand (the tests need no HTTP client
/// crate for this); returns the body of a 200 answer.
fn http(method: &str, path: &str) -> String {
    let endpoint = moto_endpoint();
    let addr = endpoint.strip_prefix("http://").expect("an http endpoint");
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    // Connection: close, so the answer ends where the stream does.
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{method} {path}: {answer}"
    );
    body.to_owned()
}

/// Runs `code` with moto's python after a prelude that makes `s3`, a boto3
/// client for moto, and `code_of(call)`, the S3 error code of a call ("ok"
/// if it succeeds); `args` follow in `sys.argv[1:]`. Returns stdout, trimmed.
pub(crate) fn boto3(code: &str, args: &[&str]) -> String {
    const PRELUDE: &str = r#"
import sys, boto3, botocore.exceptions
s3 = boto3.client("s3", endpoint_url=sys.argv.pop(1), region_name="us-east-1")
def code_of(call):
    try:
        call()
        return "ok"
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
"#;
    let mut c = Command::new(env("CAIRN_TEST_MOTO_PYTHON"));
    c.arg("-c")
        .arg(format!("{PRELUDE}\n{code}"))
        .arg(moto_endpoint())
        .args(args);
    let out = c.output().expect("run python");
    assert!(
        out.status.success(),
        "python: {}\n{code}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What `s3tool head` says of `key`'s restore (null if nothing).
fn restore_header(bucket: &str, key: &str) -> String {
    let head = s3tool(["head", &moto_endpoint(), bucket, key]);
    head["restore"].as_str().unwrap_or("").to_owned()
}

/// The harness itself: an archived object cannot be read until restored, a
/// restore takes the configured time and is counted once, and a
/// COMPLIANCE-retained version survives a delete by version id.
#[test]
fn moto_harness_archives_restores_slowly_and_locks() {
    let (Some(cold), Some(lock)) = (
        moto_location("moto_harness", false),
        moto_location("moto_harness", true),
    ) else {
        return;
    };
    let (bucket, prefix) = bucket_and_prefix(&cold);
    let key = format!("{prefix}/frozen");
    let k = key.as_str();

    boto3(
        r#"s3.put_object(Bucket=sys.argv[1], Key=sys.argv[2], Body=b"frozen", StorageClass="GLACIER")"#,
        &[&bucket, k],
    );
    let classes = s3tool(["classes", &moto_endpoint(), &bucket, &prefix]);
    assert_eq!(classes, serde_json::json!({ k: "GLACIER" }));
    let get = r#"print(code_of(lambda: s3.get_object(Bucket=sys.argv[1], Key=sys.argv[2])))"#;
    assert_eq!(boto3(get, &[&bucket, k]), "InvalidObjectState");
    assert_eq!(restore_header(&bucket, k), "", "never restored");

    // Timed from before the request, so at least the whole delay passes on
    // this clock before the server's ends.
    let asked = Instant::now();
    let status = boto3(
        r#"print(s3.restore_object(Bucket=sys.argv[1], Key=sys.argv[2], RestoreRequest={"Days": 1})["ResponseMetadata"]["HTTPStatusCode"])"#,
        &[&bucket, k],
    );
    assert_eq!(status, "202", "a first restore is accepted, not done");
    let delay = restore_delay();
    let (header, got) = (restore_header(&bucket, k), boto3(get, &[&bucket, k]));
    // Both answered within the delay if it has not passed yet.
    if asked.elapsed() < delay {
        assert_eq!(header, r#"ongoing-request="true""#);
        assert_eq!(got, "InvalidObjectState");
    } else {
        eprintln!("the restore delay ({delay:?}) passed before it could be seen");
    }
    let deadline = Instant::now() + delay + Duration::from_secs(60);
    let done = loop {
        let header = restore_header(&bucket, k);
        if header.starts_with(r#"ongoing-request="false""#) {
            break asked.elapsed();
        }
        assert_eq!(header, r#"ongoing-request="true""#);
        assert!(Instant::now() < deadline, "restore never finished");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(done >= delay, "restored after {done:?}, before {delay:?}");
    let read =
        r#"print(s3.get_object(Bucket=sys.argv[1], Key=sys.argv[2])["Body"].read().decode())"#;
    assert_eq!(boto3(read, &[&bucket, k]), "frozen");
    assert_eq!(restore_counts().get(&format!("{bucket}/{key}")), Some(&1));

    let (bucket, prefix) = bucket_and_prefix(&lock);
    let key = format!("{prefix}/kept");
    let k = key.as_str();
    let version = boto3(
        r#"
import datetime
until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
r = s3.put_object(Bucket=sys.argv[1], Key=sys.argv[2], Body=b"kept",
                  ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
print(r["VersionId"])"#,
        &[&bucket, k],
    );
    let head = s3tool(["head", &moto_endpoint(), &bucket, k]);
    assert_eq!(head["retention_mode"], "COMPLIANCE", "{head:#}");
    assert_eq!(head["version_id"], version.as_str(), "{head:#}");
    let delete = r#"print(code_of(lambda: s3.delete_object(Bucket=sys.argv[1], Key=sys.argv[2], VersionId=sys.argv[3])))"#;
    assert_eq!(boto3(delete, &[&bucket, k, &version]), "AccessDenied");
    let attack = s3tool(["attack", &moto_endpoint(), &bucket, &prefix]);
    assert_eq!(attack["deleted_versions"], 0, "{attack:#}");
    assert_eq!(attack["refused_versions"], 1, "{attack:#}");
    assert_eq!(attack["delete_markers_created"], 1, "{attack:#}");
    let versions = s3tool(["versions", &moto_endpoint(), &bucket, &prefix]);
    let kept: Vec<_> = versions
        .as_array()
        .expect("a list")
        .iter()
        .filter(|v| v["is_delete_marker"] == false)
        .map(|v| v["version_id"].as_str().expect("a version id"))
        .collect();
    assert_eq!(kept, [version.as_str()], "{versions:#}");
}
