//! `forget`: apply a retention policy to every group of snapshots and delete
//! the snapshots it does not keep. The blobs they alone referenced stay until
//! `prune` removes them.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use cairn_core::Id;
use cairn_core::format::{Snapshot, Source};

use super::lock::{lock_aware, retained_until};
use crate::commands::lock::Retained;
use crate::retention::{self, Candidate, Policy};
use crate::{Error, Repository, Result, paths};

/// Which snapshots belong together for retention: the same source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GroupKey {
    /// Paths on a host: the hostname and the sorted set of paths.
    Filesystem {
        /// Host.
        host: String,
        /// Paths, sorted, lossily shown as UTF-8.
        paths: Vec<String>,
    },
    /// A Kubernetes volume: cluster, namespace and claim name.
    KubernetesVolume {
        /// Cluster.
        cluster: String,
        /// Namespace.
        namespace: String,
        /// Claim.
        name: String,
    },
}

impl GroupKey {
    /// The group a snapshot belongs to.
    pub fn of(s: &Snapshot) -> GroupKey {
        match &s.source {
            Source::Filesystem => {
                let mut paths: Vec<String> = s
                    .paths
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                paths.sort();
                paths.dedup();
                GroupKey::Filesystem {
                    host: s.hostname.clone(),
                    paths,
                }
            }
            Source::KubernetesVolume {
                cluster,
                namespace,
                name,
            } => GroupKey::KubernetesVolume {
                cluster: cluster.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
            },
        }
    }
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupKey::Filesystem { host, paths } => write!(f, "host {host}, paths {paths:?}"),
            GroupKey::KubernetesVolume {
                cluster,
                namespace,
                name,
            } => write!(f, "volume {cluster}/{namespace}/{name}"),
        }
    }
}

/// One snapshot in a forget report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForgetEntry {
    /// Snapshot id.
    pub id: Id,
    /// Its time, seconds since the epoch (UTC).
    pub time: i64,
    /// Its tags.
    pub tags: Vec<String>,
    /// Why it is kept; empty for removed snapshots.
    pub reasons: Vec<String>,
    /// For a snapshot the policy removes but Object Lock retains: when
    /// its retention ends (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retained_until: Option<i64>,
}

/// What forget decided for one group, newest snapshot first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForgetGroup {
    /// The group.
    pub group: GroupKey,
    /// Snapshots kept, with reasons.
    pub keep: Vec<ForgetEntry>,
    /// Snapshots removed (or that would be, in a dry run).
    pub remove: Vec<ForgetEntry>,
    /// Snapshots the policy removes but Object Lock still retains: kept
    /// until a run after their `retained_until`.
    pub retained: Vec<ForgetEntry>,
}

/// The outcome of [`Maintenance::forget`](crate::Maintenance::forget).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ForgetReport {
    /// True if nothing was deleted.
    pub dry_run: bool,
    /// One entry per group.
    pub groups: Vec<ForgetGroup>,
    /// The snapshots kept because they are retained, and when the first
    /// and last of them may go.
    pub retained: Retained,
}

impl ForgetReport {
    /// Every snapshot removed (or to be removed).
    pub fn removed(&self) -> impl Iterator<Item = &ForgetEntry> {
        self.groups.iter().flat_map(|g| g.remove.iter())
    }
}

/// Moves the snapshots of `groups` that the policy removes but that are
/// retained (until the date `retained` gives) from `remove` to `retained`
/// (pure: decides, deletes nothing).
pub fn hold_retained(
    groups: Vec<ForgetGroup>,
    retained: &HashMap<Id, SystemTime>,
) -> (Vec<ForgetGroup>, Retained) {
    let mut total = Retained::default();
    let groups = groups
        .into_iter()
        .map(|mut g| {
            let (held, free): (Vec<ForgetEntry>, Vec<ForgetEntry>) = g
                .remove
                .into_iter()
                .partition(|e| retained.contains_key(&e.id));
            g.remove = free;
            g.retained = held
                .into_iter()
                .map(|mut e| {
                    let until = retained[&e.id];
                    total.add(until, 0);
                    e.retained_until = Some(crate::commands::lock::secs(until));
                    e
                })
                .collect();
            g
        })
        .collect();
    (groups, total)
}

