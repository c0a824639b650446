use super::*;
use serde_json::json;

const UID: &str = "dd-uid";

fn restore_claim(volume: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": "r1-abc", "namespace": "velero"},
        "spec": {"volumeName": volume},
    }))
    .expect("claim")
}

fn target(volume: &str, bound: bool) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": "db", "namespace": "shop2"},
        "spec": {"volumeName": volume, "selector": {"matchLabels": {"velero.io/dynamic-pv-restore": "shop2.db.x"}}},
        "status": {"phase": if bound {"Bound"} else {"Pending"}},
    }))
    .expect("claim")
}

fn volume(
    labelled: bool,
    policy: &str,
    claim: (&str, &str),
    selector_labels: bool,
) -> PersistentVolume {
    let mut labels = serde_json::Map::new();
    if labelled {
        labels.insert(RESTORED_FOR_LABEL.into(), json!(UID));
    }
    if selector_labels {
        labels.insert("velero.io/dynamic-pv-restore".into(), json!("shop2.db.x"));
    }
    serde_json::from_value(json!({
        "metadata": {"name": "pv-1", "labels": labels,
                     "annotations": {RECLAIM_POLICY_ANNOTATION: "Delete"}},
        "spec": {"persistentVolumeReclaimPolicy": policy,
                 "claimRef": {"namespace": claim.0, "name": claim.1, "uid": "old"}},
    }))
    .expect("pv")
}

fn step(
    rc: Option<&PersistentVolumeClaim>,
    pv: Option<&PersistentVolume>,
    t: Option<&PersistentVolumeClaim>,
    helper_gone: bool,
) -> Step {
    next(&Seen {
        restore_claim: rc,
        volume: pv,
        target: t,
        helper_gone,
        uid: UID,
    })
}

#[test]
fn the_hand_over_follows_veleros_sequence_step_by_step() {
    let rc = restore_claim("pv-1");
    let unbound_target = target("", false);
    // 1. The restored volume is kept, whatever happens to cairn's claim.
    let fresh = serde_json::from_value::<PersistentVolume>(json!({
        "metadata": {"name": "pv-1"},
        "spec": {"persistentVolumeReclaimPolicy": "Delete", "claimRef": {"namespace": "velero", "name": "r1-abc"}},
    })).expect("pv");
    assert_eq!(
        step(Some(&rc), Some(&fresh), Some(&unbound_target), false),
        Step::Retain {
            volume: "pv-1".into(),
            policy: "Delete".into()
        }
    );
    // 2. cairn's claim goes once the helper pod has.
    let kept = volume(true, "Retain", ("velero", "r1-abc"), false);
    assert!(matches!(
        step(Some(&rc), Some(&kept), Some(&unbound_target), false),
        Step::Wait(_)
    ));
    assert_eq!(
        step(Some(&rc), Some(&kept), Some(&unbound_target), true),
        Step::DeleteRestoreClaim("r1-abc".into())
    );
    // 3. The user's claim, then the volume, are pointed at each other.
    assert_eq!(
        step(None, Some(&kept), Some(&unbound_target), true),
        Step::PointClaim {
            claim: ("shop2".into(), "db".into()),
            volume: "pv-1".into()
        }
    );
    let pointed_target = target("pv-1", false);
    match step(None, Some(&kept), Some(&pointed_target), true) {
        Step::PointVolume { claim, labels, .. } => {
            assert_eq!(claim, ("shop2".into(), "db".into()));
            assert_eq!(
                labels
                    .get("velero.io/dynamic-pv-restore")
                    .map(String::as_str),
                Some("shop2.db.x")
            );
        }
        other => panic!("{other:?}"),
    }
    // 4. The binder binds them; then the policy comes back.
    let handed = volume(true, "Retain", ("shop2", "db"), true);
    assert!(matches!(
        step(None, Some(&handed), Some(&pointed_target), true),
        Step::Wait(_)
    ));
    let bound = target("pv-1", true);
    assert_eq!(
        step(None, Some(&handed), Some(&bound), true),
        Step::RestorePolicy {
            volume: "pv-1".into(),
            policy: "Delete".into()
        }
    );
    let mut done = volume(true, "Delete", ("shop2", "db"), true);
    assert_eq!(step(None, Some(&done), Some(&bound), true), Step::Done);
    done.metadata.annotations = None;
    assert_eq!(step(None, Some(&done), Some(&bound), true), Step::Done);
}

#[test]
fn a_hand_over_that_cannot_finish_says_why() {
    let kept = volume(true, "Retain", ("velero", "r1-abc"), false);
    assert!(
        matches!(step(None, Some(&kept), None, true), Step::Fail(m) if m.contains("target claim"))
    );
    assert!(
        matches!(step(None, None, Some(&target("", false)), true), Step::Fail(m) if m.contains("volume is gone"))
    );
    assert!(matches!(
        step(
            Some(&restore_claim("")),
            None,
            Some(&target("", false)),
            true
        ),
        Step::Wait(_)
    ));
    // The user's claim already names another volume: never stolen.
    assert!(
        matches!(step(None, Some(&kept), Some(&target("someone-elses", true)), true),
        Step::Fail(m) if m.contains("someone-elses"))
    );
}
