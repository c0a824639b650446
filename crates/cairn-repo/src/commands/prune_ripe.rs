//! Phase 2's ripe tombstones (ADR 0024): each tombstoned blob with the
//! newest time a ripe file tombstoned it, sorted; in memory up to a
//! budget, past it on local disk beside prune's spool, with a filter in
//! memory that answers most lookups (of blobs never tombstoned) without a
//! read.
//!
//! A lookup that cannot read the file answers "not tombstoned": the blob is
//! kept, and [`Ripe::verify`] stops the run before it changes anything.

use std::path::Path;

use cairn_core::Id;

use crate::sorted_disk::{Disk, Filter, Lookup, Record};
use crate::spool::{HeldFile, Spool};
use crate::{Error, Result};

/// Ripe tombstones held in memory before they go to disk: 2^18, 10 MiB
/// (a forgotten snapshot of a million chunks tombstones a million).
pub(crate) const IN_MEMORY: usize = 1 << 18;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Ripe {
    /// Sorted, one per blob: everything, unless on disk.
    memory: Vec<(Id, i64)>,
    disk: Option<(Disk<Tomb>, Filter)>,
}

/// A ripe tombstone on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Tomb {
    id: Id,
    created: i64,
}

impl Record for Tomb {
    const LEN: usize = 40;
    /// About 2 KiB a block: the directory holds 0.8 bytes per tombstone;
    /// only tombstoned blobs and the filter's few mistakes are read.
    const PER_BLOCK: usize = 51;
    fn put(&self, out: &mut Vec<u8>) {
        self.id.put(out);
        out.extend_from_slice(&self.created.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[Id::LEN..Id::LEN + 8]);
        Tomb {
            id: Id::get(b),
            created: i64::from_le_bytes(t),
        }
    }
    fn same_key(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Ripe {
    /// The tombstones of `files` (read from `spool`): past `budget` of them
    /// in files of `dir`, in memory without a directory or when the disk
    /// fails.
    pub(crate) fn gather(
        files: &[&HeldFile],
        spool: &Spool,
        dir: Option<&Path>,
        budget: usize,
    ) -> Result<Ripe> {
        let total: usize = files.iter().map(|f| f.tombstones.len()).sum();
        if let Some(dir) = dir.filter(|_| total > budget) {
            match on_disk(files, spool, dir, budget.max(1), total) {
                Ok(ripe) => return Ok(ripe),
                Err(Spilled::Spool(e)) => return Err(e),
                Err(Spilled::Disk(e)) => {
                    tracing::warn!("prune's ripe tombstones kept in memory: {e}");
                }
            }
        }
        // Reserved once: growing by doubling would take up to twice the 40
        // bytes a tombstone needs.
        let mut all = Vec::with_capacity(total);
        for f in files {
            let ids = spool.tombstones(&f.tombstones)?;
            all.extend(ids.into_iter().map(|t| (t, f.created)));
        }
        Ok(Ripe::of(all))
    }

    pub(crate) fn of(mut all: Vec<(Id, i64)>) -> Ripe {
        newest_each(&mut all);
        all.shrink_to_fit();
        Ripe {
            memory: all,
            disk: None,
        }
    }

    /// The newest time a ripe file tombstoned `id`.
    pub(crate) fn get(&self, id: &Id) -> Option<i64> {
        let Some((disk, filter)) = &self.disk else {
            let i = self.memory.binary_search_by(|(t, _)| t.cmp(id)).ok()?;
            return Some(self.memory[i].1);
        };
        if !filter.may_hold(id) {
            return None;
        }
        match disk.find(|t| t.id.cmp(id)) {
            Lookup::Found(t) => Some(t.created),
            // Unreadable: kept, and `verify` fails the run.
            Lookup::Absent | Lookup::Unreadable => None,
        }
    }

    /// How many tombstoned blobs `f` holds for.
    pub(crate) fn count(&self, mut f: impl FnMut(&Id) -> bool) -> usize {
        let Some((disk, _)) = &self.disk else {
            return self.memory.iter().filter(|(t, _)| f(t)).count();
        };
        let mut n = 0;
        disk.each_sealed(|t| n += usize::from(f(&t.id)));
        n
    }

    /// Whether the tombstones went to disk.
    #[cfg(test)]
    pub(crate) fn on_disk(&self) -> bool {
        self.disk.is_some()
    }

    /// Makes the file on disk unreadable: for tests.
    #[cfg(test)]
    pub(crate) fn break_reads(&mut self, dir: &Path) {
        if let Some((disk, _)) = &mut self.disk {
            disk.break_reads(dir);
        }
    }

    /// An error if a lookup could not read the tombstones back from disk
    /// (it then answered "not tombstoned"): prune must not act on such
    /// answers.
    pub(crate) fn verify(&self) -> Result<()> {
        match self.disk.as_ref().and_then(|(d, _)| d.failed()) {
            Some(e) => Err(Error::Internal(format!(
                "reading the ripe tombstones back from local disk: {e}"
            ))),
            None => Ok(()),
        }
    }
}

/// Sorts `all` and keeps one entry per id, with its newest time.
fn newest_each(all: &mut Vec<(Id, i64)>) {
    all.sort_unstable();
    // Ascending, so of one id's times the last is the newest.
    all.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 = kept.1.max(later.1);
        }
        same
    });
}

/// Why the tombstones could not go to disk.
enum Spilled {
    /// The spool could not be read: the run cannot go on.
    Spool(Error),
    /// The disk failed: go on in memory.
    Disk(std::io::Error),
}

fn on_disk(
    files: &[&HeldFile],
    spool: &Spool,
    dir: &Path,
    budget: usize,
    total: usize,
) -> std::result::Result<Ripe, Spilled> {
    let mut disk = Disk::new(dir.to_path_buf());
    let mut run: Vec<(Id, i64)> = Vec::with_capacity(budget);
    let write = |run: &mut Vec<(Id, i64)>, disk: &mut Disk<Tomb>| {
        newest_each(run);
        let tombs = run.drain(..).map(|(id, created)| Tomb { id, created });
        disk.write_run(tombs).map_err(Spilled::Disk)
    };
    for f in files {
        let ids = spool.tombstones(&f.tombstones).map_err(Spilled::Spool)?;
        for id in ids {
            run.push((id, f.created));
            if run.len() >= budget {
                write(&mut run, &mut disk)?;
            }
        }
    }
    newest_each(&mut run);
    let mut filter = Filter::new(total);
    let last = run.drain(..).map(|(id, created)| Tomb { id, created });
    disk.seal(last, |t| filter.insert(&t.id))
        .map_err(Spilled::Disk)?;
    Ok(Ripe {
        memory: Vec::new(),
        disk: Some((disk, filter)),
    })
}

#[cfg(test)]
#[path = "prune_ripe_tests.rs"]
mod tests;
