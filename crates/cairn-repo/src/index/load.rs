//! Loading the index: reuse the table on local disk when it still matches
//! the repository's index files, read only the files it does not cover,
//! and rebuild it (in bounded memory) when it is missing or stale.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_core::Id;
use cairn_core::format::IndexFile;

use super::{Builder, DISK_PER_RECORD, Index, MemIndex, Table, TooLarge};
use crate::{Error, Repository, Result};

/// The table's file name inside the index directory.
const TABLE: &str = "index.table";
/// Index entries read since the table was built that stay in memory; more
/// are merged into a new table.
const MEMORY_MAX: usize = 1 << 16;

/// Index entries `f` adds: its blobs and its tombstones.
pub(crate) fn entries(f: &IndexFile) -> usize {
    f.packs.iter().map(|p| p.blobs.len()).sum::<usize>() + f.tombstones.len()
}

impl Repository {
    /// Re-reads the index: the files the local table already covers are
    /// not read again. A damaged index file is left out and named in
    /// [`damaged`](Self::damaged); a repository whose index outgrows the
    /// table's disk limit is refused with [`Error::IndexTooLarge`].
    pub async fn reload_index(&self) -> Result<()> {
        let index = match self.index_dir() {
            Some(dir) => match self.load_with_table(dir).await {
                Ok(index) => index,
                // The table is an optimisation: a cache directory that
                // cannot hold it costs memory, not correctness.
                Err(e @ (Error::Store(_) | Error::IndexTooLarge { .. })) => return Err(e),
                Err(e) => {
                    tracing::warn!("index kept in memory: {e}");
                    self.load_in_memory().await?
                }
            },
            None => self.load_in_memory().await?,
        };
        *self.write_index() = index;
        Ok(())
    }

    /// Without a table the index lives in memory, under the same limit
    /// (counted as the table would count it).
    async fn load_in_memory(&self) -> Result<Index> {
        let limit = self.index_table_limit();
        let mut files = Vec::new();
        let mut needed = 0u64;
        self.for_each_index_file(&HashSet::new(), true, |id, f| {
            needed = needed.saturating_add(entries(&f) as u64 * DISK_PER_RECORD);
            if needed > limit {
                return Err(Error::IndexTooLarge { needed, limit });
            }
            files.push((id, f));
            Ok(())
        })
        .await?;
        Ok(Index::from_files(files.iter().map(|(id, f)| (*id, f))))
    }

