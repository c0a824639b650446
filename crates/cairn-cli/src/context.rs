//! Things every command needs: the repository, who and where we are, now.

use anyhow::{Context, Result, anyhow};
use cairn::{OpenOptions, Repository, Store};

use crate::cli::Global;
use crate::password;

/// The repository URL from --repo or CAIRN_REPOSITORY.
pub(crate) fn repo_url(g: &Global) -> Result<&str> {
    g.repo
        .as_deref()
        .ok_or_else(|| anyhow!("no repository given: pass -r/--repo or set CAIRN_REPOSITORY"))
}

/// Opens the storage at the repository URL with the global options: rate
/// limits, and for remote stores a local cache of immutable objects.
pub(crate) fn store(g: &Global, create: bool) -> Result<Store> {
    let url = repo_url(g)?;
    let http_faults = crate::test_hooks::http_faults()?;
    let mut opts = cairn::StoreOptions::default();
    opts.create = create;
    opts.limit_upload_kib = g.limit_upload;
    opts.limit_download_kib = g.limit_download;
    opts.http_faults = http_faults;
    opts.root_certificates = match &g.ca_cert {
        Some(f) => Some(read_ca(f)?),
        None => None,
    };
    let store = Store::open_with(url, &opts)?;
    let cache_dir = match cache_dir(g)? {
        Some(d) if store.is_remote() || g.cache_dir.is_some() => Some(d),
        _ => None,
    };
    Ok(match cache_dir {
        Some(d) => {
            let cache = cairn::Cache::open(&d)
                .with_context(|| format!("cannot use cache directory {}", d.display()))?;
            store.with_cache(std::sync::Arc::new(cache))
        }
        None => store,
    })
}

/// The PEM bundle of `--ca-cert` (at most 1 MiB).
fn read_ca(f: &std::path::Path) -> Result<Vec<u8>> {
    let meta =
        std::fs::metadata(f).with_context(|| format!("cannot read --ca-cert {}", f.display()))?;
    if meta.len() > 1 << 20 {
        anyhow::bail!("--ca-cert {}: larger than 1 MiB", f.display());
    }
    std::fs::read(f).with_context(|| format!("cannot read --ca-cert {}", f.display()))
}

/// The repository's local cache directory: --cache-dir, or one per
/// repository URL under ~/.cache/cairn/repos; none with --no-cache.
fn cache_dir(g: &Global) -> Result<Option<std::path::PathBuf>> {
    let url = repo_url(g)?;
    Ok(match (&g.cache_dir, g.no_cache) {
        (_, true) => None,
        (Some(d), false) => Some(d.clone()),
        (None, false) => std::env::var_os("HOME").map(|h| {
            let key = cairn::layers::store::cache_key(url);
            std::path::PathBuf::from(h)
                .join(".cache/cairn/repos")
                .join(key)
        }),
    })
}

/// Opens and unlocks the repository.
pub(crate) async fn open(g: &Global) -> Result<Repository> {
    let pw = password::repository(g.password_file.as_deref())?;
    open_with(g, &pw).await
}

/// [`open`] with the index table's checksum verified while the table is
/// already in use (ADR 0028): for a backup, whose snapshot is stored only
/// if the table passed, and for commands that look nothing up in it
/// (`snapshots`, `key`, `settings`), which then do not wait for it.
pub(crate) async fn open_overlapped(g: &Global) -> Result<Repository> {
    let pw = password::repository(g.password_file.as_deref())?;
    open_as(g, &pw, true).await
}

/// Opens and unlocks the repository `g` names with `pw`; with another
/// URL in `g.repo`, any other repository, with the same options.
pub(crate) async fn open_with(g: &Global, pw: &[u8]) -> Result<Repository> {
    open_as(g, pw, false).await
}

async fn open_as(g: &Global, pw: &[u8], overlap_table_check: bool) -> Result<Repository> {
    let url = repo_url(g)?;
    let store = store(g, false)?;
    // The merged index is kept as a table in the cache directory, for
    // local repositories too (they have no object cache): it spares reading
    // every index file at each start, and the index's size in RAM.
    let mut opts = OpenOptions::default();
    opts.clock = crate::test_hooks::clock();
    opts.index_dir = cache_dir(g)?.map(|d| d.join("index"));
    opts.overlap_table_check = overlap_table_check;
    if let Some(mib) = g.index_table_limit {
        opts.index_table_limit = mib.saturating_mul(1 << 20);
    }
    let repo = Repository::open(store, pw, opts)
        .await
        .with_context(|| format!("cannot open repository {url}"))?;
    // Damaged index and key files do not stop a command that does not need
    // them, but the user hears about them.
    warn_damaged(&repo.damaged());
    Ok(repo)
}

/// Opens another repository than the one `g` names (a `copy` source, or
/// the one `init --copy-chunker-params-from` names), with the same options
/// but the default cache of its own URL (`--cache-dir` is the main
/// repository's), and the password from CAIRN_FROM_PASSWORD or
/// `password_file`.
pub(crate) async fn open_other(
    g: &Global,
    url: &str,
    password_file: Option<&std::path::Path>,
) -> Result<Repository> {
    let other = Global {
        repo: Some(url.to_owned()),
        cache_dir: None,
        ..g.clone()
    };
    let pw = password::source(password_file)?;
    open_with(&other, &pw).await
}

/// Seconds and nanoseconds since the epoch (the test clock's, when set).
pub(crate) fn now() -> cairn::Timestamp {
    if crate::test_hooks::clock_is_set() {
        return cairn::Timestamp {
            secs: crate::test_hooks::clock().now(),
            nanos: 0,
        };
    }
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    cairn::Timestamp {
        secs: d.as_secs() as i64,
        nanos: d.subsec_nanos(),
    }
}

/// This machine's hostname (the same the repository records in sessions).
pub(crate) fn hostname() -> String {
    cairn::layers::repo::hostname()
}

/// The user running cairn.
pub(crate) fn username() -> String {
    cairn::layers::repo::username()
}

/// Names on stderr every object the repository handle left out as damaged
/// (index files, snapshots, key files), so the user knows what the output
/// lacks and that `cairn check` and `cairn repair index` are the next steps.
pub(crate) fn warn_damaged(damaged: &[cairn::layers::repo::Damaged]) {
    for d in damaged {
        eprintln!("warning: {}: damaged, left out: {}", d.object, d.problem);
    }
}
