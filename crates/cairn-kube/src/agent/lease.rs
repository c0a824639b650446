//! The agent's heartbeat: a `coordination.k8s.io` Lease per node, renewed
//! every few seconds, which the controller reads to know which nodes have a
//! live agent. The Lease is owned by the Node, so it goes away with it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::names::{AGENT_LEASE_LABEL, agent_lease};

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// An owner reference to the Node, so the Lease goes when the node does.
pub async fn node_owner(client: &Client, node: &str) -> Option<OwnerReference> {
    let n = Api::<Node>::all(client.clone())
        .get_opt(node)
        .await
        .ok()??;
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.to_owned(),
        uid: n.metadata.uid?,
        ..Default::default()
    })
}

/// Renews the lease once (creating it the first time, owned by `owner`).
pub async fn renew(
    api: &Api<Lease>,
    node: &str,
    duration: Duration,
    owner: Option<OwnerReference>,
) -> kube::Result<()> {
    let name = agent_lease(node);
    let secs = duration.as_secs().max(1) as i32;
    let patch =
        json!({"spec": {"holderIdentity": node, "leaseDurationSeconds": secs, "renewTime": now()}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    owner_references: owner.map(|o| vec![o]),
                    labels: Some(BTreeMap::from([(
                        AGENT_LEASE_LABEL.to_owned(),
                        "agent".to_owned(),
                    )])),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(node.to_owned()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Renews the lease every `every` until the process ends.
pub async fn heartbeat(client: Client, namespace: String, node: String, every: Duration) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let owner = node_owner(&client, &node).await;
    loop {
        if let Err(e) = renew(&api, &node, every * 4, owner.clone()).await {
            tracing::warn!(error = %e, "cannot renew the agent lease");
        }
        tokio::time::sleep(every).await;
    }
}
