//! The test cluster: a namespace of its own per test, nodes, claims and
//! pods, a kubelet-like directory, repositories, and the controller and
//! agents running in-process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::{InitOptions, Repository, Store};
use cairn_kube::agent;
use cairn_kube::controller::{self, assign::Limits};
use cairn_kube::crd::{BackupRepository, BackupRepositorySpec, SecretKeyRef};
use cairn_kube::http::Health;
use cairn_kube::metrics::Metrics;
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::json;
use tokio::task::JoinHandle;

pub(crate) use cairn_kube::controller::velero::VeleroConfig;

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

/// One test's slice of the cluster.
pub(crate) struct Cluster {
    pub(crate) client: Client,
    pub(crate) ns: String,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) kubelet: tempfile::TempDir,
    pub(crate) scratch: tempfile::TempDir,
    pub(crate) nodes: Vec<String>,
    pub(crate) pvs: Vec<String>,
    /// Namespaces besides `ns` that the test created (deleted at cleanup).
    pub(crate) namespaces: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
    /// The administrator namespaces the controller and agents get: this
    /// test's namespace unless a test says otherwise.
    pub(crate) admins: cairn_kube::trust::Admins,
}

static CRDS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Connects to the test apiserver, or returns None (skip) when there is
/// none and it is not required.
pub(crate) async fn cluster(test: &str) -> Option<Cluster> {
    let Some(path) = std::env::var_os("CAIRN_TEST_KUBECONFIG") else {
        if std::env::var("CAIRN_REQUIRE_KUBE").is_ok_and(|v| v == "1") {
            panic!("CAIRN_REQUIRE_KUBE=1 but CAIRN_TEST_KUBECONFIG is not set");
        }
        eprintln!(
            "skipping {test}: no test apiserver (set CAIRN_TEST_KUBECONFIG; see scripts/kube.sh)"
        );
        return None;
    };
    if let Ok(level) = std::env::var("CAIRN_TEST_LOG") {
        cairn_kube::cli::init_logging(&level);
    }
    let kubeconfig = PathBuf::from(path);
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kube config");
    let client = Client::try_from(config).expect("client");
    CRDS.get_or_init(|| install_crds(client.clone())).await;
    let ns = format!("{}-{}", test.replace('_', "-"), &rand_hex()[..6]);
    let ns = ns
        .chars()
        .rev()
        .take(50)
        .collect::<String>()
        .chars()
        .rev()
        .collect::<String>();
    let ns = ns.trim_start_matches('-').to_owned();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns");
    namespaces
        .create(&PostParams::default(), &obj)
        .await
        .expect("create namespace");
    let admins = cairn_kube::trust::Admins::new([ns.clone()]);
    Some(Cluster {
        client,
        ns,
        kubeconfig,
        kubelet: tempfile::tempdir().expect("tempdir"),
        scratch: tempfile::tempdir().expect("tempdir"),
        nodes: Vec::new(),
        pvs: Vec::new(),
        namespaces: Vec::new(),
        tasks: Vec::new(),
        admins,
    })
}

fn rand_hex() -> String {
    let mut b = [0u8; 8];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("urandom"),
        &mut b,
    )
    .expect("read");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Installs the committed CRDs (as a user would) and waits until served.
async fn install_crds(client: Client) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/base/crds");
    for (file, _) in cairn_kube::crd::all() {
        let text = std::fs::read_to_string(dir.join(file)).expect("committed CRD");
        apply_crd(&client, &text, file).await;
    }
}

/// Applies the CRD in `yaml` (from `file`) and waits until it is served.
pub(crate) async fn apply_crd(client: &Client, yaml: &str, file: &str) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_saphyr::from_str(yaml).expect("CRD YAML");
    let name = crd.metadata.name.clone().expect("name");
    api.patch(
        &name,
        &PatchParams::apply("cairn-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap_or_else(|e| panic!("the apiserver refused CRD {file}: {e}"));
    wait_until("CRD established", Duration::from_secs(30), || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let c = api.get(&name).await.ok()?;
            let ok = c
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            ok.then_some(())
        }
    })
    .await;
}

