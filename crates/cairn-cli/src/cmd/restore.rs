//! `cairn restore`

use std::sync::Arc;

use anyhow::{Result, bail};
use cairn::{Progress, RestoreOptions};

use crate::cli::{Global, RestoreArgs};
use crate::output::{Bar, bytes};
use crate::{context, exit};

/// Splits "SNAPSHOT[:PATH]".
pub(crate) fn split_spec(spec: &str) -> (&str, &str) {
    spec.split_once(':').unwrap_or((spec, ""))
}

pub(crate) async fn run(g: &Global, a: RestoreArgs) -> Result<u8> {
    let repo = context::open(g).await?;
    let (snap, path) = split_spec(&a.snapshot);
    let (id, snapshot) = repo.find_snapshot(snap).await?;
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(progress.clone(), !g.quiet && !a.json, "restore");
    let result = cairn::restore(
        &repo,
        &snapshot,
        RestoreOptions {
            target: a.target.clone(),
            path: path.as_bytes().to_vec(),
            owners: if a.no_owner { Some(false) } else { None },
        },
        progress,
    )
    .await;
    bar.finish();
    let out = result?;
    if a.json {
        super::print_json(
            &serde_json::json!({ "snapshot_id": id, "target": a.target, "outcome": out }),
        )?;
    } else if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} files ({}), {} directories, {} symlinks, {} special files",
            id.short(),
            a.target.display(),
            out.files,
            bytes(out.bytes),
            out.dirs,
            out.symlinks,
            out.special
        );
    }
    if !out.errors.is_empty() {
        for e in &out.errors {
            eprintln!("  {}: {}", e.path.display(), e.message);
        }
        bail!(
            "{} entries could not be restored (listed above)",
            out.errors.len()
        );
    }
    Ok(exit::OK)
}
