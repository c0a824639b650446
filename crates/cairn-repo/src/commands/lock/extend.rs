//! `cairn lock extend`: keeps what the repository needs retained.
//!
//! Every object still in use whose retention ends in less than half the
//! period gets `now + period`: the config, every key file and settings
//! object, the index files in force (not superseded) and every pack they
//! list that still holds a blob no tombstone covers. Run more often than
//! half the period, it keeps all of them retained at all times.
//!
//! Two kinds of object are deliberately not extended, or prune and forget
//! could never delete anything (their retention would move ahead of every
//! run): a pack whose every copy a tombstone covers, and an index file
//! another supersedes, are on their way out; and a snapshot keeps the
//! retention it got when written (extend only locks a snapshot that never
//! had one), so `forget` can remove it once that ends. The newest
//! snapshots, those younger than the period, are thus always retained, with
//! everything they need.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use cairn_core::Id;
use cairn_core::format::IndexFile;
use cairn_store::{RetentionState, StoreError};
use futures::StreamExt;

use super::{LOCK_CONCURRENCY, secs};
use crate::{Error, Repository, Result, paths};

/// How an object's retention is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockRule {
    /// Extended whenever less than half the period is left.
    Extend,
    /// Locked once, if it never was (snapshots).
    Once,
}

/// The retention `rule` gives an object whose retention ends at `current`
/// (`None`: it has none), at `now`; `None` leaves it as it is. Never
/// earlier than `current`: S3 refuses to shorten a compliance retention,
/// and a governance one must not be shortened either.
pub(crate) fn new_retention(
    rule: LockRule,
    current: Option<SystemTime>,
    now: SystemTime,
    period: Duration,
) -> Option<SystemTime> {
    match (rule, current) {
        (LockRule::Once, Some(_)) => None,
        (LockRule::Once, None) => Some(now + period),
        (LockRule::Extend, Some(until)) if until >= now + period / 2 => None,
        (LockRule::Extend, _) => Some(now + period),
    }
}

/// The mode an extension asks for: S3 does not let a compliance retention
/// become a governance one, so such an object keeps compliance.
fn mode_for<'a>(current: Option<&'a str>, setting: &'a str) -> &'a str {
    match current {
        Some(m @ "COMPLIANCE") => m,
        _ => setting,
    }
}

/// The index files in force and the packs extend keeps retained.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Targets {
    /// Index files no other file supersedes, sorted.
    pub(crate) index_files: Vec<Id>,
    /// Packs they list that hold a copy no tombstone covers, sorted.
    pub(crate) packs: Vec<Id>,
}

/// Decides [`Targets`] from every index file. A tombstone created at T
/// covers the copies listed by files created at or before T (the rule
/// prune deletes by), so a pack whose every entry is covered is only
/// waiting for prune.
pub(crate) fn extend_targets(files: &[(Id, IndexFile)]) -> Targets {
    let superseded: HashSet<Id> = files
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let live: Vec<&(Id, IndexFile)> = files
        .iter()
        .filter(|(id, _)| !superseded.contains(id))
        .collect();
    let mut tombstoned: HashMap<Id, i64> = HashMap::new();
    // Each pack's newest listing time.
    let mut listed: HashMap<Id, i64> = HashMap::new();
    for (_, f) in &live {
        for t in &f.tombstones {
            let newest = tombstoned.entry(*t).or_insert(f.created);
            *newest = (*newest).max(f.created);
        }
        for p in &f.packs {
            let newest = listed.entry(p.pack).or_insert(f.created);
            *newest = (*newest).max(f.created);
        }
    }
    // Packs listed with no entries at all, and packs with a copy no
    // tombstone covers.
    let mut empty: HashSet<Id> = listed.keys().copied().collect();
    let mut uncovered: HashSet<Id> = HashSet::new();
    for (_, f) in &live {
        for p in &f.packs {
            let at = listed.get(&p.pack).copied().unwrap_or(i64::MIN);
            if !p.blobs.is_empty() {
                empty.remove(&p.pack);
            }
            if p.blobs
                .iter()
                .any(|e| tombstoned.get(&e.id).is_none_or(|&t| t < at))
            {
                uncovered.insert(p.pack);
            }
        }
    }
    let mut packs: Vec<Id> = empty.union(&uncovered).copied().collect();
    packs.sort();
    let mut index_files: Vec<Id> = live.iter().map(|(id, _)| *id).collect();
    index_files.sort();
    Targets { index_files, packs }
}

