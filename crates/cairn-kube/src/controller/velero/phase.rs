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

/// The steps every mover object takes alike.
#[derive(Clone, Debug, PartialEq)]
pub enum Common {
    /// Finished already: nothing to do.
    Done,
    /// Stop the running job.
    CancelJob,
    /// End with this status (after the object's clean-up).
    End(Value),
}

/// The common step for an object in `phase` whose `cancel` is set or not
/// and whose job (if any) is `job`; None when the object's own logic
/// decides (not finished, not canceled, the job not failed or canceled).
pub fn common(phase: &str, cancel: bool, job: Option<&JobStatus>, now: i64) -> Option<Common> {
    if rank(phase) == 5 {
        return Some(Common::Done);
    }
    let job_phase = job.map(|j| j.phase);
    if cancel {
        return Some(match job_phase {
            Some(p) if !p.is_terminal() => Common::CancelJob,
            _ => Common::End(ended("Canceled", "canceled", now)),
        });
    }
    match job_phase {
        Some(Phase::Failed) => {
            let why = job.and_then(|j| j.message.as_deref()).unwrap_or("failed");
            Some(Common::End(ended("Failed", why, now)))
        }
        Some(Phase::Canceled) => Some(Common::End(ended("Canceled", "canceled", now))),
        _ => None,
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