/// Applies `policy` to each group of `snaps` (pure: decides, deletes nothing).
pub fn plan(snaps: &[(Id, Snapshot)], policy: &Policy) -> Vec<ForgetGroup> {
    let mut groups: BTreeMap<GroupKey, Vec<&(Id, Snapshot)>> = BTreeMap::new();
    for s in snaps {
        groups.entry(GroupKey::of(&s.1)).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(group, mut members)| {
            // Newest first, ties by id, so the decision is deterministic.
            members.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(a.0.cmp(&b.0)));
            let candidates: Vec<Candidate> = members
                .iter()
                .map(|(_, s)| Candidate {
                    time: s.time.secs,
                    tags: s.tags.clone(),
                })
                .collect();
            let reasons = retention::apply(&candidates, policy);
            let mut g = ForgetGroup {
                group,
                keep: Vec::new(),
                remove: Vec::new(),
                retained: Vec::new(),
            };
            for ((id, s), reasons) in members.into_iter().map(|m| (&m.0, &m.1)).zip(reasons) {
                let e = ForgetEntry {
                    id: *id,
                    time: s.time.secs,
                    tags: s.tags.clone(),
                    reasons,
                    retained_until: None,
                };
                if e.reasons.is_empty() {
                    g.remove.push(e);
                } else {
                    g.keep.push(e);
                }
            }
            g
        })
        .collect()
}

/// Applies a retention policy to every group of snapshots and, unless
/// [`RunMode::DryRun`](crate::RunMode), deletes the snapshots it does not keep. An empty policy is
/// refused: it would delete every snapshot. Under Object Lock, a
/// snapshot whose retention has not ended is kept and reported
/// ([`ForgetGroup::retained`]); a later run removes it.
pub(crate) async fn forget(
    repo: &Repository,
    policy: &Policy,
    mode: crate::RunMode,
) -> Result<ForgetReport> {
    let dry_run = mode.is_dry_run();
    if policy.is_empty() {
        return Err(Error::InvalidArgument(
            "no retention rule given: refusing to remove every snapshot".into(),
        ));
    }
    let snaps = repo.list_snapshots().await?;
    let groups = plan(&snaps, policy);
    let retained: HashMap<Id, SystemTime> = if lock_aware(repo).await? {
        let ids: Vec<Id> = groups
            .iter()
            .flat_map(|g| g.remove.iter().map(|e| e.id))
            .collect();
        let found = retained_until(repo, ids.iter().map(paths::snapshot).collect()).await?;
        ids.into_iter()
            .filter_map(|id| found.get(&paths::snapshot(&id)).map(|u| (id, *u)))
            .collect()
    } else {
        HashMap::new()
    };
    let (groups, retained) = hold_retained(groups, &retained);
    let report = ForgetReport {
        dry_run,
        groups,
        retained,
    };
    if !dry_run {
        for e in report.removed() {
            repo.store().delete(&paths::snapshot(&e.id)).await?;
        }
    }
    Ok(report)
}

/// Forgets one snapshot: deletes it after checking it exists and opens
/// with this repository's key (so a wrong id cannot delete anything
/// else). Returns false if it was already gone. Its data is freed by a
/// later `prune`.
pub(crate) async fn forget_snapshot(repo: &Repository, id: &Id) -> Result<bool> {
    match repo.load_snapshot(id).await {
        Ok(_) => {}
        Err(Error::Store(e)) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e),
    }
    repo.store().delete(&paths::snapshot(id)).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(n: u8) -> ForgetEntry {
        ForgetEntry {
            id: Id::from_bytes([n; 32]),
            time: i64::from(n),
            tags: Vec::new(),
            reasons: Vec::new(),
            retained_until: None,
        }
    }

    #[test]
    fn retained_snapshots_are_kept_with_their_dates_and_the_rest_removed() {
        let group = |remove: Vec<ForgetEntry>| ForgetGroup {
            group: GroupKey::Filesystem {
                host: "h".into(),
                paths: vec!["/".into()],
            },
            keep: vec![entry(9)],
            remove,
            retained: Vec::new(),
        };
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let retained = HashMap::from([(entry(2).id, t(500)), (entry(4).id, t(700))]);
        let (groups, total) = hold_retained(
            vec![
                group(vec![entry(1), entry(2)]),
                group(vec![entry(3), entry(4)]),
            ],
            &retained,
        );
        let ids = |v: &[ForgetEntry]| v.iter().map(|e| e.time).collect::<Vec<_>>();
        assert_eq!(ids(&groups[0].remove), [1]);
        assert_eq!(ids(&groups[0].retained), [2]);
        assert_eq!(groups[0].retained[0].retained_until, Some(500));
        assert_eq!(ids(&groups[1].remove), [3]);
        assert_eq!(ids(&groups[1].retained), [4]);
        assert_eq!(ids(&groups[1].keep), [9], "kept by the policy: untouched");
        assert_eq!(total.objects, 2);
        assert_eq!(
            (total.earliest_until, total.latest_until),
            (Some(500), Some(700))
        );
        let (none, total) = hold_retained(vec![group(vec![entry(1)])], &HashMap::new());
        assert_eq!(ids(&none[0].remove), [1]);
        assert_eq!(total, Retained::default());
    }
}
