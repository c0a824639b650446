//! A scenario declared up front and applied once: nodes, namespaces,
//! claims bound to volumes, pods using them, Secrets.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Scenario;
use super::objects::{self, Reclaim};

/// A claim to make, bound to a volume of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub(crate) name: String,
    /// The suffix of the scenario's namespace it is in; None: the test's.
    pub(crate) namespace: Option<String>,
    pub(crate) class: String,
    pub(crate) labels: BTreeMap<String, String>,
}

impl Claim {
    /// Claim `name` of the test's namespace, no storage class, labelled
    /// `backup: yes` (what the tests' selectors pick).
    pub fn new(name: &str) -> Claim {
        Claim {
            name: name.to_owned(),
            namespace: None,
            class: String::new(),
            labels: BTreeMap::from([("backup".to_owned(), "yes".to_owned())]),
        }
    }

    /// In the namespace `<ns>-<suffix>` (declared with
    /// [`ScenarioSpec::namespace`]) rather than the test's.
    pub fn in_namespace(mut self, suffix: &str) -> Claim {
        self.namespace = Some(suffix.to_owned());
        self
    }

    /// Of storage class `class` (the volume too).
    pub fn class(mut self, class: &str) -> Claim {
        self.class = class.to_owned();
        self
    }

    /// With label `key: value` besides the others.
    pub fn label(mut self, key: &str, value: &str) -> Claim {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Without any label (not even `backup: yes`).
    pub fn unlabelled(mut self) -> Claim {
        self.labels.clear();
        self
    }
}

#[derive(Clone, Debug)]
enum Step {
    Node(String),
    Namespace(String),
    Claim(Claim),
    Pod {
        name: String,
        node: String,
        claim: String,
    },
    Secret {
        name: String,
        data: Vec<(String, String)>,
    },
}

/// Objects to make, in order, with names relative to the test: nodes and
/// namespaces by suffix, pods by the claim they mount. Apply it with
/// [`Scenario::apply`]; [`ScenarioSpec::objects`] shows what it makes.
#[derive(Clone, Debug, Default)]
pub struct ScenarioSpec {
    steps: Vec<Step>,
}

impl ScenarioSpec {
    /// Nothing yet.
    pub fn new() -> ScenarioSpec {
        ScenarioSpec::default()
    }

    /// Node `<ns>-<suffix>`.
    pub fn node(mut self, suffix: &str) -> ScenarioSpec {
        self.steps.push(Step::Node(suffix.to_owned()));
        self
    }

    /// Namespace `<ns>-<suffix>` besides the test's.
    pub fn namespace(mut self, suffix: &str) -> ScenarioSpec {
        self.steps.push(Step::Namespace(suffix.to_owned()));
        self
    }

    /// Claim `name` of the test's namespace ([`Claim::new`]), bound.
    pub fn claim(self, name: &str) -> ScenarioSpec {
        self.claim_with(Claim::new(name))
    }

    /// `claim`, bound to a volume of its own.
    pub fn claim_with(mut self, claim: Claim) -> ScenarioSpec {
        self.steps.push(Step::Claim(claim));
        self
    }

    /// Pod `app-<claim>` on node `<ns>-<node>` mounting the claim `claim`
    /// (in that claim's namespace), Running.
    pub fn pod_on(self, node: &str, claim: &str) -> ScenarioSpec {
        self.pod(&format!("app-{claim}"), node, claim)
    }

    /// Pod `name` on node `<ns>-<node>` mounting the claim `claim` (in
    /// that claim's namespace), Running.
    pub fn pod(mut self, name: &str, node: &str, claim: &str) -> ScenarioSpec {
        self.steps.push(Step::Pod {
            name: name.to_owned(),
            node: node.to_owned(),
            claim: claim.to_owned(),
        });
        self
    }

    /// Secret `name` of the test's namespace holding `data`.
    pub fn secret(mut self, name: &str, data: &[(&str, &str)]) -> ScenarioSpec {
        let data = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.steps.push(Step::Secret {
            name: name.to_owned(),
            data,
        });
        self
    }