/// Polls `f` every 100 ms until it yields Some, or panics after `timeout`.
pub(crate) async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Cluster {
    pub(crate) fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// A node name unique to this test.
    pub(crate) fn node_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.ns)
    }

    pub(crate) async fn create_node(&mut self, suffix: &str) -> String {
        let name = self.node_name(suffix);
        let node: Node = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}),
        )
        .expect("node");
        Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &node)
            .await
            .expect("create node");
        self.nodes.push(name.clone());
        name
    }

    /// A namespace `<ns>-<suffix>` besides the test's own, deleted at
    /// cleanup; returns its name.
    pub(crate) async fn create_namespace(&mut self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.ns);
        let obj: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &obj)
            .await
            .expect("create namespace");
        self.namespaces.push(name.clone());
        name
    }

    /// A PersistentVolume and a claim bound to it; returns the PV's name.
    pub(crate) async fn create_claim(&mut self, claim: &str) -> String {
        let ns = self.ns.clone();
        self.create_claim_in(&ns, claim, "").await
    }

    /// A PersistentVolume of storage class `class` and a claim of
    /// namespace `ns` bound to it; returns the PV's name.
    pub(crate) async fn create_claim_in(&mut self, ns: &str, claim: &str, class: &str) -> String {
        let pv_name = format!("{ns}-{claim}");
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": class,
                "csi": {"driver": "test.cairn.dev", "volumeHandle": pv_name},
                "claimRef": {"namespace": ns, "name": claim},
            }
        }))
        .expect("pv");
        Api::<PersistentVolume>::all(self.client.clone())
            .create(&PostParams::default(), &pv)
            .await
            .expect("create pv");
        self.pvs.push(pv_name.clone());
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": claim, "labels": {"backup": "yes"}},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": class,
                "volumeName": pv_name,
            }
        }))
        .expect("pvc");
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        api.create(&PostParams::default(), &pvc)
            .await
            .expect("create pvc");
        // The binder in kube-controller-manager would get there too; the
        // status is set directly so tests do not depend on its timing.
        api.patch_status(
            claim,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Bound"}})),
        )
        .await
        .expect("bind pvc");
        pv_name
    }

    /// A running pod on `node` mounting `claim`; returns its uid.
    pub(crate) async fn create_pod(&self, name: &str, node: &str, claim: &str) -> String {
        self.create_pod_in(&self.ns, name, node, claim).await
    }

    /// A running pod of namespace `ns` on `node` mounting `claim`; returns
    /// its uid.
    pub(crate) async fn create_pod_in(
        &self,
        ns: &str,
        name: &str,
        node: &str,
        claim: &str,
    ) -> String {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "app", "image": "app", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
            }
        }))
        .expect("pod");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let created = api
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
        self.set_running_in(ns, name).await;
        created.metadata.uid.expect("uid")
    }

    /// Places a helper pod (of any namespace) on the node its affinity
    /// names and marks it Running, as the scheduler and the kubelet would.
    pub(crate) async fn schedule_and_run(&self, pod: &Pod) {
        let name = pod.metadata.name.as_deref().expect("name");
        let ns = pod.metadata.namespace.as_deref().unwrap_or(&self.ns);
        let affinity = serde_json::to_value(pod.spec.as_ref().and_then(|s| s.affinity.as_ref()))
            .expect("json");
        let node = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchFields"][0]["values"][0]
            .as_str()
            .unwrap_or_else(|| panic!("pod {name} names no node: {affinity}"))
            .to_owned();
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        Api::<Pod>::namespaced(self.client.clone(), ns)
            .create_subresource::<_, serde_json::Value>(
                "binding",
                name,
                &PostParams::default(),
                &binding,
            )
            .await
            .expect("bind the pod");
        self.set_running_in(ns, name).await;
    }

    /// Marks a pod of namespace `ns` Running, as its kubelet would.
    pub(crate) async fn set_running_in(&self, ns: &str, name: &str) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running"}})),
        )
        .await
        .expect("pod running");
    }

    /// The directory the kubelet would mount the CSI volume `pv` at for
    /// the pod `uid` (created).
    pub(crate) fn volume_dir(&self, uid: &str, pv: &str) -> PathBuf {
        let d = self
            .kubelet
            .path()
            .join("pods")
            .join(uid)
            .join("volumes/kubernetes.io~csi")
            .join(pv)
            .join("mount");
        std::fs::create_dir_all(&d).expect("mkdir volume");
        d
    }

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
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-password")},
            "stringData": {"password": format!("{PASSWORD}\n")},
        }))
        .expect("secret");
        self.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
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
            kubelet_root: self.kubelet.path().to_owned(),
            restore_root: self.kubelet.path().to_owned(),
            namespace: self.ns.clone(),
            cluster: "test".into(),
            max_concurrent: 2,
            progress_interval: Duration::from_millis(200),
            lease_interval: Duration::from_millis(500),
            volume_wait: Duration::from_secs(30),
            max_attempts: 3,
            cache_dir: Some(self.scratch.path().join(format!("cache-{node}"))),
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

    /// Waits for an object of this namespace to satisfy `cond`.
    pub(crate) async fn wait_for<K, F>(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        cond: F,
    ) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        F: Fn(&K) -> bool,
    {
        let api: Api<K> = self.api();
        let cond = &cond;
        wait_until(&format!("{name}: {what}"), timeout, || {
            let api = api.clone();
            async move { api.get_opt(name).await.ok().flatten().filter(|o| cond(o)) }
        })
        .await
    }

    /// Stops what the test started and removes its objects.
    pub(crate) async fn cleanup(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        // Finalizers would keep the namespace alive once nothing runs.
        let strip = json!({"metadata": {"finalizers": null}});
        let vbs: Api<cairn_kube::crd::VolumeBackup> = self.api();
        for o in vbs
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let _ = vbs
                .patch(
                    &o.metadata.name.unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(&strip),
                )
                .await;
        }
        let vrs: Api<cairn_kube::crd::VolumeRestore> = self.api();
        for o in vrs
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let _ = vrs
                .patch(
                    &o.metadata.name.unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(&strip),
                )
                .await;
        }
        for ns in self.namespaces.iter().chain([&self.ns]) {
            let _ = Api::<Namespace>::all(self.client.clone())
                .delete(ns, &DeleteParams::default())
                .await;
        }
        for n in &self.nodes {
            let _ = Api::<Node>::all(self.client.clone())
                .delete(n, &DeleteParams::default())
                .await;
        }
        for pv in &self.pvs {
            let _ = Api::<PersistentVolume>::all(self.client.clone())
                .delete(pv, &DeleteParams::default())
                .await;
        }
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
