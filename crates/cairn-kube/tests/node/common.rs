//! The node under test: a namespace of its own per test, Pods and their
//! phases, and the node's own files.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use cairn_testkit::kube as kit;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

/// What `source DIR/node-env` (scripts/node.sh) provides.
pub(crate) struct Node {
    pub(crate) client: Client,
    /// The node's name, as registered by its kubelet.
    pub(crate) name: String,
    /// cairn's image, imported into the node's containerd.
    pub(crate) image: String,
    /// A busybox image, imported likewise (the pod sandboxes' image).
    pub(crate) busybox: String,
    /// This test's namespace.
    pub(crate) ns: String,
}

pub(crate) fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("CAIRN_TEST_NODE=1 but {name} is not set: source DIR/node-env (scripts/node.sh)")
    })
}

/// Connects to the node's control plane and makes the test's namespace, or
/// returns None (skip) when there is no node and none is required.
pub(crate) async fn node(test: &str) -> Option<Node> {
    let wanted = |v: &str| std::env::var(v).is_ok_and(|v| v == "1");
    if !wanted("CAIRN_TEST_NODE") {
        assert!(
            !wanted("CAIRN_REQUIRE_NODE"),
            "CAIRN_REQUIRE_NODE=1 but CAIRN_TEST_NODE is not 1 (see scripts/node.sh)"
        );
        eprintln!("skipping {test}: no test node (set CAIRN_TEST_NODE=1; see scripts/node.sh)");
        return None;
    }
    let kubeconfig = PathBuf::from(var("CAIRN_TEST_NODE_KUBECONFIG"));
    let client = kit::client(&kubeconfig).await;
    let ns = format!("{}-{}", test.replace('_', "-"), rand_hex());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &kit::objects::namespace(&ns))
        .await
        .expect("create namespace");
    // ServiceAccount admission refuses Pods until the namespace's default
    // account and its token exist (the controller manager's work).
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    wait_until("the default ServiceAccount's token", MINUTE, || {
        let accounts = accounts.clone();
        async move {
            let sa = accounts.get_opt("default").await.ok()??;
            sa.secrets.is_some_and(|s| !s.is_empty()).then_some(())
        }
    })
    .await;
    Some(Node {
        client,
        name: var("CAIRN_TEST_NODE_NAME"),
        image: var("CAIRN_TEST_NODE_IMAGE"),
        busybox: var("CAIRN_TEST_NODE_PAUSE_IMAGE"),
        ns,
    })
}

pub(crate) const MINUTE: Duration = Duration::from_secs(60);

/// Reasons a container waits that no retry mends here: nothing is ever
/// pulled, so a missing image stays missing.
const STUCK: &[&str] = &[
    "CreateContainerConfigError",
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
];

impl Node {
    pub(crate) fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates a Pod from a JSON spec and waits until `done` says its
    /// state is the one wanted; returns that state.
    pub(crate) async fn run_pod(
        &self,
        pod: serde_json::Value,
        what: &str,
        done: impl Fn(&Pod) -> bool,
    ) -> Pod {
        let pod: Pod = serde_json::from_value(pod).expect("pod");
        let name = pod.metadata.name.clone().expect("pod name");
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap_or_else(|e| panic!("creating pod {}/{name}: {e}", self.ns));
        let pods = self.pods();
        wait_until(what, 2 * MINUTE, || {
            let pods = pods.clone();
            let name = name.clone();
            let done = &done;
            async move {
                let pod = pods.get(&name).await.ok()?;
                let status = pod.status.as_ref();
                let phase = status.and_then(|s| s.phase.as_deref());
                assert_ne!(phase, Some("Failed"), "pod {name} failed: {status:?}");
                // Waiting for a reason no retry mends: fail now, not at the
                // timeout.
                for c in status
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .flatten()
                {
                    let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
                    if let Some(reason) = waiting.and_then(|w| w.reason.as_deref()) {
                        assert!(
                            !STUCK.contains(&reason),
                            "pod {name}: container {} waits: {reason}: {:?}",
                            c.name,
                            waiting.and_then(|w| w.message.as_deref())
                        );
                    }
                }
                done(&pod).then_some(pod)
            }
        })
        .await
    }

    /// Deletes the namespace (and with it what the test made in it).
    pub(crate) async fn cleanup(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces.delete(&self.ns, &DeleteParams::default()).await;
    }
}

/// The log a container wrote, as the kubelet keeps it on the node
/// (`kubectl logs` needs a node address, which the test node lacks).
pub(crate) fn container_log(pod: &Pod, container: &str) -> String {
    let meta = &pod.metadata;
    let dir = format!(
        "/var/log/pods/{}_{}_{}/{container}",
        meta.namespace.as_deref().expect("namespace"),
        meta.name.as_deref().expect("name"),
        meta.uid.as_deref().expect("uid"),
    );
    let path = format!("{dir}/0.log");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

pub(crate) fn rand_hex() -> String {
    let mut b = [0u8; 4];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("urandom"),
        &mut b,
    )
    .expect("read");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Polls `f` every 200 ms until it yields Some, or panics after `timeout`.
pub(crate) async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    kit::poll_until(what, timeout, Duration::from_millis(200), f).await
}
