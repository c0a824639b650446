//! A BackupStorageLocation on an S3 server whose certificate a private
//! authority signed (`objectStorage.caCert`, as `velero install --cacert`
//! sets it): the repository cairn derives trusts that authority, and a
//! DataUpload through it completes; the snapshot is then read through the
//! same TLS front with the same CA.

use base64::Engine as _;
use cairn::{Repository, Store, StoreOptions};
use cairn_kube::crd::BackupRepository;
use cairn_testkit::tls::TlsFront;
use serde_json::json;

use crate::common::{PASSWORD, fill};
use crate::velero::{setup, start};
use crate::velero_cluster::{source_claim, upload};
use crate::velero_fakes::{LONG, create, create_backup, velero};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_location_behind_a_private_ca_is_reached_with_its_ca_cert() {
    let Some((mut c, s3)) = setup("velero-tls").await else {
        return;
    };
    let front = TlsFront::start(s3.endpoint.trim_start_matches("http://"));
    let prefix = s3.location_prefix(&format!("{}-tls", c.ns));
    let ca = base64::engine::general_purpose::STANDARD.encode(front.ca_pem());
    let bsl = json!({
        "apiVersion": "velero.io/v1",
        "kind": "BackupStorageLocation",
        "metadata": {"name": "tls"},
        "spec": {
            "provider": "aws",
            "objectStorage": {"bucket": s3.bucket, "prefix": prefix, "caCert": ca},
            "config": {"region": s3.region, "s3Url": front.endpoint(), "s3ForcePathStyle": "true"},
            "credential": {"name": "cloud-credentials", "key": "cloud"},
            "accessMode": "ReadWrite",
        },
    });
    create(&velero(&c.client, &c.ns, "BackupStorageLocation"), bsl).await;
    let node = c.create_node("n").await;
    start(&mut c);
    let _agent = c.start_agent(&node);
    let src = c.create_namespace("src").await;
    let claim = source_claim(&mut c, &src, "db", &node, |d| fill(d, 3, 5_000)).await;
    let backup = create_backup(&c, "b1", &src, "tls", "cairn").await;
    let done = upload(&mut c, &backup, &claim, &node).await;
    let id = done.data["status"]["snapshotID"]
        .as_str()
        .expect("id")
        .to_owned();

    let repo: BackupRepository = c
        .wait_for("velero-tls", "checked", LONG, |r: &BackupRepository| {
            r.status.as_ref().is_some_and(|s| s.phase.is_some())
        })
        .await;
    let st = repo.status.clone().expect("status");
    assert_eq!(st.phase.as_deref(), Some("Ready"), "{:?}", st.message);
    assert_eq!(repo.spec.ca_cert.as_deref(), Some(ca.as_str()));
    assert!(
        repo.spec
            .url
            .contains(&format!("endpoint={}", front.endpoint()))
            && !repo.spec.url.contains("allow-http"),
        "{}",
        repo.spec.url
    );

    let url = format!(
        "s3://{}/{prefix}/cairn?endpoint={}&region={}&path-style=true",
        s3.bucket,
        front.endpoint(),
        s3.region
    );
    let mut opts = StoreOptions::default();
    opts.root_certificates = Some(front.ca_pem());
    let store = Store::open_with(&url, &opts).expect("store");
    let repository = Repository::open(store, PASSWORD.as_bytes(), Default::default())
        .await
        .expect("open through TLS");
    let ids: Vec<String> = repository
        .list_snapshots()
        .await
        .expect("list")
        .iter()
        .map(|(id, _)| id.to_hex())
        .collect();
    assert_eq!(ids, vec![id]);
    c.cleanup().await;
}
