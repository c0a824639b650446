//! The helper pod: a pod that does nothing but keep a claim mounted on a
//! node, so that node's agent can reach a volume no other pod mounts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Toleration, Volume, VolumeDevice,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::job::JobKind;
use crate::names::{HELPER_KIND_LABEL, OWNER_UID_LABEL, helper_pod};

/// Annotation on a helper pod: `namespace/name` of its job.
pub const JOB_ANNOTATION: &str = "cairn.dev/job";

/// What a helper pod is for.
#[derive(Clone, Debug)]
pub struct HelperSpec<'a> {
    /// Backup (mounted read-only) or restore (read-write).
    pub kind: JobKind,
    /// The job's namespace and name.
    pub job: (&'a str, &'a str),
    /// The job's uid.
    pub job_uid: &'a str,
    /// Owner reference to the job, when it is in the claim's namespace.
    pub owner: Option<OwnerReference>,
    /// (namespace, name) of the claim.
    pub claim: (&'a str, &'a str),
    /// The node to run on.
    pub node: &'a str,
    /// The claim is a raw block device (`volumeMode: Block`): attached as
    /// a device, not mounted.
    pub block: bool,
    /// Image to run (it only needs to sleep: `pause`).
    pub image: &'a str,
}

/// The pod.
pub fn build(h: &HelperSpec<'_>) -> Pod {
    let read_only = h.kind == JobKind::Backup;
    let labels = BTreeMap::from([
        (HELPER_KIND_LABEL.to_owned(), h.kind.as_str().to_owned()),
        (OWNER_UID_LABEL.to_owned(), h.job_uid.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "cairn".to_owned(),
        ),
    ]);
    Pod {
        metadata: ObjectMeta {
            name: Some(helper_pod(h.kind.as_str(), h.job.1)),
            namespace: Some(h.claim.0.to_owned()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                JOB_ANNOTATION.to_owned(),
                format!("{}/{}", h.job.0, h.job.1),
            )])),
            owner_references: h.owner.clone().map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            // The scheduler places it, on the one node the controller chose
            // (it can reach the volume and has an agent): so volumes
            // provisioned on first use bind there, and quotas and admission
            // see an ordinary pod.
            affinity: Some(on_node(h.node)),
            restart_policy: Some("Never".to_owned()),
            automount_service_account_token: Some(false),
            security_context: Some(PodSecurityContext {
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(1),
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".to_owned()),
                ..Default::default()
            }]),
            containers: vec![container(h, read_only)],
            volumes: Some(vec![Volume {
                name: "data".to_owned(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: h.claim.1.to_owned(),
                    read_only: Some(read_only),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The helper's one container: it only holds the volume mounted (read
/// only for a backup), as an unprivileged user with every capability
/// dropped, within a few MiB.
fn container(h: &HelperSpec<'_>, read_only: bool) -> Container {
    let q = |s: &str| Quantity(s.to_owned());
    Container {
        name: "mount".to_owned(),
        image: Some(h.image.to_owned()),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), q("1m")),
                ("memory".to_owned(), q("8Mi")),
            ])),
            limits: Some(BTreeMap::from([("memory".to_owned(), q("16Mi"))])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65535),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: (!h.block).then(|| {
            vec![VolumeMount {
                name: "data".to_owned(),
                mount_path: "/data".to_owned(),
                read_only: Some(read_only),
                ..Default::default()
            }]
        }),
        volume_devices: h.block.then(|| {
            vec![VolumeDevice {
                name: "data".to_owned(),
                device_path: "/dev/cairn-data".to_owned(),
            }]
        }),
        ..Default::default()
    }
}

/// Required affinity to the node named `node`, by name.
fn on_node(node: &str) -> Affinity {
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_fields: Some(vec![NodeSelectorRequirement {
                        key: "metadata.name".to_owned(),
                        operator: "In".to_owned(),
                        values: Some(vec![node.to_owned()]),
                    }]),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_mount_read_only_restores_read_write() {
        let spec = HelperSpec {
            kind: JobKind::Backup,
            job: ("apps", "db-now"),
            job_uid: "u1",
            owner: None,
            claim: ("apps", "db"),
            node: "node-a",
            block: false,
            image: "registry.k8s.io/pause:3.9",
        };
        let pod = build(&spec);
        let ps = pod.spec.as_ref().expect("spec");
        assert_eq!(ps.node_name, None, "the scheduler places it");
        let affinity = serde_json::to_value(&ps.affinity).expect("json");
        assert_eq!(
            affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
                [0]["matchFields"][0]["values"][0],
            "node-a"
        );
        let vol = ps.volumes.as_ref().expect("volumes")[0]
            .persistent_volume_claim
            .clone()
            .expect("pvc");
        assert_eq!((vol.claim_name.as_str(), vol.read_only), ("db", Some(true)));
        assert_eq!(pod.metadata.name.as_deref(), Some("cairn-backup-db-now"));
        let seccomp = ps
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref());
        assert_eq!(seccomp.map(|p| p.type_.as_str()), Some("RuntimeDefault"));
        assert_eq!(ps.automount_service_account_token, Some(false));
        let restore = build(&HelperSpec {
            kind: JobKind::Restore,
            ..spec
        });
        let vol = restore.spec.expect("spec").volumes.expect("volumes")[0]
            .persistent_volume_claim
            .clone()
            .expect("pvc");
        assert_eq!(vol.read_only, Some(false));
    }

    #[test]
    fn a_block_claim_is_attached_as_a_device() {
        let pod = build(&HelperSpec {
            kind: JobKind::Restore,
            job: ("apps", "disk-back"),
            job_uid: "u2",
            owner: None,
            claim: ("apps", "disk"),
            node: "node-a",
            block: true,
            image: "pause",
        });
        let c = &pod.spec.expect("spec").containers[0];
        assert!(c.volume_mounts.is_none(), "a block claim cannot be mounted");
        let devices = c.volume_devices.clone().expect("devices");
        assert_eq!(devices[0].name, "data");
    }
}
