//! CustomResourceDefinitions installed as a user would.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use super::wait_until;

/// How long a CRD may take to be served.
const ESTABLISHED: std::time::Duration = std::time::Duration::from_secs(30);

/// Applies `crd` (server-side, as field manager `cairn-tests`, forced) and
/// waits until it is Established; `what` names it in a panic (say, its
/// file).
pub async fn apply_crd(client: &Client, crd: &CustomResourceDefinition, what: &str) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().expect("name");
    api.patch(
        &name,
        &PatchParams::apply("cairn-tests").force(),
        &Patch::Apply(crd),
    )
    .await
    .unwrap_or_else(|e| panic!("the apiserver refused CRD {what}: {e}"));
    wait_until("CRD established", ESTABLISHED, || {
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
