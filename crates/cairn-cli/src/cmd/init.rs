//! `cairn init`

use anyhow::{Context, Result};
use cairn::{InitOptions, KdfParams, Repository};

use crate::cli::{Global, InitArgs, KdfArgs};
use crate::context::{self, repo_url};
use crate::{exit, password};

pub(crate) fn kdf(a: &KdfArgs) -> KdfParams {
    // Argon2 needs at least 8 KiB of memory a lane.
    let lanes = (a.kdf_memory / 8).clamp(1, KdfParams::DEFAULT.p_cost);
    KdfParams {
        m_cost_kib: a.kdf_memory,
        t_cost: a.kdf_iterations,
        p_cost: a.kdf_lanes.unwrap_or(lanes),
    }
}

pub(crate) async fn run(g: &Global, a: InitArgs) -> Result<u8> {
    let url = repo_url(g)?;
    let pw = password::for_init(g.password_file.as_deref())?;
    let store = context::store(g, true)?;
    let mut opts = InitOptions::new(
        &context::hostname(),
        &context::username(),
        context::now().secs,
    );
    opts.kdf = kdf(&a.kdf);
    opts.compression_level = a.compression;
    opts.settings = a.storage.change()?;
    if let Some(from) = &a.copy_chunker_params_from {
        let other = context::open_other(g, from, a.from_password_file.as_deref())
            .await
            .with_context(|| format!("--copy-chunker-params-from {from}"))?;
        opts.chunker = Some(other.config().chunker);
    }
    let repo = Repository::init(store.clone(), &pw, opts)
        .await
        .with_context(|| format!("cannot create repository at {url}"))?;
    // cairn never depends on create-only writes for correctness, but a user
    // should know when the backend cannot stop an accidental overwrite.
    let create_only = store
        .probe_create_only(&repo.config().repo_id.short())
        .await
        .with_context(|| format!("cannot probe {url}"))?;
    if !create_only && !a.json {
        eprintln!(
            "note: {url} does not refuse overwriting writes (If-None-Match); \
             cairn does not rely on them, but enable object lock or versioning to protect snapshots"
        );
    }
    if a.json {
        super::print_json(&serde_json::json!({
            "repository": url,
            "repo_id": repo.config().repo_id,
            "key_id": repo.key_id(),
            "create_only_writes_honoured": create_only,
            "settings": super::settings::json(repo.settings().as_ref()),
        }))?;
    } else if !g.quiet {
        println!(
            "created repository {} at {url}",
            repo.config().repo_id.short()
        );
        println!("keep the password safe: without it the data cannot be read");
    }
    Ok(exit::OK)
}
