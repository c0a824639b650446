//! The agent's heartbeat: a `coordination.k8s.io` Lease per node, renewed
//! every few seconds, which the controller reads to know which nodes have a
//! live agent.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::names::{AGENT_LEASE_LABEL, agent_lease};

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Renews the lease once (creating it the first time).
pub async fn renew(api: &Api<Lease>, node: &str, duration: Duration) -> kube::Result<()> {
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
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    loop {
        if let Err(e) = renew(&api, &node, every * 4).await {
            tracing::warn!(error = %e, "cannot renew the agent lease");
        }
        tokio::time::sleep(every).await;
    }
}
