//! Kubernetes scenarios (feature `kube`): what a test of a controller
//! needs around it on a test kube-apiserver, and an in-memory API server
//! for the tier below.
//!
//! - [`Scenario`]: a test's own namespace on the apiserver of
//!   `CAIRN_TEST_KUBECONFIG` (`scripts/kube.sh`; the test skips without
//!   one unless `CAIRN_REQUIRE_KUBE=1`), the objects it declares — nodes,
//!   namespaces, claims bound to volumes, pods Running on a node, Secrets —
//!   and a directory laid out like the kubelet's, where
//!   [`Scenario::volume_dir`] is a pod's mount of a volume. There is no
//!   kubelet or scheduler: the scenario plays them
//!   ([`Scenario::schedule_and_run`], [`Scenario::provision`]).
//!   [`Scenario::cleanup`] deletes every node, volume and namespace it made.
//! - [`ScenarioSpec`]: those objects declared up front, applied once with
//!   [`Scenario::apply`]; [`objects`] builds each as the tests always have.
//! - [`apply_crd`]: a CustomResourceDefinition applied and served.
//! - [`wait_until`]: polls a condition instead of sleeping.
//! - [`mock::ApiServer`]: objects as JSON by path behind a real
//!   `kube::Client`, recording what was sent.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//!
//! use cairn_testkit::kube::{Claim, Scenario, ScenarioSpec};
//! use k8s_openapi::api::core::v1::PersistentVolumeClaim;
//!
//! let Some(mut scn) = Scenario::connect("backs_up_a_claim").await else {
//!     return; // no test apiserver: skipped
//! };
//! let made = scn
//!     .apply(
//!         &ScenarioSpec::new()
//!             .node("a")
//!             .claim("data")
//!             .pod_on("a", "data")
//!             .namespace("shop")
//!             .claim_with(Claim::new("db").in_namespace("shop").class("fast"))
//!             .secret("repo-password", &[("password", "secret")]),
//!     )
//!     .await;
//! // What the pod `app-data` sees of claim `data`, on the kubelet's side.
//! let dir = scn.volume_dir(made.pod("app-data"), made.volume("data"));
//! std::fs::write(dir.join("f"), b"contents").expect("write");
//! scn.wait_for::<PersistentVolumeClaim, _>("data", "bound", Duration::from_secs(10), |c| {
//!     c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
//! })
//! .await;
//! scn.cleanup().await;
//! # }
//! ```
//!
//! What a spec makes can be checked without a server:
//!
//! ```
//! use cairn_testkit::kube::ScenarioSpec;
//!
//! let spec = ScenarioSpec::new().node("a").claim("data").pod_on("a", "data");
//! let objects = spec.objects("backs-up-a-claim-1a2b3c");
//! let (ns, pod) = &objects[3];
//! assert_eq!(ns, "backs-up-a-claim-1a2b3c");
//! assert_eq!(pod["spec"]["nodeName"], "backs-up-a-claim-1a2b3c-a");
//! assert_eq!(objects[2].1["metadata"]["labels"]["backup"], "yes");
//! ```

mod crd;
pub mod mock;
pub mod objects;
mod scenario;
mod spec;
mod wait;

pub use crd::apply_crd;
pub use scenario::{Scenario, client, volume_dir};
pub use spec::{Applied, Claim, ScenarioSpec};
pub use wait::{POLL, poll_until, wait_until};

#[cfg(test)]
mod tests;
