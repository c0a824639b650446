//! A repository on an S3 server whose certificate a private authority
//! signed (Garage behind `cairn_testkit::tls::TlsFront`): the CLI reaches it
//! with `--ca-cert` (or `CAIRN_CA_CERT`), and without it fails naming the
//! certificate, as a disaster-recovery restore from such a location needs.

use cairn_testkit::tls::TlsFront;

use crate::common::compare::{assert_no_differences, tree_differences};
use crate::common::source::{TreeSpec, generate};
use crate::common::{CHEAP_KDF, Repo, Run};
use crate::s3::s3_location;

#[test]
fn the_cli_reaches_a_private_ca_server_only_with_its_ca_cert() {
    let Some(url) = s3_location("tls") else {
        return;
    };
    let front = TlsFront::before(&url);
    let url = front.url(&url);
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, front.ca_pem()).expect("write");
    let ca = ca.to_str().expect("utf-8");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::with_big_file(300_000));
    let repo = Repo::at(&url, "tls test password");
    let run = |args: &[&str]| {
        let mut c = repo.command(args.iter().copied());
        c.env("CAIRN_CACHE_DIR", tmp.path().join("cache"));
        Run::of(c)
    };

    let refused = run(&["init"].into_iter().chain(CHEAP_KDF).collect::<Vec<_>>());
    assert_ne!(refused.code, Some(0), "init without the CA succeeded");
    assert!(refused.stderr.contains("certificate"), "{}", refused.stderr);

    let with_ca = |args: &[&str]| {
        let all: Vec<&str> = ["--ca-cert", ca].iter().chain(args).copied().collect();
        run(&all).success()
    };
    with_ca(&["init"].into_iter().chain(CHEAP_KDF).collect::<Vec<_>>());
    with_ca(&["backup", src.to_str().expect("utf-8")]);
    let target = tmp.path().join("restored");
    with_ca(&[
        "restore",
        "latest",
        "--target",
        target.to_str().expect("utf-8"),
    ]);
    assert_no_differences(&tree_differences(&src, &target), "restore through TLS");
}
