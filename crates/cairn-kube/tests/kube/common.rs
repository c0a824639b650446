//! The test cluster: the test kit's [`Scenario`] (a namespace of its own
//! per test, nodes, claims and pods, a kubelet-like directory) with cairn's
//! CRDs, repositories, and the controller and agents running in-process.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn::{InitOptions, Repository, Store};
use cairn_kube::agent;
use cairn_kube::controller::{self, assign::Limits};
use cairn_kube::crd::{BackupRepository, BackupRepositorySpec, SecretKeyRef};
use cairn_kube::http::Health;
use cairn_kube::metrics::Metrics;
use cairn_testkit::kube::Scenario;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::PostParams;
use tokio::task::JoinHandle;

pub(crate) use cairn_kube::controller::velero::VeleroConfig;
pub(crate) use cairn_testkit::kube::wait_until;

pub(crate) const PASSWORD: &str = "test password";

/// A running in-process agent.
pub(crate) struct AgentHandle {
    pub(crate) id: String,
    pub(crate) metrics: Arc<Metrics>,
    task: JoinHandle<()>,
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One test's slice of the cluster: the Kubernetes side is a
/// [`Scenario`] (its namespace, nodes, claims, pods, the kubelet-like
/// directory; reached through `Deref`), cairn's side is here:
/// repositories, the controller and agents running in-process, and who
/// administers them.
pub(crate) struct Cluster {
    scenario: Scenario,
    /// The scenario's client, namespace and kubeconfig, copied for brevity.
    pub(crate) client: Client,
    pub(crate) ns: String,
    pub(crate) kubeconfig: PathBuf,
    /// Repositories and caches.
    pub(crate) scratch: tempfile::TempDir,
    tasks: Vec<JoinHandle<()>>,
    /// The administrator namespaces the controller and agents get: this
    /// test's namespace unless a test says otherwise.
    pub(crate) admins: cairn_kube::trust::Admins,
}

impl Deref for Cluster {
    type Target = Scenario;

    fn deref(&self) -> &Scenario {
        &self.scenario
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Scenario {
        &mut self.scenario
    }
}

static CRDS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Connects to the test apiserver with cairn's CRDs installed, or returns
/// None (skip) when there is none and it is not required.
pub(crate) async fn cluster(test: &str) -> Option<Cluster> {
    let scenario = Scenario::connect(test).await?;
    if let Ok(level) = std::env::var("CAIRN_TEST_LOG") {
        cairn_kube::cli::init_logging(&level);
    }
    CRDS.get_or_init(|| install_crds(scenario.client().clone()))
        .await;
    let ns = scenario.namespace().to_owned();
    Some(Cluster {
        client: scenario.client().clone(),
        kubeconfig: scenario.kubeconfig().to_owned(),
        admins: cairn_kube::trust::Admins::new([ns.clone()]),
        ns,
        scenario,
        scratch: tempfile::tempdir().expect("tempdir"),
        tasks: Vec::new(),
    })
}

/// Installs the committed CRDs (as a user would) and waits until served.
async fn install_crds(client: Client) {
    let dir = cairn_testkit::workspace_root().join("deploy/base/crds");
    for (file, _) in cairn_kube::crd::all() {
        let text = std::fs::read_to_string(dir.join(file)).expect("committed CRD");
        apply_crd(&client, &text, file).await;
    }
}

/// Applies the CRD in `yaml` (from `file`) and waits until it is served.
pub(crate) async fn apply_crd(client: &Client, yaml: &str, file: &str) {
    let crd: CustomResourceDefinition = serde_saphyr::from_str(yaml).expect("CRD YAML");
    cairn_testkit::kube::apply_crd(client, &crd, file).await;
}

impl Cluster {
    /// A new local repository with small packs; returns its path.
    pub(crate) async fn init_repository(&self, name: &str) -> PathBuf {
        let path = self.scratch.path().join(name);
        let store =
            Store::open(path.to_str().expect("utf-8"), cairn::Create::IfMissing).expect("store");
        let mut opts = InitOptions::insecure_fast_for_tests();
        opts.data_pack_size = Some(512 * 1024);
        Repository::init(store, PASSWORD.as_bytes(), opts)
            .await
            .expect("init repository");
        path
    }

    pub(crate) async fn open_repository(&self, path: &Path) -> Repository {
        let store =
            Store::open(path.to_str().expect("utf-8"), cairn::Create::Never).expect("store");
        Repository::open(store, PASSWORD.as_bytes(), Default::default())
            .await
            .expect("open repository")
    }

    /// A BackupRepository `name` for the repository at `path`, with its
    /// password Secret.
    pub(crate) async fn create_repository_object(
        &self,
        name: &str,
        path: &Path,
        limit_upload_kib: Option<u64>,
    ) {
        let password = format!("{PASSWORD}\n");
        self.create_secret(
            &format!("{name}-password"),
            [("password", password.as_str())],
        )
        .await;
        let repo = BackupRepository::new(
            name,
            BackupRepositorySpec {
                url: path.display().to_string(),
                password_secret_ref: SecretKeyRef {
                    name: format!("{name}-password"),
                    key: None,
                },
                limit_upload_kib,
                ..Default::default()
            },
        );
        self.api::<BackupRepository>()
            .create(&PostParams::default(), &repo)
            .await
            .expect("repository object");
    }

    /// The controller, in-process, watching this test's namespace.
    pub(crate) fn start_controller(
        &mut self,
        clock: Arc<dyn cairn_kube::clock::Clock>,
    ) -> Arc<Metrics> {
        self.start_controller_with(clock, None)
    }

