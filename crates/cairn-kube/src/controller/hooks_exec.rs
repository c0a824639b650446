//! Runs the hooks [`super::hooks::plan`] chose, through the pods/exec
//! API, and records their outcomes in the backup's `status.hooks` and in
//! events.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, ListParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::Context;
use super::hooks::{self, Hook, HookRun, HookStatus, MAX_OUTPUT, Stage};
use crate::Result;
use crate::job::Job;
use crate::kubeutil::{event, merge_status};

/// The hooks of `job` so far.
pub fn status<J: Job>(job: &J) -> HookStatus {
    job.job_status()
        .and_then(|s| s.hooks.clone())
        .unwrap_or_default()
}

/// Runs the hooks of `stage` for `job` once (a stage already done is not
/// run again) and records them; returns the message of the first outcome
/// of that stage that fails the backup, if any, whether it ran now or
/// earlier, so a caller that could not act on it then acts on it now.
pub async fn run_stage<J: Job>(
    ctx: &Context,
    api: &Api<J>,
    job: &J,
    stage: Stage,
) -> Result<Option<String>> {
    let cached = status(job);
    if done(&cached, stage) {
        return Ok(fatal(&cached, stage));
    }
    // The cached object may lag behind the status written at the end of
    // an earlier run: read it fresh, so a stage runs once.
    let mut st = status(&api.get(&job.name_str()).await?);
    if done(&st, stage) {
        return Ok(fatal(&st, stage));
    }
    let (ns, claim) = job.claim();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let all = pods.list(&ListParams::default()).await?.items;
    let (todo, mut runs) = hooks::plan(&all, &claim, stage);
    for hook in &todo {
        runs.push(run(&ctx.client, &ns, hook).await);
    }
    for r in &runs {
        let ok = r.result == "Succeeded";
        let reason = if ok { "HookSucceeded" } else { "HookFailed" };
        event(&ctx.recorder, job, !ok, reason, describe(stage, r)).await;
    }
    match stage {
        Stage::Pre => (st.pre_done, st.pre) = (true, runs),
        Stage::Post => (st.post_done, st.post) = (true, runs),
    }
    merge_status(api, &job.name_str(), json!({ "hooks": st })).await?;
    Ok(fatal(&st, stage))
}

fn done(st: &HookStatus, stage: Stage) -> bool {
    match stage {
        Stage::Pre => st.pre_done,
        Stage::Post => st.post_done,
    }
}

/// The first outcome of `stage` that fails the backup, described.
fn fatal(st: &HookStatus, stage: Stage) -> Option<String> {
    let runs = match stage {
        Stage::Pre => &st.pre,
        Stage::Post => &st.post,
    };
    runs.iter()
        .find(|r| r.fails_backup())
        .map(|r| describe(stage, r))
}

fn describe(stage: Stage, r: &HookRun) -> String {
    format!(
        "{}-backup hook in pod {} (container {}): {}{}",
        stage.as_str(),
        r.pod,
        r.container.as_deref().unwrap_or("-"),
        r.result,
        r.message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    )
}

/// Runs one hook with its timeout.
pub async fn run(client: &Client, ns: &str, hook: &Hook) -> HookRun {
    let mut out = HookRun {
        pod: hook.pod.clone(),
        container: Some(hook.container.clone()),
        fatal: hook.fail_on_error,
        ..HookRun::default()
    };
    match tokio::time::timeout(hook.timeout, exec(client, ns, hook)).await {
        Err(_) => {
            out.result = "TimedOut".into();
            out.message = Some(format!("no exit within {}s", hook.timeout.as_secs()));
        }
        Ok(Err(e)) => {
            out.result = "Failed".into();
            out.message = Some(crate::kubeutil::truncate(e, MAX_OUTPUT));
        }
        Ok(Ok((code, output))) => {
            out.exit_code = Some(code);
            out.result = if code == 0 { "Succeeded" } else { "Failed" }.into();
            let output = output.trim();
            if !output.is_empty() {
                out.message = Some(tail(output, MAX_OUTPUT));
            }
        }
    }
    out
}

/// Execs the hook's command; its exit code and the end of its output.
async fn exec(
    client: &Client,
    ns: &str,
    hook: &Hook,
) -> std::result::Result<(i32, String), String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = AttachParams::default()
        .container(hook.container.as_str())
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let mut p = pods
        .exec(&hook.pod, hook.command.clone(), &params)
        .await
        .map_err(|e| format!("exec: {e}"))?;
    let status = p.take_status().ok_or("exec: no status channel")?;
    let (mut so, mut se) = (p.stdout(), p.stderr());
    // Read both streams to their end (bounded in what is kept), or the
    // command could block on a full pipe.
    let (a, b) = tokio::join!(drain(so.as_mut()), drain(se.as_mut()));
    let status = status
        .await
        .ok_or("exec: the connection ended without a status")?;
    let code = exit_code(&status)?;
    Ok((code, format!("{a}{b}")))
}

async fn drain<R: tokio::io::AsyncRead + Unpin>(r: Option<&mut R>) -> String {
    let Some(r) = r else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 4 * MAX_OUTPUT {
            kept.drain(..kept.len() - 2 * MAX_OUTPUT);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// The exit code in the Status the exec channel ends with: `Success`, or
/// a `NonZeroExitCode` failure naming it as an `ExitCode` cause.
pub fn exit_code(
    s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status,
) -> std::result::Result<i32, String> {
    if s.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = s
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_deref()?.parse().ok());
    code.ok_or_else(|| {
        format!(
            "exec failed: {}",
            s.message.clone().unwrap_or_else(|| "no message".into())
        )
    })
}

/// The last `n` bytes of `s` (at a character boundary).
fn tail(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_owned();
    }
    let mut i = s.len() - n;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    format!("…{}", &s[i..])
}
