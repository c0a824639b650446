//! Retention policies against a table of expected kept snapshots, modelled
//! on restic's documented `forget` examples (its test data uses the same
//! kind of irregular history: several snapshots some days, gaps of weeks).

use cairn_core::Id;
use cairn_core::format::{RootLayout, Snapshot, SnapshotStats, Source, Timestamp};
use cairn_repo::retention::{Candidate, Policy, Span, apply, days_from_civil};
use cairn_repo::{GroupKey, plan_forget};

fn at(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s
}

/// Newest first, so a case's expected indices read top down.
fn history() -> Vec<Candidate> {
    let t = [
        at(2016, 1, 18, 12, 2, 3),    // 0
        at(2016, 1, 12, 21, 8, 3),    // 1
        at(2016, 1, 12, 21, 2, 3),    // 2
        at(2016, 1, 9, 21, 2, 3),     // 3
        at(2016, 1, 8, 20, 2, 3),     // 4
        at(2016, 1, 7, 10, 2, 3),     // 5
        at(2016, 1, 6, 8, 2, 3),      // 6
        at(2016, 1, 5, 9, 2, 3),      // 7
        at(2016, 1, 4, 16, 23, 3),    // 8
        at(2016, 1, 4, 12, 30, 3),    // 9
        at(2016, 1, 4, 12, 28, 3),    // 10
        at(2016, 1, 4, 12, 23, 3),    // 11
        at(2016, 1, 3, 7, 2, 3),      // 12 (ISO week 53 of 2015)
        at(2016, 1, 1, 7, 8, 3),      // 13
        at(2016, 1, 1, 1, 3, 3),      // 14
        at(2015, 11, 22, 10, 20, 30), // 15
        at(2015, 11, 21, 10, 20, 30), // 16
        at(2015, 10, 22, 10, 20, 30), // 17
        at(2015, 9, 22, 10, 20, 30),  // 18
        at(2015, 8, 22, 10, 20, 30),  // 19
        at(2014, 11, 22, 10, 20, 30), // 20
    ];
    t.iter()
        .enumerate()
        .map(|(i, &time)| Candidate {
            time,
            tags: if i == 20 { vec!["foo".into()] } else { vec![] },
        })
        .collect()
}

fn span(s: &str) -> Option<Span> {
    Some(Span::parse(s).expect("valid span"))
}

#[test]
fn retention_table_keeps_what_restic_would() {
    let p = Policy::default;
    let cases: Vec<(&str, Policy, Vec<usize>)> = vec![
        ("last 3", Policy { last: 3, ..p() }, vec![0, 1, 2]),
        // Two snapshots in the 21h hour of 12 January count once.
        ("hourly 3", Policy { hourly: 3, ..p() }, vec![0, 1, 3]),
        ("daily 5", Policy { daily: 5, ..p() }, vec![0, 1, 3, 4, 5]),
        // 9 Jan is in ISO week 1 of 2016, 3 Jan in week 53 of 2015.
        ("weekly 4", Policy { weekly: 4, ..p() }, vec![0, 1, 3, 12]),
        ("monthly 3", Policy { monthly: 3, ..p() }, vec![0, 15, 17]),
        // Only three years have snapshots: the oldest is kept as well.
        ("yearly 10", Policy { yearly: 10, ..p() }, vec![0, 15, 20]),
        (
            "daily 30 (more days than the history has)",
            Policy { daily: 30, ..p() },
            vec![0, 1, 3, 4, 5, 6, 7, 8, 12, 13, 15, 16, 17, 18, 19, 20],
        ),
        (
            "within 2d",
            Policy {
                within: span("2d"),
                ..p()
            },
            vec![0],
        ),
        (
            "within 6d",
            Policy {
                within: span("6d"),
                ..p()
            },
            vec![0, 1, 2],
        ),
        (
            "within 1m (calendar month back from the newest)",
            Policy {
                within: span("1m"),
                ..p()
            },
            (0..=14).collect(),
        ),
        (
            "tag foo",
            Policy {
                tags: vec!["foo".into()],
                ..p()
            },
            vec![20],
        ),
        (
            "last 2, daily 2, monthly 2, tag foo",
            Policy {
                last: 2,
                daily: 2,
                monthly: 2,
                tags: vec!["foo".into()],
                ..p()
            },
            vec![0, 1, 15, 20],
        ),
        (
            "daily 7, weekly 5, monthly 12, yearly 75 (restic's example)",
            Policy {
                daily: 7,
                weekly: 5,
                monthly: 12,
                yearly: 75,
                ..p()
            },
            vec![0, 1, 3, 4, 5, 6, 7, 12, 15, 17, 18, 19, 20],
        ),
    ];
    let snaps = history();
    for (name, policy, expected) in cases {
        let reasons = apply(&snaps, &policy);
        let kept: Vec<usize> = (0..snaps.len())
            .filter(|&i| !reasons[i].is_empty())
            .collect();
        assert_eq!(kept, expected, "case {name}: reasons {reasons:?}");
    }
}

