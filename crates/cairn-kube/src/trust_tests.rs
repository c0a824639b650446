use k8s_openapi::api::core::v1::{
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSpec, Volume,
};
use kube::api::ObjectMeta;

use super::*;

fn admins() -> Admins {
    Admins::new(["backup"])
}

fn repo(url: &str, allowed: &[&str]) -> BackupRepositorySpec {
    BackupRepositorySpec {
        url: url.into(),
        allowed_namespaces: allowed.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

const S3: &str = "s3://bucket/p?endpoint=http://127.0.0.1:9";

#[test]
fn a_repository_namespace_is_not_an_administrator_namespace() {
    // Finding 2: whoever can create a BackupRepository in `shop` must not
    // reach `billing`'s claims through it.
    let r = repo(S3, &[]);
    let why = authorize(&admins(), "shop", ("shop", "mine"), &r, "billing").expect_err("billing");
    assert!(why.contains("not an administrator namespace"), "{why}");
    assert!(why.contains("billing"), "{why}");
    assert_eq!(
        authorize(&admins(), "shop", ("shop", "mine"), &r, "shop"),
        Ok(Access::Tenant("shop".into()))
    );
}

/// (job namespace, repository namespace, URL, allowedNamespaces, claim
/// namespace, expected access or None for a refusal).
type Row<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a [&'a str],
    &'a str,
    Option<Access>,
);

#[test]
fn authorization_table() {
    let a = admins();
    // (job ns, repo ns, url, allowed, claim ns) → admin / tenant / refused
    let rows: &[Row] = &[
        (
            "backup",
            "backup",
            "/srv/repo",
            &[],
            "billing",
            Some(Access::Admin),
        ),
        ("backup", "backup", S3, &[], "shop", Some(Access::Admin)),
        ("shop", "backup", S3, &[], "shop", None),
        (
            "shop",
            "backup",
            S3,
            &["shop"],
            "shop",
            Some(Access::Tenant("shop".into())),
        ),
        (
            "shop",
            "backup",
            S3,
            &["*"],
            "shop",
            Some(Access::Tenant("shop".into())),
        ),
        ("shop", "backup", S3, &["shop"], "billing", None),
        (
            "shop",
            "backup",
            "/srv/repo",
            &["shop"],
            "shop",
            Some(Access::Tenant("shop".into())),
        ),
        (
            "shop",
            "shop",
            S3,
            &[],
            "shop",
            Some(Access::Tenant("shop".into())),
        ),
        ("shop", "shop", S3, &[], "billing", None),
        ("shop", "shop", "/var/lib/kubelet/pods", &[], "shop", None),
        ("shop", "shop", "file:///etc", &[], "shop", None),
        ("shop", "shop", "memory://", &[], "shop", None),
        (
            "backup",
            "shop",
            S3,
            &["backup"],
            "billing",
            Some(Access::Admin),
        ),
        ("backup", "shop", "/srv", &["backup"], "billing", None),
        (
            "billing",
            "shop",
            S3,
            &["*"],
            "billing",
            Some(Access::Tenant("billing".into())),
        ),
    ];
    for (job, rns, url, allowed, claim, want) in rows {
        let got = authorize(&a, job, (rns, "r"), &repo(url, allowed), claim);
        assert_eq!(
            got.clone().ok(),
            *want,
            "{job} {rns} {url} {allowed:?} {claim}: {got:?}"
        );
    }
}

#[test]
fn no_administrator_namespaces_means_everyone_is_a_tenant() {
    let none = Admins::new(Vec::<String>::new());
    let r = repo(S3, &[]);
    assert!(authorize(&none, "backup", ("backup", "r"), &r, "shop").is_err());
    assert!(Admins::new([""]).0.is_empty());
}

fn kube_source(cluster: &str, ns: &str, name: &str) -> Source {
    Source::KubernetesVolume {
        cluster: cluster.into(),
        namespace: ns.into(),
        name: name.into(),
    }
}

#[test]
fn tenants_restore_only_their_namespaces_snapshots_of_their_cluster() {
    // Finding 19: `shop` of cluster a must not restore cluster b's `shop`.
    let t = Access::Tenant("shop".into());
    assert!(may_restore(&t, "a", "id", &kube_source("a", "shop", "db")).is_ok());
    let why = may_restore(&t, "a", "id", &kube_source("b", "shop", "db")).expect_err("cluster");
    assert!(why.contains("this cluster"), "{why}");
    assert!(may_restore(&t, "a", "id", &kube_source("a", "billing", "db")).is_err());
    assert!(may_restore(&t, "a", "id", &kube_source("", "shop", "db")).is_err());
    assert!(may_restore(&t, "a", "id", &Source::Filesystem).is_err());
    assert!(may_restore(&Access::Admin, "a", "id", &kube_source("b", "billing", "x")).is_ok());
    assert!(may_restore(&Access::Admin, "a", "id", &Source::Filesystem).is_ok());
}

#[test]
fn tenants_never_ask_for_another_namespaces_snapshots() {
    let t = Access::Tenant("shop".into());
    assert!(check_restore_source(&t, "shop").is_ok());
    let why = check_restore_source(&t, "billing").expect_err("billing");
    assert!(why.contains("billing"), "{why}");
    assert!(check_restore_source(&Access::Admin, "billing").is_ok());
}

#[test]
fn retention_never_forgets_another_claims_snapshot() {
    // Finding 6: a patched status.snapshotId must not make retention forget
    // someone else's snapshot.
    let claim = ("shop".to_string(), "db".to_string());
    let t = Access::Tenant("shop".into());
    assert!(may_forget(&t, "a", &claim, "id", &kube_source("a", "shop", "db")).is_ok());
    assert!(may_forget(&t, "a", &claim, "id", &kube_source("a", "billing", "db")).is_err());
    assert!(may_forget(&t, "a", &claim, "id", &kube_source("a", "shop", "other")).is_err());
    assert!(may_forget(&t, "a", &claim, "id", &kube_source("b", "shop", "db")).is_err());
    assert!(may_forget(&t, "a", &claim, "id", &Source::Filesystem).is_err());
    let a = Access::Admin;
    assert!(may_forget(&a, "a", &claim, "id", &kube_source("old", "shop", "db")).is_ok());
    assert!(may_forget(&a, "a", &claim, "id", &kube_source("a", "billing", "db")).is_err());
}

fn source() -> VolumeSource {
    VolumeSource {
        pod_namespace: "shop".into(),
        pod_name: "web-0".into(),
        pod_uid: "0c8e5f5e-1a2b-4c3d-9e8f-0123456789ab".into(),
        volume_name: "data".into(),
        persistent_volume: "pv-1".into(),
        helper_pod: false,
    }
}

#[test]
fn pod_uids_and_volume_names_never_escape_the_pods_directory() {
    assert!(check_source_names(&source()).is_ok());
    for uid in ["", "..", "../x", "/etc", "a/b", "0c8e..", "zz"] {
        let mut s = source();
        s.pod_uid = uid.into();
        assert!(check_source_names(&s).is_err(), "uid {uid:?}");
    }
    for name in ["", ".", "..", "a/b", "../x", "Data", ".hidden"] {
        let mut s = source();
        s.volume_name = name.into();
        assert!(check_source_names(&s).is_err(), "volume {name:?}");
        let mut s = source();
        s.persistent_volume = name.into();
        let empty_pv_is_fine = name.is_empty();
        assert_eq!(
            check_source_names(&s).is_ok(),
            empty_pv_is_fine,
            "pv {name:?}"
        );
    }
}

fn pod(uid: &str, node: &str, volume: &str, claim: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some("shop".into()),
            name: Some("web-0".into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            volumes: Some(vec![Volume {
                name: volume.into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pvc(pv: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        spec: Some(PersistentVolumeClaimSpec {
            volume_name: Some(pv.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn the_agent_never_trusts_a_status_source_the_pod_does_not_confirm() {
    let claim = ("shop".to_string(), "db".to_string());
    let uid = source().pod_uid;
    let good = pod(&uid, "n1", "data", "db");
    let bound = pvc("pv-1");
    assert!(check_source(&source(), &claim, "n1", Some(&good), Some(&bound)).is_ok());
    let other_uid = pod("11111111-2222-3333-4444-555555555555", "n1", "data", "db");
    let cases: Vec<(&str, Option<&Pod>, Option<&PersistentVolumeClaim>, &str)> = vec![
        ("no pod", None, Some(&bound), "does not exist"),
        ("pod replaced", Some(&other_uid), Some(&bound), "UID"),
    ];
    for (what, p, c, want) in cases {
        let why = check_source(&source(), &claim, "n1", p, c).expect_err(what);
        assert!(why.contains(want), "{what}: {why}");
    }
    let why = check_source(&source(), &claim, "n2", Some(&good), Some(&bound)).expect_err("node");
    assert!(why.contains("node n2"), "{why}");
    let token = pod(&uid, "n1", "kube-api-access-x", "db");
    let mut s = source();
    s.volume_name = "kube-api-access-x".into();
    assert!(check_source(&s, &claim, "n1", Some(&token), Some(&bound)).is_ok());
    let why = check_source(&s, &claim, "n1", Some(&good), Some(&bound)).expect_err("volume");
    assert!(why.contains("does not mount claim db"), "{why}");
    let elsewhere = pod(&uid, "n1", "data", "other");
    assert!(check_source(&source(), &claim, "n1", Some(&elsewhere), Some(&bound)).is_err());
    let why =
        check_source(&source(), &claim, "n1", Some(&good), Some(&pvc("pv-2"))).expect_err("pv");
    assert!(why.contains("pv-1"), "{why}");
    assert!(check_source(&source(), &claim, "n1", Some(&good), None).is_err());
    let mut s = source();
    s.pod_namespace = "billing".into();
    assert!(check_source(&s, &claim, "n1", Some(&good), Some(&bound)).is_err());
    let mut s = source();
    s.pod_uid = "../../etc".into();
    assert!(check_source(&s, &claim, "n1", Some(&good), Some(&bound)).is_err());
}

#[test]
fn a_snapshot_backup_reads_only_a_claim_made_from_a_snapshot_of_its_claim() {
    let claim = ("shop".to_owned(), "db".to_owned());
    let made = |kind: &str, name: &str| -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "cairn-x", "namespace": "shop"},
            "spec": {"dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": kind, "name": name}},
        }))
        .expect("claim")
    };
    let good = made("VolumeSnapshot", "cairn-x");
    assert_eq!(
        check_snapshot_lineage(Some(&good), ("cairn-x", Some("db")), &claim),
        Ok(())
    );
    let err = |r: Result<(), String>| r.expect_err("refused");
    assert!(
        err(check_snapshot_lineage(
            None,
            ("cairn-x", Some("db")),
            &claim
        ))
        .contains("does not exist")
    );
    assert!(
        err(check_snapshot_lineage(
            Some(&good),
            ("cairn-x", Some("other")),
            &claim
        ))
        .contains("not a snapshot of claim db"),
        "a snapshot of another claim of the namespace"
    );
    let cloned = made("PersistentVolumeClaim", "cairn-x");
    assert!(
        err(check_snapshot_lineage(
            Some(&cloned),
            ("cairn-x", Some("db")),
            &claim
        ))
        .contains("not made from")
    );
    let elsewhere = made("VolumeSnapshot", "someone-elses");
    assert!(
        err(check_snapshot_lineage(
            Some(&elsewhere),
            ("cairn-x", Some("db")),
            &claim
        ))
        .contains("not made from")
    );
    // A job naming an existing snapshot (Velero's) reads only a claim made
    // from that one.
    let velero = made("VolumeSnapshot", "velero-db-x1");
    assert_eq!(
        check_snapshot_lineage(Some(&velero), ("velero-db-x1", Some("db")), &claim),
        Ok(())
    );
    assert!(
        err(check_snapshot_lineage(
            Some(&good),
            ("velero-db-x1", Some("db")),
            &claim
        ))
        .contains("not made from VolumeSnapshot velero-db-x1")
    );
}

#[test]
fn only_administrators_restore_another_clusters_snapshots() {
    let tenant = Access::Tenant("shop".into());
    assert_eq!(check_source_cluster(&tenant, "east", None), Ok(()));
    assert_eq!(check_source_cluster(&tenant, "east", Some("east")), Ok(()));
    let why = check_source_cluster(&tenant, "east", Some("west")).expect_err("refused");
    assert!(why.contains("administrator"), "{why}");
    assert_eq!(
        check_source_cluster(&Access::Admin, "east", Some("west")),
        Ok(())
    );
}
