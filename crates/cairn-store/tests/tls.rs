//! An S3 server whose certificate a private authority signed: Garage behind
//! a TLS front (`cairn_testkit::tls`, scripts/tls-proxy.py) with a
//! certificate for 127.0.0.1 from a CA made for the test (openssl). The
//! store reaches it only when given that CA
//! (`StoreOptions::root_certificates`), every request included (the extra
//! S3 requests of s3api.rs go through the same trust), and refuses a bundle
//! that holds no certificate.

use bytes::Bytes;
use cairn_store::{Store, StoreOptions};
use cairn_testkit::tls::TlsFront;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_only_when_given() {
    let Ok(base) = std::env::var("CAIRN_TEST_S3_URL") else {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_S3").is_none(),
            "CAIRN_REQUIRE_S3 is set but CAIRN_TEST_S3_URL is not"
        );
        eprintln!("SKIP: CAIRN_TEST_S3_URL is not set; run scripts/test.sh to test against Garage");
        return;
    };
    let front = TlsFront::before(&base);
    let url = front.url(&base).replacen(
        "s3://cairn-test",
        &format!("s3://cairn-test/tls-{}", std::process::id()),
        1,
    );

    let mut opts = StoreOptions::default();
    let untrusted = Store::open_with(&url, &opts).expect("store");
    let err = untrusted
        .put("a/one", Bytes::from_static(b"hello"))
        .await
        .expect_err("a certificate from an unknown authority");
    assert!(err.to_string().contains("certificate"), "{err}");

    opts.root_certificates = Some(front.ca_pem());
    let trusted = Store::open_with(&url, &opts).expect("store");
    trusted
        .put("a/one", Bytes::from_static(b"hello"))
        .await
        .expect("put through TLS");
    assert_eq!(&trusted.get("a/one").await.expect("get")[..], b"hello");
    // The requests object_store does not make (storage classes, retention)
    // use the same trust: a HEAD of the object's class goes through.
    trusted.status("a/one").await.expect("status through TLS");
    trusted.delete("a/one").await.expect("delete");

    opts.root_certificates = Some(b"not a certificate".to_vec());
    let err = Store::open_with(&url, &opts).expect_err("no certificate in the bundle");
    assert!(err.to_string().contains("CA bundle"), "{err}");
}
