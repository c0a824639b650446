//! deploy/monitoring: every alert and dashboard query names only metrics
//! cairn exports (or the few kube-state-metrics series it documents), and
//! every alert says how bad it is and what happened.

use std::collections::BTreeSet;
use std::path::PathBuf;

use cairn_kube::crd::Phase;
use cairn_kube::job::JobKind;
use cairn_kube::metrics::{Metrics, render};
use serde_json::Value;

/// Series from outside cairn that the alerts may use.
const FOREIGN: &[&str] = &[
    "kube_daemonset_status_number_unavailable",
    "kube_deployment_status_replicas_available",
];

fn file(name: &str) -> PathBuf {
    cairn_testkit::workspace_root()
        .join("deploy/monitoring")
        .join(name)
}

fn read(name: &str) -> String {
    let path = file(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The metric families both binaries expose (`# TYPE` lines), with every
/// family given a sample so none is left out.
fn exported() -> BTreeSet<String> {
    let (agent, agent_registry) = Metrics::agent();
    agent.outcome(JobKind::Backup, Phase::Failed);
    agent
        .duration
        .get_or_create(&Metrics::kind(JobKind::Backup))
        .observe(1.0);
    let (controller, controller_registry) = Metrics::controller();
    controller.reconciled("volumebackup", false);
    controller.outcome(JobKind::Backup, Phase::Assigned);
    controller.backup_completed("ns", "claim", 1, 1);
    controller.maintenance_done("ns", "repo", true, 1, 1);
    [render(&agent_registry), render(&controller_registry)]
        .iter()
        .flat_map(|text| text.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|l| {
            l.strip_prefix("# TYPE ")
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        })
        .collect()
}

/// The `cairn_…` and listed foreign metric names in a PromQL expression.
fn metrics_in(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("cairn_") || w.starts_with("kube_") || *w == "up")
        .map(str::to_owned)
        .collect()
}

/// Whether `name` (as written in a query) is a sample of a family in
/// `families`.
fn is_exported(name: &str, families: &BTreeSet<String>) -> bool {
    if FOREIGN.contains(&name) {
        return true;
    }
    ["", "_total", "_bucket", "_sum", "_count"]
        .iter()
        .any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|family| families.contains(family))
        })
}

#[test]
fn the_checker_knows_real_names_from_invented_ones() {
    let families = exported();
    assert!(is_exported("cairn_agent_jobs_finished_total", &families));
    assert!(is_exported(
        "cairn_agent_job_duration_seconds_bucket",
        &families
    ));
    assert!(!is_exported("cairn_agent_no_such_metric", &families));
    assert!(!is_exported("cairn_controller_last_backup", &families));
}

#[test]
fn alerts_use_only_exported_metrics_and_say_what_happened() {
    let families = exported();
    let rule: Value = serde_saphyr::from_str(&read("prometheusrule.yaml")).expect("yaml");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    let mut alerts = Vec::new();
    for group in rule["spec"]["groups"].as_array().expect("groups") {
        for r in group["rules"].as_array().expect("rules") {
            let name = r["alert"].as_str().expect("every rule is an alert");
            let expr = r["expr"].as_str().expect("expr");
            let used = metrics_in(expr);
            assert!(!used.is_empty(), "{name}: no metric in {expr}");
            for m in used {
                assert!(is_exported(&m, &families), "{name}: {m} is not exported");
            }
            let severity = r["labels"]["severity"].as_str().unwrap_or("");
            assert!(
                ["info", "warning", "critical"].contains(&severity),
                "{name}: severity {severity:?}"
            );
            for key in ["summary", "description"] {
                assert!(r["annotations"][key].is_string(), "{name}: no {key}");
            }
            alerts.push(name.to_owned());
        }
    }
    for needed in [
        "CairnClaimBackupTooOld",
        "CairnBackupJobsFailing",
        "CairnAgentUnavailable",
    ] {
        assert!(alerts.iter().any(|a| a == needed), "{needed} missing");
    }
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let families = exported();
    let dash: Value = serde_json::from_str(&read("cairn-dashboard.json")).expect("json");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_i64().expect("id")),
            "duplicate panel id"
        );
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let used = metrics_in(expr);
            assert!(!used.is_empty(), "{}: {expr}", p["title"]);
            for m in used {
                assert!(is_exported(&m, &families), "{}: {m}", p["title"]);
            }
        }
    }
}
