//! `cairn backup`

use std::sync::Arc;

use anyhow::{Context, Result};
use cairn::{BackupOptions, ParentChoice, Progress, Repository, Selection};

use crate::cli::{BackupArgs, Global};
use crate::output::{Bar, bytes};
use crate::{context, exit};

pub(crate) async fn run(g: &Global, a: BackupArgs) -> Result<u8> {
    // Chunk-sized buffers unmapped when freed: less memory kept for a
    // backup, at no measurable cost (not for restores, which pay for it).
    cairn::unmap_large_buffers();
    // The tree's metadata is read into the kernel's caches while the
    // repository's key is derived, and stays ahead of the walk after.
    let readahead = (!a.stdin).then(|| cairn::MetadataReadahead::start(a.paths.clone()));
    let repo = context::open_overlapped(g).await?;
    let progress = Arc::new(Progress::default());
    let mut bar = Bar::start(progress.clone(), !g.quiet && !a.json, "backup");
    if !a.stdin {
        bar.scan(progress.clone(), a.paths.clone());
    }
    let (json, stdin, stdin_filename) = (a.json, a.stdin, a.stdin_filename.clone());
    let opts = options(&repo, a).await?;
    let interrupt = crate::output::stop_on_interrupt(progress.clone());
    let result = if stdin {
        let input = Box::new(std::io::stdin());
        cairn::backup_stream(&repo, opts, &stdin_filename, input, progress).await
    } else {
        cairn::backup(&repo, opts, progress).await
    };
    interrupt.abort();
    drop(readahead);
    bar.finish();
    if let Err(cairn::error::FsError::Cancelled) = result {
        anyhow::bail!(
            "backup interrupted; no snapshot was saved, and what was uploaded is indexed for the next backup to reuse"
        );
    }
    let out = result?;
    if json {
        super::print_json(&report_json(&out, &repo))?;
    } else if !g.quiet {
        print_text(&out);
    }
    if out.warnings.is_empty() {
        return Ok(exit::OK);
    }
    if !json {
        eprintln!(
            "warning: {} entries could not be read and are not in the snapshot:",
            out.warnings.len()
        );
        for w in &out.warnings {
            eprintln!("  {}: {}", w.path.display(), w.message);
        }
    }
    Ok(exit::PARTIAL)
}

/// The engine's options from the command line: the parent, the
/// exclusions (with `--exclude-file`s read), host, user, tags and time.
async fn options(repo: &Repository, a: BackupArgs) -> Result<BackupOptions> {
    let parent = if a.force {
        ParentChoice::None
    } else if let Some(p) = &a.parent {
        ParentChoice::Snapshot(repo.find_snapshot(p).await?.0)
    } else {
        ParentChoice::Auto
    };
    let mut exclude = a.exclude;
    for f in &a.exclude_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read exclude file {}", f.display()))?;
        exclude.extend(text.lines().map(str::to_owned));
    }
    let mut opts = BackupOptions::new(repo, a.paths);
    opts.hostname = a.host.unwrap_or_else(context::hostname);
    opts.username = context::username();
    opts.tags = a.tags;
    opts.parent = parent;
    opts.time = context::now();
    opts.selection = Selection {
        exclude,
        iexclude: a.iexclude,
        ignore_file: (!a.no_ignore_files).then(|| ".cairnignore".to_owned()),
        exclude_caches: a.exclude_caches,
        one_file_system: a.one_file_system,
        read_special: a.read_special,
    };
    if a.ignore_inode {
        opts.change_detection = cairn::ChangeDetection::SizeAndMtime;
    }
    opts.exact_atime = a.exact_atime;
    Ok(opts)
}

/// `--json`'s report (docs/cli-json.schema.json, `backup`).
fn report_json(out: &cairn::BackupOutcome, repo: &Repository) -> serde_json::Value {
    let s = &out.snapshot.stats;
    let w = &out.writer;
    serde_json::json!({
        "snapshot_id": out.snapshot_id,
        "parent": out.snapshot.parent,
        "files_new": s.files_new,
        "files_changed": s.files_changed,
        "files_unchanged": s.files_unchanged,
        "dirs_new": s.dirs_new,
        "dirs_changed": s.dirs_changed,
        "dirs_unchanged": s.dirs_unchanged,
        "bytes_total": s.bytes_total,
        "bytes_read": s.bytes_read,
        "bytes_added": s.bytes_added,
        "bytes_stored": s.bytes_stored,
        "data_blobs_added": w.data_blobs,
        "tree_blobs_added": w.tree_blobs,
        "data_packs_written": w.data_packs,
        "tree_packs_written": w.tree_packs,
        "index_files_written": w.index_files,
        "duration_seconds": s.duration_nanos as f64 / 1e9,
        "warnings": out.warnings,
        "storage": super::storage_json(repo.store()),
        "peak_rss_bytes": super::peak_rss_bytes(),
    })
}

/// The report for people.
fn print_text(out: &cairn::BackupOutcome) {
    let s = &out.snapshot.stats;
    let w = &out.writer;
    let parent = out
        .snapshot
        .parent
        .map(|p| format!(" (parent {})", p.short()))
        .unwrap_or_default();
    println!("snapshot {} saved{parent}", out.snapshot_id.short());
    println!(
        "files: {} new, {} changed, {} unchanged; directories: {} new, {} changed, {} unchanged",
        s.files_new,
        s.files_changed,
        s.files_unchanged,
        s.dirs_new,
        s.dirs_changed,
        s.dirs_unchanged
    );
    println!(
        "read {} of {}; added {} ({} stored) in {} data and {} tree packs; took {:.2}s",
        bytes(s.bytes_read),
        bytes(s.bytes_total),
        bytes(s.bytes_added),
        bytes(s.bytes_stored),
        w.data_packs,
        w.tree_packs,
        s.duration_nanos as f64 / 1e9
    );
}
