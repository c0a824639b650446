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

/// The process's peak resident set so far, in bytes (`VmHWM` in
/// /proc/self/status), for `--json` summaries: each verb runs as a process
/// of its own, so this is the step's peak, the figure docs/PERFORMANCE.md
/// budgets. `None` where the kernel does not say.
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    vm_hwm(&std::fs::read_to_string("/proc/self/status").ok()?)
}

fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// `report` (an object) with the process's peak resident set added as
/// `peak_rss_bytes`.
pub(crate) fn with_peak_rss<T: serde::Serialize>(report: &T) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(report)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("peak_rss_bytes".into(), peak_rss_bytes().into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_resident_set_is_read_from_the_kernel_s_words() {
        let status = "Name:\tcairn\nVmPeak:\t  2000 kB\nVmHWM:\t   81920 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(vm_hwm(status), Some(80 << 20));
        assert_eq!(vm_hwm("VmRSS:\t1 kB\n"), None);
        assert_eq!(vm_hwm("VmHWM:\t12 MB\n"), None);
        assert_eq!(vm_hwm("VmHWM:\tlots kB\n"), None);
        // This process has a resident set.
        assert!(peak_rss_bytes().is_some_and(|b| b > 0));
    }

    #[test]
    fn a_report_gains_its_peak_and_keeps_the_rest() {
        let v = with_peak_rss(&serde_json::json!({ "blobs": 3 })).expect("json");
        assert_eq!(v["blobs"], 3);
        assert!(v["peak_rss_bytes"].as_u64().is_some_and(|b| b > 0));
    }
}
