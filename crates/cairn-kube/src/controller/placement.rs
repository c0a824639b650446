//! Where a job runs: the running pod that mounts a claim, or, for a claim
//! no pod mounts, a node that can mount it and has a live agent. Pure
//! functions of observed objects.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolume, Pod,
};

use crate::crd::VolumeSource;
use crate::names::HELPER_KIND_LABEL;

/// The pod's name for the volume that mounts `claim`, if it mounts it.
pub fn mounted_volume_name(pod: &Pod, claim: &str) -> Option<String> {
    pod.spec
        .as_ref()?
        .volumes
        .as_ref()?
        .iter()
        .find(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name == claim)
        })
        .map(|v| v.name.clone())
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

fn is_helper(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(HELPER_KIND_LABEL))
}

/// Where to reach `claim` (bound to `pv`): the running, not deleting pod
/// that mounts it, preferring nodes with a live agent, then by name.
/// Helper pods of other jobs are not used (they go away with their job).
pub fn running_pod(
    pods: &[Pod],
    claim: &str,
    pv: &str,
    live: &BTreeSet<String>,
) -> Option<(String, VolumeSource)> {
    let mut found: Vec<(bool, String, String, VolumeSource)> = pods
        .iter()
        .filter(|p| phase(p) == "Running" && p.metadata.deletion_timestamp.is_none())
        .filter(|p| !is_helper(p))
        .filter_map(|p| {
            let node = node_of(p)?.to_owned();
            let volume_name = mounted_volume_name(p, claim)?;
            let source = source_of(p, volume_name, pv, false)?;
            Some((!live.contains(&node), source.pod_name.clone(), node, source))
        })
        .collect();
    found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    found.into_iter().next().map(|(_, _, node, s)| (node, s))
}

/// A pod that mounts `claim` and is starting on a node (not yet running):
/// backing up beside it would race its start, so jobs wait for it.
pub fn starting_pod(pods: &[Pod], claim: &str) -> Option<String> {
    pods.iter()
        .filter(|p| phase(p) == "Pending" && p.metadata.deletion_timestamp.is_none())
        .filter(|p| !is_helper(p) && node_of(p).is_some())
        .find(|p| mounted_volume_name(p, claim).is_some())
        .and_then(|p| p.metadata.name.clone())
}

/// The volume source of `pod` for its volume `volume_name`.
pub fn source_of(pod: &Pod, volume_name: String, pv: &str, helper: bool) -> Option<VolumeSource> {
    Some(VolumeSource {
        pod_namespace: pod.metadata.namespace.clone()?,
        pod_name: pod.metadata.name.clone()?,
        pod_uid: pod.metadata.uid.clone()?,
        volume_name,
        persistent_volume: pv.to_owned(),
        helper_pod: helper,
    })
}

/// A node for a helper pod mounting `pv`: one the volume's node affinity
/// allows and whose agent is alive; the first by name, so the choice is
/// stable. `Err` says why there is none.
pub fn helper_node(
    pv: Option<&PersistentVolume>,
    nodes: &[Node],
    live: &BTreeSet<String>,
) -> Result<String, String> {
    let terms: Option<&Vec<NodeSelectorTerm>> = pv
        .and_then(|pv| pv.spec.as_ref())
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .map(|r| &r.node_selector_terms);
    let mut reachable: Vec<&str> = nodes
        .iter()
        .filter(|n| terms.is_none_or(|t| t.iter().any(|term| term_matches(term, n))))
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    reachable.sort_unstable();
    if let Some(n) = reachable.iter().find(|n| live.contains(**n)) {
        return Ok((*n).to_owned());
    }
    Err(match (terms.is_some(), reachable.is_empty()) {
        (true, true) => "no node matches the volume's node affinity".to_owned(),
        (true, false) => format!(
            "no cairn agent is running on the nodes the volume can be mounted on ({})",
            reachable.join(", ")
        ),
        (false, _) => "no node has a running cairn agent".to_owned(),
    })
}

/// Whether a node selector term (all its requirements) matches `node`.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let empty = Default::default();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.clone().unwrap_or_default();
    let exprs = term.match_expressions.iter().flatten();
    let fields = term.match_fields.iter().flatten();
    let has_any = exprs.clone().next().is_some() || fields.clone().next().is_some();
    has_any
        && exprs
            .into_iter()
            .all(|r| requirement(r, labels.get(&r.key)))
        && fields.into_iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(&name);
            requirement(r, value)
        })
}