/// What `lock extend` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExtendReport {
    /// Objects whose retention was read.
    pub checked: usize,
    /// Objects given `now + period`.
    pub extended: usize,
    /// Objects listed (or listed by an index file) but gone when asked.
    pub missing: usize,
    /// Snapshots whose retention has ended: `forget` may remove them.
    pub snapshots_unretained: usize,
    /// The earliest retention left on an object extend keeps (seconds
    /// since the epoch): the next run must come before it.
    pub earliest_until: Option<i64>,
    /// Objects whose retention could not be read or set.
    pub failed: usize,
    /// The first few of those failures.
    pub errors: Vec<String>,
    /// Index files that could not be read: not knowing which packs they
    /// list, extend kept every pack (`cairn repair index` rebuilds them).
    pub damaged_index_files: usize,
}

/// Progress of a run, after each object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtendProgress {
    /// Objects to look at.
    pub total: usize,
    /// Looked at so far.
    pub checked: usize,
    /// Extended so far.
    pub extended: usize,
}

/// Failures a report names at most.
const MAX_ERRORS: usize = 10;

/// The outcome for one object.
enum Outcome {
    Missing,
    Kept(Option<SystemTime>),
    Extended(SystemTime),
    Failed(String),
}

/// Extends the retention of everything the repository needs (see the
/// module docs), `LOCK_CONCURRENCY` objects at a time, calling
/// `progress` after each. Refuses a repository without a lock setting.
/// An object that cannot be extended is counted and named in the
/// report; the run goes on.
pub(crate) async fn extend_locks(
    repo: &Repository,
    progress: &(dyn Fn(ExtendProgress) + Send + Sync),
) -> Result<ExtendReport> {
    let Some(lock) = repo.settings().and_then(|s| s.lock) else {
        return Err(Error::InvalidArgument(format!(
            "{} has no object lock setting (`cairn settings --object-lock MODE \
             --lock-days N` sets one)",
            repo.store().describe()
        )));
    };
    let period = Duration::from_secs(lock.seconds);
    let (objects, damaged) = objects_to_keep(repo).await?;
    let mut report = ExtendReport {
        damaged_index_files: damaged,
        ..ExtendReport::default()
    };
    let mut p = ExtendProgress {
        total: objects.len(),
        ..ExtendProgress::default()
    };
    let now = SystemTime::now();
    let mode = lock.mode.s3_name();
    let mut results = futures::stream::iter(objects)
        .map(|(path, rule)| async move {
            let outcome = keep_retained(repo, &path, rule, mode, now, period).await;
            (path, rule, outcome)
        })
        .buffer_unordered(LOCK_CONCURRENCY);
    while let Some((path, rule, outcome)) = results.next().await {
        report.checked += 1;
        let until = match outcome {
            Outcome::Missing => {
                report.missing += 1;
                None
            }
            Outcome::Kept(until) => until,
            Outcome::Extended(until) => {
                report.extended += 1;
                Some(until)
            }
            Outcome::Failed(e) => {
                report.failed += 1;
                if report.errors.len() < MAX_ERRORS {
                    report.errors.push(format!("{path}: {e}"));
                }
                None
            }
        };
        match (rule, until) {
            (LockRule::Once, Some(u)) if u <= now => report.snapshots_unretained += 1,
            (LockRule::Extend, Some(u)) => {
                let t = secs(u);
                report.earliest_until = Some(report.earliest_until.map_or(t, |e| e.min(t)));
            }
            _ => {}
        }
        p.checked = report.checked;
        p.extended = report.extended;
        progress(p);
    }
    Ok(report)
}

/// Every object extend looks at, with its rule: the config, key files,
/// settings objects, snapshots, and the [`Targets`] of the index.
/// Also returns how many index files could not be read.
async fn objects_to_keep(repo: &Repository) -> Result<(Vec<(String, LockRule)>, usize)> {
    let mut out = vec![(paths::CONFIG.to_owned(), LockRule::Extend)];
    for (folder, rule) in [
        (paths::KEYS, LockRule::Extend),
        (paths::SETTINGS, LockRule::Extend),
        (paths::SNAPSHOTS, LockRule::Once),
    ] {
        for id in repo.list_ids(folder).await? {
            out.push((format!("{folder}/{id}"), rule));
        }
    }
    let mut files = Vec::new();
    repo.for_each_index_file(&HashSet::new(), true, |id, f| {
        files.push((id, f));
        Ok(())
    })
    .await?;
    let mut targets = extend_targets(&files);
    let listed: HashSet<Id> = repo.list_packs().await?.into_keys().collect();
    // An index file that does not open may list any pack, live or not:
    // keep every pack, and the file itself, until `repair index`.
    let damaged: Vec<String> = repo
        .damaged()
        .into_iter()
        .map(|d| d.object)
        .filter(|o| o.starts_with("index/"))
        .collect();
    if !damaged.is_empty() {
        targets.packs = listed.iter().copied().collect();
    }
    let index = targets
        .index_files
        .iter()
        .map(paths::index)
        .chain(damaged.iter().cloned());
    out.extend(index.map(|p| (p, LockRule::Extend)));
    // A pack the index lists but `data/` lacks is check's business.
    out.extend(
        targets
            .packs
            .iter()
            .filter(|p| listed.contains(p))
            .map(|p| (paths::pack(p), LockRule::Extend)),
    );
    Ok((out, damaged.len()))
}