    /// The controller, in-process, watching this test's namespace, acting
    /// as Velero's data mover with `velero`.
    pub(crate) fn start_controller_with(
        &mut self,
        clock: Arc<dyn cairn_kube::clock::Clock>,
        velero: Option<VeleroConfig>,
    ) -> Arc<Metrics> {
        let (metrics, _) = Metrics::controller();
        let config = self.controller_config(clock, velero);
        let (client, m) = (self.client.clone(), metrics.clone());
        self.tasks.push(tokio::spawn(async move {
            if let Err(e) = controller::run(client, config, m, Arc::new(Health::default())).await {
                eprintln!("controller stopped: {e}");
            }
        }));
        metrics
    }

    /// The controller settings tests use.
    pub(crate) fn controller_config(
        &self,
        clock: Arc<dyn cairn_kube::clock::Clock>,
        velero: Option<VeleroConfig>,
    ) -> controller::Config {
        controller::Config {
            namespace: Some(self.ns.clone()),
            agent_namespace: self.ns.clone(),
            helper_image: "pause".into(),
            limits: Limits {
                lease_secs: 10,
                agent_timeout_secs: 60,
            },
            resync: Duration::from_millis(500),
            wait_interval: Duration::from_millis(300),
            clock,
            cache_dir: Some(self.scratch.path().join("controller-cache")),
            admins: self.admins.clone(),
            cluster: "test".into(),
            maintenance_image: Some("cairn.test/cairn:maintenance".into()),
            velero,
        }
    }

    /// The agent settings tests use for `node`.
    pub(crate) fn agent_config(&self, node: &str) -> agent::Config {
        agent::Config {
            node: node.to_owned(),
            kubelet_root: self.kubelet().to_owned(),
            restore_root: self.kubelet().to_owned(),
            namespace: self.ns.clone(),
            cluster: "test".into(),
            max_concurrent: 2,
            progress_interval: Duration::from_millis(200),
            lease_interval: Duration::from_millis(500),
            volume_wait: Duration::from_secs(30),
            max_attempts: 3,
            cache_dir: Some(self.scratch.path().join(format!("cache-{node}"))),
            index_table_limit: None,
            agent_id: agent::new_agent_id(node),
            clock: Arc::new(cairn_kube::clock::SystemClock),
            admins: self.admins.clone(),
        }
    }

    /// An agent for `node`, in-process.
    pub(crate) fn start_agent(&self, node: &str) -> AgentHandle {
        self.start_agent_with(self.agent_config(node))
    }

    /// An agent with these settings, in-process.
    pub(crate) fn start_agent_with(&self, config: agent::Config) -> AgentHandle {
        let id = config.agent_id.clone();
        let (metrics, _) = Metrics::agent();
        let (client, m) = (self.client.clone(), metrics.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = agent::run(client, config, m, Arc::new(Health::default())).await {
                eprintln!("agent stopped: {e}");
            }
        });
        AgentHandle { id, metrics, task }
    }

    /// Stops what the test started and removes its objects.
    pub(crate) async fn cleanup(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        // Finalizers would keep the namespace alive once nothing runs.
        self.strip_finalizers::<cairn_kube::crd::VolumeBackup>()
            .await;
        self.strip_finalizers::<cairn_kube::crd::VolumeRestore>()
            .await;
        self.scenario.cleanup().await;
    }
}

/// `len` bytes of incompressible, reproducible data.
pub(crate) use cairn_testkit::noise;

/// Fills `dir` with a small tree: nested directories, `files` files of
/// `size` bytes, a symlink and an empty file (the kit's sample tree).
pub(crate) fn fill(dir: &Path, files: usize, size: usize) {
    let mut t = cairn_testkit::TreeBuilder::new(dir);
    t.sample(files, size);
    t.finish();
}

/// Every entry under `dir`: relative path → kind, mode, size, content
/// hash, symlink target.
pub(crate) fn tree(dir: &Path) -> BTreeMap<PathBuf, cairn_testkit::Entry> {
    cairn_testkit::tree_digest(dir)
}

/// The test S3 server's URL (scripts/garage.sh), or None (skip) when there
/// is none and none is required.
pub(crate) fn s3_base(test: &str) -> Option<String> {
    let Ok(url) = std::env::var("CAIRN_TEST_S3_URL") else {
        assert!(
            std::env::var("CAIRN_REQUIRE_S3").map_or(true, |v| v != "1"),
            "CAIRN_REQUIRE_S3=1 but CAIRN_TEST_S3_URL is not set"
        );
        eprintln!("skipping {test}: no CAIRN_TEST_S3_URL (see scripts/garage.sh)");
        return None;
    };
    Some(url)
}

/// `base` with a prefix of its own (`prefix`) in the shared test bucket.
pub(crate) fn s3_prefix(base: &str, prefix: &str) -> String {
    let (head, query) = base.split_once('?').unwrap_or((base, ""));
    format!("{}/{prefix}?{query}", head.trim_end_matches('/'))
}

/// The `cairn` CLI binary of this workspace, built now (a no-op when
/// `cargo test` built it already), so a test never runs a stale one.
pub(crate) fn cli() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let ok = std::process::Command::new(cargo)
                .args([
                    "build",
                    "-p",
                    "cairn-cli",
                    "--features",
                    "testing",
                    "--bin",
                    "cairn",
                ])
                .status()
                .expect("cargo build")
                .success();
            assert!(ok, "building the cairn CLI failed");
            let exe = std::env::current_exe().expect("test exe");
            let dir = exe.parent().and_then(Path::parent).expect("target dir");
            dir.join("cairn")
        })
        .clone()
}
