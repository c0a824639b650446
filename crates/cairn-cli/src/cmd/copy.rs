//! `cairn copy`: snapshots of another repository copied into this one.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cairn::{Id, Progress, Repository, Snapshot, Source};
use serde_json::json;

use crate::cli::{CopyArgs, Global};
use crate::output::Bar;
use crate::{context, exit};

/// Whether `s` passes the filters of `a` (each filter given must match).
fn selected(a: &CopyArgs, s: &Snapshot) -> bool {
    let host = a.host.is_empty() || a.host.contains(&s.hostname);
    let tag = a.tag.is_empty() || s.tags.iter().any(|t| a.tag.contains(t));
    let path = a.path.is_empty()
        || s.paths
            .iter()
            .any(|p| a.path.iter().any(|want| want.as_bytes() == p.as_slice()));
    let claim = a.claim.is_empty()
        || match &s.source {
            Source::KubernetesVolume {
                namespace, name, ..
            } => a.claim.contains(&format!("{namespace}/{name}")),
            Source::Filesystem => false,
        };
    host && tag && path && claim
}

/// The source snapshots the arguments select.
async fn to_copy(src: &Repository, a: &CopyArgs) -> Result<Vec<(Id, Snapshot)>> {
    let mut list = if a.snapshots.is_empty() {
        src.list_snapshots().await?
    } else {
        let mut list = Vec::new();
        for spec in &a.snapshots {
            list.push(
                src.find_snapshot(spec)
                    .await
                    .with_context(|| format!("snapshot {spec:?} in the source repository"))?,
            );
        }
        list
    };
    list.retain(|(_, s)| selected(a, s));
    Ok(list)
}

pub(crate) async fn run(g: &Global, a: CopyArgs) -> Result<u8> {
    let dst = context::open(g).await?;
    let src = context::open_other(g, &a.from_repo, a.from_password_file.as_deref())
        .await
        .context("the source repository (--from-repo)")?;
    if src.config().repo_id == dst.config().repo_id {
        bail!("the source and the target are the same repository");
    }
    let wanted = to_copy(&src, &a).await?;
    let mut plan = cairn::plan_copies(
        &wanted,
        &src.list_snapshots().await?,
        &dst.list_snapshots().await?,
    );
    let reseal = cairn::same_chunking(&src, &dst);
    let talk = !g.quiet && !a.json;
    if talk {
        eprintln!(
            "{} snapshots to copy, {} copied before; chunks are {}",
            plan.todo.len(),
            plan.copied_before.len(),
            if reseal {
                "re-sealed as they are (same chunker parameters)"
            } else {
                "cut again (the repositories' chunker parameters differ)"
            }
        );
    }
    if a.dry_run {
        return report(&a, (&plan, &[], None), reseal, &dst, &src, g);
    }
    // From an archival source, the packs are asked for and waited for
    // before anything is read.
    let warm = super::warm_up::read_options(&a.warm, !talk, super::warm_up::stderr())?;
    let todo: Vec<&Snapshot> = plan.todo.iter().map(|(_, s)| s).collect();
    let warm_up = cairn::warm_for_copy(&src, &todo, &warm).await?;
    if let (Some(r), true) = (&warm_up, talk) {
        eprintln!("{}", super::warm_up::summary(r));
    }
    let progress = Arc::new(Progress::default());
    let stop = crate::output::stop_on_interrupt(progress.clone());
    let bar = Bar::start(progress.clone(), talk, "copy");
    let result = cairn::execute_copies(&src, &dst, &mut plan, progress, |out| {
        if talk {
            eprintln!(
                "copied {} as {}: {} new blobs, {} stored",
                out.source_id.short(),
                out.target_id.short(),
                out.writer.data_blobs + out.writer.tree_blobs,
                crate::output::bytes(out.writer.bytes_stored)
            );
        }
    })
    .await;
    bar.finish();
    stop.abort();
    let done = result
        .context("copy stopped; run it again to copy the rest (what was stored is reused)")?;
    report(&a, (&plan, &done, warm_up.as_ref()), reseal, &dst, &src, g)
}

fn report(
    a: &CopyArgs,
    (plan, done, warm_up): (
        &cairn::CopyPlan,
        &[cairn::CopyOutcome],
        Option<&cairn::layers::repo::WarmReport>,
    ),
    reseal: bool,
    dst: &Repository,
    src: &Repository,
    g: &Global,
) -> Result<u8> {
    if a.json {
        let copied: Vec<_> = done
            .iter()
            .map(|o| json!({"source": o.source_id, "target": o.target_id, "writer": o.writer}))
            .collect();
        let planned: Vec<_> = plan.todo.iter().map(|(id, _)| id).collect();
        let skipped: Vec<_> = plan
            .copied_before
            .iter()
            .map(|(s, t)| json!({"source": s, "target": t}))
            .collect();
        println!(
            "{}",
            json!({
                "dry_run": a.dry_run,
                "rechunked": !reseal,
                "to_copy": planned,
                "copied": copied,
                "skipped": skipped,
                "warm_up": warm_up,
                "storage": super::storage_json(dst.store()),
                "source_storage": super::storage_json(src.store()),
            })
        );
    } else if !g.quiet && a.dry_run {
        for (id, s) in &plan.todo {
            println!(
                "would copy {} ({})",
                id.short(),
                crate::output::time(s.time.secs)
            );
        }
    }
    Ok(exit::OK)
}
