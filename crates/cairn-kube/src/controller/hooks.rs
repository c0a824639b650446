//! Application hooks around a backup, declared on the pods that mount the
//! claim in Velero's style:
//!
//! ```text
//! pre.hook.backup.cairn.dev/command    '["/bin/sh", "-c", "fsfreeze -f /data"]'
//! pre.hook.backup.cairn.dev/container  app        (default: the first container)
//! pre.hook.backup.cairn.dev/timeout    30s        (s, m or h; at most 1h)
//! pre.hook.backup.cairn.dev/on-error   Fail       (or Continue)
//! post.hook.backup.cairn.dev/...       the same, after the snapshot or the read
//! ```
//!
//! The pre hooks run before the CSI snapshot is taken (snapshot backups)
//! or before an agent starts reading (live backups); the post hooks run
//! once the snapshot is ready, or once the backup has ended however it
//! ended: whenever the pre hooks ran, the post hooks run. A failed pre hook
//! whose `on-error` is `Fail` (the default) fails the backup. Outcomes go
//! to `status.hooks` and to events.
//!
//! Annotations are written by whoever may edit the pods, so they are
//! hostile input: parsed with bounds here ([`parse`], pure and table
//! tested), executed only in the pods of the claim's own namespace that
//! mount the claim being backed up, each with a timeout.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// Before or after the snapshot (or the read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `pre.hook.backup.cairn.dev/*`
    Pre,
    /// `post.hook.backup.cairn.dev/*`
    Post,
}

impl Stage {
    fn prefix(self) -> &'static str {
        match self {
            Stage::Pre => "pre.hook.backup.cairn.dev/",
            Stage::Post => "post.hook.backup.cairn.dev/",
        }
    }

    /// `pre` or `post`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Pre => "pre",
            Stage::Post => "post",
        }
    }
}

/// The default time a hook may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_ARGS: usize = 64;
const MAX_COMMAND_BYTES: usize = 16 * 1024;
/// How much of a hook's output its status keeps.
pub const MAX_OUTPUT: usize = 1024;

/// A hook to run, from one pod's annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The pod.
    pub pod: String,
    /// The container to run in.
    pub container: String,
    /// The command and its arguments (no shell unless it names one).
    pub command: Vec<String>,
    /// How long it may take.
    pub timeout: Duration,
    /// Whether a failure fails the backup.
    pub fail_on_error: bool,
}

pub use crate::crd::{HookRun, HookStatus};

/// The hook of `stage` a pod declares: `None` without a command
/// annotation, `Err` (with the reason, and whether it is fatal) when the
/// annotations cannot be used.
pub fn parse(pod: &Pod, stage: Stage) -> Option<Result<Hook, (String, bool)>> {
    let a = pod.annotations();
    let get = |k: &str| a.get(&format!("{}{k}", stage.prefix())).map(|v| v.trim());
    let raw = get("command")?;
    // on-error first: an invalid hook of a pod that asked to continue does
    // not fail the backup.
    let fail_on_error = match get("on-error").map(str::to_ascii_lowercase).as_deref() {
        None | Some("fail") => true,
        Some("continue") => false,
        Some(other) => {
            return Some(Err((
                format!("on-error {other:?}: use Fail or Continue"),
                true,
            )));
        }
    };
    Some(build(
        pod,
        raw,
        get("container"),
        get("timeout"),
        fail_on_error,
    ))
}

fn build(
    pod: &Pod,
    raw: &str,
    container: Option<&str>,
    timeout: Option<&str>,
    fail_on_error: bool,
) -> Result<Hook, (String, bool)> {
    let bad = |m: String| Err((m, fail_on_error));
    if raw.len() > MAX_COMMAND_BYTES {
        return bad(format!(
            "command is {} bytes, more than {MAX_COMMAND_BYTES}",
            raw.len()
        ));
    }
    // A JSON array of strings, as Velero takes it; anything else is one
    // word (a program without arguments).
    let command: Vec<String> = if raw.starts_with('[') {
        match serde_json::from_str(raw) {
            Ok(c) => c,
            Err(e) => return bad(format!("command is not a JSON array of strings: {e}")),
        }
    } else {
        vec![raw.to_owned()]
    };
    if command.is_empty() || command[0].is_empty() {
        return bad("command is empty".into());
    }
    if command.len() > MAX_ARGS {
        return bad(format!("command has more than {MAX_ARGS} arguments"));
    }
    let containers: Vec<String> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let container = match container {
        Some(c) if containers.iter().any(|x| x == c) => c.to_owned(),
        Some(c) => return bad(format!("the pod has no container {c:?}")),
        None => match containers.first() {
            Some(c) => c.clone(),
            None => return bad("the pod has no container".into()),
        },
    };
    let timeout = match timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) => match parse_duration(t) {
            Some(d) if !d.is_zero() && d <= MAX_TIMEOUT => d,
            _ => return bad(format!("timeout {t:?}: use 1s to 1h (e.g. 30s, 5m)")),
        },
    };
    Ok(Hook {
        pod: pod.name_any(),
        container,
        command,
        timeout,
        fail_on_error,
    })
}

/// `30s`, `5m`, `1h`, or seconds without a unit.
fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// The hooks of `stage` to run for a backup of `claim`: one per running
/// pod that mounts it (helper pods of cairn excepted), sorted by pod
/// name; unusable annotations become `Invalid` outcomes.
pub fn plan(pods: &[Pod], claim: &str, stage: Stage) -> (Vec<Hook>, Vec<HookRun>) {
    let mut hooks = Vec::new();
    let mut invalid = Vec::new();
    let mut pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| super::placement::mounted_volume_name(p, claim).is_some())
        .filter(|p| !p.labels().contains_key(crate::names::HELPER_KIND_LABEL))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect();
    pods.sort_by_key(|p| p.name_any());
    for pod in pods {
        match parse(pod, stage) {
            None => {}
            Some(Ok(h)) => hooks.push(h),
            Some(Err((message, fatal))) => invalid.push(HookRun {
                pod: pod.name_any(),
                container: None,
                result: "Invalid".into(),
                exit_code: None,
                fatal,
                message: Some(message),
            }),
        }
    }
    (hooks, invalid)
}

#[cfg(test)]
#[path = "hooks_tests.rs"]
mod tests;
