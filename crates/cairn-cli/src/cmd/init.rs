//! `cairn init`

use anyhow::{Context, Result};
use cairn::{InitOptions, KdfParams, Repository, Store};

use crate::cli::{Global, InitArgs, KdfArgs};
use crate::context::{self, repo_url};
use crate::{exit, password};

pub(crate) fn kdf(a: &KdfArgs) -> KdfParams {
    KdfParams {
        m_cost_kib: a.kdf_memory,
        t_cost: a.kdf_iterations,
        p_cost: 1,
    }
}

pub(crate) async fn run(g: &Global, a: InitArgs) -> Result<u8> {
    let url = repo_url(g)?;
    let pw = password::for_init(g.password_file.as_deref())?;
    let store = Store::open(url, true)?;
    let mut opts = InitOptions::new(
        &context::hostname(),
        &context::username(),
        context::now().secs,
    );
    opts.kdf = kdf(&a.kdf);
    opts.compression_level = a.compression;
    let repo = Repository::init(store, &pw, opts)
        .await
        .with_context(|| format!("cannot create repository at {url}"))?;
    if a.json {
        super::print_json(&serde_json::json!({
            "repository": url,
            "repo_id": repo.config().repo_id,
            "key_id": repo.key_id(),
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
