//! `cairn lock extend` and `cairn lock recover`: S3 Object Lock upkeep
//! (docs/ARCHIVAL.md, "Object lock").

use cairn::Maintenance;
use std::io::IsTerminal;

use anyhow::{Result, bail};
use cairn::layers::repo::lock::{RecoverOptions, RecoverReport, recover};
use cairn::layers::repo::{ExtendProgress, ExtendReport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::Global;
use crate::cli_args::{ExtendArgs, LockCommand, RecoverArgs};
use crate::output::time;
use crate::{context, exit};

pub(crate) async fn run(g: &Global, c: LockCommand) -> Result<u8> {
    match c {
        LockCommand::Extend(a) => extend(g, a).await,
        LockCommand::Recover(a) => run_recover(g, a).await,
    }
}

async fn extend(g: &Global, a: ExtendArgs) -> Result<u8> {
    let repo = context::open(g).await?;
    let bar = progress_bar(!g.quiet);
    let shown = bar.clone();
    let r = repo
        .extend_locks(&move |p: ExtendProgress| {
            shown.set_length(p.total as u64);
            shown.set_position(p.checked as u64);
            shown.set_message(format!("{} extended", p.extended));
        })
        .await;
    bar.finish_and_clear();
    let r = r?;
    for e in &r.errors {
        eprintln!("error: {e}");
    }
    if a.json {
        super::print_json(&r)?;
    } else if !g.quiet {
        print!("{}", describe_extend(&r));
    }
    if r.failed > 0 {
        bail!(
            "the retention of {} objects could not be extended",
            r.failed
        );
    }
    Ok(exit::OK)
}

/// A bar on stderr, drawn only on a terminal.
fn progress_bar(enabled: bool) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {elapsed_precise} lock extend {pos}/{len} objects, {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn describe_extend(r: &ExtendReport) -> String {
    let mut out = format!("checked {} objects, extended {}", r.checked, r.extended);
    if r.missing > 0 {
        out.push_str(&format!(", {} gone meanwhile", r.missing));
    }
    out.push('\n');
    if r.damaged_index_files > 0 {
        out.push_str(&format!(
            "{} index files could not be read, so every pack was kept retained \
             (`cairn repair index` rebuilds them)\n",
            r.damaged_index_files
        ));
    }
    if r.snapshots_unretained > 0 {
        out.push_str(&format!(
            "{} snapshots are past their retention (forget may remove them)\n",
            r.snapshots_unretained
        ));
    }
    if let Some(t) = r.earliest_until {
        out.push_str(&format!(
            "earliest retention left: {} UTC; extend again before then\n",
            time(t)
        ));
    }
    out
}

async fn run_recover(g: &Global, a: RecoverArgs) -> Result<u8> {
    let store = context::store(g, false)?;
    let opts = RecoverOptions {
        dry_run: a.dry_run,
        include_unretained: a.include_unretained,
    };
    let r = recover(&store, opts).await?;
    if a.json {
        super::print_json(&r)?;
    } else if !g.quiet {
        print!("{}", describe_recover(&r));
    }
    Ok(exit::OK)
}

fn describe_recover(r: &RecoverReport) -> String {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let folders: Vec<String> = r
        .restored_by_folder
        .iter()
        .map(|(f, n)| format!("{f} {n}"))
        .collect();
    let mut out = format!(
        "{verb} {} delete markers: {} objects {}readable again",
        r.markers_removed,
        r.restored,
        if r.dry_run { "would be " } else { "" }
    );
    if !folders.is_empty() {
        out.push_str(&format!(" ({})", folders.join(", ")));
    }
    out.push('\n');
    if r.left_unretained > 0 {
        out.push_str(&format!(
            "left hidden: {} objects whose retention has ended (prune and forget delete \
             such objects on purpose; --include-unretained brings them back too)\n",
            r.left_unretained
        ));
    }
    if r.destroyed > 0 {
        out.push_str(&format!(
            "{} objects have no version left: they cannot be brought back\n",
            r.destroyed
        ));
    }
    out
}