    /// The namespace of the claim `claim` declared so far (the test's
    /// `ns` when none is).
    fn claim_namespace(&self, ns: &str, claim: &str) -> String {
        let declared = self.steps.iter().find_map(|s| match s {
            Step::Claim(c) if c.name == claim => Some(c),
            _ => None,
        });
        match declared.and_then(|c| c.namespace.as_deref()) {
            Some(suffix) => format!("{ns}-{suffix}"),
            None => ns.to_owned(),
        }
    }

    /// What applying it in the test namespace `ns` makes, in order, as
    /// `(namespace, object)` (namespace empty for cluster-scoped objects).
    pub fn objects(&self, ns: &str) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for step in &self.steps {
            match step {
                Step::Node(s) => {
                    out.push((String::new(), json(&objects::node(&format!("{ns}-{s}")))))
                }
                Step::Namespace(s) => out.push((
                    String::new(),
                    json(&objects::namespace(&format!("{ns}-{s}"))),
                )),
                Step::Claim(c) => {
                    let in_ns = self.claim_namespace(ns, &c.name);
                    let pv = objects::volume(&in_ns, &c.name, &c.class, "1Gi", Reclaim::Retain);
                    let pv_name = objects::volume_name(&in_ns, &c.name);
                    out.push((String::new(), json(&pv)));
                    let pvc = objects::claim(&c.name, &pv_name, &c.class, &c.labels);
                    out.push((in_ns, json(&pvc)));
                }
                Step::Pod { name, node, claim } => {
                    let pod = objects::pod(name, &format!("{ns}-{node}"), claim);
                    out.push((self.claim_namespace(ns, claim), json(&pod)));
                }
                Step::Secret { name, data } => {
                    let s =
                        objects::secret(name, data.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    out.push((ns.to_owned(), json(&s)));
                }
            }
        }
        out
    }
}

/// An object as JSON.
fn json<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).expect("object JSON")
}

/// What [`Scenario::apply`] made: the full names of what the spec named by
/// suffix, and the uids of its pods.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    nodes: BTreeMap<String, String>,
    namespaces: BTreeMap<String, String>,
    /// `(namespace, claim, volume)`, in the order declared.
    volumes: Vec<(String, String, String)>,
    pods: BTreeMap<String, String>,
}

impl Applied {
    /// The name of node `suffix`.
    pub fn node(&self, suffix: &str) -> &str {
        self.nodes
            .get(suffix)
            .unwrap_or_else(|| panic!("no node {suffix} in the spec"))
    }

    /// The name of namespace `suffix`.
    pub fn namespace(&self, suffix: &str) -> &str {
        self.namespaces
            .get(suffix)
            .unwrap_or_else(|| panic!("no namespace {suffix} in the spec"))
    }

    /// The volume bound to the claim `claim` (the first declared of that
    /// name).
    pub fn volume(&self, claim: &str) -> &str {
        self.volumes
            .iter()
            .find(|(_, c, _)| c == claim)
            .map(|(_, _, pv)| pv.as_str())
            .unwrap_or_else(|| panic!("no claim {claim} in the spec"))
    }

    /// The uid of pod `name`.
    pub fn pod(&self, name: &str) -> &str {
        self.pods
            .get(name)
            .unwrap_or_else(|| panic!("no pod {name} in the spec"))
    }
}

impl Scenario {
    /// Makes what `spec` declares, in order; every node, namespace and
    /// volume is deleted at [`Scenario::cleanup`].
    pub async fn apply(&mut self, spec: &ScenarioSpec) -> Applied {
        let mut made = Applied::default();
        for step in &spec.steps {
            match step {
                Step::Node(s) => {
                    let name = self.create_node(s).await;
                    made.nodes.insert(s.clone(), name);
                }
                Step::Namespace(s) => {
                    let name = self.create_namespace(s).await;
                    made.namespaces.insert(s.clone(), name);
                }
                Step::Claim(c) => {
                    let ns = spec.claim_namespace(self.namespace(), &c.name);
                    let pv = self.create_bound_claim(&ns, c).await;
                    made.volumes.push((ns, c.name.clone(), pv));
                }
                Step::Pod { name, node, claim } => {
                    let ns = spec.claim_namespace(self.namespace(), claim);
                    let uid = self
                        .create_pod_in(&ns, name, &self.node_name(node), claim)
                        .await;
                    made.pods.insert(name.clone(), uid);
                }
                Step::Secret { name, data } => {
                    self.create_secret(name, data.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                        .await;
                }
            }
        }
        made
    }
}
