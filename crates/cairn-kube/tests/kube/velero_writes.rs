//! The writes to one DataUpload or DataDownload, as a watch sees each of
//! them: the phases it goes through, and what came in the write that
//! ended it (Velero copies a completed DataUpload into its backup as that
//! write leaves it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use tokio::task::JoinHandle;

use crate::velero_fakes::LONG;

/// The phase of a DataUpload or DataDownload ("" before it has one).
pub(crate) fn phase(o: &DynamicObject) -> &str {
    o.data["status"]["phase"].as_str().unwrap_or("")
}

fn ended(phase: &str) -> bool {
    matches!(phase, "Completed" | "Failed" | "Canceled")
}

/// Every write to one DataUpload or DataDownload (selected by label), as
/// a watch sees them, until it ends (Completed, Failed or Canceled).
pub(crate) struct Writes {
    what: String,
    seen: Arc<Mutex<Vec<DynamicObject>>>,
    task: JoinHandle<()>,
}

impl Drop for Writes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts recording the writes to what `selector` selects in `api`
/// (before it is created, so the first write is seen too).
pub(crate) async fn record(api: &Api<DynamicObject>, selector: &str) -> Writes {
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list");
    let rv = list.metadata.resource_version.expect("resourceVersion");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn(watch(api.clone(), selector.to_owned(), rv, seen.clone()));
    Writes {
        what: selector.to_owned(),
        seen,
        task,
    }
}

/// Follows the watch from `rv`, again from the last write seen when the
/// server ends it, until the object ends.
async fn watch(
    api: Api<DynamicObject>,
    selector: String,
    mut rv: String,
    seen: Arc<Mutex<Vec<DynamicObject>>>,
) {
    loop {
        let wp = WatchParams::default().labels(&selector).timeout(280);
        let Ok(stream) = api.watch(&wp, &rv).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut stream = Box::pin(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                    rv = o.resource_version().unwrap_or(rv);
                    let end = ended(phase(&o));
                    seen.lock().expect("lock").push(o);
                    if end {
                        return;
                    }
                }
                Ok(WatchEvent::Bookmark(b)) => rv = b.metadata.resource_version,
                // Writes were missed (or the object went): the record is
                // incomplete, which `end` reports.
                Ok(WatchEvent::Error(e)) => panic!("watching {selector}: {e:?}"),
                Ok(WatchEvent::Deleted(_)) => panic!("{selector} was deleted before it ended"),
                Err(_) => break,
            }
        }
    }
}

/// The phases of `writes`, in order, without repeats ("" for none).
pub(crate) fn phases(writes: &[DynamicObject]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for o in writes {
        if out.last().map(String::as_str) != Some(phase(o)) {
            out.push(phase(o).to_owned());
        }
    }
    out
}

impl Writes {
    /// The phases seen so far.
    pub(crate) fn phases(&self) -> Vec<String> {
        phases(&self.seen.lock().expect("lock"))
    }

    /// Waits until a write sets `wanted` (panics if the object ends
    /// first); returns that write.
    pub(crate) async fn reached(&self, wanted: &str) -> DynamicObject {
        let what = format!("{} to reach {wanted}", self.what);
        let what = what.as_str();
        crate::common::wait_until(what, LONG, || async move {
            let seen = self.seen.lock().expect("lock");
            if let Some(o) = seen.iter().find(|o| phase(o) == wanted) {
                return Some(o.clone());
            }
            let last = seen.last().map(phase).unwrap_or("");
            assert!(
                !ended(last),
                "{what}, but it ended {last}: {:?}",
                seen.last().map(|o| &o.data["status"])
            );
            None
        })
        .await
    }

    /// Waits until the object ends; returns every write seen.
    pub(crate) async fn end(mut self) -> Vec<DynamicObject> {
        let outcome = tokio::time::timeout(LONG, &mut self.task).await;
        let last = self.seen.lock().expect("lock").last().cloned();
        let status = last.as_ref().map(|o| &o.data["status"]);
        let name = last.as_ref().map(|o| o.name_any());
        match outcome {
            Err(_) => panic!(
                "{name:?} ({}) did not end within {LONG:?}; phases seen: {:?}; last status: {status:?}",
                self.what,
                self.phases(),
            ),
            Ok(Err(e)) => panic!("{}: {e}; phases seen: {:?}", self.what, self.phases()),
            Ok(Ok(())) => self.seen.lock().expect("lock").clone(),
        }
    }
}

/// Asserts that `phases` only go forward through `order` (no phase but
/// those of `order`; "" counts as `New`).
pub(crate) fn assert_forward(phases: &[String], order: &[&str]) {
    let mut last = 0;
    for p in phases {
        let p = if p.is_empty() { "New" } else { p.as_str() };
        let rank = order
            .iter()
            .position(|o| *o == p)
            .unwrap_or_else(|| panic!("phase {p} is not one of {order:?}: {phases:?}"));
        assert!(rank >= last, "the phases went backwards: {phases:?}");
        last = rank;
    }
}
