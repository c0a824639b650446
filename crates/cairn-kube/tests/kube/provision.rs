//! The test's stand-in for a provisioner: a PersistentVolume for a claim
//! cairn created, bound to it (the kit's `Scenario::provision`).

use crate::common::Cluster;

/// Creates a volume of `size` for the claim `claim` of the test's
/// namespace and binds the claim to it; returns the volume's name.
pub(crate) async fn provision(c: &mut Cluster, claim: &str, size: &str) -> String {
    let ns = c.ns.clone();
    provision_in(c, &ns, claim, size).await
}

/// Creates a volume of `size` (reclaim policy Delete, the claim's storage
/// class) for the claim `claim` of namespace `ns` and binds the claim to
/// it; returns the volume's name.
pub(crate) async fn provision_in(c: &mut Cluster, ns: &str, claim: &str, size: &str) -> String {
    c.provision(ns, claim, size).await
}
