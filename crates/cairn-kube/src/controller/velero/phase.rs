//! What DataUploads and DataDownloads share: the phases as Velero reads
//! them, the status of a job mirrored into them, and the steps every
//! mover object takes the same way (finished, canceled, failed).

use serde_json::{Value, json};

use crate::crd::{JobStatus, Phase};

/// A Velero phase's place in the life cycle (5: final).
pub fn rank(phase: &str) -> u8 {
    match phase {
        "Accepted" => 1,
        "Prepared" => 2,
        "InProgress" => 3,
        "Canceling" => 4,
        "Completed" | "Failed" | "Canceled" => 5,
        _ => 0,
    }
}

/// A final status other than Completed: `phase` with `message`, at `now`.
pub fn ended(phase: &str, message: &str, now: i64) -> Value {
    json!({"phase": phase, "message": message, "completionTimestamp": super::timestamp(now)})
}

/// Accepted at `now`: the job exists.
pub fn accepted(now: i64) -> Value {
    let t = super::timestamp(now);
    json!({"phase": "Accepted", "acceptedTimestamp": t, "startTimestamp": t})
}

/// What to do next with a DataUpload or DataDownload.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Nothing (finished, or nothing changed).
    Nothing,
    /// Not yet possible (a DataDownload's claim does not exist yet).
    Wait,
    /// Create the job, then write Accepted.
    Start,
    /// Stop the running job (it ends Canceled).
    CancelJob,
    /// Write these status fields.
    Write(Value),
    /// Hand the restored volume over, then write this final status
    /// (DataDownloads).
    Rebind(Value),
    /// Clean up (the snapshot, cairn's claim), then write this final
    /// status.
    End(Value),
}

/// The step every mover object takes alike, for one in `phase` whose
/// `cancel` is set or not and whose job (if any) is `job`: nothing once
/// finished; when canceled, stop the job or end; end when the job failed
/// or was canceled. None when the object's own logic decides.
pub fn common(phase: &str, cancel: bool, job: Option<&JobStatus>, now: i64) -> Option<Step> {
    if rank(phase) == 5 {
        return Some(Step::Nothing);
    }
    let job_phase = job.map(|j| j.phase);
    if cancel {
        return Some(match job_phase {
            Some(p) if !p.is_terminal() => Step::CancelJob,
            _ => Step::End(ended("Canceled", "canceled", now)),
        });
    }
    match job_phase {
        Some(Phase::Failed) => {
            let why = job.and_then(|j| j.message.as_deref()).unwrap_or("failed");
            Some(Step::End(ended("Failed", why, now)))
        }
        Some(Phase::Canceled) => Some(Step::End(ended("Canceled", "canceled", now))),
        _ => None,
    }
}

/// The first of `fields` (name, value) that is empty, as an error.
pub fn required(fields: &[(&str, &str)]) -> Result<(), String> {
    match fields.iter().find(|(_, v)| v.is_empty()) {
        Some((field, _)) => Err(format!("{field} is empty")),
        None => Ok(()),
    }
}

/// The status fields of a running job, or None when the DataUpload (or
/// DataDownload) already shows them. A phase never goes backwards (an agent
/// that restarts puts its job back to Assigned).
pub fn mirror(p: Phase, job: &JobStatus, (phase, status): (&str, &Value)) -> Option<Value> {
    let mut want = match p {
        Phase::InProgress => json!({"phase": "InProgress"}),
        Phase::Assigned => json!({"phase": "Prepared"}),
        _ => json!({"phase": "Accepted"}),
    };
    if rank(phase) > rank(want["phase"].as_str().unwrap_or_default()) {
        want["phase"] = json!(phase);
    }
    if let Some(node) = &job.node {
        want["node"] = json!(node);
    }
    if let Some(pr) = &job.progress {
        want["progress"] = json!({"totalBytes": pr.total_bytes, "bytesDone": pr.bytes_done});
    }
    let shown = want
        .as_object()
        .is_some_and(|w| w.iter().all(|(k, v)| status.get(k) == Some(v)));
    (!shown).then_some(want)
}
