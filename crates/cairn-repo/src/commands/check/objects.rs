//! The objects outside packs that a check reads from the repository
//! itself: key files, the config and every index file.

use cairn_core::Id;
use cairn_core::format::{Config, IndexFile, KeyFile, MAX_KEY_FILE_LEN};
use cairn_store::Store;
use futures::StreamExt;

use super::Damage;
use crate::repository::{LOAD_CONCURRENCY, decode_index_file};
use crate::{Error, Index, Repository, Result, paths};

/// Every key file must be named by the BLAKE3 hash of its bytes, so a
/// damaged key file is found without a password.
pub(super) async fn check_keys(store: &Store, damage: &mut Damage) -> Result<()> {
    for o in store.list(paths::KEYS).await? {
        let Some(id) = paths::id_in(paths::KEYS, &o.path) else {
            continue;
        };
        if o.size > MAX_KEY_FILE_LEN as u64 {
            damage.object(
                o.path.clone(),
                format!(
                    "{} bytes, more than the {MAX_KEY_FILE_LEN} byte limit",
                    o.size
                ),
            );
            continue;
        }
        match store.get(&o.path).await {
            Ok(bytes) => {
                if let Err(e) = KeyFile::decode_named(&id, &bytes) {
                    damage.object(o.path.clone(), e.to_string());
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The stored config must open with this repository's key and say what
/// the handle was opened with.
pub(super) async fn check_config(
    repo: &Repository,
    store: &Store,
    damage: &mut Damage,
) -> Result<()> {
    let stored = store.get(paths::CONFIG).await?;
    match Config::open(repo.keys(), &stored) {
        Ok(c) if c == *repo.config() => {}
        Ok(_) => damage.object(
            paths::CONFIG.to_owned(),
            "differs from the config this process read when opening".into(),
        ),
        Err(e) => damage.object(paths::CONFIG.to_owned(), e.to_string()),
    }
    Ok(())
}

/// Reads and opens every index file from `store` and merges them: in a
/// table of the check's own on local disk as they arrive (ADR 0021), with
/// the guard of its directory, or in memory without an index directory or
/// when the table cannot be built. A damaged file is a problem and
/// contributes nothing.
pub(super) async fn fresh_index(
    repo: &Repository,
    store: &Store,
    damage: &mut Damage,
) -> Result<(Index, Option<tempfile::TempDir>)> {
    if let Some(table) = repo.private_table("check") {
        let built = match table {
            Ok(mut t) => {
                match each_index_file(repo, store, damage, |id, f| t.add_file(id, &f)).await {
                    Ok(()) => t.finish(),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match built {
            Ok((index, dir)) => return Ok((index, Some(dir))),
            // The table's own trouble (no room, a full disk): as opening
            // the repository would, refuse an index over its limit, else
            // read the files again into memory.
            Err(e @ Error::IndexTooLarge { .. }) => return Err(e),
            Err(Error::Internal(e)) => tracing::warn!("check's index kept in memory: {e}"),
            Err(e) => return Err(e),
        }
    }
    let mut files: Vec<(Id, IndexFile)> = Vec::new();
    each_index_file(repo, store, damage, |id, f| {
        files.push((id, f));
        Ok(())
    })
    .await?;
    let index = Index::from_files(files.iter().map(|(id, f)| (*id, f)));
    Ok((index, None))
}

/// Calls `each` with every index file `store` lists that opens; a damaged
/// one is noted in `damage`, a missing one skipped.
async fn each_index_file(
    repo: &Repository,
    store: &Store,
    damage: &mut Damage,
    mut each: impl FnMut(Id, IndexFile) -> Result<()>,
) -> Result<()> {
    let ids: Vec<Id> = store
        .list(paths::INDEX)
        .await?
        .iter()
        .filter_map(|o| paths::id_in(paths::INDEX, &o.path))
        .collect();
    let keys = repo.keys();
    let mut reads = futures::stream::iter(ids)
        .map(|id| async move {
            let r = match store.get(&paths::index(&id)).await {
                Ok(sealed) => decode_index_file(keys, &id, &sealed),
                Err(e) => Err(Error::Store(e)),
            };
            (id, r)
        })
        .buffer_unordered(LOAD_CONCURRENCY);
    while let Some((id, r)) = reads.next().await {
        match r {
            Ok(f) => each(id, f)?,
            Err(Error::Store(e)) if e.is_not_found() => {}
            Err(e) if e.is_damage() => damage.object(paths::index(&id), e.to_string()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