#[test]
fn every_reason_is_listed() {
    let snaps = history();
    let policy = Policy {
        last: 1,
        daily: 1,
        yearly: 10,
        tags: vec!["foo".into()],
        ..Policy::default()
    };
    let r = apply(&snaps, &policy);
    assert_eq!(
        r[0],
        ["last snapshot", "daily snapshot", "yearly snapshot"].map(String::from)
    );
    assert_eq!(
        r[20],
        ["yearly snapshot", "oldest yearly snapshot", "tagged foo"].map(String::from)
    );
    assert!(apply(&[], &policy).is_empty());
}

fn snapshot(host: &str, path: &str, source: Source, time: i64) -> Snapshot {
    Snapshot {
        time: Timestamp {
            secs: time,
            nanos: 0,
        },
        tree: Id::default(),
        hostname: host.into(),
        username: "u".into(),
        paths: vec![path.as_bytes().to_vec()],
        root_layout: RootLayout::Directory,
        source,
        tags: vec![],
        parent: None,
        stats: SnapshotStats::default(),
        program_version: "test".into(),
    }
}

#[test]
fn policies_apply_per_source_group() {
    let vol = |ns: &str| Source::KubernetesVolume {
        cluster: "c".into(),
        namespace: ns.into(),
        name: "data".into(),
    };
    let mut snaps = Vec::new();
    for i in 0..3u8 {
        let t = 1_700_000_000 + i64::from(i) * 3600;
        snaps.push((
            Id::from_bytes([i; 32]),
            snapshot("a", "/srv", Source::Filesystem, t),
        ));
        snaps.push((
            Id::from_bytes([10 + i; 32]),
            snapshot("b", "/srv", Source::Filesystem, t),
        ));
        snaps.push((
            Id::from_bytes([20 + i; 32]),
            snapshot("a", "/etc", Source::Filesystem, t),
        ));
        // Volumes group by namespace/name, whatever the node (host) was.
        let host = if i == 0 { "node-1" } else { "node-2" };
        snaps.push((
            Id::from_bytes([30 + i; 32]),
            snapshot(host, "/pvc", vol("prod"), t),
        ));
    }
    let groups = plan_forget(
        &snaps,
        &Policy {
            last: 1,
            ..Policy::default()
        },
    );
    assert_eq!(groups.len(), 4, "{groups:#?}");
    for g in &groups {
        assert_eq!(g.keep.len(), 1, "{}", g.group);
        assert_eq!(g.remove.len(), 2, "{}", g.group);
        assert_eq!(g.keep[0].reasons, vec!["last snapshot".to_owned()]);
    }
    let newest: Vec<Id> = groups.iter().map(|g| g.keep[0].id).collect();
    for id in [[2u8; 32], [12; 32], [22; 32], [32; 32]] {
        assert!(newest.contains(&Id::from_bytes(id)));
    }
    assert!(groups.iter().any(|g| matches!(
        &g.group,
        GroupKey::KubernetesVolume { namespace, .. } if namespace == "prod"
    )));
}
