//! `cairn forget`

use anyhow::{Context, Result, bail};
use cairn::Maintenance;
use cairn::retention::{Policy, Span};

use crate::cli::{ForgetArgs, Global};
use crate::output::bytes;
use crate::{context, exit};

pub(crate) async fn run(g: &Global, a: ForgetArgs) -> Result<u8> {
    let policy = policy(&a)?;
    let repo = context::open(g).await?;
    let report = repo
        .forget(&policy, cairn::RunMode::dry_run_if(a.dry_run))
        .await?;
    let prune = if a.prune && !a.dry_run {
        let opts = super::prune::options(&a.prune_opts)?;
        Some(repo.prune(opts).await?)
    } else {
        None
    };
    // Snapshots the policy removes but Object Lock retains are kept: the
    // exit code says so, for scripts that expect them gone.
    let code = if report.retained.objects > 0 {
        exit::RETAINED
    } else {
        exit::OK
    };
    if a.json {
        super::print_json(&serde_json::json!({ "forget": report, "prune": prune }))?;
    } else if !g.quiet {
        print_groups(&report);
        print_totals(&report, prune.as_ref(), a.dry_run);
    }
    Ok(code)
}

/// The retention policy the flags give; refuses an empty one.
fn policy(a: &ForgetArgs) -> Result<Policy> {
    let within = match &a.keep_within {
        Some(s) => Some(
            Span::parse(s)
                .with_context(|| format!("--keep-within {s:?}: expected e.g. 1y5m7d2h"))?,
        ),
        None => None,
    };
    let policy = Policy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within,
        tags: a.keep_tag.clone(),
    };
    if policy.is_empty() {
        bail!("no --keep-* option given: refusing to remove every snapshot");
    }
    Ok(policy)
}

fn print_groups(report: &cairn::ForgetReport) {
    for group in &report.groups {
        println!("{}:", group.group);
        for k in &group.keep {
            println!(
                "  keep   {}  {}  ({})",
                k.id.short(),
                crate::output::time(k.time),
                k.reasons.join(", ")
            );
        }
        for r in &group.remove {
            println!("  remove {}  {}", r.id.short(), crate::output::time(r.time));
        }
        for r in &group.retained {
            println!(
                "  locked {}  {}  (retained until {} UTC: removed by a later run)",
                r.id.short(),
                crate::output::time(r.time),
                r.retained_until
                    .map_or_else(String::new, crate::output::time)
            );
        }
    }
}

fn print_totals(report: &cairn::ForgetReport, prune: Option<&cairn::PruneReport>, dry_run: bool) {
    let n = report.removed().count();
    if dry_run {
        println!("would remove {n} snapshots (dry run)");
    } else {
        println!("removed {n} snapshots");
    }
    if let Some(line) = super::prune::retained_line("snapshots", &report.retained) {
        println!("{line}");
    }
    if let Some(p) = prune {
        println!(
            "prune: {} blobs tombstoned, {} deleted, {} freed",
            p.blobs_tombstoned,
            p.blobs_deleted,
            bytes(p.bytes_deleted.saturating_sub(p.bytes_written))
        );
        for (what, r) in [
            ("packs", &p.retained_packs),
            ("index files", &p.retained_index_files),
        ] {
            if let Some(line) = super::prune::retained_line(what, r) {
                println!("prune: {line}");
            }
        }
    }
}
