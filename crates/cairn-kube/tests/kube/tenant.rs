//! The trust boundary seen by a namespace user: `alice` may do anything
//! with cairn.dev objects and Secrets in `shop` (the test's namespace), and
//! nothing else. She can neither back up nor restore a claim of `billing`,
//! nor make the controller or an agent read a file or call a URL of her
//! choosing through a credentials Secret or a repository URL.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use cairn_kube::crd::{
    BackupRepository, BackupRepositorySpec, JobStatus, Phase, PvcRef, RepositoryRef, SecretKeyRef,
    SecretRef, VolumeBackup, VolumeBackupSpec, VolumeRestore, VolumeRestoreSpec,
};
use cairn_kube::trust::Admins;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::common::{Cluster, PASSWORD, cluster, fill, tree};

/// A client that acts as user `alice`, impersonated with the admin's
/// credentials.
async fn as_alice(c: &Cluster) -> Client {
    let kc = kube::config::Kubeconfig::read_from(&c.kubeconfig).expect("kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kube config");
    config.auth_info.impersonate = Some("alice".into());
    Client::try_from(config).expect("client")
}

/// Lets `alice` do anything with cairn objects and Secrets in `ns`.
async fn grant_namespace(c: &Cluster, ns: &str) {
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "cairn-user"},
        "rules": [
            {"apiGroups": ["cairn.dev"], "resources": ["*"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]},
        ],
    }))
    .expect("role");
    Api::<Role>::namespaced(c.client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "alice"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cairn-user"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
    }))
    .expect("binding");
    Api::<RoleBinding>::namespaced(c.client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
}

/// A claim `db` in namespace `ns`, bound to a new PV and mounted by a
/// running pod on `node`, with files in its volume; returns the PV's name
/// the volume's directory and the pod's UID.
async fn other_namespace_claim(
    c: &Cluster,
    ns: &str,
    node: &str,
) -> (String, std::path::PathBuf, String) {
    let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns");
    Api::<Namespace>::all(c.client.clone())
        .create(&PostParams::default(), &obj)
        .await
        .expect("namespace");
    let pv_name = format!("{ns}-db");
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "csi": {"driver": "test.cairn.dev", "volumeHandle": pv_name},
            "claimRef": {"namespace": ns, "name": "db"},
        }
    }))
    .expect("pv");
    Api::<PersistentVolume>::all(c.client.clone())
        .create(&PostParams::default(), &pv)
        .await
        .expect("pv");
    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(c.client.clone(), ns);
    let pvc = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "",
            "volumeName": pv_name,
        }
    }))
    .expect("pvc");
    pvcs.create(&PostParams::default(), &pvc)
        .await
        .expect("pvc");
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(c.client.clone(), ns);
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "db-0"},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "db", "image": "db"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "db"}}],
        }
    }))
    .expect("pod");
    let uid = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod")
        .metadata
        .uid
        .expect("uid");
    pods.patch_status(
        "db-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running"}})),
    )
    .await
    .expect("running");
    let dir = c.volume_dir(&uid, &pv_name);
    fill(&dir, 4, 10_000);
    (pv_name, dir, uid)
}

