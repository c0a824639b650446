//! The schedule reconciler as a pure function: which VolumeBackups are due,
//! which old ones retention removes, and when to look again.

use std::collections::BTreeMap;

use cairn::retention::{self, Candidate, Policy, Span};

use super::cron::Cron;
use crate::crd::{BackupScheduleSpec, Phase, Retention};
use crate::names::bounded;

/// What the planner knows about the schedule.
#[derive(Clone, Debug, Default)]
pub struct ScheduleFacts {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its spec.
    pub spec: BackupScheduleSpec,
    /// When it was created (seconds).
    pub created: i64,
    /// `status.lastScheduleTime` (seconds).
    pub last_schedule: Option<i64>,
    /// The namespace of its repository.
    pub repository_namespace: String,
    /// Whether its namespace is an administrator namespace.
    pub admin: bool,
}

/// One VolumeBackup the schedule made.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackupFacts {
    /// Its name.
    pub name: String,
    /// (namespace, name) of its claim.
    pub claim: (String, String),
    /// Its phase.
    pub phase: Phase,
    /// When it was due (seconds).
    pub scheduled: i64,
    /// Its snapshot, once completed.
    pub snapshot_id: Option<String>,
    /// When it completed (seconds), if it did.
    pub completed: Option<i64>,
    /// Its tags.
    pub tags: Vec<String>,
}

/// A backup to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBackup {
    /// Object name.
    pub name: String,
    /// (namespace, name) of the claim.
    pub claim: (String, String),
    /// When it was due.
    pub scheduled: i64,
}

/// Everything the executor does for one schedule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Why the schedule cannot run (phase Invalid), if so.
    pub invalid: Option<String>,
    /// Backups to create.
    pub create: Vec<NewBackup>,
    /// New `lastScheduleTime`.
    pub last_schedule: Option<i64>,
    /// New `nextScheduleTime`.
    pub next_schedule: Option<i64>,
    /// Completed backups retention drops: (name, snapshot id to forget).
    pub forget: Vec<(String, Option<String>)>,
    /// Failed or canceled backups past the history limit.
    pub delete: Vec<String>,
    /// Claims skipped because their previous backup is still running.
    pub busy: Vec<String>,
    /// Backups by phase, for people.
    pub summary: String,
    /// Selected claims with a completed backup, of all selected: `2/3`.
    pub protected: String,
    /// Selected claims with no completed backup yet (`namespace/name`).
    pub unprotected: Vec<String>,
    /// When the newest completed backup completed.
    pub last_success: Option<i64>,
    /// Seconds until the next look (the next firing, capped by the caller).
    pub requeue_after: Option<i64>,
}

/// The retention policy of a schedule, in the engine's terms.
pub fn policy(r: &Retention) -> Result<Policy, String> {
    let within = match &r.keep_within {
        Some(s) => Some(Span::parse(s).ok_or_else(|| {
            format!("retention.keepWithin {s:?} is not a span like 1y6m, 14d or 36h")
        })?),
        None => None,
    };
    Ok(Policy {
        last: r.keep_last,
        hourly: r.keep_hourly,
        daily: r.keep_daily,
        weekly: r.keep_weekly,
        monthly: r.keep_monthly,
        yearly: r.keep_yearly,
        within,
        tags: r.keep_tags.clone(),
    })
}

