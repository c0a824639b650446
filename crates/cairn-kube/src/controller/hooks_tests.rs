//! Hook annotations are written by whoever edits the pods: every way they
//! can be wrong becomes an `Invalid` outcome, never a panic or a command
//! nobody asked for.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;

fn pod(name: &str, annotations: serde_json::Value, claim: &str, phase: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "containers": [{"name": "app"}, {"name": "sidecar"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
        "status": {"phase": phase},
    }))
    .expect("pod")
}

fn pre(annotations: serde_json::Value) -> Option<Result<Hook, (String, bool)>> {
    parse(&pod("p", annotations, "c", "Running"), Stage::Pre)
}

#[test]
fn annotations_become_a_hook_with_defaults() {
    let h = pre(json!({"pre.hook.backup.cairn.dev/command": "[\"/bin/sh\", \"-c\", \"sync\"]"}))
        .expect("declared")
        .expect("valid");
    assert_eq!(h.command, ["/bin/sh", "-c", "sync"]);
    assert_eq!(h.container, "app", "the first container by default");
    assert_eq!(h.timeout, DEFAULT_TIMEOUT);
    assert!(h.fail_on_error);
    let h = pre(json!({
        "pre.hook.backup.cairn.dev/command": "sync",
        "pre.hook.backup.cairn.dev/container": "sidecar",
        "pre.hook.backup.cairn.dev/timeout": "2m",
        "pre.hook.backup.cairn.dev/on-error": "Continue",
    }))
    .expect("declared")
    .expect("valid");
    assert_eq!(h.command, ["sync"]);
    assert_eq!(
        (h.container.as_str(), h.timeout, h.fail_on_error),
        ("sidecar", Duration::from_secs(120), false)
    );
    assert_eq!(
        pre(json!({"post.hook.backup.cairn.dev/command": "x"})),
        None
    );
    assert_eq!(pre(json!({})), None);
}

#[test]
fn every_bad_annotation_is_refused_with_a_reason() {
    let cases = [
        (
            json!({"pre.hook.backup.cairn.dev/command": "[\"a\", 1]"}),
            "JSON array",
        ),
        (json!({"pre.hook.backup.cairn.dev/command": "[]"}), "empty"),
        (
            json!({"pre.hook.backup.cairn.dev/command": "[\"\"]"}),
            "empty",
        ),
        (
            json!({"pre.hook.backup.cairn.dev/command": "x".repeat(20_000)}),
            "bytes",
        ),
        (
            json!({"pre.hook.backup.cairn.dev/command": serde_json::to_string(&vec!["a"; 65]).expect("json")}),
            "arguments",
        ),
        (
            json!({"pre.hook.backup.cairn.dev/command": "x", "pre.hook.backup.cairn.dev/container": "db"}),
            "no container",
        ),
        (
            json!({"pre.hook.backup.cairn.dev/command": "x", "pre.hook.backup.cairn.dev/timeout": "2h"}),
            "timeout",
        ),
        (
            json!({"pre.hook.backup.cairn.dev/command": "x", "pre.hook.backup.cairn.dev/timeout": "0s"}),
            "timeout",
        ),
        (
            json!({"pre.hook.backup.cairn.dev/command": "x", "pre.hook.backup.cairn.dev/timeout": "99999999999999999999h"}),
            "timeout",
        ),
        (
            json!({"pre.hook.backup.cairn.dev/command": "x", "pre.hook.backup.cairn.dev/on-error": "ignore"}),
            "on-error",
        ),
    ];
    for (annotations, want) in cases {
        let (why, fatal) = pre(annotations.clone())
            .expect("declared")
            .expect_err("refused");
        assert!(why.contains(want), "{annotations}: {why}");
        assert!(
            fatal,
            "{annotations}: an invalid Fail hook fails the backup"
        );
    }
    let (_, fatal) = pre(json!({
        "pre.hook.backup.cairn.dev/command": "[",
        "pre.hook.backup.cairn.dev/on-error": "continue",
    }))
    .expect("declared")
    .expect_err("refused");
    assert!(!fatal, "an invalid Continue hook does not fail the backup");
}

#[test]
fn only_running_pods_mounting_the_claim_run_hooks() {
    let cmd = json!({"pre.hook.backup.cairn.dev/command": "sync"});
    let mut helper = pod("cairn-helper", cmd.clone(), "c", "Running");
    helper.metadata.labels = Some(
        [(
            crate::names::HELPER_KIND_LABEL.to_owned(),
            "backup".to_owned(),
        )]
        .into_iter()
        .collect(),
    );
    let pods = vec![
        pod("b", cmd.clone(), "c", "Running"),
        pod("a", cmd.clone(), "c", "Running"),
        pod("other-claim", cmd.clone(), "d", "Running"),
        pod("pending", cmd.clone(), "c", "Pending"),
        pod("no-hook", json!({}), "c", "Running"),
        pod(
            "bad",
            json!({"pre.hook.backup.cairn.dev/command": "[1]"}),
            "c",
            "Running",
        ),
        helper,
    ];
    let (hooks, invalid) = plan(&pods, "c", Stage::Pre);
    let names: Vec<&str> = hooks.iter().map(|h| h.pod.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(invalid.len(), 1);
    assert_eq!(
        (invalid[0].pod.as_str(), invalid[0].result.as_str()),
        ("bad", "Invalid")
    );
    assert!(invalid[0].fails_backup());
    let (post, _) = plan(&pods, "c", Stage::Post);
    assert!(post.is_empty(), "no post annotations");
}

#[test]
fn exit_codes_come_from_the_status_the_channel_ends_with() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
    let ok: Status = serde_json::from_value(json!({"status": "Success"})).expect("status");
    assert_eq!(super::super::hooks_exec::exit_code(&ok), Ok(0));
    let failed: Status = serde_json::from_value(json!({
        "status": "Failure", "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }))
    .expect("status");
    assert_eq!(super::super::hooks_exec::exit_code(&failed), Ok(3));
    let broken: Status = serde_json::from_value(json!({
        "status": "Failure", "message": "container not found",
    }))
    .expect("status");
    let e = super::super::hooks_exec::exit_code(&broken).expect_err("no code");
    assert!(e.contains("container not found"), "{e}");
}
