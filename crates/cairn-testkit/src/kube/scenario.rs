//! A test's slice of a test kube-apiserver: its namespace, the objects it
//! made, and a directory laid out like the kubelet's.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret,
};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::json;

use super::objects::{self, Reclaim};
use super::spec::Claim;
use super::wait_until;

/// One test's objects on the test apiserver (`scripts/kube.sh`): a
/// namespace of its own, the nodes, volumes and namespaces it declared
/// (all deleted by [`Scenario::cleanup`]), and a temporary directory laid
/// out like the kubelet's pods directory ([`Scenario::volume_dir`]).
///
/// Names are unique to the test: the namespace is derived from the test's
/// name and a random tail ([`objects::namespace_name`]); nodes and extra
/// namespaces are `<namespace>-<suffix>`, volumes `<claim's namespace>-<claim>`.
pub struct Scenario {
    client: Client,
    ns: String,
    kubeconfig: PathBuf,
    kubelet: tempfile::TempDir,
    nodes: Vec<String>,
    pvs: Vec<String>,
    namespaces: Vec<String>,
}

impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scenario")
            .field("ns", &self.ns)
            .field("kubeconfig", &self.kubeconfig)
            .field("kubelet", &self.kubelet.path())
            .field("nodes", &self.nodes)
            .field("pvs", &self.pvs)
            .field("namespaces", &self.namespaces)
            .finish_non_exhaustive()
    }
}

