//! `cairn find`

use anyhow::Result;

use crate::cli::{FindArgs, Global};
use crate::output::time;
use crate::{context, exit};

pub(crate) async fn run(g: &Global, a: FindArgs) -> Result<u8> {
    let repo = context::open(g).await?;
    let snapshots = if a.snapshots.is_empty() {
        repo.list_snapshots().await?
    } else {
        let mut v = Vec::new();
        for s in &a.snapshots {
            v.push(repo.find_snapshot(s).await?);
        }
        v
    };
    let mut found = 0usize;
    for (id, snap) in &snapshots {
        let entries = cairn::find(&repo, snap, &a.pattern).await?;
        found += entries.len();
        if entries.is_empty() || g.quiet {
            continue;
        }
        if !a.json {
            println!(
                "snapshot {} of {} ({}):",
                id.short(),
                time(snap.time.secs),
                snap.hostname
            );
        }
        for e in entries {
            if a.json {
                let path = match std::str::from_utf8(&e.path) {
                    Ok(t) => serde_json::json!(t),
                    Err(_) => serde_json::json!({ "hex": hex::encode(&e.path) }),
                };
                println!(
                    "{}",
                    serde_json::json!({
                        "snapshot": id,
                        "path": path,
                        "type": e.node.kind,
                        "size": e.node.size,
                        "mtime": e.node.mtime.secs,
                    })
                );
            } else {
                println!(
                    "  {:>12} {} {}",
                    e.node.size,
                    time(e.node.mtime.secs),
                    String::from_utf8_lossy(&e.path)
                );
            }
        }
    }
    if found == 0 && !a.json && !g.quiet {
        eprintln!("no path matches {:?}", a.pattern);
    }
    Ok(exit::OK)
}
