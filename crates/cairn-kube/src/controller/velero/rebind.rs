//! Velero's rebind sequence (`RebindVolume`): the volume cairn restored
//! into (bound to a claim of cairn's in Velero's namespace) is handed to
//! the claim Velero created for the user, which names no volume and
//! selects one by label. One step at a time, each decided from what was
//! observed, so a controller that restarts half-way goes on where it was:
//! 1. keep the volume (`Retain`) and label it as this restore's;
//! 2. once the helper pod is gone, delete cairn's claim;
//! 3. point the user's claim at the volume (dropping the binder's
//!    annotations), and the volume at the user's claim (no uid), with the
//!    claim's selector labels;
//! 4. once the binder has bound them, give the volume its reclaim policy
//!    back.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::ResourceExt;

/// Label on a volume being handed over: the uid of its DataDownload.
pub const RESTORED_FOR_LABEL: &str = "cairn.dev/restored-for";

/// Annotation on a volume being handed over: its reclaim policy before.
pub const RECLAIM_POLICY_ANNOTATION: &str = "cairn.dev/reclaim-policy";

/// The binder's annotations that must go when a claim or volume is
/// pointed elsewhere.
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// See [`BIND_COMPLETED`].
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";

/// What the rebind observed.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    /// cairn's claim the data was restored into (None once deleted).
    pub restore_claim: Option<&'a PersistentVolumeClaim>,
    /// The restored volume.
    pub volume: Option<&'a PersistentVolume>,
    /// The user's claim.
    pub target: Option<&'a PersistentVolumeClaim>,
    /// The restore's helper pod is gone.
    pub helper_gone: bool,
    /// The DataDownload's uid.
    pub uid: &'a str,
}

/// The next step.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Look again later, for this reason.
    Wait(String),
    /// The hand-over cannot finish.
    Fail(String),
    /// Label the volume as this restore's, note its reclaim policy and set
    /// `Retain`.
    Retain {
        /// The volume.
        volume: String,
        /// Its reclaim policy before.
        policy: String,
    },
    /// Delete cairn's claim.
    DeleteRestoreClaim(String),
    /// Point the user's claim at the volume.
    PointClaim {
        /// The claim's (namespace, name).
        claim: (String, String),
        /// The volume.
        volume: String,
    },
    /// Point the volume at the user's claim and give it the labels the
    /// claim selects.
    PointVolume {
        /// The volume.
        volume: String,
        /// The claim's (namespace, name).
        claim: (String, String),
        /// The claim's selector labels.
        labels: BTreeMap<String, String>,
    },
    /// Give the volume its reclaim policy back.
    RestorePolicy {
        /// The volume.
        volume: String,
        /// The policy.
        policy: String,
    },
    /// The user's claim is bound to the restored volume.
    Done,
}

/// The next step of the hand-over.
pub fn next(seen: &Seen<'_>) -> Step {
    let Some(target) = seen.target else {
        return Step::Fail("the target claim is gone".into());
    };
    let Some(pv) = seen.volume else {
        return match seen.restore_claim {
            Some(_) => Step::Wait("waiting for the restore claim to be bound".into()),
            None => Step::Fail("the restored volume is gone".into()),
        };
    };
    release(seen, pv).unwrap_or_else(|| hand(target, pv))
}

/// Steps 1 and 2: the volume kept and cairn's claim gone; None once done.
fn release(seen: &Seen<'_>, pv: &PersistentVolume) -> Option<Step> {
    if pv.labels().get(RESTORED_FOR_LABEL).map(String::as_str) != Some(seen.uid) {
        return Some(Step::Retain {
            volume: pv.name_any(),
            policy: reclaim_policy(pv),
        });
    }
    let rc = seen.restore_claim?;
    Some(if rc.metadata.deletion_timestamp.is_some() {
        Step::Wait("waiting for the restore claim to go".into())
    } else if !seen.helper_gone {
        Step::Wait("waiting for the restore's helper pod to go".into())
    } else {
        Step::DeleteRestoreClaim(rc.name_any())
    })
}

/// Steps 3 and 4: the user's claim and the volume pointed at each other,
/// bound, and the reclaim policy back.
fn hand(target: &PersistentVolumeClaim, pv: &PersistentVolume) -> Step {
    let volume = pv.name_any();
    let claim = (target.namespace().unwrap_or_default(), target.name_any());
    let spec = target.spec.clone().unwrap_or_default();
    let target_volume = spec.volume_name.as_deref().unwrap_or_default();
    if !target_volume.is_empty() && target_volume != volume {
        return Step::Fail(format!(
            "claim {}/{} names another volume, {target_volume}",
            claim.0, claim.1
        ));
    }
    if target_volume.is_empty() {
        return Step::PointClaim { claim, volume };
    }
    let labels: BTreeMap<String, String> = spec
        .selector
        .and_then(|s| s.match_labels)
        .unwrap_or_default();
    let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    let pointed = claim_ref.is_some_and(|r| {
        r.namespace.as_deref() == Some(claim.0.as_str()) && r.name.as_deref() == Some(&claim.1)
    });
    let labelled = labels.iter().all(|(k, v)| pv.labels().get(k) == Some(v));
    if !pointed || !labelled {
        return Step::PointVolume {
            volume,
            claim,
            labels,
        };
    }
    if target.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
        return Step::Wait(format!(
            "waiting for claim {}/{} to be bound to {volume}",
            claim.0, claim.1
        ));
    }
    let now = reclaim_policy(pv);
    let before = pv
        .annotations()
        .get(RECLAIM_POLICY_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| now.clone());
    if before != now {
        return Step::RestorePolicy {
            volume,
            policy: before,
        };
    }
    Step::Done
}

/// The volume's reclaim policy (`Delete` when unset, as for provisioned
/// volumes).
fn reclaim_policy(pv: &PersistentVolume) -> String {
    pv.spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.clone())
        .unwrap_or_else(|| "Delete".into())
}

#[cfg(test)]
#[path = "rebind_tests.rs"]
mod tests;