/// Whether an environment variable is `1`.
fn wanted(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// Random hex digits, for names no other run uses.
pub(crate) fn rand_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("urandom"),
        &mut b,
    )
    .expect("read");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Scenario {
    /// Connects to the test apiserver of `CAIRN_TEST_KUBECONFIG` and makes
    /// the namespace of `test`; None (the test skips, with a note) when
    /// that is unset, unless `CAIRN_REQUIRE_KUBE=1`, when it panics.
    pub async fn connect(test: &str) -> Option<Scenario> {
        let Some(path) = std::env::var_os("CAIRN_TEST_KUBECONFIG") else {
            assert!(
                !wanted("CAIRN_REQUIRE_KUBE"),
                "CAIRN_REQUIRE_KUBE=1 but CAIRN_TEST_KUBECONFIG is not set"
            );
            eprintln!(
                "skipping {test}: no test apiserver (set CAIRN_TEST_KUBECONFIG; see scripts/kube.sh)"
            );
            return None;
        };
        Some(Scenario::connect_to(Path::new(&path), test).await)
    }

    /// Connects with the kubeconfig at `kubeconfig` and makes the
    /// namespace of `test`.
    pub async fn connect_to(kubeconfig: &Path, test: &str) -> Scenario {
        let client = client(kubeconfig).await;
        let ns = objects::namespace_name(test, &rand_hex(8));
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &objects::namespace(&ns))
            .await
            .expect("create namespace");
        Scenario {
            client,
            ns,
            kubeconfig: kubeconfig.to_owned(),
            kubelet: tempfile::tempdir().expect("tempdir"),
            nodes: Vec::new(),
            pvs: Vec::new(),
            namespaces: Vec::new(),
        }
    }

    /// The client, for any namespace.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The test's namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The kubeconfig it connected with (for programs the test runs).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The kubelet-like directory (its `pods/` holds the volumes).
    pub fn kubelet(&self) -> &Path {
        self.kubelet.path()
    }

    /// The nodes made so far, in order.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Objects of kind `K` in the test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// The name of node `suffix` of this test.
    pub fn node_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.ns)
    }

    /// Makes node `suffix` (deleted at cleanup); returns its name.
    pub async fn create_node(&mut self, suffix: &str) -> String {
        let name = self.node_name(suffix);
        self.create_cluster_object(&objects::node(&name)).await;
        self.nodes.push(name.clone());
        name
    }

    /// Makes the namespace `<ns>-<suffix>` besides the test's own
    /// (deleted at cleanup); returns its name.
    pub async fn create_namespace(&mut self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.ns);
        self.create_cluster_object(&objects::namespace(&name)).await;
        self.namespaces.push(name.clone());
        name
    }

    /// Creates `obj`, an object of no namespace.
    async fn create_cluster_object<K>(&self, obj: &K)
    where
        K: Resource<DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + fmt::Debug,
    {
        Api::<K>::all(self.client.clone())
            .create(&PostParams::default(), obj)
            .await
            .unwrap_or_else(|e| panic!("create {} {:?}: {e}", K::kind(&()), obj.meta().name));
    }

    /// A volume and a claim `claim` of the test's namespace bound to it
    /// (labelled `backup: yes`); returns the volume's name.
    pub async fn create_claim(&mut self, claim: &str) -> String {
        let ns = self.ns.clone();
        self.create_claim_in(&ns, claim, "").await
    }

    /// A volume of storage class `class` and a claim `claim` of namespace
    /// `ns` bound to it (labelled `backup: yes`); returns the volume's name.
    pub async fn create_claim_in(&mut self, ns: &str, claim: &str, class: &str) -> String {
        self.create_bound_claim(ns, &Claim::new(claim).class(class))
            .await
    }

    /// A volume and the claim `claim` of namespace `ns` bound to it; returns
    /// the volume's name.
    pub async fn create_bound_claim(&mut self, ns: &str, claim: &Claim) -> String {
        let pv = objects::volume(ns, &claim.name, &claim.class, "1Gi", Reclaim::Retain);
        let pv_name = pv.metadata.name.clone().expect("pv name");
        Api::<PersistentVolume>::all(self.client.clone())
            .create(&PostParams::default(), &pv)
            .await
            .expect("create pv");
        self.pvs.push(pv_name.clone());
        let pvc = objects::claim(&claim.name, &pv_name, &claim.class, &claim.labels);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        api.create(&PostParams::default(), &pvc)
            .await
            .expect("create pvc");
        // The binder in kube-controller-manager would get there too; the
        // status is set directly so tests do not depend on its timing.
        set_phase(&api, &claim.name, "Bound").await;
        pv_name
    }

    /// Plays the provisioner for the existing claim `claim` of namespace
    /// `ns`: a volume of `size` in its class (deleted at cleanup), the
    /// claim bound to it. Returns the volume's name.
    pub async fn provision(&mut self, ns: &str, claim: &str, size: &str) -> String {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let class = pvcs
            .get(claim)
            .await
            .expect("the claim")
            .spec
            .and_then(|s| s.storage_class_name)
            .unwrap_or_default();
        let pv = objects::volume(ns, claim, &class, size, Reclaim::Delete);
        let pv_name = pv.metadata.name.clone().expect("pv name");
        Api::<PersistentVolume>::all(self.client.clone())
            .create(&PostParams::default(), &pv)
            .await
            .expect("create pv");
        self.pvs.push(pv_name.clone());
        pvcs.patch(
            claim,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"volumeName": pv_name}})),
        )
        .await
        .expect("bind");
        set_phase(&pvcs, claim, "Bound").await;
        pv_name
    }

    /// A running pod `name` on `node` mounting `claim`; returns its uid.
    pub async fn create_pod(&self, name: &str, node: &str, claim: &str) -> String {
        self.create_pod_in(&self.ns, name, node, claim).await
    }

    /// A running pod `name` of namespace `ns` on `node` mounting `claim`;
    /// returns its uid.
    pub async fn create_pod_in(&self, ns: &str, name: &str, node: &str, claim: &str) -> String {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let created = api
            .create(&PostParams::default(), &objects::pod(name, node, claim))
            .await
            .expect("create pod");
        self.set_running_in(ns, name).await;
        created.metadata.uid.expect("uid")
    }

    /// A Secret `name` of the test's namespace holding `data`.
    pub async fn create_secret<'a>(
        &self,
        name: &str,
        data: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        self.api::<Secret>()
            .create(&PostParams::default(), &objects::secret(name, data))
            .await
            .expect("secret");
    }

    /// Places a helper pod (of any namespace) on the node its affinity
    /// names and marks it Running, as the scheduler and the kubelet would.
    pub async fn schedule_and_run(&self, pod: &Pod) {
        let name = pod.metadata.name.as_deref().expect("name");
        let ns = pod.metadata.namespace.as_deref().unwrap_or(&self.ns);
        let node = objects::affinity_node(pod).unwrap_or_else(|| {
            panic!(
                "pod {name} names no node: {:?}",
                pod.spec.as_ref().and_then(|s| s.affinity.as_ref())
            )
        });
        Api::<Pod>::namespaced(self.client.clone(), ns)
            .create_subresource::<_, serde_json::Value>(
                "binding",
                name,
                &PostParams::default(),
                &objects::binding(name, &node),
            )
            .await
            .expect("bind the pod");
        self.set_running_in(ns, name).await;
    }

    /// Marks pod `name` of namespace `ns` Running, as its kubelet would.
    pub async fn set_running_in(&self, ns: &str, name: &str) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        set_phase(&api, name, "Running").await;
    }

    /// The directory the kubelet would mount the CSI volume `pv` at for
    /// the pod `uid` (`pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount`
    /// under [`Scenario::kubelet`]), created.
    pub fn volume_dir(&self, uid: &str, pv: &str) -> PathBuf {
        let d = volume_dir(self.kubelet.path(), uid, pv);
        std::fs::create_dir_all(&d).expect("mkdir volume");
        d
    }

    /// Waits until object `name` of the test's namespace satisfies `cond`;
    /// returns it.
    pub async fn wait_for<K, F>(&self, name: &str, what: &str, timeout: Duration, cond: F) -> K
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + fmt::Debug,
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

    /// Removes the finalizers of every object of kind `K` in the test's
    /// namespace, so that once nothing runs to honour them they do not keep
    /// the namespace from going. Errors are ignored.
    pub async fn strip_finalizers<K>(&self)
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + fmt::Debug,
    {
        let api: Api<K> = self.api();
        let strip = json!({"metadata": {"finalizers": null}});
        let objects = api.list(&ListParams::default()).await.map(|l| l.items);
        for o in objects.unwrap_or_default() {
            let name = o.meta().name.clone().unwrap_or_default();
            let _ = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&strip))
                .await;
        }
    }

    /// Deletes the namespaces (the test's last), nodes and volumes it made.
    /// Errors are ignored: the objects may be gone already.
    pub async fn cleanup(self) {
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

/// Sets the status phase of object `name` (a pod Running, a claim Bound).
async fn set_phase<K>(api: &Api<K>, name: &str, phase: &str)
where
    K: Clone + serde::de::DeserializeOwned + fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": phase}})),
    )
    .await
    .unwrap_or_else(|e| panic!("set {name} {phase}: {e}"));
}

/// A client for the cluster of the kubeconfig at `path`.
pub async fn client(path: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(path).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kube config");
    Client::try_from(config).expect("client")
}

/// Where the kubelet rooted at `kubelet` mounts CSI volume `pv` for pod
/// `uid`.
pub fn volume_dir(kubelet: &Path, uid: &str, pv: &str) -> PathBuf {
    kubelet
        .join("pods")
        .join(uid)
        .join("volumes/kubernetes.io~csi")
        .join(pv)
        .join("mount")
}
