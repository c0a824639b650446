//! `cairn snapshots`

use anyhow::Result;

use crate::cli::{Global, SnapshotsArgs};
use crate::output::{bytes, time};
use crate::{context, exit};

/// Whether `s` passes the filters of `a`.
fn selected(a: &SnapshotsArgs, s: &cairn::Snapshot) -> bool {
    let host = a.host.as_ref().is_none_or(|h| h == &s.hostname);
    let kube = match &s.source {
        cairn::Source::KubernetesVolume {
            cluster,
            namespace,
            name,
        } => {
            a.cluster.as_ref().is_none_or(|c| c == cluster)
                && a.claim
                    .as_ref()
                    .is_none_or(|want| match want.split_once('/') {
                        Some((ns, "")) => ns == namespace,
                        Some((ns, claim)) => ns == namespace && claim == name,
                        None => false,
                    })
        }
        cairn::Source::Filesystem => a.cluster.is_none() && a.claim.is_none(),
    };
    host && kube
}

/// What the paths column shows: the paths, or for a Kubernetes claim
/// `claim NAMESPACE/NAME@CLUSTER`.
fn what(s: &cairn::Snapshot) -> String {
    match &s.source {
        cairn::Source::KubernetesVolume {
            cluster,
            namespace,
            name,
        } if cluster.is_empty() => format!("claim {namespace}/{name}"),
        cairn::Source::KubernetesVolume {
            cluster,
            namespace,
            name,
        } => format!("claim {namespace}/{name}@{cluster}"),
        cairn::Source::Filesystem => s
            .paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

pub(crate) async fn run(g: &Global, a: SnapshotsArgs) -> Result<u8> {
    if a.claim.as_ref().is_some_and(|c| !c.contains('/')) {
        anyhow::bail!("--claim takes NAMESPACE/NAME or NAMESPACE/");
    }
    let repo = context::open_overlapped(g).await?;
    let mut snaps = repo.list_snapshots().await?;
    snaps.retain(|(_, s)| selected(&a, s));
    // Damage found while opening was named then; what listing found is new.
    let damaged: Vec<_> = repo
        .damaged()
        .into_iter()
        .filter(|d| d.object.starts_with("snapshots/"))
        .collect();
    context::warn_damaged(&damaged);
    if a.json {
        let mut list: Vec<serde_json::Value> = snaps
            .iter()
            .map(|(id, s)| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("id".into(), serde_json::json!(id));
                    o.insert("short_id".into(), serde_json::json!(id.short()));
                }
                v
            })
            .collect();
        // A damaged snapshot is listed with its problem instead of its
        // content, so a script sees it is there and cannot be used.
        for d in &damaged {
            if let Some(id) = d.object.strip_prefix("snapshots/") {
                list.push(serde_json::json!({
                    "id": id,
                    "short_id": id.get(..8).unwrap_or(id),
                    "damaged": d.problem,
                }));
            }
        }
        super::print_json(&list)?;
        return Ok(exit::OK);
    }
    println!(
        "{:<8}  {:<19}  {:<16}  {:>10}  {:<16}  paths",
        "id", "time (UTC)", "host", "size", "tags"
    );
    for (id, s) in &snaps {
        println!(
            "{:<8}  {:<19}  {:<16}  {:>10}  {:<16}  {}",
            id.short(),
            time(s.time.secs),
            s.hostname,
            bytes(s.stats.bytes_total),
            s.tags.join(","),
            what(s)
        );
    }
    if !g.quiet {
        println!("{} snapshots", snaps.len());
    }
    Ok(exit::OK)
}
