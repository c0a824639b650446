//! The schedule reconciler as a function of observed state and time.

use super::*;
use crate::crd::RepositoryRef;

const T0: i64 = 1_704_067_200; // 2024-01-01 00:00 UTC
const H: i64 = 3600;

fn schedule(cron: &str, retention: Retention) -> ScheduleFacts {
    ScheduleFacts {
        namespace: "apps".into(),
        name: "nightly".into(),
        spec: BackupScheduleSpec {
            schedule: cron.into(),
            repository: RepositoryRef {
                name: "main".into(),
                namespace: None,
            },
            retention,
            ..Default::default()
        },
        created: T0,
        last_schedule: None,
        repository_namespace: "apps".into(),
        admin: false,
    }
}

fn claim(name: &str) -> (String, String) {
    ("apps".into(), name.into())
}

fn done(name: &str, pvc: &str, at: i64) -> BackupFacts {
    BackupFacts {
        name: name.into(),
        claim: claim(pvc),
        phase: Phase::Completed,
        scheduled: at,
        snapshot_id: Some(format!("snap-{name}")),
        completed: Some(at + 60),
        tags: vec![],
    }
}

#[test]
fn protection_counts_selected_claims_with_a_completed_backup() {
    let failed = BackupFacts {
        phase: Phase::Failed,
        completed: None,
        ..done("b-web", "web", T0 + 2 * H)
    };
    let backups = [
        done("b-db", "db", T0 + H),
        failed,
        done("b-gone", "gone", T0 + 3 * H),
    ];
    let p = plan(
        &schedule("0 * * * *", Retention::default()),
        &backups,
        &[claim("db"), claim("web"), claim("new")],
        T0 + 3 * H + 120,
    );
    assert_eq!(p.protected, "1/3", "a failed backup protects nothing");
    assert_eq!(
        p.unprotected,
        vec!["apps/web".to_owned(), "apps/new".to_owned()]
    );
    assert_eq!(
        p.last_success,
        Some(T0 + 3 * H + 60),
        "the newest completion, of a claim no longer selected too"
    );
}

#[test]
fn nothing_is_due_before_the_first_firing() {
    let p = plan(
        &schedule("0 * * * *", Retention::default()),
        &[],
        &[claim("db")],
        T0 + 10,
    );
    assert!(p.create.is_empty());
    assert_eq!(p.next_schedule, Some(T0 + H));
    assert_eq!(p.requeue_after, Some(H - 10));
    assert_eq!(p.summary, "no backups yet");
}

#[test]
fn one_backup_per_selected_claim_when_due() {
    let p = plan(
        &schedule("0 * * * *", Retention::default()),
        &[],
        &[claim("db"), claim("web")],
        T0 + H + 5,
    );
    assert_eq!(p.last_schedule, Some(T0 + H));
    let names: Vec<&str> = p.create.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        ["nightly-db-20240101-0100", "nightly-web-20240101-0100"]
    );
    assert!(p.create.iter().all(|b| b.scheduled == T0 + H));
}

#[test]
fn a_due_time_is_used_once() {
    let mut s = schedule("0 * * * *", Retention::default());
    s.last_schedule = Some(T0 + H);
    let p = plan(&s, &[], &[claim("db")], T0 + H + 30);
    assert!(p.create.is_empty());
    assert_eq!(p.last_schedule, None, "unchanged");
}

#[test]
fn paused_schedules_and_busy_claims_create_nothing() {
    let mut s = schedule("0 * * * *", Retention::default());
    s.spec.paused = true;
    assert!(plan(&s, &[], &[claim("db")], T0 + 2 * H).create.is_empty());
    s.spec.paused = false;
    let running = BackupFacts {
        phase: Phase::InProgress,
        ..done("nightly-db-20240101-0100", "db", T0 + H)
    };
    let p = plan(&s, &[running], &[claim("db"), claim("web")], T0 + 2 * H);
    assert_eq!(p.busy, ["apps/db"]);
    assert_eq!(p.create.len(), 1);
    assert_eq!(p.create[0].claim, claim("web"));
}

