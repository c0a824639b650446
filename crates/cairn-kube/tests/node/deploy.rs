//! deploy/ as shipped, on a real node: only the image is changed, through
//! a Kustomize overlay as a user would write it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use crate::common::{MINUTE, node, wait_until};

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

/// GET `path` from a pod's port over the pod network (the node's bridge);
/// returns the whole response.
fn http_get(ip: &str, port: u16, path: &str) -> String {
    let addr = format!("{ip}:{port}");
    let sock = addr.parse().expect("pod address");
    let mut conn = TcpStream::connect_timeout(&sock, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").expect("request");
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .unwrap_or_else(|e| panic!("reading {addr}{path}: {e}"));
    response
}

fn kubectl(args: &[&str], kubeconfig: &str) -> String {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl (needed by the node tests)");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl apply -k` of deploy/, with only the image overridden, brings up
/// the controller and one agent on the node, both Ready (their probes
/// answer over the pod network, and both reach the apiserver through
/// in-cluster configuration), their metrics answering on the pod network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_as_shipped_runs_a_ready_agent_and_controller() {
    let Some(node) = node("deploy").await else {
        return;
    };
    let kubeconfig = std::env::var("CAIRN_TEST_NODE_KUBECONFIG").expect("kubeconfig");
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .canonicalize()
        .expect("deploy/");
    let overlay = tempfile::tempdir().expect("tempdir");
    let overlay_path = overlay.path().canonicalize().expect("overlay");
    let (name, tag) = node.image.rsplit_once(':').expect("image name:tag");
    std::fs::write(
        overlay_path.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources:\n  - {}\n\
             images:\n  - name: registry.example.invalid/cairn\n    newName: {name}\n    newTag: {tag}\n",
            relative(&overlay_path, &deploy).display()
        ),
    )
    .expect("write overlay");
    let rendered = kubectl(&["kustomize", &overlay_path.to_string_lossy()], &kubeconfig);
    assert!(
        rendered.contains(&format!("image: {}", node.image)),
        "the overlay sets the image: {rendered}"
    );

    let start = Instant::now();
    kubectl(
        &["apply", "-k", &overlay_path.to_string_lossy()],
        &kubeconfig,
    );
    let agents: Api<DaemonSet> = Api::namespaced(node.client.clone(), "cairn-system");
    let controllers: Api<Deployment> = Api::namespaced(node.client.clone(), "cairn-system");
    wait_until(
        "a Ready cairn-agent and cairn-controller",
        3 * MINUTE,
        || {
            let (agents, controllers) = (agents.clone(), controllers.clone());
            async move {
                let agent = agents.get("cairn-agent").await.ok()?.status?;
                let controller = controllers.get("cairn-controller").await.ok()?.status?;
                (agent.number_ready == 1 && controller.ready_replicas == Some(1)).then_some(())
            }
        },
    )
    .await;
    eprintln!(
        "deploy/: agent and controller Ready {:.1} s after kubectl apply",
        start.elapsed().as_secs_f64()
    );

    // Their metrics answer on the pod network, where a scraper would ask.
    let pods: Api<Pod> = Api::namespaced(node.client.clone(), "cairn-system");
    for (component, port) in [("cairn-agent", 9090), ("cairn-controller", 8080)] {
        let selector = format!("app.kubernetes.io/name={component}");
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .expect("list pods");
        let ip = list
            .items
            .iter()
            .find_map(|p| p.status.as_ref()?.pod_ip.clone())
            .unwrap_or_else(|| panic!("{component} has a pod with an address"));
        let response = http_get(&ip, port, "/metrics");
        assert!(
            response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
            "{component} /metrics answers 200: {response:.200}"
        );
        assert!(
            response.contains("# TYPE"),
            "{component} /metrics holds metrics: {response:.400}"
        );
    }

    kubectl(
        &[
            "delete",
            "-k",
            &overlay_path.to_string_lossy(),
            "--wait=true",
        ],
        &kubeconfig,
    );
    node.cleanup().await;
}
