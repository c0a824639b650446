//! One module per verb.

mod backup;
mod cat;
mod check;
mod copy;
mod diff;
mod docs;
mod dump;
mod find;
mod forget;
mod init;
mod key;
pub(crate) mod lock;
mod ls;
mod mount;
mod prune;
mod repair;
mod restore;
pub(crate) mod settings;
mod snapshots;
pub(crate) mod warm_up;

use anyhow::Result;

use crate::cli::{Cli, Command};

/// Runs a parsed command line; returns the exit code.
pub(crate) async fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init::run(g, a).await,
        Command::Backup(a) => backup::run(g, a).await,
        Command::Restore(a) => restore::run(g, a).await,
        Command::WarmUp(a) => warm_up::run(g, a).await,
        Command::Snapshots(a) => snapshots::run(g, a).await,
        Command::Ls(a) => ls::run(g, a).await,
        Command::Dump(a) => dump::run(g, a).await,
        Command::Mount(a) => mount::run(g, a).await,
        Command::Diff(a) => diff::run(g, a).await,
        Command::Find(a) => find::run(g, a).await,
        Command::Check(a) => check::run(g, a).await,
        Command::Forget(a) => forget::run(g, a).await,
        Command::Prune(a) => prune::run(g, a).await,
        Command::Copy(a) => copy::run(g, a).await,
        Command::Repair(c) => repair::run(g, c).await,
        Command::Key(k) => key::run(g, k).await,
        Command::Lock(c) => lock::run(g, c).await,
        Command::Cat(a) => cat::run(g, a).await,
        Command::Settings(a) => settings::run(g, a).await,
        Command::Completions(a) => docs::completions(a),
        Command::Man(a) => docs::man(a),
    }
}

/// Requests and bytes this process exchanged with the storage, and the
/// local cache's hits and misses, for `--json` summaries.
pub(crate) fn storage_json(store: &cairn::Store) -> serde_json::Value {
    let m = store.metrics();
    let (hits, misses) = store.cache().map(|c| c.stats()).unwrap_or_default();
    serde_json::json!({
        "requests": m.requests(),
        "gets": m.gets,
        "range_gets": m.range_gets,
        "puts": m.puts,
        "lists": m.lists,
        "deletes": m.deletes,
        "bytes_up": m.bytes_up,
        "bytes_down": m.bytes_down,
        "cache_hits": hits,
        "cache_misses": misses,
    })
}

/// Prints a value as pretty JSON on stdout.
pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