fn repository(url: &str, credentials: Option<&str>) -> BackupRepositorySpec {
    BackupRepositorySpec {
        url: url.into(),
        password_secret_ref: SecretKeyRef {
            name: "pw".into(),
            key: None,
        },
        credentials_secret_ref: credentials.map(|n| SecretRef {
            name: n.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn job_status(s: Option<&JobStatus>) -> (Phase, String, bool) {
    let s = s.cloned().unwrap_or_default();
    (
        s.phase,
        s.message.unwrap_or_default(),
        s.start_time.is_some(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_namespace_user_reaches_only_their_own_claims_and_chooses_no_file_or_url() {
    let Some(mut c) = cluster("tenant").await else {
        return;
    };
    let shop = c.ns.clone();
    let billing = format!("{shop}-billing");
    // The administrators work elsewhere: `shop` is an ordinary namespace,
    // even though alice's repositories live in it.
    c.admins = Admins::new([format!("{shop}-admin")]);
    grant_namespace(&c, &shop).await;
    let alice = as_alice(&c).await;

    let node = c.create_node("n").await;
    let (billing_pv, billing_dir, _) = other_namespace_claim(&c, &billing, &node).await;
    let billing_before = tree(&billing_dir);
    let pv = c.create_claim("own").await;
    let uid = c.create_pod("app", &node, "own").await;
    fill(&c.volume_dir(&uid, &pv), 3, 10_000);

    // A credentials endpoint and a token file of the process's file system
    // that alice would like the agent or controller to use.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let creds_uri = format!("http://{}/creds", listener.local_addr().expect("addr"));
    let token = c.scratch.path().join("token");
    std::fs::write(&token, b"the process's own token").expect("token");
    let admin_repo = c.init_repository("admins-only").await;

    let secrets: Api<Secret> = Api::namespaced(alice.clone(), &shop);
    for (name, data) in [
        ("pw", json!({"password": PASSWORD})),
        (
            "evil",
            json!({
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": creds_uri,
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": token.display().to_string(),
            }),
        ),
    ] {
        let s: Secret =
            serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
                .expect("secret");
        secrets
            .create(&PostParams::default(), &s)
            .await
            .expect("alice creates a Secret in shop");
    }
    let repos: Api<BackupRepository> = Api::namespaced(alice.clone(), &shop);
    // Nothing listens on port 9 of the loopback: no storage is reachable.
    let s3 =
        "s3://bucket/shop?endpoint=http://127.0.0.1:9&region=r&path-style=true&allow-http=true";
    for (name, spec) in [
        ("mine", repository(s3, Some("evil"))),
        ("local", repository(&admin_repo.display().to_string(), None)),
    ] {
        repos
            .create(&PostParams::default(), &BackupRepository::new(name, spec))
            .await
            .expect("alice creates a BackupRepository in shop");
    }
    let mine = || RepositoryRef {
        name: "mine".into(),
        namespace: None,
    };
    let pvc = |ns: Option<&str>, name: &str| PvcRef {
        name: name.into(),
        namespace: ns.map(str::to_owned),
    };
    let vbs: Api<VolumeBackup> = Api::namespaced(alice.clone(), &shop);
    for (name, claim) in [
        ("steal", pvc(Some(&billing), "db")),
        ("exfil", pvc(None, "own")),
    ] {
        let vb = VolumeBackup::new(
            name,
            VolumeBackupSpec {
                pvc: claim,
                repository: mine(),
                ..Default::default()
            },
        );
        vbs.create(&PostParams::default(), &vb)
            .await
            .expect("alice creates a VolumeBackup in shop");
    }
    let vr = VolumeRestore::new(
        "clobber",
        VolumeRestoreSpec {
            repository: mine(),
            source_pvc: Some(pvc(None, "own")),
            target_pvc: pvc(Some(&billing), "db"),
            ..Default::default()
        },
    );
    Api::<VolumeRestore>::namespaced(alice.clone(), &shop)
        .create(&PostParams::default(), &vr)
        .await
        .expect("alice creates a VolumeRestore in shop");
    // Her own claim's snapshots, but as another cluster recorded them.
    let vr = VolumeRestore::new(
        "west",
        VolumeRestoreSpec {
            repository: mine(),
            source_pvc: Some(pvc(None, "own")),
            source_cluster: Some("west".into()),
            target_pvc: pvc(None, "own"),
            ..Default::default()
        },
    );
    Api::<VolumeRestore>::namespaced(alice.clone(), &shop)
        .create(&PostParams::default(), &vr)
        .await
        .expect("alice names another cluster");

    c.start_controller(std::sync::Arc::new(cairn_kube::clock::SystemClock));
    let agent = c.start_agent(&node);
    let long = Duration::from_secs(60);

    for name in ["steal", "clobber"] {
        let (phase, message, started) = if name == "steal" {
            let vb: VolumeBackup = c
                .wait_for(name, "a final phase", long, |v: &VolumeBackup| {
                    v.status.as_ref().is_some_and(|s| s.phase.is_terminal())
                })
                .await;
            job_status(vb.status.as_ref())
        } else {
            let vr: VolumeRestore = c
                .wait_for(name, "a final phase", long, |v: &VolumeRestore| {
                    v.status.as_ref().is_some_and(|s| s.phase.is_terminal())
                })
                .await;
            job_status(vr.status.as_ref())
        };
        assert_eq!(phase, Phase::Failed, "{name}: {message}");
        assert!(
            message.contains("not an administrator namespace") && message.contains(&billing),
            "{name}: {message}"
        );
        assert!(!started, "{name} was never started by an agent");
    }

    let exfil: VolumeBackup = c
        .wait_for("exfil", "a final phase", long, |v: &VolumeBackup| {
            v.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    let west: VolumeRestore = c
        .wait_for("west", "a final phase", long, |v: &VolumeRestore| {
            v.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    let (phase, message, started) = job_status(west.status.as_ref());
    assert_eq!(phase, Phase::Failed, "{message}");
    assert!(
        message.contains("another cluster's") && message.contains("administrator"),
        "{message}"
    );
    assert!(!started, "west was never started by an agent");

    let (phase, message, _) = job_status(exfil.status.as_ref());
    assert_eq!(phase, Phase::Failed, "{message}");
    assert!(
        message.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            && message.contains("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
            && message.contains("not allowed"),
        "{message}"
    );
    for (name, want) in [
        ("mine", "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        ("local", "not an administrator namespace"),
    ] {
        let r: BackupRepository = c
            .wait_for(name, "checked", long, |r: &BackupRepository| {
                r.status.as_ref().is_some_and(|s| s.phase.is_some())
            })
            .await;
        let st = r.status.expect("status");
        let message = st.message.unwrap_or_default();
        assert_eq!(st.phase.as_deref(), Some("Failed"), "{name}: {message}");
        assert!(message.contains(want), "{name}: {message}");
    }

    // Her own claim, but a status patched to name another volume of the
    // pod (say its service account token) and no real PersistentVolume: the
    // agent checks the pod itself before it builds a path.
    drop(agent);
    let token_dir = c
        .kubelet()
        .join("pods")
        .join(&uid)
        .join("volumes/kubernetes.io~projected/kube-api-access-x");
    std::fs::create_dir_all(&token_dir).expect("mkdir");
    std::fs::write(token_dir.join("token"), b"app's token").expect("token");
    let vb = VolumeBackup::new(
        "peek",
        VolumeBackupSpec {
            pvc: pvc(None, "own"),
            repository: mine(),
            ..Default::default()
        },
    );
    vbs.create(&PostParams::default(), &vb).await.expect("peek");
    c.wait_for("peek", "Assigned", long, |v: &VolumeBackup| {
        v.status
            .as_ref()
            .is_some_and(|s| s.phase == Phase::Assigned)
    })
    .await;
    let source = json!({"status": {"source": {
        "podNamespace": shop, "podName": "app", "podUID": uid,
        "volumeName": "kube-api-access-x", "persistentVolume": "none",
    }}});
    vbs.patch_status("peek", &PatchParams::default(), &Patch::Merge(&source))
        .await
        .expect("alice patches the status");
    let _agent = c.start_agent(&node);
    let peek: VolumeBackup = c
        .wait_for("peek", "a final phase", long, |v: &VolumeBackup| {
            v.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    let (phase, message, started) = job_status(peek.status.as_ref());
    assert_eq!(phase, Phase::Failed, "{message}");
    assert!(
        message.contains("refused the volume source") && message.contains("does not mount claim"),
        "{message}"
    );
    assert!(!started, "peek was never started");

    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, from)) => panic!("a cairn component called alice's URL (from {from})"),
        Err(e) => panic!("accept: {e}"),
    }
    assert_eq!(
        tree(&billing_dir),
        billing_before,
        "billing's volume changed"
    );
    let snapshots = c.open_repository(&admin_repo).await.snapshot_ids().await;
    assert_eq!(snapshots.expect("list").len(), 0, "nothing was written");

    let _ = Api::<Namespace>::all(c.client.clone())
        .delete(&billing, &DeleteParams::default())
        .await;
    let _ = Api::<PersistentVolume>::all(c.client.clone())
        .delete(&billing_pv, &DeleteParams::default())
        .await;
    c.cleanup().await;
}
