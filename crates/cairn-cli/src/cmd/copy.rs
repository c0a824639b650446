//! `cairn copy`: snapshots of another repository copied into this one.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cairn::{CopyMemo, Id, Progress, Repository, Snapshot, Source};
use serde_json::json;

use crate::cli::{CopyArgs, Global};
use crate::output::Bar;
use crate::{context, exit, password};

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

/// The source snapshots to copy, oldest first (so a parent is copied
/// before its children).
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
    list.sort_by_key(|(id, s)| (s.time, *id));
    list.dedup_by_key(|(id, _)| *id);
    Ok(list)
}

async fn open_source(g: &Global, a: &CopyArgs) -> Result<Repository> {
    let source = Global {
        repo: Some(a.from_repo.clone()),
        // The target's --cache-dir is the target's: the source gets the
        // default one of its own URL.
        cache_dir: None,
        ..g.clone()
    };
    let pw = password::source(a.from_password_file.as_deref())?;
    context::open_with(&source, &pw)
        .await
        .context("the source repository (--from-repo)")
}

pub(crate) async fn run(g: &Global, a: CopyArgs) -> Result<u8> {
    let dst = context::open(g).await?;
    let src = open_source(g, &a).await?;
    if src.config().repo_id == dst.config().repo_id {
        bail!("the source and the target are the same repository");
    }
    let wanted = to_copy(&src, &a).await?;
    // Copies made before: source id → target id.
    let existing = dst.list_snapshots().await?;
    let mut copied: HashMap<Id, Id> = HashMap::new();
    let mut skipped = Vec::new();
    let mut todo = Vec::new();
    for (id, s) in &wanted {
        match existing.iter().find(|(_, t)| cairn::same_backup(s, t)) {
            Some((tid, _)) => {
                copied.insert(*id, *tid);
                skipped.push(json!({"source": id, "target": tid}));
            }
            None => todo.push((*id, s.clone())),
        }
    }
    // Parents copied earlier also count, for the trees they share.
    for (id, s) in src.list_snapshots().await? {
        if let Some((tid, _)) = existing.iter().find(|(_, t)| cairn::same_backup(&s, t)) {
            copied.entry(id).or_insert(*tid);
        }
    }
    let reseal = cairn::same_chunking(&src, &dst);
    if !g.quiet && !a.json {
        eprintln!(
            "{} snapshots to copy, {} copied before; chunks are {}",
            todo.len(),
            skipped.len(),
            if reseal {
                "re-sealed as they are (same chunker parameters)"
            } else {
                "cut again (the repositories' chunker parameters differ)"
            }
        );
    }
    if a.dry_run {
        return report(&a, &todo, &[], &skipped, reseal, &dst, &src, g);
    }
    let memo = Arc::new(CopyMemo::default());
    let progress = Arc::new(Progress::default());
    let stop = crate::output::stop_on_interrupt(progress.clone());
    let bar = Bar::start(progress.clone(), !g.quiet && !a.json, "copy");
    let mut done = Vec::new();
    let mut result = Ok(());
    for (id, s) in &todo {
        let parent = s.parent.and_then(|p| copied.get(&p).copied());
        if let (Some(sp), Some(tp)) = (s.parent, parent) {
            let (a_tree, b_tree) = (
                src.load_snapshot(&sp).await?.tree,
                dst.load_snapshot(&tp).await?.tree,
            );
            cairn::learn_copied(&src, &dst, &memo, a_tree, b_tree).await?;
        }
        match cairn::copy_snapshot(&src, &dst, *id, parent, memo.clone(), progress.clone()).await {
            Ok(out) => {
                copied.insert(*id, out.target_id);
                if !g.quiet && !a.json {
                    eprintln!(
                        "copied {} as {}: {} new blobs, {} stored",
                        id.short(),
                        out.target_id.short(),
                        out.writer.data_blobs + out.writer.tree_blobs,
                        crate::output::bytes(out.writer.bytes_stored)
                    );
                }
                done.push(out);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    bar.finish();
    stop.abort();
    result.context("copy stopped; run it again to copy the rest (what was stored is reused)")?;
    report(&a, &todo, &done, &skipped, reseal, &dst, &src, g)
}

#[allow(clippy::too_many_arguments)]
fn report(
    a: &CopyArgs,
    todo: &[(Id, Snapshot)],
    done: &[cairn::CopyOutcome],
    skipped: &[serde_json::Value],
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
        let planned: Vec<_> = todo.iter().map(|(id, _)| id).collect();
        println!(
            "{}",
            json!({
                "dry_run": a.dry_run,
                "rechunked": !reseal,
                "to_copy": planned,
                "copied": copied,
                "skipped": skipped,
                "storage": super::storage_json(dst.store()),
                "source_storage": super::storage_json(src.store()),
            })
        );
    } else if !g.quiet && a.dry_run {
        for (id, s) in todo {
            println!(
                "would copy {} ({})",
                id.short(),
                crate::output::time(s.time.secs)
            );
        }
    }
    Ok(exit::OK)
}