async fn keep_retained(
    repo: &Repository,
    path: &str,
    rule: LockRule,
    mode: &str,
    now: SystemTime,
    period: Duration,
) -> Outcome {
    let current: Option<RetentionState> = match repo.store().retention(path).await {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return Outcome::Missing,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let until = current.as_ref().map(|r| r.until);
    let Some(new) = new_retention(rule, until, now, period) else {
        return Outcome::Kept(until);
    };
    let mode = mode_for(current.as_ref().map(|r| r.mode.as_str()), mode);
    match repo.store().set_retention(path, mode, new).await {
        Ok(()) => Outcome::Extended(new),
        // Deleted meanwhile (the current version is a delete marker, or
        // nothing): nothing left to keep.
        Err(StoreError::NotFound { .. }) => Outcome::Missing,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::Kind;
    use cairn_core::format::{IndexPack, PackEntry};

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn retention_is_extended_when_less_than_half_the_period_is_left() {
        let (now, period) = (t(1000), Duration::from_secs(100));
        let cases = [
            // (rule, current, expected)
            (LockRule::Extend, None, Some(t(1100))),
            (LockRule::Extend, Some(t(900)), Some(t(1100))),
            (LockRule::Extend, Some(t(1049)), Some(t(1100))),
            (LockRule::Extend, Some(t(1050)), None),
            (LockRule::Extend, Some(t(5000)), None),
            (LockRule::Once, None, Some(t(1100))),
            (LockRule::Once, Some(t(900)), None),
            (LockRule::Once, Some(t(1010)), None),
        ];
        for (rule, current, expected) in cases {
            let got = new_retention(rule, current, now, period);
            assert_eq!(got, expected, "{rule:?} {current:?}");
            if let (Some(g), Some(c)) = (got, current) {
                assert!(g > c, "never shortens");
            }
        }
    }

    #[test]
    fn a_compliance_retention_stays_compliance() {
        assert_eq!(mode_for(Some("COMPLIANCE"), "GOVERNANCE"), "COMPLIANCE");
        assert_eq!(mode_for(Some("GOVERNANCE"), "COMPLIANCE"), "COMPLIANCE");
        assert_eq!(mode_for(Some("GOVERNANCE"), "GOVERNANCE"), "GOVERNANCE");
        assert_eq!(mode_for(None, "GOVERNANCE"), "GOVERNANCE");
    }

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 32])
    }

    fn file(
        created: i64,
        packs: &[(u8, &[u8])],
        tombstones: &[u8],
        supersedes: &[u8],
    ) -> IndexFile {
        IndexFile {
            session: id(0),
            created,
            packs: packs
                .iter()
                .map(|(p, blobs)| IndexPack {
                    pack: id(*p),
                    blobs: blobs
                        .iter()
                        .map(|b| PackEntry {
                            kind: Kind::Data,
                            id: id(*b),
                            offset: u32::from(*b),
                            length: 1,
                            raw_length: 1,
                        })
                        .collect(),
                })
                .collect(),
            tombstones: tombstones.iter().map(|t| id(*t)).collect(),
            supersedes: supersedes.iter().map(|s| id(*s)).collect(),
        }
    }

    #[test]
    fn extend_keeps_files_in_force_and_packs_with_a_live_copy() {
        let files = [
            // Superseded by 51: neither it nor the pack only it lists.
            (id(50), file(10, &[(100, &[1]), (109, &[9])], &[], &[])),
            (
                id(51),
                file(20, &[(100, &[1]), (101, &[2, 3]), (102, &[4])], &[], &[50]),
            ),
            // Tombstones at 30 cover 2, 3 and 4 as listed at 20 ...
            (id(60), file(30, &[], &[2, 3, 4], &[])),
            // ... but 4 was stored again after them, in pack 103 (and 102
            // is listed again at 40, after the tombstone).
            (id(61), file(40, &[(103, &[4]), (102, &[4])], &[], &[])),
            // A tombstone older than the listing covers nothing.
            (id(62), file(5, &[], &[1], &[])),
        ];
        let got = extend_targets(&files);
        assert_eq!(got.index_files, vec![id(51), id(60), id(61), id(62)]);
        // 101: every copy covered (2 and 3 at 30 >= 20): left to prune.
        assert_eq!(got.packs, vec![id(100), id(102), id(103)]);
    }
}
