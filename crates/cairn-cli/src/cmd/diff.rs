//! `cairn diff`

use anyhow::Result;
use cairn::ChangeKind;

use crate::cli::{DiffArgs, Global};
use crate::{context, exit};

pub(crate) async fn run(g: &Global, a: DiffArgs) -> Result<u8> {
    let repo = context::open(g).await?;
    let (ida, sa) = repo.find_snapshot(&a.from).await?;
    let (idb, sb) = repo.find_snapshot(&a.to).await?;
    let changes = cairn::diff(&repo, &sa, &sb).await?;
    let (mut added, mut removed, mut changed) = (0, 0, 0);
    for c in &changes {
        match c.kind {
            ChangeKind::Added => added += 1,
            ChangeKind::Removed => removed += 1,
            ChangeKind::Changed => changed += 1,
        }
        if g.quiet {
            continue;
        }
        if a.json {
            let path = match std::str::from_utf8(&c.path) {
                Ok(t) => serde_json::json!(t),
                Err(_) => serde_json::json!({ "hex": hex::encode(&c.path) }),
            };
            println!(
                "{}",
                serde_json::json!({ "path": path, "change": c.kind, "what": c.what })
            );
        } else {
            let sign = match c.kind {
                ChangeKind::Added => '+',
                ChangeKind::Removed => '-',
                ChangeKind::Changed => 'M',
            };
            let what = if c.what.is_empty() {
                String::new()
            } else {
                format!("  ({})", c.what.join(", "))
            };
            println!("{sign} {}{what}", String::from_utf8_lossy(&c.path));
        }
    }
    if !a.json && !g.quiet {
        println!(
            "{} → {}: {added} added, {removed} removed, {changed} changed",
            ida.short(),
            idb.short()
        );
    }
    Ok(exit::OK)
}
