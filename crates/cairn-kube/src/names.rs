//! Label keys, finalizers and object names cairn uses, in one place.

/// Label on a job naming the node it is assigned to: agents watch only
/// jobs carrying their node's name.
pub const NODE_LABEL: &str = "cairn.dev/node";
/// Label on helper pods and scheduled backups: the uid of the object that
/// made them.
pub const OWNER_UID_LABEL: &str = "cairn.dev/owner-uid";
/// Label on helper pods: `backup` or `restore`.
pub const HELPER_KIND_LABEL: &str = "cairn.dev/helper";
/// Label on scheduled VolumeBackups: the schedule's uid.
pub const SCHEDULE_UID_LABEL: &str = "cairn.dev/schedule-uid";
/// Label on scheduled VolumeBackups: the schedule's name (when it fits).
pub const SCHEDULE_LABEL: &str = "cairn.dev/schedule";
/// Annotation on scheduled VolumeBackups: the time the backup was due
/// (seconds since the epoch), which retention counts by.
pub const SCHEDULED_TIME_ANNOTATION: &str = "cairn.dev/scheduled-time";
/// Label on agent Leases.
pub const AGENT_LEASE_LABEL: &str = "cairn.dev/agent-lease";

/// The controller's finalizer on jobs: helper pods are removed before a
/// job goes away.
pub const CONTROLLER_FINALIZER: &str = "cairn.dev/controller";
/// The agent's finalizer on a running job: the run is stopped before the
/// job goes away.
pub const AGENT_FINALIZER: &str = "cairn.dev/agent";

/// The Lease an agent renews to show it is alive.
pub fn agent_lease(node: &str) -> String {
    bounded(&format!("cairn-agent-{node}"), 253)
}

/// `name` if it fits in `max` characters, else a prefix and a hash of the
/// whole, so different long names stay different.
pub fn bounded(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let hash = &blake3::hash(name.as_bytes()).to_hex()[..8];
    let mut cut = max - 9;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let prefix = name[..cut].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}")
}

/// A valid label value for `v`, if it is one already.
pub fn label_value(v: &str) -> Option<String> {
    let ok = v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && v.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_none_or(|c| c.is_ascii_alphanumeric());
    ok.then(|| v.to_owned())
}

/// The value of [`NODE_LABEL`] for `node`: the node's name when it is a
/// valid label value (names over 63 characters are cut with a hash).
pub fn node_label(node: &str) -> String {
    label_value(node).unwrap_or_else(|| bounded(node, 63))
}

/// The helper pod of a job (a pod name is a DNS subdomain, at most 253
/// characters, but names over 63 break hostnames: keep them short).
pub fn helper_pod(kind: &str, job: &str) -> String {
    bounded(&format!("cairn-{kind}-{job}"), 63)
}

/// Label on a maintenance Job: the uid of the BackupRepository it maintains.
pub const MAINTENANCE_OF_LABEL: &str = "cairn.dev/maintenance-of";

/// Label on a maintenance Job's pods: the Job's name.
pub const MAINTENANCE_JOB_LABEL: &str = "cairn.dev/maintenance-job";

/// Label on the VolumeSnapshots and temporary claims of snapshot
/// backups: the claim they were taken from (when the name fits a label).
pub const SNAPSHOT_OF_LABEL: &str = "cairn.dev/snapshot-of";

/// The name of the VolumeSnapshot, and of the temporary claim made from
/// it, for the backup `job` with uid `uid`: unique per backup, and valid as
/// both names.
pub fn snapshot_object(job: &str, uid: &str) -> String {
    let short: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    let base: String = job.chars().take(40).collect();
    format!("cairn-{}-{short}", base.trim_end_matches(['-', '.']))
}

/// The annotation through which the scheduler tells a provisioner which
/// node a WaitForFirstConsumer claim is for; cairn sets it on the claims it
/// creates, whose helper pods are placed on a node it chose.
pub const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_with_a_hash() {
        assert_eq!(bounded("short", 63), "short");
        let a = bounded(&"a".repeat(100), 63);
        let b = bounded(&format!("{}b", "a".repeat(99)), 63);
        assert_eq!(a.len(), 63);
        assert_ne!(a, b, "names differing only past the cut stay different");
        assert_eq!(helper_pod("backup", "db").as_str(), "cairn-backup-db");
    }

    #[test]
    fn label_values_are_checked() {
        assert_eq!(label_value("node-a").as_deref(), Some("node-a"));
        assert_eq!(label_value("a/b"), None);
        assert_eq!(label_value(&"x".repeat(64)), None);
        assert_eq!(label_value("-x"), None);
    }
}
