//! A repository on S3 (Garage) whose credentials come only from the
//! BackupRepository's Secret: the agent runs as a separate process without
//! any AWS_* variables; the controller creates the repository
//! (`initialize`) and reports it Ready.

use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_kube::crd::{
    BackupRepository, BackupRepositorySpec, Phase, PvcRef, RepositoryRef, SecretKeyRef, SecretRef,
    VolumeBackup, VolumeBackupSpec,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use serde_json::json;

use crate::common::{PASSWORD, cluster};

const AWS: [&str; 5] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_ENDPOINT",
    "AWS_ALLOW_HTTP",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_s3_repository_is_created_and_used_with_credentials_from_its_secret() {
    let Some(s3_url) = crate::common::s3_base("the S3 test") else {
        return;
    };
    let Some(mut c) = cluster("s3").await else {
        return;
    };
    let url = crate::common::s3_prefix(&s3_url, &c.ns);

    let creds: serde_json::Map<String, serde_json::Value> = AWS[..3]
        .iter()
        .filter_map(|k| Some((k.to_string(), json!(std::env::var(k).ok()?))))
        .collect();
    for (name, data) in [
        ("s3-creds", json!(creds)),
        ("s3-password", json!({"password": PASSWORD})),
    ] {
        let s: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .expect("secret");
        c.api::<Secret>()
            .create(&PostParams::default(), &s)
            .await
            .expect("secret");
    }
    let repo = BackupRepository::new(
        "s3",
        BackupRepositorySpec {
            url: url.clone(),
            password_secret_ref: SecretKeyRef {
                name: "s3-password".into(),
                key: None,
            },
            credentials_secret_ref: Some(SecretRef {
                name: "s3-creds".into(),
                ..Default::default()
            }),
            initialize: true,
            ..Default::default()
        },
    );
    c.api::<BackupRepository>()
        .create(&PostParams::default(), &repo)
        .await
        .expect("repository");
    c.start_controller(std::sync::Arc::new(cairn_kube::clock::SystemClock));
    let long = Duration::from_secs(120);
    let ready: BackupRepository = c
        .wait_for("s3", "checked", long, |r: &BackupRepository| {
            r.status.as_ref().is_some_and(|s| s.phase.is_some())
        })
        .await;
    let st = ready.status.expect("status");
    assert_eq!(st.phase.as_deref(), Some("Ready"), "{:?}", st.message);
    assert!(
        st.message.as_deref().is_some_and(|m| m.contains("created")),
        "{:?}",
        st.message
    );

    let node = c.create_node("n").await;
    let pv = c.create_claim("data").await;
    let uid = c.create_pod("app", &node, "data").await;
    crate::common::fill(&c.volume_dir(&uid, &pv), 6, 50_000);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn-agent"));
    cmd.args([
        "--node-name",
        &node,
        "--namespace",
        &c.ns,
        "--metrics-addr",
        "127.0.0.1:0",
        "--log",
        "warn",
    ])
    .arg("--kubelet-root")
    .arg(c.kubelet())
    .arg("--cache-dir")
    .arg(c.scratch.path().join("agent-cache"))
    .env("KUBECONFIG", &c.kubeconfig)
    .stdout(Stdio::null());
    for k in AWS {
        cmd.env_remove(k);
    }
    let mut agent = cmd.spawn().expect("start cairn-agent");

    let vb = VolumeBackup::new(
        "to-s3",
        VolumeBackupSpec {
            pvc: PvcRef {
                name: "data".into(),
                namespace: None,
            },
            repository: RepositoryRef {
                name: "s3".into(),
                namespace: None,
            },
            ..Default::default()
        },
    );
    c.api::<VolumeBackup>()
        .create(&PostParams::default(), &vb)
        .await
        .expect("create");
    let done: VolumeBackup = c
        .wait_for("to-s3", "a final phase", long, |v: &VolumeBackup| {
            v.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    agent.kill().expect("stop agent");
    agent.wait().expect("reap");
    let st = done.status.expect("status");
    assert_eq!(st.phase, Phase::Completed, "{:?}", st.message);

    // The snapshot is in the bucket (read here with the environment's credentials).
    let store = cairn::Store::open(&url, cairn::Create::Never).expect("store");
    let repo = cairn::Repository::open(store, PASSWORD.as_bytes(), Default::default())
        .await
        .expect("open");
    let ids: Vec<String> = repo
        .list_snapshots()
        .await
        .expect("list")
        .into_iter()
        .map(|(id, _)| id.to_hex())
        .collect();
    assert_eq!(ids, [st.snapshot_id.expect("snapshot id")]);
    c.cleanup().await;
}
