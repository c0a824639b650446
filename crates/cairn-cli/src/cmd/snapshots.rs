//! `cairn snapshots`

use anyhow::Result;

use crate::cli::{Global, SnapshotsArgs};
use crate::output::{bytes, time};
use crate::{context, exit};

pub(crate) async fn run(g: &Global, a: SnapshotsArgs) -> Result<u8> {
    let repo = context::open(g).await?;
    let snaps = repo.list_snapshots().await?;
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
        let paths: Vec<String> = s
            .paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        println!(
            "{:<8}  {:<19}  {:<16}  {:>10}  {:<16}  {}",
            id.short(),
            time(s.time.secs),
            s.hostname,
            bytes(s.stats.bytes_total),
            s.tags.join(","),
            paths.join(" ")
        );
    }
    if !g.quiet {
        println!("{} snapshots", snaps.len());
    }
    Ok(exit::OK)
}
