//! cairn deployed once per test process, from deploy/ as shipped, and
//! repositories on the test's S3 server (Garage on 127.0.0.1, reached by
//! pods through the address `scripts/node.sh --forward` opens on the
//! node's bridge).
//!
//! Tests run in parallel threads of one process: the first to ask applies
//! deploy/ and waits until it is Ready; the others wait for it and share
//! it. Nothing tears it down under a running test: it goes with the node
//! (`scripts/node.sh stop`, `scripts/kube.sh stop`).

use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_kube::crd::{BackupRepository, BackupRepositorySpec, SecretKeyRef, SecretRef};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::{OnceCell, RwLock};

use crate::common::{MINUTE, Node, rand_hex, var, wait_until};

/// Where cairn is installed (deploy/base/kustomization.yaml); deploy/ makes
/// it the controller's and the agent's administrator namespace.
pub(crate) const CAIRN_NS: &str = "cairn-system";

/// The repositories' password.
pub(crate) const PASSWORD: &str = "node-tier-password";

/// What the shared installation provides.
pub(crate) struct Deployed {
    /// Time from `kubectl apply -k` to a Ready agent and controller.
    pub(crate) ready_after: Duration,
    /// A repository in the administrator namespace that every namespace
    /// may use (`allowedNamespaces: ["*"]`).
    pub(crate) admin_repo: String,
}

static DEPLOYED: OnceCell<Deployed> = OnceCell::const_new();

/// Tests that use the agent hold this for reading; the test that deletes
/// the agent's pod holds it for writing, so no other job is interrupted.
pub(crate) static AGENT: RwLock<()> = RwLock::const_new(());

/// deploy/ applied and Ready, with an administrator repository on S3.
pub(crate) async fn deployed(node: &Node) -> &'static Deployed {
    DEPLOYED
        .get_or_init(|| async {
            let ready_after = apply(node, &[]).await;
            let admin_repo = format!("node-{}", rand_hex());
            create_repository(&node.client, CAIRN_NS, &admin_repo, &["*"], None).await;
            Deployed {
                ready_after,
                admin_repo,
            }
        })
        .await
}

/// `to` relative to `from` (both absolute): Kustomize takes only relative
/// paths to other kustomizations.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path: PathBuf =
        std::iter::repeat_n(Component::ParentDir, from.len() - common).collect();
    path.extend(&to[common..]);
    path
}

pub(crate) fn kubectl(args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", var("CAIRN_TEST_NODE_KUBECONFIG"))
        .output()
        .expect("kubectl (needed by the node tests)");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The overlay a user of a cluster without registry access writes: cairn's
/// image, and a helper-pod image the nodes have (deploy/ names the
/// upstream pause image, which cannot be pulled here); with `components`
/// of deploy/ (e.g. `block-volumes`).
fn overlay(node: &Node, components: &[&str]) -> tempfile::TempDir {
    let deploy = cairn_testkit::workspace_root()
        .join("deploy")
        .canonicalize()
        .expect("deploy/");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().canonicalize().expect("overlay");
    let (name, tag) = node.image.rsplit_once(':').expect("image name:tag");
    let deploy = relative(&dir, &deploy);
    let components: String = components
        .iter()
        .map(|c| format!("  - {}/{c}\n", deploy.display()))
        .collect();
    let components = if components.is_empty() {
        components
    } else {
        format!("components:\n{components}")
    };
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources:\n  - {}\n\
             images:\n  - name: registry.example.invalid/cairn\n    newName: {name}\n    newTag: {tag}\n\
             patches:\n  - target: {{kind: Deployment, name: cairn-controller}}\n    patch: |-\n\
             \x20     - op: add\n        path: /spec/template/spec/containers/0/args/-\n\
             \x20       value: --helper-image={}\n{components}",
            deploy.display(),
            node.busybox,
        ),
    )
    .expect("write overlay");
    tmp
}

/// `kubectl apply -k` of the overlay (with `components` of deploy/); waits
/// until the agent and the controller of this configuration are Ready and
/// returns how long that took.
pub(crate) async fn apply(node: &Node, components: &[&str]) -> Duration {
    let tmp = overlay(node, components);
    let overlay = tmp.path();
    let rendered = kubectl(&["kustomize", &overlay.to_string_lossy()]);
    assert!(
        rendered.contains(&format!("image: {}", node.image)),
        "the overlay sets the image: {rendered}"
    );
    let start = Instant::now();
    kubectl(&["apply", "-k", &overlay.to_string_lossy()]);
    let agents: Api<DaemonSet> = Api::namespaced(node.client.clone(), CAIRN_NS);
    let controllers: Api<Deployment> = Api::namespaced(node.client.clone(), CAIRN_NS);
    wait_until(
        "a Ready cairn-agent and cairn-controller",
        3 * MINUTE,
        || {
            let (agents, controllers) = (agents.clone(), controllers.clone());
            async move {
                let agent = agents.get("cairn-agent").await.ok()?;
                let controller = controllers.get("cairn-controller").await.ok()?;
                // The status of this generation, not the one before.
                let agent_st = agent.status.filter(|s| {
                    s.observed_generation == agent.metadata.generation
                        && s.number_ready == 1
                        && s.updated_number_scheduled == Some(1)
                        && s.number_unavailable.unwrap_or(0) == 0
                });
                let controller_st = controller.status.filter(|s| {
                    s.observed_generation == controller.metadata.generation
                        && s.ready_replicas == Some(1)
                        && s.updated_replicas == Some(1)
                        && s.replicas == Some(1)
                });
                (agent_st.is_some() && controller_st.is_some()).then_some(())
            }
        },
    )
    .await;
    start.elapsed()
}

