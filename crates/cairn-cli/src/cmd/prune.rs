//! `cairn prune`

use anyhow::{Context, Result, bail};
use cairn::Maintenance;
use cairn::PruneOptions;

use crate::cli::{Global, PruneArgs, PruneOpts};
use crate::output::{bytes, parse_size};
use crate::{context, exit};

/// Seconds in a duration such as `90s`, `30min`, `24h`, `2d` or `1w`.
fn seconds(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

pub(crate) fn options(o: &PruneOpts) -> Result<PruneOptions> {
    let grace = seconds(&o.grace)
        .with_context(|| format!("--grace {:?}: expected e.g. 90s, 30min, 24h, 2d", o.grace))?;
    let max_unused = o
        .max_unused
        .trim()
        .strip_suffix('%')
        .and_then(|p| p.trim().parse::<f64>().ok())
        .filter(|p| (0.0..=100.0).contains(p))
        .with_context(|| {
            format!(
                "--max-unused {:?}: expected a percentage such as 5%",
                o.max_unused
            )
        })?;
    let max_repack_size = match &o.max_repack_size {
        None => None,
        Some(s) => Some(
            parse_size(s).with_context(|| format!("--max-repack-size {s:?}: expected e.g. 2G"))?,
        ),
    };
    let mut opts = cairn::PruneOptions::default();
    opts.grace = grace;
    opts.max_unused = max_unused / 100.0;
    opts.max_repack_size = max_repack_size;
    opts.dry_run = false;
    opts.repack_cold = o.repack_cold;
    Ok(opts)
}

pub(crate) async fn run(g: &Global, a: PruneArgs) -> Result<u8> {
    // A tree of millions of chunks is a buffer of tens of MiB: unmapped
    // when freed, not kept by the heap (ADR 0023).
    cairn::unmap_large_buffers();
    let mut opts = options(&a.opts)?;
    opts.dry_run = a.dry_run;
    if opts.grace < cairn::layers::repo::MIN_GRACE {
        bail!(
            "--grace {}: at least {}h is needed to cover clock differences between hosts and listing delays",
            a.opts.grace,
            cairn::layers::repo::MIN_GRACE / 3600
        );
    }
    let repo = context::open(g).await?;
    let r = repo.prune(opts).await?;
    if a.json {
        super::print_json(&super::with_peak_rss(&r)?)?;
    } else if !g.quiet {
        print_text(&r);
    }
    Ok(exit::OK)
}

/// The report for people.
fn print_text(r: &cairn::PruneReport) {
    let verb = if r.dry_run { "would " } else { "" };
    println!(
        "{} snapshots reference {} blobs; sessions removed (stale, or ended past the grace period): {}",
        r.snapshots, r.blobs_referenced, r.stale_sessions_removed
    );
    println!(
        "phase 1: {verb}tombstone {} unreferenced blobs",
        r.blobs_tombstoned
    );
    println!(
        "phase 2: {verb}delete {} blobs: {} packs deleted, {} repacked into {}; {} removed, {} written",
        r.blobs_deleted,
        r.packs_deleted,
        r.packs_repacked,
        r.packs_written,
        bytes(r.bytes_deleted),
        bytes(r.bytes_written)
    );
    if r.packs_cold_kept > 0 {
        println!(
            "{} partly used packs in GLACIER or DEEP_ARCHIVE left as they are: repacking \
             them would restore and download {} and upload {} again (--repack-cold)",
            r.packs_cold_kept,
            bytes(r.bytes_cold_kept),
            bytes(r.bytes_cold_live)
        );
    }
    if r.cold_restores_requested > 0 {
        println!(
            "{} the restore of {} archived packs: a prune --repack-cold once they are \
             readable repacks them",
            if r.dry_run {
                "would ask for"
            } else {
                "asked for"
            },
            r.cold_restores_requested
        );
    }
    if r.tombstone_files_waiting > 0 {
        println!(
            "{} tombstone files wait for the grace period{}",
            r.tombstone_files_waiting,
            if r.blocking_sessions.is_empty() {
                String::new()
            } else {
                format!(" and {} running backups", r.blocking_sessions.len())
            }
        );
    }
    if !r.unreadable_sessions.is_empty() {
        println!(
            "{} session objects cannot be read; deletions wait until they are gone or 1h past the grace period",
            r.unreadable_sessions.len()
        );
    }
    if r.packs_adopted + r.packs_missing + r.stray_objects_deleted > 0 {
        println!(
            "leftovers: {} unindexed packs adopted, {} stray objects deleted, {} missing packs dropped from the index",
            r.packs_adopted, r.stray_objects_deleted, r.packs_missing
        );
    }
    for (what, retained) in [
        ("packs", &r.retained_packs),
        ("superseded index files", &r.retained_index_files),
    ] {
        if let Some(line) = retained_line(what, retained) {
            println!("{line}");
        }
    }
    println!(
        "index files: {} -> {} ({} left as they were)",
        r.index_files_before, r.index_files_after, r.index_files_kept
    );
}

/// "2 packs (1.5 MiB) are retained by object lock until 2026-12-01 …",
/// or nothing when none are.
pub(crate) fn retained_line(what: &str, r: &cairn::layers::repo::Retained) -> Option<String> {
    let (first, last) = (r.earliest_until?, r.latest_until?);
    let size = if r.bytes > 0 {
        format!(" ({})", bytes(r.bytes))
    } else {
        String::new()
    };
    let when = if first == last {
        format!("until {} UTC", crate::output::time(first))
    } else {
        format!(
            "until {} to {} UTC",
            crate::output::time(first),
            crate::output::time(last)
        )
    };
    Some(format!(
        "{} {what}{size} are retained by object lock {when}: kept, deletable by a run after that",
        r.objects
    ))
}
