//! Scheduled repository maintenance, decided: given a repository's policy,
//! what its status recorded and the maintenance Jobs that exist, which Job
//! to start, which finished run to record and which old Jobs to delete.
//! [`super::maintenance_jobs`] observes and applies.

use super::cron::Cron;
use crate::crd::Maintenance;

/// Finished Jobs kept per repository (their pods hold the reports).
pub const KEEP_JOBS: usize = 3;
/// The shortest prune grace a policy may ask for.
pub const MIN_GRACE_SECS: i64 = 3600;
pub use crate::maintain::DEFAULT_GRACE_SECS;

/// Where a maintenance Job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Not finished yet.
    Active,
    /// Its pod exited 0.
    Succeeded,
    /// Its pod failed, or the Job hit its deadline.
    Failed,
}

/// A maintenance Job of the repository, as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFacts {
    /// The Job's name.
    pub name: String,
    /// The due time it was started for.
    pub scheduled: i64,
    /// Where it stands.
    pub state: JobState,
}

/// What the controller knows before deciding.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The policy.
    pub policy: Maintenance,
    /// Why the repository cannot be maintained by a Job, if so.
    pub unsupported: Option<String>,
    /// When the repository object was made (due times count from there).
    pub created: i64,
    /// The due time of the last run started (status).
    pub last_scheduled: Option<i64>,
    /// The Job whose outcome the status holds (status `job` with a final
    /// phase).
    pub recorded: Option<String>,
    /// The repository's maintenance Jobs.
    pub jobs: Vec<JobFacts>,
}

/// What to do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Start a Job for this due time.
    pub start: Option<i64>,
    /// Record the outcome of this finished Job.
    pub record: Option<JobFacts>,
    /// Delete these finished Jobs (older than the newest [`KEEP_JOBS`]).
    pub delete: Vec<String>,
    /// The next due time.
    pub next: Option<i64>,
    /// Look again after this many seconds.
    pub requeue_after: Option<i64>,
    /// Why the policy cannot run.
    pub invalid: Option<String>,
}

/// Parses a prune grace (`24h`, `90m`, `2d`) into seconds, refusing less
/// than [`MIN_GRACE_SECS`].
pub fn grace_secs(policy: &Maintenance) -> Result<i64, String> {
    let Some(g) = policy.prune_grace.as_deref() else {
        return Ok(DEFAULT_GRACE_SECS);
    };
    let g = g.trim();
    let (num, unit) = g.split_at(g.find(|c: char| !c.is_ascii_digit()).unwrap_or(g.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("pruneGrace {g:?} is not a duration like 24h or 90m"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("pruneGrace {g:?}: use s, m, h or d")),
    };
    let secs = n.saturating_mul(mult);
    if secs < MIN_GRACE_SECS {
        return Err(format!(
            "pruneGrace {g:?} is below 1h: clocks and listings of different hosts must not be able to race a deletion"
        ));
    }
    Ok(secs)
}

/// Checks what a run cannot start without.
fn validate(policy: &Maintenance) -> Result<Cron, String> {
    let cron = Cron::parse(&policy.schedule)?;
    grace_secs(policy)?;
    if let Some(s) = &policy.read_data_subset {
        if cairn::ReadData::parse_subset(s).is_none() {
            return Err(format!(
                "readDataSubset {s:?} is not a share like 5% or 1/7"
            ));
        }
    }
    if policy.active_deadline_seconds.is_some_and(|d| d <= 0) {
        return Err("activeDeadlineSeconds must be positive".into());
    }
    Ok(cron)
}

/// Decides. Pure: the same facts and time give the same plan.
pub fn plan(facts: &Facts, now: i64) -> Plan {
    let mut plan = Plan::default();
    let mut jobs = facts.jobs.clone();
    jobs.sort_by(|a, b| (b.scheduled, &b.name).cmp(&(a.scheduled, &a.name)));
    let finished: Vec<&JobFacts> = jobs
        .iter()
        .filter(|j| j.state != JobState::Active)
        .collect();
    plan.delete = finished
        .iter()
        .skip(KEEP_JOBS)
        .map(|j| j.name.clone())
        .collect();
    // The newest finished run, unless the status holds it already or a
    // newer run is under way.
    let newest = jobs.first();
    if let Some(j) = newest.filter(|j| j.state != JobState::Active) {
        if facts.recorded.as_deref() != Some(j.name.as_str()) {
            plan.record = Some((*j).clone());
        }
    }
    let valid = match &facts.unsupported {
        Some(why) => Err(why.clone()),
        None => validate(&facts.policy),
    };
    let cron = match valid {
        Ok(c) => c,
        Err(why) => {
            plan.invalid = Some(why);
            return plan;
        }
    };
    plan.next = cron.next_after(now);
    plan.requeue_after = plan.next.map(|t| (t - now).max(1));
    if facts.policy.suspend {
        return plan;
    }
    let since = facts.last_scheduled.unwrap_or(facts.created);
    let due = cron.last_due(since, now);
    let running = jobs.iter().any(|j| j.state == JobState::Active);
    let started = |t: i64| jobs.iter().any(|j| j.scheduled == t);
    // One run at a time: a time that falls due meanwhile starts once the
    // run ends (the status's last due time stays behind it until then).
    plan.start = due.filter(|t| !running && !started(*t));
    plan
}

#[cfg(test)]
#[path = "maintenance_tests.rs"]
mod tests;