/// The test S3 server's URL and credentials (scripts/garage.sh's env),
/// with a prefix of its own; `for_pods` gives the endpoint pods reach.
pub(crate) fn s3_url(prefix: &str, for_pods: bool) -> String {
    let url = var("CAIRN_TEST_S3_URL");
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut url = format!("{}/{prefix}?{query}", base.trim_end_matches('/'));
    if for_pods {
        let port = url
            .split("endpoint=http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .unwrap_or_else(|| panic!("CAIRN_TEST_S3_URL has no endpoint on 127.0.0.1: {url}"))
            .to_owned();
        let forwarded = var("CAIRN_TEST_NODE_FORWARDED");
        assert!(
            forwarded.split_whitespace().any(|p| p == port),
            "pods reach S3 on port {port} only if the node forwards it: \
             scripts/node.sh start DIR CAIRN.tar --forward {port}"
        );
        let host = var("CAIRN_TEST_NODE_HOST_IP");
        url = url.replace(
            &format!("http://127.0.0.1:{port}"),
            &format!("http://{host}:{port}"),
        );
    }
    url
}

/// A BackupRepository `ns/name` on S3 under the prefix `name`, created
/// by the controller (`initialize`), with its Secrets; waits until Ready.
pub(crate) async fn create_repository(
    client: &Client,
    ns: &str,
    name: &str,
    allowed: &[&str],
    limit_upload_kib: Option<u64>,
) {
    let creds: serde_json::Map<String, serde_json::Value> =
        ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]
            .iter()
            .map(|k| (k.to_string(), json!(var(k))))
            .collect();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for (secret, data) in [
        (format!("{name}-s3"), json!(creds)),
        (format!("{name}-password"), json!({"password": PASSWORD})),
    ] {
        let s: Secret =
            serde_json::from_value(json!({"metadata": {"name": secret}, "stringData": data}))
                .expect("secret");
        secrets
            .create(&PostParams::default(), &s)
            .await
            .unwrap_or_else(|e| panic!("creating secret {ns}/{secret}: {e}"));
    }
    let repo = BackupRepository::new(
        name,
        BackupRepositorySpec {
            url: s3_url(name, true),
            password_secret_ref: SecretKeyRef {
                name: format!("{name}-password"),
                key: None,
            },
            credentials_secret_ref: Some(SecretRef {
                name: format!("{name}-s3"),
                ..Default::default()
            }),
            allowed_namespaces: allowed.iter().map(|s| s.to_string()).collect(),
            initialize: true,
            limit_upload_kib,
            ..Default::default()
        },
    );
    let repos: Api<BackupRepository> = Api::namespaced(client.clone(), ns);
    repos
        .create(&PostParams::default(), &repo)
        .await
        .unwrap_or_else(|e| panic!("creating repository {ns}/{name}: {e}"));
    let status = wait_until("the repository to be checked", 2 * MINUTE, || {
        let repos = repos.clone();
        async move {
            let r = repos.get(name).await.ok()?;
            r.status.filter(|s| s.phase.is_some())
        }
    })
    .await;
    assert_eq!(
        status.phase.as_deref(),
        Some("Ready"),
        "repository {ns}/{name} (created from a pod through the node's bridge): {:?}",
        status.message
    );
}

/// How many objects the repository `prefix` holds in `folder` (`data`,
/// `index`, ...), and their bytes (read from this host).
pub(crate) async fn objects(prefix: &str, folder: &str) -> (usize, u64) {
    let store = cairn::Store::open(&s3_url(prefix, false), cairn::Create::Never).expect("store");
    let list = store
        .list(folder)
        .await
        .unwrap_or_else(|e| panic!("listing {folder}/ of {prefix}: {e}"));
    (list.len(), list.iter().map(|p| p.size).sum())
}

/// The bytes of the packs that the index files of repository `prefix`
/// list: what a backup may deduplicate against.
pub(crate) async fn indexed_bytes(prefix: &str) -> u64 {
    let repo = open_repository(prefix).await;
    let sizes = repo.list_packs().await.expect("list packs");
    let files = repo.read_index_files().await.expect("index files");
    let packs: std::collections::BTreeSet<_> = files
        .iter()
        .flat_map(|(_, f)| f.packs.iter().map(|p| p.pack))
        .collect();
    packs.iter().filter_map(|p| sizes.get(p)).sum()
}

/// The repository `prefix` opened from this host (127.0.0.1).
pub(crate) async fn open_repository(prefix: &str) -> cairn::Repository {
    let store = cairn::Store::open(&s3_url(prefix, false), cairn::Create::Never).expect("store");
    cairn::Repository::open(store, PASSWORD.as_bytes(), Default::default())
        .await
        .expect("open repository")
}

/// Restores snapshot `id` (an id or prefix) of the repository at `prefix`
/// into a new temporary directory, owners left as they are.
pub(crate) async fn restore_snapshot(prefix: &str, id: &str) -> tempfile::TempDir {
    let repo = open_repository(prefix).await;
    let (_, snap) = repo.find_snapshot(id).await.expect("snapshot");
    let out = tempfile::tempdir().expect("tempdir");
    let mut opts = cairn::RestoreOptions::default();
    opts.target = out.path().to_path_buf();
    opts.owners = Some(false);
    cairn::restore(&repo, &snap, opts, Default::default())
        .await
        .expect("restore");
    out
}
