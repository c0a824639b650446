//! Small helpers over the Kubernetes API that both binaries use: guarded
//! status transitions, finalizers, events and agent leases.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::Result;
use crate::names::AGENT_LEASE_LABEL;

/// Applies `set` (JSON pointer under the object → value) to the status
/// subresource if every `expect` pointer holds its value, atomically (a JSON
/// patch whose `test` operations fail as a whole). Returns false when an
/// expectation did not hold: someone else moved the object on.
pub async fn transition<K>(
    api: &Api<K>,
    name: &str,
    expect: &[(&str, Value)],
    set: &[(&str, Value)],
) -> Result<bool>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut ops: Vec<Value> = expect
        .iter()
        .map(|(path, value)| json!({"op": "test", "path": path, "value": value}))
        .collect();
    ops.extend(
        set.iter()
            .map(|(path, value)| json!({"op": "add", "path": path, "value": value})),
    );
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))
        .map_err(|e| crate::Error::Invalid(format!("bad patch: {e}")))?;
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => Ok(true),
        // A failed test is 422 (Invalid) on current servers and 500 on
        // some older ones; a vanished object is 404. None is an error here.
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 404 || s.code == 409 => Ok(false),
        Err(kube::Error::Api(s)) if s.code == 500 && s.message.contains("test") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A JSON merge patch of the status subresource (no precondition).
pub async fn merge_status<K>(api: &Api<K>, name: &str, status: impl Serialize) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let body = json!({ "status": status });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    Ok(())
}

/// Adds or removes `finalizer`, guarded by a test of the current list so a
/// concurrent change by someone else is never lost. Returns false if the
/// object changed meanwhile (the caller looks again).
pub async fn set_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str, present: bool) -> Result<bool>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let current = obj.finalizers().to_vec();
    let mut wanted: Vec<String> = current
        .iter()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    if present {
        wanted.push(finalizer.to_owned());
    }
    if wanted == current {
        return Ok(true);
    }
    let ops = if obj.meta().finalizers.is_none() {
        json!([{"op": "add", "path": "/metadata/finalizers", "value": wanted}])
    } else {
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "replace", "path": "/metadata/finalizers", "value": wanted},
        ])
    };
    let patch: json_patch::Patch = serde_json::from_value(ops)
        .map_err(|e| crate::Error::Invalid(format!("bad patch: {e}")))?;
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 422 || s.code == 409 || s.code == 500 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Publishes an event about `obj`; failures are logged, never fatal (an
/// event is a courtesy, the status is the record).
pub async fn event<K>(recorder: &Recorder, obj: &K, warning: bool, reason: &str, note: String)
where
    K: Resource<DynamicType = ()>,
{
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action: reason.to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(reason, error = %e, "cannot publish event");
    }
}

/// A create that found the object there already (an earlier reconcile's)
/// is fine.
pub fn ignore_conflict<T>(r: std::result::Result<T, kube::Error>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A delete of an object already gone is fine.
pub fn ignore_missing<T>(r: std::result::Result<T, kube::Error>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Seconds since each node's agent last renewed its lease in `namespace`.
pub async fn agent_ages(leases: &Api<Lease>, now: i64) -> Result<BTreeMap<String, i64>> {
    let list = leases
        .list(&ListParams::default().labels(AGENT_LEASE_LABEL))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|l| {
            let spec = l.spec?;
            let node = spec.holder_identity?;
            let renewed = spec.renew_time?.0.as_second();
            Some((node, (now - renewed).max(0)))
        })
        .collect())
}

/// The standard `Ready` condition of a job in final phase `phase`.
pub fn ready_condition(phase: crate::crd::Phase, message: &str) -> Value {
    json!({
        "type": "Ready",
        "status": if phase == crate::crd::Phase::Completed { "True" } else { "False" },
        "reason": phase.as_str(),
        "message": message,
        "lastTransitionTime": crate::crd::time_from_secs(wall_now()),
    })
}

/// The system clock in seconds: leases and status times are real time,
/// whatever clock schedules run on.
pub fn wall_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
