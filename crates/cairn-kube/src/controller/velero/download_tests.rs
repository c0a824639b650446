use super::*;

fn spec() -> DownloadSpec {
    serde_json::from_value(json!({
        "targetVolume": {"pvc": "db", "pv": "", "namespace": "shop2"},
        "backupStorageLocation": "default", "datamover": "cairn",
        "snapshotID": "0f".repeat(32), "sourceNamespace": "shop",
    }))
    .expect("spec")
}

const NOW: i64 = 1_700_000_000;

#[test]
fn a_download_waits_for_the_users_claim_then_starts() {
    let none = Value::Null;
    assert_eq!(decide(("", &none), &spec(), None, false, NOW), Step::Wait);
    assert_eq!(decide(("", &none), &spec(), None, true, NOW), Step::Start);
    for bad in ["", "0F0F", &"0F".repeat(32), &"zz".repeat(32)] {
        let mut s = spec();
        s.snapshot_id = bad.to_owned();
        assert!(
            matches!(decide(("", &none), &s, None, true, NOW), Step::End(v) if v["phase"] == "Failed"),
            "{bad:?}"
        );
    }
    let mut s = spec();
    s.target_volume.namespace.clear();
    assert!(matches!(decide(("", &none), &s, None, true, NOW),
        Step::End(v) if v["message"].as_str().is_some_and(|m| m.contains("targetVolume.namespace"))));
}

#[test]
fn a_completed_restore_hands_the_volume_over_before_completing() {
    let done = JobStatus {
        phase: Phase::Completed,
        node: Some("n1".into()),
        progress: Some(crate::crd::JobProgress::new(2, 10, 2, 10)),
        ..Default::default()
    };
    match decide(
        ("InProgress", &Value::Null),
        &spec(),
        Some(&done),
        true,
        NOW,
    ) {
        Step::Rebind(v) => {
            assert_eq!(v["phase"], "Completed");
            assert_eq!(v["progress"]["totalBytes"], 10);
        }
        other => panic!("{other:?}"),
    }
    let mut s = spec();
    s.cancel = true;
    assert!(
        matches!(decide(("InProgress", &Value::Null), &s, Some(&done), true, NOW),
        Step::End(v) if v["phase"] == "Canceled")
    );
    let running = JobStatus {
        phase: Phase::InProgress,
        ..Default::default()
    };
    assert_eq!(
        decide(("InProgress", &Value::Null), &s, Some(&running), true, NOW),
        Step::CancelJob
    );
}

#[test]
fn the_restore_claim_is_made_like_the_users() {
    let target: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "db", "namespace": "shop2"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                 "volumeMode": "Filesystem", "resources": {"requests": {"storage": "5Gi"}},
                 "selector": {"matchLabels": {"velero.io/dynamic-pv-restore": "shop2.db.x"}}},
    }))
    .expect("claim");
    let t = template(&target).expect("template");
    assert_eq!(t.size, "5Gi");
    assert_eq!(t.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(t.access_modes, vec!["ReadWriteOnce".to_owned()]);
    let bare: PersistentVolumeClaim =
        serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": {}})).expect("claim");
    assert!(template(&bare).expect_err("no size").contains("size"));
}

#[test]
fn only_snapshots_of_the_source_namespace_are_restored() {
    let of = |ns: &str| cairn::Source::KubernetesVolume {
        cluster: "c".into(),
        namespace: ns.into(),
        name: "db".into(),
    };
    assert_eq!(check_source("id", &of("shop"), "shop"), Ok(()));
    let err = check_source("id", &of("bank"), "shop").expect_err("another namespace");
    assert!(err.contains("bank/db"), "{err}");
}
