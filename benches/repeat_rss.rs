//! Resident memory of one process that backs up and restores again and
//! again, as cairn-agent does for the volumes of its node: each cycle
//! backs SOURCE up into a new local repository and restores it, and the
//! process's resident set (now and at its peak, from /proc/self/status) is
//! printed after each step. `--unmap` first calls
//! `cairn::unmap_large_buffers` (the fixed mmap threshold the CLI's backup
//! command sets), to compare what a long-running process keeps with and
//! without it; `--trim` calls `cairn::release_free_memory` after each
//! backup and each restore, as the agent does after each job.
//!
//!   cargo run --release -p cairn-benches --bin repeat-rss -- SOURCE CYCLES [--unmap] [--trim]

use std::path::PathBuf;
use std::sync::Arc;

use cairn::{
    BackupOptions, Create, InitOptions, KdfParams, Progress, Repository, RestoreOptions, Store,
};

/// VmRSS and VmHWM of this process, in KiB.
fn resident() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    cairn::tune_allocator();
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: repeat-rss SOURCE CYCLES [--unmap] [--trim]";
    let source = PathBuf::from(args.get(1).ok_or(usage)?);
    let cycles: usize = args.get(2).ok_or(usage)?.parse()?;
    let flag = |name: &str| args.iter().skip(3).any(|a| a == name);
    if flag("--unmap") {
        cairn::unmap_large_buffers();
    }
    let trim = flag("--trim");
    let work = std::env::temp_dir().join(format!("cairn-repeat-rss-{}", std::process::id()));
    for i in 0..cycles {
        let dir = work.join(format!("repo-{i}"));
        let store = Store::open(&dir.to_string_lossy(), Create::IfMissing)?;
        let mut init = InitOptions::from_env();
        init.kdf = KdfParams::INSECURE_FAST;
        let repo = Repository::init(store, b"bench", init).await?;
        let options = BackupOptions::new(&repo, vec![source.clone()]);
        let out = cairn::backup(&repo, options, Arc::new(Progress::default())).await?;
        let (now, peak) = resident();
        print!(
            "cycle {i}: after backup {} MiB (peak {})",
            mib(now),
            mib(peak)
        );
        if trim {
            cairn::release_free_memory();
        }
        let target = work.join(format!("out-{i}"));
        let mut options = RestoreOptions::new(&target);
        options.owners = Some(false);
        let restored =
            cairn::restore(&repo, &out.snapshot, options, Arc::new(Progress::default())).await?;
        if !restored.errors.is_empty() {
            return Err(format!("restore: {} errors", restored.errors.len()).into());
        }
        let (now, peak) = resident();
        print!(", after restore {} MiB (peak {})", mib(now), mib(peak));
        drop(repo);
        std::fs::remove_dir_all(&dir)?;
        std::fs::remove_dir_all(&target)?;
        if trim {
            cairn::release_free_memory();
        }
        println!(", between jobs {} MiB", mib(resident().0));
    }
    std::fs::remove_dir_all(&work)?;
    Ok(())
}
