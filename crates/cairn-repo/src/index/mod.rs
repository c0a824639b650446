//! The merged view of every index file.
//!
//! Two parts answer each question together: a sorted table on local disk,
//! read with one positional read per lookup (`table`, built in bounded
//! memory by `build`), holding
//! everything merged when the repository was opened; and a small in-memory
//! part (`memory`) holding what was added since — the index files this
//! process wrote and any few that appeared after the table was built.
//! Without a table (a repository opened with nowhere to keep one, or the
//! private view of a prune or small check that keeps it in memory), the
//! in-memory part holds everything. Prune's and check's tables of their
//! own: `private`.

mod build;
mod load;
mod memory;
mod private;
#[cfg(test)]
mod spill_tests;
mod spool;
mod table;
#[cfg(test)]
mod tests;
mod verify;
mod view;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cairn_core::format::{IndexFile, IndexPack, PackEntry};
use cairn_core::{Id, Kind};

pub(crate) use build::{Builder, DISK_PER_RECORD, TooLarge};
pub(crate) use load::{LoadBudget, entries};
pub(crate) use memory::MemIndex;
pub(crate) use private::PrivateTable;
pub(crate) use table::{Record, Table};
pub(crate) use verify::Verdict;
pub use view::IndexView;

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: Id,
    /// Data or tree, or a data blob in a bundle.
    pub kind: Kind,
    /// Offset of the sealed blob (or its bundle) in the pack.
    pub offset: u32,
    /// Sealed length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

impl BlobLocation {
    /// Where entry `e` of a header or index file places its blob in `pack`.
    pub fn in_pack(pack: Id, e: &PackEntry) -> BlobLocation {
        BlobLocation {
            pack,
            kind: e.kind,
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
        }
    }
}

/// Every known blob and the pack it lives in, with the tombstones prune
/// wrote: [`Index::contains`] (the deduplication question) answers no for
/// a blob prune may delete. The rule, from docs/FORMAT.md §8: a blob is
/// live when the newest index file that lists it was created strictly
/// after the newest index file that tombstones it.
#[derive(Debug, Default)]
pub struct Index {
    table: Option<Arc<Table>>,
    mem: MemIndex,
}

