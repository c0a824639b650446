use super::*;

fn bsl(v: serde_json::Value) -> BslSpec {
    serde_json::from_value(v).expect("spec")
}

fn defaults() -> Defaults {
    Defaults {
        password: SecretKeyRef {
            name: "cairn-repo-credentials".into(),
            key: Some("repository-password".into()),
        },
        maintenance_schedule: Some("@daily".into()),
    }
}

#[test]
fn an_s3_compatible_location_maps_to_a_repository_under_its_prefix() {
    let l = location(
        &bsl(serde_json::json!({
            "provider": "velero.io/aws",
            "objectStorage": {"bucket": "backups", "prefix": "/cluster-a/"},
            "config": {"region": "garage", "s3Url": "http://127.0.0.1:3900/", "s3ForcePathStyle": "true", "profile": "velero"},
            "credential": {"name": "garage-creds", "key": "cloud"},
        })),
        &defaults(),
    )
    .expect("maps");
    assert_eq!(
        l.spec.url,
        "s3://backups/cluster-a/cairn?endpoint=http://127.0.0.1:3900&region=garage&allow-http=true&path-style=true"
    );
    assert!(cairn::layers::store::parse_location(&l.spec.url).is_ok());
    let creds = l.spec.credentials_secret_ref.expect("credentials");
    assert_eq!(
        (
            creds.name.as_str(),
            creds.key.as_deref(),
            creds.profile.as_deref()
        ),
        ("garage-creds", Some("cloud"), Some("velero"))
    );
    assert_eq!(l.spec.password_secret_ref.name, "cairn-repo-credentials");
    assert!(l.spec.initialize && !l.read_only);
    assert_eq!(l.spec.maintenance.expect("maintenance").schedule, "@daily");
}

#[test]
fn aws_without_an_endpoint_needs_a_region_and_velero_s_default_secret_applies() {
    let l = location(
        &bsl(serde_json::json!({
            "provider": "aws",
            "objectStorage": {"bucket": "b"},
            "config": {"region": "eu-west-1"},
        })),
        &defaults(),
    )
    .expect("maps");
    assert_eq!(l.spec.url, "s3://b/cairn?region=eu-west-1");
    let creds = l.spec.credentials_secret_ref.expect("credentials");
    assert_eq!(
        (creds.name.as_str(), creds.key.as_deref()),
        (DEFAULT_CREDENTIAL.0, Some(DEFAULT_CREDENTIAL.1))
    );
    let err = location(
        &bsl(serde_json::json!({"provider": "aws", "objectStorage": {"bucket": "b"}})),
        &defaults(),
    )
    .expect_err("no region");
    assert!(err.contains("config.region"), "{err}");
}

#[test]
fn a_read_only_location_is_never_initialized_or_maintained() {
    let l = location(
        &bsl(serde_json::json!({
            "provider": "aws",
            "objectStorage": {"bucket": "b", "prefix": "p"},
            "config": {"region": "r"},
            "accessMode": "ReadOnly",
        })),
        &defaults(),
    )
    .expect("maps");
    assert!(l.read_only);
    assert!(!l.spec.initialize);
    assert!(l.spec.maintenance.is_none());
}

#[test]
fn what_cairn_cannot_honour_is_refused_by_name() {
    for (spec, says) in [
        (
            serde_json::json!({"provider": "gcp", "objectStorage": {"bucket": "b"}}),
            "not S3",
        ),
        (
            serde_json::json!({"provider": "aws", "objectStorage": {"bucket": ""}, "config": {"region": "r"}}),
            "bucket",
        ),
        (
            serde_json::json!({"provider": "aws", "objectStorage": {"bucket": "b"}, "config": {"s3Url": "http://h:1/path"}}),
            "no path",
        ),
        (
            serde_json::json!({"provider": "aws", "objectStorage": {"bucket": "b"}, "config": {"s3Url": "ftp://h"}}),
            "scheme",
        ),
        (
            serde_json::json!({"provider": "aws", "objectStorage": {"bucket": "b"}, "config": {"s3Url": "h:9000"}}),
            "scheme",
        ),
        (
            serde_json::json!({"provider": "aws", "objectStorage": {"bucket": "b", "prefix": "a/../b"}, "config": {"region": "r"}}),
            "prefix",
        ),
        (
            serde_json::json!({"provider": "aws", "objectStorage": {"bucket": "b"}, "config": {"region": "r&endpoint=http://evil"}}),
            "region",
        ),
        (
            serde_json::json!({"provider": "aws", "objectStorage": {"bucket": "b", "caCertRef": {"name": "ca", "key": "ca.pem"}}, "config": {"region": "r"}}),
            "caCertRef",
        ),
        (
            serde_json::json!({"provider": "aws", "objectStorage": {"bucket": "b", "caCert": "not base64!"}, "config": {"region": "r"}}),
            "caCert",
        ),
        (
            serde_json::json!({"provider": "aws", "objectStorage": {"bucket": "b"}, "config": {"region": "r", "insecureSkipTLSVerify": "true"}}),
            "insecureSkipTLSVerify",
        ),
        (
            serde_json::json!({"provider": "aws", "objectStorage": {"bucket": "b"}, "config": {"region": "r", "s3ForcePathStyle": "yes"}}),
            "s3ForcePathStyle",
        ),
        (
            serde_json::json!({"provider": "aws", "objectStorage": {"bucket": "b"}, "config": {"region": "r"}, "accessMode": "WriteOnly"}),
            "accessMode",
        ),
    ] {
        let err = location(&bsl(spec.clone()), &defaults()).expect_err(says);
        assert!(err.contains(says), "{spec}: {err:?} should say {says:?}");
    }
}

#[test]
fn a_private_ca_of_the_location_is_trusted_by_its_repository() {
    let l = location(
        &bsl(serde_json::json!({
            "provider": "aws",
            "objectStorage": {"bucket": "b", "caCert": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"},
            "config": {"region": "r", "s3Url": "https://minio.backup.svc:9000"},
        })),
        &defaults(),
    )
    .expect("maps");
    assert_eq!(
        l.spec.ca_cert.as_deref(),
        Some("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t")
    );
    assert!(!l.spec.url.contains("allow-http"), "{}", l.spec.url);
}
