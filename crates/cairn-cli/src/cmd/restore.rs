//! `cairn restore`

use std::sync::Arc;

use anyhow::{Result, bail};
use cairn::{Overwrite, Progress, RestoreOptions};

use crate::cli::{Global, OverwriteArg, RestoreArgs};
use crate::output::{Bar, bytes};
use crate::{context, exit};

/// Splits "SNAPSHOT[:PATH]".
pub(crate) fn split_spec(spec: &str) -> (&str, &str) {
    spec.split_once(':').unwrap_or((spec, ""))
}

/// The restore's outcome, or the error to show: what an interruption
/// left, and for an archived pack, how to warm up.
fn outcome(
    result: std::result::Result<cairn::RestoreOutcome, cairn::error::FsError>,
    warming: bool,
    snap: &str,
    path: &str,
) -> Result<cairn::RestoreOutcome> {
    match result {
        Ok(out) => Ok(out),
        Err(cairn::error::FsError::Cancelled) if warming => bail!(
            "restore interrupted; files restored so far are complete, the rest is missing; \
             restores from archival storage already asked for go on, and running the same \
             command again asks for none of them twice"
        ),
        Err(cairn::error::FsError::Cancelled) => {
            bail!("restore interrupted; files restored so far are complete, the rest is missing")
        }
        Err(e) => {
            let e = cairn::Error::from(e);
            if e.kind() != cairn::ErrorKind::Archived {
                return Err(e.into());
            }
            let paths = if path.is_empty() {
                String::new()
            } else {
                format!(" {path}")
            };
            Err(anyhow::Error::new(e).context(format!(
                "restore stopped at a pack in an archival storage class; run it again with \
                 --warm-up (which asks for the packs it needs and waits for them), or ask for \
                 them first with `cairn warm-up {snap}{paths}`"
            )))
        }
    }
}

pub(crate) async fn run(g: &Global, a: RestoreArgs) -> Result<u8> {
    let repo = context::open(g).await?;
    let (snap, path) = split_spec(&a.snapshot);
    let (id, snapshot) = repo.find_snapshot(snap).await?;
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(progress.clone(), !g.quiet && !a.json, "restore");
    let warm = super::warm_up::read_options(&a.warm, g.quiet, bar.printer())?;
    let warming = repo.should_warm(warm.when);
    let interrupt = crate::output::stop_on_interrupt(progress.clone());
    let result = cairn::restore(
        &repo,
        &snapshot,
        {
            let mut o = RestoreOptions::default();
            o.target = a.target.clone();
            o.path = path.as_bytes().to_vec();
            o.owners = if a.no_owner { Some(false) } else { None };
            o.include = a.include.clone();
            o.exclude = a.exclude.clone();
            o.overwrite = match a.overwrite {
                OverwriteArg::Always => Overwrite::Always,
                OverwriteArg::IfChanged => Overwrite::IfChanged,
                OverwriteArg::Never => Overwrite::Never,
            };
            o.delete = a.delete;
            o.verify = a.verify;
            o.untrusted = a.untrusted;
            o.warm = warm;
            o
        },
        progress,
    )
    .await;
    interrupt.abort();
    bar.finish();
    let out = outcome(result, warming, snap, path)?;
    if a.json {
        super::print_json(&serde_json::json!({
            "snapshot_id": id,
            "target": a.target,
            "outcome": out,
            "peak_rss_bytes": super::peak_rss_bytes(),
        }))?;
    } else if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} files ({}, {} written), {} directories, {} symlinks, {} special files, {} hard links",
            id.short(),
            a.target.display(),
            out.files,
            bytes(out.bytes),
            bytes(out.bytes_written),
            out.dirs,
            out.symlinks,
            out.special,
            out.hardlinks
        );
        if out.dropped > 0 {
            println!(
                "{} entries restored without set-id bits or capabilities, or left out as device nodes (--untrusted)",
                out.dropped
            );
        }
        if let Some(w) = &out.warm_up {
            println!("{}", super::warm_up::summary(w));
        }
        if out.unchanged + out.skipped + out.deleted + out.verified > 0 {
            println!(
                "{} files already up to date, {} existing entries kept, {} deleted, {} verified",
                out.unchanged, out.skipped, out.deleted, out.verified
            );
        }
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
