//! The objects outside packs that a check reads from the repository
//! itself: key files, the config and every index file.

use cairn_core::Id;
use cairn_core::format::{Config, IndexFile, KeyFile, MAX_KEY_FILE_LEN};
use cairn_store::Store;
use futures::StreamExt;

use std::sync::atomic::{AtomicUsize, Ordering};

use super::Damage;
use crate::index::{LoadBudget, PrivateTable, entries};
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

/// Index entries a check merges in memory; past that, in a table of its
/// own on local disk (ADR 0021). In memory, the walk's lookup of every blob
/// it reaches is several times faster, and this many entries take a few
/// tens of MiB; past it, the table keeps the check's memory from growing
/// with the index. Tests lower it ([`check_in_memory_entries`]).
static IN_MEMORY_ENTRIES: AtomicUsize = AtomicUsize::new(1 << 18);

/// Sets how many index entries a check merges in memory before it moves
/// them to a table of its own: for tests, which have few.
#[doc(hidden)]
pub fn check_in_memory_entries(n: usize) {
    IN_MEMORY_ENTRIES.store(n, Ordering::Relaxed);
}

/// Reads and opens every index file from `store` and merges them (see
/// [`IN_MEMORY_ENTRIES`]); with a table, also the guard of its directory.
/// A damaged file is a problem and contributes nothing.
pub(super) async fn fresh_index(
    repo: &Repository,
    store: &Store,
    damage: &mut Damage,
) -> Result<(Index, Option<tempfile::TempDir>)> {
    match merge(repo, store, damage, true).await {
        // The table's own trouble (no room, a full disk): read the files
        // again into memory. An index over the table's limit is refused,
        // as opening the repository refuses it.
        Err(Error::Internal(e)) => {
            tracing::warn!("check's index kept in memory: {e}");
            merge(repo, store, damage, false).await
        }
        r => r,
    }
}

/// Every index file merged in memory or, with `spill` and past
/// [`IN_MEMORY_ENTRIES`], in a table of the check's own.
async fn merge(
    repo: &Repository,
    store: &Store,
    damage: &mut Damage,
    spill: bool,
) -> Result<(Index, Option<tempfile::TempDir>)> {
    let limit = IN_MEMORY_ENTRIES.load(Ordering::Relaxed);
    let mut files: Vec<(Id, IndexFile)> = Vec::new();
    let mut count = 0usize;
    let mut table: Option<PrivateTable> = None;
    each_index_file(repo, store, damage, |id, f| {
        if let Some(t) = table.as_mut() {
            return t.add_file(id, &f);
        }
        count += entries(&f);
        files.push((id, f));
        if !spill || count <= limit {
            return Ok(());
        }
        if let Some(t) = repo.private_table("check") {
            let mut t = t?;
            for (id, f) in files.drain(..) {
                t.add_file(id, &f)?;
            }
            table = Some(t);
        }
        Ok(())
    })
    .await?;
    match table {
        Some(t) => t.finish().map(|(index, dir)| (index, Some(dir))),
        None => Ok((
            Index::from_files(files.iter().map(|(id, f)| (*id, f))),
            None,
        )),
    }
}

/// Calls `each` with every index file `store` lists that opens; a damaged
/// one is noted in `damage`, a missing one skipped.
async fn each_index_file(
    repo: &Repository,
    store: &Store,
    damage: &mut Damage,
    mut each: impl FnMut(Id, IndexFile) -> Result<()>,
) -> Result<()> {
    let ids: Vec<(Id, u64)> = store
        .list(paths::INDEX)
        .await?
        .iter()
        .filter_map(|o| Some((paths::id_in(paths::INDEX, &o.path)?, o.size)))
        .collect();
    let keys = repo.keys();
    let budget = LoadBudget::new();
    let budget = &budget;
    let mut reads = futures::stream::iter(ids)
        .map(|(id, size)| async move {
            // Held until `each` has taken the file.
            let permit = budget.take(size).await;
            let r = match store.get(&paths::index(&id)).await {
                Ok(sealed) => decode_index_file(keys, &id, &sealed),
                Err(e) => Err(Error::Store(e)),
            };
            (id, r, permit)
        })
        .buffer_unordered(LOAD_CONCURRENCY);
    while let Some((id, r, permit)) = reads.next().await {
        match r {
            Ok(f) => each(id, f)?,
            Err(Error::Store(e)) if e.is_not_found() => {}
            Err(e) if e.is_damage() => damage.object(paths::index(&id), e.to_string()),
            Err(e) => return Err(e),
        }
        drop(permit);
    }
    Ok(())
}