    async fn load_with_table(&self, dir: &Path) -> Result<Index> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        super::private::remove_old_runs(dir);
        let path = dir.join(TABLE);
        let repo_id = self.config().repo_id;
        let current = self.index().table().cloned();
        let table = match current {
            Some(t) => Some(t),
            None => match self.open_table(&path, &repo_id) {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    tracing::debug!("rebuilding the index table {}: {e}", path.display());
                    None
                }
            },
        };
        if let Some(table) = table {
            if let Some(index) = self.extend(table, dir, &path).await? {
                return Ok(index);
            }
        }
        self.rebuild(dir, &path).await
    }

    /// Opens the table at `path`: verified first, or while it is used.
    fn open_table(&self, path: &Path, repo_id: &Id) -> Result<Table, super::table::TableError> {
        if !self.inner.overlap_table_check {
            return Table::open(path, repo_id);
        }
        let table = Table::open_overlapped(path, repo_id)?;
        lock(&self.inner.table_verdicts).push(table.verdict());
        Ok(table)
    }

    /// Waits for the verdict on every index table this handle opened to be
    /// verified while in use (ADR 0028; at once for tables verified when
    /// opened, the default). A backup's dedup decisions came from those
    /// tables: its snapshot is stored only if they passed. A damaged table
    /// is removed, and the next open builds a new one.
    pub async fn index_checked(&self) -> Result<()> {
        let verdicts = lock(&self.inner.table_verdicts).clone();
        if verdicts.is_empty() {
            return Ok(());
        }
        let results = tokio::task::spawn_blocking(move || {
            verdicts
                .into_iter()
                .map(|v| {
                    let r = v.wait();
                    (v, r)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::Internal(format!("index table check failed: {e}")))?;
        // Tables that passed need no second look; a failed one fails every
        // later snapshot of this handle too.
        let passed: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).collect();
        lock(&self.inner.table_verdicts).retain(|v| !passed.iter().any(|(p, _)| Arc::ptr_eq(p, v)));
        match results.into_iter().find_map(|(_, r)| r.err()) {
            None => Ok(()),
            Some(detail) => Err(Error::IndexTableDamaged { detail }),
        }
    }

    /// Adds the index files `table` does not cover; `None` when the table
    /// no longer matches the repository (a file it merged is gone, or a
    /// newer file supersedes one) and must be rebuilt.
    async fn extend(&self, table: Arc<Table>, dir: &Path, path: &Path) -> Result<Option<Index>> {
        let known: HashSet<Id> = table
            .covers()
            .iter()
            .chain(table.dropped())
            .copied()
            .collect();
        let mut fresh: Vec<(Id, IndexFile)> = Vec::new();
        let mut spill: Option<Builder> = None;
        let mut superseded: HashSet<Id> = HashSet::new();
        let mut count = 0usize;
        let base = table.len() as u64 * DISK_PER_RECORD;
        let limit = self.index_table_limit();
        let listed = self
            .for_each_index_file(&known, true, |id, f| {
                superseded.extend(f.supersedes.iter().copied());
                count += entries(&f);
                if spill.is_none() && count > MEMORY_MAX {
                    let mut b = Builder::bounded(dir, limit, base).map_err(|e| io(dir, e))?;
                    for (id, f) in fresh.drain(..) {
                        b.add_file(id, &f).map_err(|e| io(dir, e))?;
                    }
                    spill = Some(b);
                }
                match &mut spill {
                    Some(b) => b.add_file(id, &f).map_err(|e| io(dir, e)),
                    None => {
                        fresh.push((id, f));
                        Ok(())
                    }
                }
            })
            .await?;
        let stale = table
            .covers()
            .iter()
            .any(|c| !listed.contains(c) || superseded.contains(c));
        if stale {
            return Ok(None);
        }
        let Some(builder) = spill else {
            let mem = MemIndex::from_files(fresh.iter().map(|(id, f)| (*id, f)));
            return Ok(Some(Index::with_table(
                Some(table),
                mem.spilling_to(dir.to_owned()),
            )));
        };
        // A table being verified is merged only once it passed; one that
        // failed is built again from the index files.
        let base = table.clone();
        let passed = tokio::task::spawn_blocking(move || base.verified().is_ok())
            .await
            .unwrap_or(false);
        if !passed {
            return Ok(None);
        }
        let table = self.finish(builder, Some(table), path).await?;
        let mem = MemIndex::default().spilling_to(dir.to_owned());
        Ok(Some(Index::with_table(Some(table), mem)))
    }

    async fn rebuild(&self, dir: &Path, path: &Path) -> Result<Index> {
        let limit = self.index_table_limit();
        let mut builder = Builder::bounded(dir, limit, 0).map_err(|e| io(dir, e))?;
        self.for_each_index_file(&HashSet::new(), true, |id, f| {
            builder.add_file(id, &f).map_err(|e| io(dir, e))
        })
        .await?;
        let mem = MemIndex::default().spilling_to(dir.to_owned());
        if builder.files().is_empty() {
            return Ok(Index::with_table(None, mem));
        }
        let table = self.finish(builder, None, path).await?;
        Ok(Index::with_table(Some(table), mem))
    }

    async fn finish(
        &self,
        builder: Builder,
        base: Option<Arc<Table>>,
        path: &Path,
    ) -> Result<Arc<Table>> {
        let repo_id = self.config().repo_id;
        let path: PathBuf = path.to_owned();
        let mut unique = [0u8; 8];
        self.rng().fill(&mut unique);
        let unique = u64::from_le_bytes(unique);
        tokio::task::spawn_blocking(move || {
            builder
                .finish(base.as_deref(), &path, &repo_id, unique)
                .map(Arc::new)
                .map_err(|e| io(&path, e))
        })
        .await
        .map_err(|e| Error::Internal(format!("index table build failed: {e}")))?
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn io(path: &Path, e: std::io::Error) -> Error {
    if let Some(t) = e.get_ref().and_then(|r| r.downcast_ref::<TooLarge>()) {
        return Error::IndexTooLarge {
            needed: t.needed,
            limit: t.limit,
        };
    }
    Error::Internal(format!("index table in {}: {e}", path.display()))
}

/// KiB of sealed index files read at once: in flight, a file takes about
/// three times its sealed size (the sealed bytes, the plain ones, the
/// decoded entries), and a file a prune writes lists up to 200,000 blobs
/// (6.5 MB sealed). Eight of those at once took some 200 MiB in a prune of
/// 10 M blobs (ADR 0022); small files, the usual ones, are still read
/// eight at a time.
const LOAD_KIB: u32 = 8 * 1024;

/// What index file reads hold of [`LOAD_KIB`].
pub(crate) struct LoadBudget(tokio::sync::Semaphore);

impl LoadBudget {
    pub(crate) fn new() -> LoadBudget {
        LoadBudget(tokio::sync::Semaphore::new(LOAD_KIB as usize))
    }

    /// Waits until a file of `size` sealed bytes may be read; it holds its
    /// share until the permit is dropped. A file larger than the whole
    /// budget takes all of it.
    pub(crate) async fn take(&self, size: u64) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let kib = u32::try_from(size.div_ceil(1024)).unwrap_or(LOAD_KIB);
        self.0.acquire_many(kib.clamp(1, LOAD_KIB)).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sizes come from the storage server's listing: a size it lies
    /// about can neither hang a load nor let it overrun the budget.
    #[test]
    fn a_listed_size_of_any_value_takes_a_bounded_share_of_the_budget() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let budget = LoadBudget::new();
            let huge = budget.take(u64::MAX).await.expect("permit");
            assert_eq!(huge.num_permits(), LOAD_KIB as usize, "all of it, no more");
            drop(huge);
            let none = budget.take(0).await.expect("permit");
            assert_eq!(none.num_permits(), 1, "at least one KiB");
            let rest = budget.take(u64::from(LOAD_KIB - 1) * 1024).await;
            let rest = rest.expect("permit");
            assert_eq!(rest.num_permits(), LOAD_KIB as usize - 1);
            // Nothing left: another file waits for one of those.
            assert!(budget.0.try_acquire().is_err());
            drop((none, rest));
            assert!(budget.0.try_acquire().is_ok());
        });
    }
}