#[test]
fn retention_keeps_the_policy_per_claim_and_forgets_the_rest() {
    let r = Retention {
        keep_last: 2,
        ..Default::default()
    };
    let backups = vec![
        done("db-1", "db", T0 + H),
        done("db-2", "db", T0 + 2 * H),
        done("db-3", "db", T0 + 3 * H),
        done("web-1", "web", T0 + H),
        BackupFacts {
            phase: Phase::InProgress,
            ..done("db-4", "db", T0 + 4 * H)
        },
    ];
    let p = plan(&schedule("0 * * * *", r), &backups, &[], T0 + 4 * H + 1);
    assert_eq!(
        p.forget,
        vec![("db-1".to_owned(), Some("snap-db-1".to_owned()))]
    );
    assert_eq!(p.summary, "1 InProgress, 4 Completed");
}

#[test]
fn daily_retention_counts_days_by_due_time() {
    let r = Retention {
        keep_daily: 2,
        ..Default::default()
    };
    let backups = vec![
        done("d1-a", "db", T0 + H),
        done("d1-b", "db", T0 + 2 * H),
        done("d2", "db", T0 + 25 * H),
        done("d3", "db", T0 + 49 * H),
    ];
    let p = plan(&schedule("0 * * * *", r), &backups, &[], T0 + 50 * H);
    let mut gone: Vec<&str> = p.forget.iter().map(|(n, _)| n.as_str()).collect();
    gone.sort_unstable();
    assert_eq!(gone, ["d1-a", "d1-b"]);
}

#[test]
fn failed_backups_beyond_the_history_limit_are_deleted() {
    let r = Retention {
        keep_failed: Some(1),
        ..Default::default()
    };
    let failed = |n: &str, at| BackupFacts {
        phase: Phase::Failed,
        snapshot_id: None,
        ..done(n, "db", at)
    };
    let backups = vec![
        failed("f1", T0 + H),
        failed("f2", T0 + 2 * H),
        done("ok", "db", T0),
    ];
    let p = plan(&schedule("0 * * * *", r), &backups, &[], T0 + 3 * H);
    assert_eq!(p.delete, ["f1"]);
    assert!(
        p.forget.is_empty(),
        "no retention rule: every completed backup stays"
    );
}

#[test]
fn invalid_schedules_say_why() {
    let p = plan(
        &schedule("every day", Retention::default()),
        &[],
        &[claim("db")],
        T0,
    );
    assert!(p.invalid.expect("invalid").contains("five fields"));
    let bad = Retention {
        keep_within: Some("soon".into()),
        ..Default::default()
    };
    assert!(
        plan(&schedule("@daily", bad), &[], &[], T0)
            .invalid
            .is_some()
    );
    let mut s = schedule("@daily", Retention::default());
    s.spec.namespaces = vec!["other".into()];
    s.repository_namespace = "backup".into();
    let why = plan(&s, &[], &[], T0).invalid.expect("foreign namespaces");
    assert!(why.contains("not an administrator namespace"), "{why}");
}

#[test]
fn a_schedule_in_its_repositorys_namespace_selects_only_its_own_claims() {
    // Finding 2: a repository's namespace is not an administrator's.
    let mut s = schedule("@daily", Retention::default());
    s.spec.namespaces = vec!["billing".into()];
    assert_eq!(s.namespace, s.repository_namespace);
    let why = plan(&s, &[], &[], T0).invalid.expect("billing");
    assert!(why.contains("not an administrator namespace"), "{why}");
    s.admin = true;
    assert_eq!(plan(&s, &[], &[], T0).invalid, None);
}

#[test]
fn backup_names_are_valid_and_distinct_across_namespaces() {
    let a = backup_name("s", "ns", &("ns".into(), "db".into()), T0);
    assert_eq!(a, "s-db-20240101-0000");
    let b = backup_name("s", "ns", &("other".into(), "db".into()), T0);
    assert!(
        b.starts_with("s-other-db-") && b.ends_with("-20240101-0000"),
        "{b}"
    );
    let long = backup_name(&"s".repeat(200), "ns", &("ns".into(), "d".repeat(200)), T0);
    assert!(long.len() <= 253, "{}", long.len());
}
