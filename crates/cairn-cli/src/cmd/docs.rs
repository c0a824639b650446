//! `cairn completions SHELL` and `cairn man DIR`: generated from the same
//! clap definitions that parse the command line, so they never drift.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::exit;

/// Prints the completion script for one shell on stdout.
pub(crate) fn completions(a: CompletionsArgs) -> Result<u8> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "cairn", &mut std::io::stdout());
    Ok(exit::OK)
}

/// Writes `cairn.1` and one page per subcommand (`cairn-key-add.1`, …).
pub(crate) fn man(a: ManArgs) -> Result<u8> {
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    write_pages(&cmd, "cairn", &a.dir)?;
    Ok(exit::OK)
}

/// One page for `cmd` named `name`, then its subcommands, depth first.
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path) -> Result<()> {
    // The page's title is the full command ("cairn-key-add"), as man(1)
    // looks pages up by that name.
    let page = cmd.clone().name(name.to_owned());
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .with_context(|| format!("cannot render the page for {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
