//! `cairn check`

use anyhow::{Result, bail};
use cairn::CheckOptions;

use crate::cli::{CheckArgs, Global};
use crate::{context, exit};

pub(crate) async fn run(g: &Global, a: CheckArgs) -> Result<u8> {
    let repo = context::open(g).await?;
    let report = repo
        .check(CheckOptions {
            read_data: a.read_data,
        })
        .await?;
    if a.json {
        super::print_json(&report)?;
    } else {
        if !g.quiet {
            println!(
                "checked {} snapshots, {} trees, {} packs{}",
                report.snapshots,
                report.trees,
                report.packs,
                if a.read_data {
                    format!(", {} blobs read and verified", report.blobs_verified)
                } else {
                    String::new()
                }
            );
            for w in &report.warnings {
                println!("warning: {}: {}", w.object, w.message);
            }
        }
        for e in &report.errors {
            eprintln!("error: {}: {}", e.object, e.message);
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
