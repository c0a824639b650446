//! deploy/ as shipped, on a real node: only the image is changed (and the
//! helper pods' image, which deploy/ names upstream), through a Kustomize
//! overlay as a user would write it (see fixture.rs).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use crate::common::node;
use crate::fixture::{CAIRN_NS, deployed};

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

/// `kubectl apply -k` of deploy/, with only the images overridden, brings up
/// the controller and one agent on the node, both Ready (their probes
/// answer over the pod network, and both reach the apiserver through
/// in-cluster configuration), their metrics answering on the pod network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_as_shipped_runs_a_ready_agent_and_controller() {
    let Some(node) = node("deploy").await else {
        return;
    };
    let deployed = deployed(&node).await;
    eprintln!(
        "deploy/: agent and controller Ready {:.1} s after kubectl apply",
        deployed.ready_after.as_secs_f64()
    );

    // Their metrics answer on the pod network, where a scraper would ask.
    let pods: Api<Pod> = Api::namespaced(node.client.clone(), CAIRN_NS);
    for (component, port) in [("cairn-agent", 9090), ("cairn-controller", 8080)] {
        let selector = format!("app.kubernetes.io/name={component}");
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .expect("list pods");
        let ip = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
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
    node.cleanup().await;
}