/// Plans one reconcile of a schedule at time `now`, given the backups it
/// made and the claims its selector matches now.
pub fn plan(
    s: &ScheduleFacts,
    backups: &[BackupFacts],
    claims: &[(String, String)],
    now: i64,
) -> Plan {
    let mut out = Plan {
        summary: summary(backups),
        last_success: backups
            .iter()
            .filter(|b| b.phase == Phase::Completed)
            .filter_map(|b| b.completed)
            .max(),
        ..Default::default()
    };
    out.unprotected = claims
        .iter()
        .filter(|c| {
            !backups
                .iter()
                .any(|b| &b.claim == *c && b.phase == Phase::Completed)
        })
        .map(|(ns, name)| format!("{ns}/{name}"))
        .collect();
    out.protected = format!("{}/{}", claims.len() - out.unprotected.len(), claims.len());
    let cron = match Cron::parse(&s.spec.schedule) {
        Ok(c) => c,
        Err(e) => {
            out.invalid = Some(e);
            return out;
        }
    };
    let policy = match policy(&s.spec.retention) {
        Ok(p) => p,
        Err(e) => {
            out.invalid = Some(e);
            return out;
        }
    };
    let foreign = s.spec.namespaces.iter().any(|n| n != &s.namespace);
    if foreign && !s.admin {
        out.invalid = Some(format!(
            "namespace {} is not an administrator namespace: only a schedule in one may select \
             claims of other namespaces",
            s.namespace
        ));
        return out;
    }
    out.next_schedule = cron.next_after(now);
    out.requeue_after = out.next_schedule.map(|t| (t - now).max(1));

    let since = s.last_schedule.unwrap_or(s.created);
    if let Some(due) = cron.last_due(since, now).filter(|_| !s.spec.paused) {
        out.last_schedule = Some(due);
        for claim in claims {
            let running = backups
                .iter()
                .any(|b| &b.claim == claim && !b.phase.is_terminal());
            if running {
                out.busy.push(format!("{}/{}", claim.0, claim.1));
                continue;
            }
            out.create.push(NewBackup {
                name: backup_name(&s.name, &s.namespace, claim, due),
                claim: claim.clone(),
                scheduled: due,
            });
        }
    }
    retain(
        &policy,
        s.spec.retention.keep_failed.unwrap_or(3),
        backups,
        &mut out,
    );
    out
}

/// Retention per claim: the policy over completed backups, a count over
/// failed and canceled ones; running ones are never touched.
fn retain(policy: &Policy, keep_failed: u32, backups: &[BackupFacts], out: &mut Plan) {
    let mut by_claim: BTreeMap<&(String, String), Vec<&BackupFacts>> = BTreeMap::new();
    for b in backups {
        by_claim.entry(&b.claim).or_default().push(b);
    }
    for (_, mut group) in by_claim {
        // Newest first, ties by name: the order retention expects.
        group.sort_by(|a, b| b.scheduled.cmp(&a.scheduled).then(a.name.cmp(&b.name)));
        let completed: Vec<&&BackupFacts> = group
            .iter()
            .filter(|b| b.phase == Phase::Completed)
            .collect();
        if !policy.is_empty() {
            let candidates: Vec<Candidate> = completed
                .iter()
                .map(|b| Candidate {
                    time: b.scheduled,
                    tags: b.tags.clone(),
                })
                .collect();
            for (b, reasons) in completed.iter().zip(retention::apply(&candidates, policy)) {
                if reasons.is_empty() {
                    out.forget.push((b.name.clone(), b.snapshot_id.clone()));
                }
            }
        }
        out.delete.extend(
            group
                .iter()
                .filter(|b| matches!(b.phase, Phase::Failed | Phase::Canceled))
                .skip(keep_failed as usize)
                .map(|b| b.name.clone()),
        );
    }
}

/// `3 Completed, 1 InProgress`.
fn summary(backups: &[BackupFacts]) -> String {
    let mut counts: BTreeMap<usize, (Phase, usize)> = BTreeMap::new();
    for b in backups {
        let i = Phase::ALL.iter().position(|p| *p == b.phase).unwrap_or(0);
        counts.entry(i).or_insert((b.phase, 0)).1 += 1;
    }
    let parts: Vec<String> = counts.values().map(|(p, n)| format!("{n} {p}")).collect();
    if parts.is_empty() {
        "no backups yet".to_owned()
    } else {
        parts.join(", ")
    }
}

/// `<schedule>-<claim>-<yyyymmdd-hhmm>`, with the claim's namespace hashed
/// in when it is not the schedule's, cut to a valid name length.
pub fn backup_name(schedule: &str, ns: &str, claim: &(String, String), due: i64) -> String {
    let when = chrono::DateTime::<chrono::Utc>::from_timestamp(due, 0)
        .map(|t| t.format("%Y%m%d-%H%M").to_string())
        .unwrap_or_else(|| due.to_string());
    let base = if claim.0 == ns {
        format!("{schedule}-{}", claim.1)
    } else {
        let h = blake3::hash(format!("{}/{}", claim.0, claim.1).as_bytes()).to_hex();
        format!("{schedule}-{}-{}-{}", claim.0, claim.1, &h[..6])
    };
    format!("{}-{when}", bounded(&base, 253 - when.len() - 1))
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