impl Index {
    /// Merges a set of index files in memory, ignoring any file that
    /// another file of the set supersedes (its live content is repeated in
    /// the newer file).
    pub fn from_files<'a>(files: impl IntoIterator<Item = (Id, &'a IndexFile)>) -> Index {
        Index {
            table: None,
            mem: MemIndex::from_files(files),
        }
    }

    /// Builds an index backed by a table in `dir` from `files`, as opening
    /// a repository does with its index files: for tools that merge index
    /// files offline, and for benchmarks.
    pub fn build_in<'a>(
        dir: &std::path::Path,
        repo_id: &Id,
        files: impl IntoIterator<Item = (Id, &'a IndexFile)>,
    ) -> std::io::Result<Index> {
        let mut b = Builder::new(dir)?;
        for (id, f) in files {
            b.add_file(id, f)?;
        }
        let path = dir.join(format!("index-{}.table", repo_id.short()));
        let table = b.finish(None, &path, repo_id, u64::from(std::process::id()))?;
        Ok(Index::with_table(
            Some(Arc::new(table)),
            MemIndex::default().spilling_to(dir.to_owned()),
        ))
    }

    pub(crate) fn with_table(table: Option<Arc<Table>>, mem: MemIndex) -> Index {
        Index { table, mem }
    }

    pub(crate) fn table(&self) -> Option<&Arc<Table>> {
        self.table.as_ref()
    }

    /// Adds the contents of an index file named `id`.
    pub fn add_file(&mut self, id: Id, file: &IndexFile) {
        self.mem.add_file(id, file);
    }

    /// Adds one pack's entries, as if listed by a file created at `created`.
    /// A blob already known keeps its first location: every copy is equally
    /// valid.
    pub fn add_pack_at(&mut self, p: &IndexPack, created: i64) {
        self.mem.add_pack_at(p, created);
    }

    fn record(&self, id: &Id) -> Option<Record> {
        let old = self.table.as_ref().and_then(|t| t.find(id));
        let new = self.mem.record(id);
        match (old, new) {
            (Some(mut a), Some(b)) => {
                a.merge(&b);
                Some(a)
            }
            (a, b) => a.or(b),
        }
    }

    /// Looks a blob up, tombstoned or not: a tombstoned blob stays readable
    /// while its pack exists.
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        match &self.table {
            None => self.mem.get(id),
            Some(_) => self.record(id).and_then(|r| r.location),
        }
    }

    /// True if a writer may deduplicate against the blob: it is indexed and
    /// not tombstoned, or listed again after its newest tombstone.
    pub fn contains(&self, id: &Id) -> bool {
        match &self.table {
            None => self.mem.contains(id),
            Some(_) => self.record(id).is_some_and(|r| r.live()),
        }
    }

    /// Where the blob is, if a writer may deduplicate against it
    /// ([`contains`](Self::contains)): one lookup for both questions.
    pub fn live_location(&self, id: &Id) -> Option<BlobLocation> {
        match &self.table {
            None => self.mem.contains(id).then(|| self.mem.get(id)).flatten(),
            Some(_) => self
                .record(id)
                .filter(|r| r.live())
                .and_then(|r| r.location),
        }
    }

    /// True if some index file tombstones the blob and no newer file lists it.
    pub fn is_tombstoned(&self, id: &Id) -> bool {
        self.record(id)
            .is_some_and(|r| r.location.is_some() && !r.live())
    }

    fn in_table(&self, id: &Id) -> bool {
        self.table
            .as_ref()
            .and_then(|t| t.find(id))
            .is_some_and(|r| r.location.is_some())
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        let table = self.table.as_ref().map_or(0, |t| t.located());
        table + self.mem.count(|id| self.in_table(id))
    }

    /// True when no blob is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every pack that holds at least one indexed blob (a full pass over
    /// the table).
    pub fn packs(&self) -> crate::Result<Vec<Id>> {
        let mut seen: HashSet<Id> = HashSet::new();
        let mut out = Vec::new();
        if let Some(t) = &self.table {
            for r in t.records().map_err(table_error)? {
                if let Some(l) = r.map_err(table_error)?.location {
                    if seen.insert(l.pack) {
                        out.push(l.pack);
                    }
                }
            }
        }
        for p in self.mem.packs() {
            if seen.insert(*p) {
                out.push(*p);
            }
        }
        Ok(out)
    }

    /// Ids of the index files merged so far (ignored, superseded files
    /// excluded).
    pub fn files(&self) -> Vec<Id> {
        let mut v: Vec<Id> = self
            .table
            .as_ref()
            .map(|t| t.covers().to_vec())
            .unwrap_or_default();
        v.extend_from_slice(self.mem.files());
        v
    }

    /// Blobs grouped by pack, as the index records them (first location
    /// only; a full pass over the table).
    pub fn entries_by_pack(&self) -> crate::Result<HashMap<Id, Vec<PackEntry>>> {
        self.entries_of_packs(|_| true)
    }

    /// [`Index::entries_by_pack`] for the packs `keep` accepts only (still
    /// a full pass over the table): a caller that cannot hold every
    /// entry takes the packs a share at a time.
    pub(crate) fn entries_of_packs(
        &self,
        keep: impl Fn(&Id) -> bool,
    ) -> crate::Result<HashMap<Id, Vec<PackEntry>>> {
        let mut m: HashMap<Id, Vec<PackEntry>> = HashMap::new();
        if let Some(t) = &self.table {
            t.each_located_in(&keep, |r| {
                if let Some(l) = r.location {
                    m.entry(l.pack).or_default().push(PackEntry {
                        kind: l.kind,
                        id: r.id,
                        offset: l.offset,
                        length: l.length,
                        raw_length: l.raw_length,
                    });
                }
            })
            .map_err(table_error)?;
        }
        self.mem
            .entries_by_pack_into(&mut m, |id| self.in_table(id), &keep);
        if let Some(e) = self.mem.failed() {
            return Err(crate::Error::Internal(format!(
                "reading the index entries added back from local disk: {e}"
            )));
        }
        Ok(m)
    }
}

fn table_error(e: std::io::Error) -> crate::Error {
    crate::Error::Internal(format!("reading the local index table: {e}"))
}
