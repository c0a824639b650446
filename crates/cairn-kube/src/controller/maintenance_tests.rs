use super::*;

/// 2026-11-30 10:00:00 UTC, a whole hour.
const T: i64 = 1_796_032_800;

fn policy(schedule: &str) -> Maintenance {
    Maintenance {
        schedule: schedule.into(),
        ..Default::default()
    }
}

fn facts(schedule: &str) -> Facts {
    Facts {
        policy: policy(schedule),
        unsupported: None,
        created: T - 7200 + 60,
        last_scheduled: None,
        recorded: None,
        jobs: vec![],
    }
}

fn job(name: &str, scheduled: i64, state: JobState) -> JobFacts {
    JobFacts {
        name: name.into(),
        scheduled,
        state,
    }
}

#[test]
fn the_clock_must_be_whole_hours() {
    assert_eq!(T % 3600, 0);
}

#[test]
fn a_due_run_starts_once_for_the_newest_due_time() {
    let f = facts("0 * * * *");
    let p = plan(&f, T + 30);
    assert_eq!(p.start, Some(T), "the missed T-1h run is not made up");
    assert_eq!(p.next, Some(T + 3600));
    assert_eq!(p.requeue_after, Some(3570));
    assert!(p.invalid.is_none() && p.record.is_none() && p.delete.is_empty());
}

#[test]
fn nothing_starts_before_the_first_due_time_after_creation() {
    let mut f = facts("0 * * * *");
    f.created = T + 10;
    assert_eq!(plan(&f, T + 30).start, None);
}

#[test]
fn a_started_time_is_never_started_again() {
    let mut f = facts("0 * * * *");
    f.jobs = vec![job("m-1", T, JobState::Succeeded)];
    assert_eq!(plan(&f, T + 30).start, None, "the Job exists");
    f.jobs.clear();
    f.last_scheduled = Some(T);
    assert_eq!(plan(&f, T + 30).start, None, "the status says it started");
}

#[test]
fn one_run_at_a_time_and_the_due_time_waits_for_it() {
    let mut f = facts("0 * * * *");
    f.last_scheduled = Some(T - 3600);
    f.jobs = vec![job("m-0", T - 3600, JobState::Active)];
    assert_eq!(plan(&f, T + 30).start, None, "the previous run still runs");
    f.jobs[0].state = JobState::Succeeded;
    assert_eq!(
        plan(&f, T + 90).start,
        Some(T),
        "starts once the previous one ends"
    );
}

#[test]
fn the_newest_finished_run_is_recorded_once() {
    let mut f = facts("0 * * * *");
    f.last_scheduled = Some(T);
    f.jobs = vec![
        job("m-old", T - 3600, JobState::Failed),
        job("m-new", T, JobState::Succeeded),
    ];
    let p = plan(&f, T + 30);
    assert_eq!(p.record, Some(job("m-new", T, JobState::Succeeded)));
    f.recorded = Some("m-new".into());
    assert_eq!(plan(&f, T + 30).record, None);
}

#[test]
fn a_finished_run_is_not_recorded_over_a_newer_one_in_progress() {
    let mut f = facts("0 * * * *");
    f.last_scheduled = Some(T);
    f.jobs = vec![
        job("m-old", T - 3600, JobState::Succeeded),
        job("m-new", T, JobState::Active),
    ];
    assert_eq!(plan(&f, T + 30).record, None);
}

#[test]
fn finished_jobs_beyond_the_newest_three_are_deleted_never_a_running_one() {
    let mut f = facts("0 * * * *");
    f.last_scheduled = Some(T);
    f.jobs = (0..6)
        .map(|i| job(&format!("m-{i}"), T - 3600 * (5 - i), JobState::Succeeded))
        .collect();
    f.jobs[0].state = JobState::Active;
    let p = plan(&f, T + 30);
    // Newest first: m-5, m-4, m-3 stay; m-0 still runs.
    assert_eq!(p.delete, vec!["m-2".to_owned(), "m-1".to_owned()]);
}

#[test]
fn a_suspended_policy_starts_nothing_but_still_records_and_cleans() {
    let mut f = facts("0 * * * *");
    f.policy.suspend = true;
    f.jobs = vec![job("m-0", T - 3600, JobState::Failed)];
    let p = plan(&f, T + 30);
    assert_eq!(p.start, None);
    assert_eq!(p.record, Some(job("m-0", T - 3600, JobState::Failed)));
    assert_eq!(p.next, Some(T + 3600));
}

#[test]
fn invalid_policies_start_nothing_and_say_why() {
    type Change = fn(&mut Maintenance);
    let cases: &[(&str, Change, &str)] = &[
        ("cron", |p| p.schedule = "every day".into(), "five fields"),
        ("grace", |p| p.prune_grace = Some("30m".into()), "below 1h"),
        (
            "grace unit",
            |p| p.prune_grace = Some("2w".into()),
            "use s, m, h or d",
        ),
        (
            "subset",
            |p| p.read_data_subset = Some("0%".into()),
            "readDataSubset",
        ),
        (
            "deadline",
            |p| p.active_deadline_seconds = Some(0),
            "positive",
        ),
    ];
    for (what, change, says) in cases {
        let mut f = facts("0 * * * *");
        change(&mut f.policy);
        let p = plan(&f, T + 30);
        assert_eq!(p.start, None, "{what}");
        let why = p.invalid.unwrap_or_default();
        assert!(why.contains(says), "{what}: {why:?} should say {says:?}");
    }
}

#[test]
fn a_repository_no_job_can_reach_is_invalid_however_good_the_policy() {
    let mut f = facts("0 * * * *");
    f.unsupported = Some("a local path".into());
    let p = plan(&f, T + 30);
    assert_eq!(p.start, None);
    assert_eq!(p.invalid.as_deref(), Some("a local path"));
}

#[test]
fn grace_defaults_to_a_day_and_accepts_longer() {
    assert_eq!(grace_secs(&policy("@daily")), Ok(DEFAULT_GRACE_SECS));
    let mut p = policy("@daily");
    p.prune_grace = Some("2d".into());
    assert_eq!(grace_secs(&p), Ok(2 * 86_400));
    p.prune_grace = Some("1h".into());
    assert_eq!(grace_secs(&p), Ok(3600));
}
