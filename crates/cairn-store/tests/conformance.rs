//! One conformance suite for the storage seam, run against every backend:
//! memory, a local directory, and a real S3 server (Garage on loopback,
//! started by scripts/garage.sh; `CAIRN_TEST_S3_URL` points at it). The
//! checks live in `cairn_testkit::conformance`, one per property, so an
//! embedder runs the same ones against their own store. `run_all` ends
//! with reads through a fault layer (short, broken off, altered), so
//! every backend is also checked for never returning those as data.
//!
//! Without `CAIRN_TEST_S3_URL` the S3 run prints a SKIP line, unless
//! `CAIRN_REQUIRE_S3` is set (the test script sets it), when it fails.

use cairn_store::{Create, Store};
use cairn_testkit::conformance::{self, Traits};
use cairn_testkit::noise;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_conforms() {
    conformance::run_all(Store::memory(), Traits::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_directory_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().to_str().expect("utf8"), Create::Never).expect("open");
    conformance::run_all(store, Traits::default()).await;
}

/// The Garage URL with a prefix of its own, so tests do not see each other.
pub fn s3_url(prefix: &str) -> Option<String> {
    match std::env::var("CAIRN_TEST_S3_URL") {
        Ok(base) => {
            let (head, query) = base.split_once('?').unwrap_or((&base, ""));
            let unique = format!(
                "{prefix}-{}-{}",
                std::process::id(),
                noise(prefix.len() as u64 + 17, 4)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            Some(format!("{}/{unique}?{query}", head.trim_end_matches('/')))
        }
        Err(_) => {
            assert!(
                std::env::var_os("CAIRN_REQUIRE_S3").is_none(),
                "CAIRN_REQUIRE_S3 is set but CAIRN_TEST_S3_URL is not: start Garage with scripts/garage.sh"
            );
            eprintln!(
                "SKIP: CAIRN_TEST_S3_URL is not set; run scripts/test.sh to test against Garage"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_on_garage_conforms() {
    let Some(url) = s3_url("conformance") else {
        return;
    };
    let store = Store::open(&url, Create::Never).expect("open");
    // Garage ignores If-None-Match on PUT: create-only is not enforced there.
    let mut traits = Traits::default();
    traits.honours_create_only = false;
    conformance::run_all(store, traits).await;
}
