//! The objects and names a scenario makes, checked against what the
//! apiserver tier's harness made before the kit (its tests rely on them):
//! the same JSON, typed (hence `apiVersion` and `kind`).

use std::path::Path;

use serde_json::{Value, json};

use super::objects::{self, Reclaim};
use super::{Claim, ScenarioSpec, volume_dir};

fn json<T: serde::Serialize>(o: &T) -> Value {
    serde_json::to_value(o).expect("json")
}

#[test]
fn namespace_names_are_the_test_name_and_six_random_digits() {
    assert_eq!(
        objects::namespace_name("backs_up_a_claim", "0123456789abcdef"),
        "backs-up-a-claim-012345"
    );
}

#[test]
fn long_namespace_names_keep_their_random_tail_within_50_characters() {
    let long = "a_test_name_much_longer_than_any_namespace_may_be_at_all";
    let name = objects::namespace_name(long, "abcdef00");
    assert_eq!(name.len(), 50, "{name}");
    assert!(name.ends_with("-may-be-at-all-abcdef"), "{name}");
    // Cut at a dash: the name does not start with one.
    let cut = objects::namespace_name(&format!("x{}", "_".repeat(44)), "abcdef");
    assert!(!cut.starts_with('-'), "{cut}");
    assert_eq!(cut, "abcdef");
}

#[test]
fn nodes_carry_their_hostname_label() {
    assert_eq!(
        json(&objects::node("ns-a")),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ns-a", "labels": {"kubernetes.io/hostname": "ns-a"}}})
    );
}

#[test]
fn a_claim_is_bound_to_a_retained_csi_volume_named_after_it() {
    let spec = ScenarioSpec::new().claim_with(Claim::new("data").class("fast"));
    let objects = spec.objects("ns");
    assert_eq!(
        objects[0],
        (
            String::new(),
            json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": "ns-data"},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "fast",
                    "csi": {"driver": "test.cairn.dev", "volumeHandle": "ns-data"},
                    "claimRef": {"namespace": "ns", "name": "data"},
                }
            })
        )
    );
    assert_eq!(
        objects[1],
        (
            "ns".to_owned(),
            json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "labels": {"backup": "yes"}},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                    "storageClassName": "fast",
                    "volumeName": "ns-data",
                }
            })
        )
    );
}

#[test]
fn a_provisioned_volume_is_deleted_with_its_claim() {
    let pv = json(&objects::volume("ns", "tmp", "", "2Gi", Reclaim::Delete));
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(pv["spec"]["capacity"]["storage"], "2Gi");
    assert_eq!(pv["spec"]["storageClassName"], "");
}

#[test]
fn claim_labels_add_to_backup_yes_or_replace_it() {
    let labels = |c: Claim| {
        ScenarioSpec::new().claim_with(c).objects("ns")[1].1["metadata"]["labels"].clone()
    };
    assert_eq!(
        labels(Claim::new("d").label("tier", "db")),
        json!({"backup": "yes", "tier": "db"})
    );
    assert_eq!(labels(Claim::new("d").unlabelled()), json!({}));
}

#[test]
fn pods_run_on_a_node_of_the_test_in_their_claims_namespace() {
    let spec = ScenarioSpec::new()
        .node("a")
        .namespace("shop")
        .claim_with(Claim::new("db").in_namespace("shop"))
        .pod_on("a", "db");
    let objects = spec.objects("ns");
    assert_eq!(
        objects[1],
        (
            String::new(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-shop"}})
        )
    );
    assert_eq!(
        objects[2].1["spec"]["claimRef"],
        json!({"namespace": "ns-shop", "name": "db"})
    );
    assert_eq!(objects[2].1["metadata"]["name"], "ns-shop-db");
    assert_eq!(
        objects[4],
        (
            "ns-shop".to_owned(),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "app-db"},
                "spec": {
                    "nodeName": "ns-a",
                    "containers": [{"name": "app", "image": "app", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "db"}}],
                }
            })
        )
    );
}

#[test]
fn secrets_hold_string_data() {
    let spec = ScenarioSpec::new().secret("repo-password", &[("password", "pw\n")]);
    assert_eq!(
        spec.objects("ns"),
        [(
            "ns".to_owned(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "repo-password"}, "stringData": {"password": "pw\n"}})
        )]
    );
}

#[test]
fn helper_pods_are_bound_to_the_node_their_affinity_names() {
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "helper"},
        "spec": {
            "containers": [{"name": "c"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": ["node-1"]}
                ]}]
            }}}
        }
    }))
    .expect("pod");
    assert_eq!(objects::affinity_node(&pod).as_deref(), Some("node-1"));
    assert_eq!(
        objects::binding("helper", "node-1"),
        json!({
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "helper"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
        })
    );
    assert_eq!(objects::affinity_node(&objects::pod("p", "n", "c")), None);
}

#[test]
fn volumes_are_where_the_kubelet_mounts_csi_volumes() {
    assert_eq!(
        volume_dir(Path::new("/k"), "uid-1", "ns-data"),
        Path::new("/k/pods/uid-1/volumes/kubernetes.io~csi/ns-data/mount")
    );
}
