//! `cairn repair index`

use anyhow::Result;
use cairn::Maintenance;

use crate::cli::{Global, RepairCommand};
use crate::{context, exit};

pub(crate) async fn run(g: &Global, c: RepairCommand) -> Result<u8> {
    let RepairCommand::Index(a) = c;
    let repo = context::open(g).await?;
    let r = repo
        .repair_index(cairn::RunMode::dry_run_if(a.dry_run))
        .await?;
    // Damage is named on stderr whatever the output format; --json
    // carries it in `unreadable_packs` and `unreadable_index_files`.
    for (object, problem) in r.unreadable_packs.iter().chain(&r.unreadable_index_files) {
        eprintln!("warning: {object}: {problem}");
    }
    if a.json {
        super::print_json(&r)?;
    } else if !g.quiet {
        println!(
            "read the headers of {} packs ({} blobs); {} index files {}replaced by {}",
            r.packs,
            r.blobs,
            r.index_files_replaced,
            if r.dry_run { "would be " } else { "" },
            r.index_files_written
        );
    }
    Ok(exit::OK)
}