fn requirement(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |v: &str| v.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| number(v)),
                values.first().and_then(|b| number(b)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimVolumeSource, PersistentVolumeSpec, PodSpec, PodStatus, Volume,
        VolumeNodeAffinity,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub(crate) fn pod(name: &str, node: &str, phase: &str, claim: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("apps".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                volumes: Some(vec![Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim.into(),
                        read_only: None,
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    fn node(name: &str, zone: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("zone".to_owned(), zone.to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn live(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_running_pod_that_mounts_the_claim_decides_the_node() {
        let pods = vec![
            pod("old", "node-a", "Succeeded", "db"),
            pod("other", "node-a", "Running", "logs"),
            pod("app", "node-b", "Running", "db"),
        ];
        let (node, src) =
            running_pod(&pods, "db", "pv-1", &live(&["node-a", "node-b"])).expect("found");
        assert_eq!(node, "node-b");
        assert_eq!(src.pod_uid, "uid-app");
        assert_eq!(src.volume_name, "data");
        assert_eq!(src.persistent_volume, "pv-1");
        assert!(!src.helper_pod);
        assert!(running_pod(&pods, "cache", "pv-2", &live(&[])).is_none());
    }

    #[test]
    fn pods_on_nodes_with_an_agent_are_preferred() {
        let pods = vec![
            pod("a", "node-a", "Running", "db"),
            pod("b", "node-b", "Running", "db"),
        ];
        let (node, _) = running_pod(&pods, "db", "pv", &live(&["node-b"])).expect("found");
        assert_eq!(node, "node-b");
        let (node, _) = running_pod(&pods, "db", "pv", &live(&[])).expect("found");
        assert_eq!(node, "node-a", "then by pod name");
    }

    #[test]
    fn helper_pods_of_other_jobs_and_deleting_pods_are_not_used() {
        let mut helper = pod("h", "node-a", "Running", "db");
        helper.metadata.labels = Some([(HELPER_KIND_LABEL.to_owned(), "backup".to_owned())].into());
        let mut going = pod("g", "node-a", "Running", "db");
        going.metadata.deletion_timestamp = Some(crate::crd::time_from_secs(1));
        assert!(running_pod(&[helper, going], "db", "pv", &live(&["node-a"])).is_none());
        assert_eq!(
            starting_pod(&[pod("s", "node-a", "Pending", "db")], "db").as_deref(),
            Some("s")
        );
    }

    fn pv_in_zone(zone: &str) -> PersistentVolume {
        PersistentVolume {
            spec: Some(PersistentVolumeSpec {
                node_affinity: Some(VolumeNodeAffinity {
                    required: Some(k8s_openapi::api::core::v1::NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: "zone".into(),
                                operator: "In".into(),
                                values: Some(vec![zone.into()]),
                            }]),
                            match_fields: None,
                        }],
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn helper_pods_go_where_the_volume_can_be_mounted_and_an_agent_runs() {
        let nodes = vec![node("n1", "z1"), node("n2", "z2"), node("n3", "z2")];
        let pv = pv_in_zone("z2");
        assert_eq!(
            helper_node(Some(&pv), &nodes, &live(&["n1", "n2", "n3"])),
            Ok("n2".into())
        );
        assert_eq!(
            helper_node(Some(&pv), &nodes, &live(&["n1", "n3"])),
            Ok("n3".into())
        );
        let err = helper_node(Some(&pv), &nodes, &live(&["n1"])).expect_err("no agent");
        assert!(err.contains("n2, n3"), "{err}");
        assert!(helper_node(Some(&pv_in_zone("z9")), &nodes, &live(&["n1"])).is_err());
        // Without affinity, any node with an agent.
        assert_eq!(helper_node(None, &nodes, &live(&["n3"])), Ok("n3".into()));
        assert!(helper_node(None, &nodes, &live(&[])).is_err());
    }

    #[test]
    fn node_selector_operators() {
        let n = node("n1", "z1");
        let term = |op: &str, key: &str, values: &[&str]| NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
            }]),
            match_fields: None,
        };
        assert!(term_matches(&term("In", "zone", &["z1", "z2"]), &n));
        assert!(!term_matches(&term("NotIn", "zone", &["z1"]), &n));
        assert!(term_matches(&term("Exists", "zone", &[]), &n));
        assert!(term_matches(&term("DoesNotExist", "rack", &[]), &n));
        let by_name = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec!["n1".into()]),
            }]),
        };
        assert!(term_matches(&by_name, &n));
        assert!(
            !term_matches(&NodeSelectorTerm::default(), &n),
            "an empty term matches nothing"
        );
    }
}
