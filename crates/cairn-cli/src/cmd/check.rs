//! `cairn check`

use anyhow::{Result, bail};
use cairn::Maintenance;
use cairn::ReadData;

use crate::cli::{CheckArgs, Global};
use crate::{context, exit};

pub(crate) async fn run(g: &Global, a: CheckArgs) -> Result<u8> {
    // As for prune: large trees' buffers unmapped when freed (ADR 0023).
    cairn::unmap_large_buffers();
    let read = match &a.read_data_subset {
        Some(s) => match ReadData::parse_subset(s) {
            Some(r) => r,
            None => bail!("--read-data-subset {s:?}: expected N/M (e.g. 2/5) or P% (e.g. 10%)"),
        },
        None if a.read_data => ReadData::All,
        None => ReadData::None,
    };
    let repo = context::open(g).await?;
    let warm = super::warm_up::read_options(&a.warm, g.quiet, super::warm_up::stderr())?;
    let metadata = if a.with_cache {
        cairn::MetadataSource::Cache
    } else {
        cairn::MetadataSource::Repository
    };
    let report = repo.check_warming(read, metadata, &warm).await?;
    if a.json {
        super::print_json(&super::with_peak_rss(&report)?)?;
    } else {
        if !g.quiet {
            println!(
                "checked {} snapshots, {} trees, {} packs{}",
                report.snapshots,
                report.trees,
                report.packs,
                if read == ReadData::None {
                    String::new()
                } else {
                    format!(
                        "; read {} packs, {} blobs verified",
                        report.packs_read, report.blobs_verified
                    )
                }
            );
            if let Some(w) = &report.warm_up {
                println!("{}", super::warm_up::summary(w));
            }
            if report.packs_archived > 0 {
                println!(
                    "{} packs are archived (GLACIER or DEEP_ARCHIVE): their headers were not read; \
                     --read-data or --read-data-subset restores the packs it reads first",
                    report.packs_archived
                );
            }
            for w in &report.warnings {
                println!("warning: {}: {}", w.object, w.message);
            }
        }
        for e in &report.errors {
            let snaps: Vec<String> = e.snapshots.iter().map(|s| s.short()).collect();
            if snaps.is_empty() {
                eprintln!("error: {}: {}", e.object, e.message);
            } else {
                eprintln!(
                    "error: {}: {} (affects snapshots {})",
                    e.object,
                    e.message,
                    snaps.join(", ")
                );
            }
        }
    }
    if !report.is_ok() {
        bail!(
            "the repository has {} errors (listed above)",
            report.errors.len()
        );
    }
    if !a.json && !g.quiet {
        println!("no errors found");
    }
    Ok(exit::OK)
}
