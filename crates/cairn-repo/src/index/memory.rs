//! The in-memory part of the index: what this process added since the
//! table was built, and every index file when there is no table.
//!
//! Beside a table, its blobs go to sorted files in the table's directory
//! past [`IN_MEMORY`] (ADR 0026, `levels.rs`): a backup that stores
//! millions of new blobs holds a few MiB of them, whatever their number.
//!
//! Besides where each blob lives, it remembers the tombstones prune wrote,
//! so that `contains` (the deduplication question) answers no for a blob
//! prune may delete. The rule, from docs/FORMAT.md §8: a blob is live when
//! the newest index file that lists it was created strictly after the
//! newest index file that tombstones it.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use cairn_core::format::{IndexFile, IndexPack, PackEntry};
use cairn_core::{Id, Kind};

use super::BlobLocation;
use super::table::Record;
use crate::levels::{Keyed, Levels};

/// Blobs held in memory before they go to disk, when there is a directory:
/// 7/8 of 2^16, so the hash map stays at 2^16 slots (4 MiB).
pub(crate) const IN_MEMORY: usize = (1 << 16) / 8 * 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    pack: u32,
    kind: Kind,
    offset: u32,
    length: u32,
    raw_length: u32,
    /// The newest `created` of the index files that list the blob.
    listed: i64,
}

/// A blob's slot on disk, with its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spilled {
    id: Id,
    slot: Slot,
}

impl Ord for Spilled {
    /// By id, then by `listed`: of records of one id a merge keeps the
    /// newest listed. Every file gives an id its first location (a spill
    /// takes it from the files before it), so the location kept is too.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (&self.slot, &other.slot);
        (
            self.id,
            a.listed,
            a.pack,
            a.offset,
            a.length,
            a.raw_length,
            a.kind as u8,
        )
            .cmp(&(
                other.id,
                b.listed,
                b.pack,
                b.offset,
                b.length,
                b.raw_length,
                b.kind as u8,
            ))
    }
}

impl PartialOrd for Spilled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl crate::sorted_disk::Record for Spilled {
    const LEN: usize = 57;
    /// 3.6 KiB a block: the directory holds under a byte per blob.
    const PER_BLOCK: usize = 64;
    fn put(&self, out: &mut Vec<u8>) {
        let s = &self.slot;
        self.id.put(out);
        out.extend_from_slice(&s.listed.to_le_bytes());
        out.extend_from_slice(&s.pack.to_le_bytes());
        out.extend_from_slice(&s.offset.to_le_bytes());
        out.extend_from_slice(&s.length.to_le_bytes());
        out.extend_from_slice(&s.raw_length.to_le_bytes());
        out.push(s.kind as u8);
    }
    fn get(b: &[u8]) -> Self {
        // Written by this process to its own unnamed file: a kind it did
        // not write cannot appear but as Data.
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut listed = [0u8; 8];
        listed.copy_from_slice(&b[32..40]);
        Spilled {
            id: Id::get(b),
            slot: Slot {
                listed: i64::from_le_bytes(listed),
                pack: u32_at(40),
                offset: u32_at(44),
                length: u32_at(48),
                raw_length: u32_at(52),
                kind: Kind::from_u8(b[56]).unwrap_or(Kind::Data),
            },
        }
    }
    fn same_key(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Keyed for Spilled {
    fn key(&self) -> &Id {
        &self.id
    }
}

/// Every known blob and the pack it lives in.
///
/// Pack ids are interned so each entry costs a 32-byte key plus 32 bytes.
#[derive(Debug)]
pub(crate) struct MemIndex {
    blobs: HashMap<Id, Slot>,
    /// Blobs past [`IN_MEMORY`], when there is a directory for them. An id
    /// added again is found in several places: its newest `listed` counts.
    spilled: Levels<Spilled>,
    /// [`IN_MEMORY`], but for tests.
    budget: usize,
    packs: Vec<Id>,
    pack_numbers: HashMap<Id, u32>,
    files: Vec<Id>,
    /// Newest `created` of the index files tombstoning each blob.
    tombstones: HashMap<Id, i64>,
}

impl Default for MemIndex {
    /// In memory throughout.
    fn default() -> Self {
        MemIndex {
            blobs: HashMap::new(),
            spilled: Levels::new(None),
            budget: IN_MEMORY,
            packs: Vec::new(),
            pack_numbers: HashMap::new(),
            files: Vec::new(),
            tombstones: HashMap::new(),
        }
    }
}

impl MemIndex {
    /// From now on its blobs go to files in `dir` past [`IN_MEMORY`].
    pub(crate) fn spilling_to(mut self, dir: PathBuf) -> MemIndex {
        self.spilled = Levels::new(Some(dir));
        self.spill_if_full();
        self
    }

    /// Blobs in memory at most: for tests.
    #[cfg(test)]
    pub(crate) fn with_budget(mut self, budget: usize) -> MemIndex {
        self.budget = budget.max(1);
        self
    }

    /// Blobs in memory: for tests.
    #[cfg(test)]
    pub(crate) fn in_memory(&self) -> usize {
        self.blobs.len()
    }

    /// Files of blobs on disk: for tests.
    #[cfg(test)]
    pub(crate) fn files_on_disk(&self) -> usize {
        self.spilled.files()
    }

    /// Makes every file on disk unreadable: for tests.
    #[cfg(test)]
    pub(crate) fn break_reads(&mut self, dir: &std::path::Path) {
        self.spilled.break_reads(dir);
    }

    /// Merges a set of index files, ignoring any file that another file of
    /// the set supersedes (its live content is repeated in the newer file).
    pub(crate) fn from_files<'a>(files: impl IntoIterator<Item = (Id, &'a IndexFile)>) -> MemIndex {
        let files: Vec<(Id, &IndexFile)> = files.into_iter().collect();
        let superseded: HashSet<Id> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let mut index = MemIndex::default();
        for (id, f) in files {
            if !superseded.contains(&id) {
                index.add_file(id, f);
            }
        }
        index
    }

    /// Adds the contents of an index file named `id`.
    pub(crate) fn add_file(&mut self, id: Id, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack_at(p, file.created);
        }
        for t in &file.tombstones {
            let e = self.tombstones.entry(*t).or_insert(file.created);
            *e = (*e).max(file.created);
        }
        self.files.push(id);
    }

    /// Adds one pack's entries, as if listed by a file created at `created`.
    /// A blob already known keeps its first location: every copy is equally
    /// valid.
    pub(crate) fn add_pack_at(&mut self, p: &IndexPack, created: i64) {
        let next = self.packs.len() as u32;
        let n = *self.pack_numbers.entry(p.pack).or_insert(next);
        if n == next {
            self.packs.push(p.pack);
        }
        for e in &p.blobs {
            let slot = self.blobs.entry(e.id).or_insert(Slot {
                pack: n,
                kind: e.kind,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
                listed: created,
            });
            slot.listed = slot.listed.max(created);
        }
        self.spill_if_full();
    }

    /// Sends the blobs in memory to disk once they are [`IN_MEMORY`]; on
    /// an error they stay, and so do those that come after.
    fn spill_if_full(&mut self) {
        if self.blobs.len() < self.budget || !self.spilled.can_spill() {
            return;
        }
        // A blob on disk already keeps its first location in every file,
        // as it does in memory (a merge keeps the newest `listed`).
        let mut sorted: Vec<Spilled> = self
            .blobs
            .iter()
            .map(|(id, slot)| Spilled {
                id: *id,
                slot: self.slot(id).map_or(*slot, |first| Slot {
                    listed: slot.listed.max(first.listed),
                    ..first
                }),
            })
            .collect();
        sorted.sort_unstable();
        if self.spilled.push(sorted, "the index entries added") {
            // Its room is kept for what comes next.
            self.blobs.clear();
        }
    }

    /// What memory and disk know of `id`'s location: the first location
    /// found (every copy is as good), the newest `listed`.
    fn slot(&self, id: &Id) -> Option<Slot> {
        let mut slot: Option<Slot> = None;
        let mut seen = |s: Slot| match &mut slot {
            Some(known) => known.listed = known.listed.max(s.listed),
            None => slot = Some(s),
        };
        // A file that cannot be read is left out (logged): the blob is
        // stored again, or reported.
        self.spilled.find(id, |r| seen(r.slot));
        if let Some(s) = self.blobs.get(id) {
            seen(*s);
        }
        slot
    }

    /// Looks a blob up, tombstoned or not: a tombstoned blob stays readable
    /// while its pack exists.
    pub(crate) fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.slot(id).and_then(|s| self.location(&s))
    }

    /// `None` for a pack number never given out (a file on disk that
    /// changed under the process).
    fn location(&self, s: &Slot) -> Option<BlobLocation> {
        Some(BlobLocation {
            pack: *self.packs.get(s.pack as usize)?,
            kind: s.kind,
            offset: s.offset,
            length: s.length,
            raw_length: s.raw_length,
        })
    }

    /// True if a writer may deduplicate against the blob: it is indexed and
    /// not tombstoned, or listed again after its newest tombstone.
    pub(crate) fn contains(&self, id: &Id) -> bool {
        self.slot(id)
            .is_some_and(|s| self.tombstones.get(id).is_none_or(|&t| s.listed > t))
    }

    /// Everything known about `id`, tombstone-only ids included.
    pub(crate) fn record(&self, id: &Id) -> Option<Record> {
        let slot = self.slot(id);
        let tomb = self.tombstones.get(id).copied();
        if slot.is_none() && tomb.is_none() {
            return None;
        }
        Some(Record {
            id: *id,
            location: slot.and_then(|s| self.location(&s)),
            listed: slot.map_or(i64::MIN, |s| s.listed),
            tomb: tomb.unwrap_or(i64::MIN),
        })
    }

    /// Calls `each` once with every id that has a location, and one of its
    /// slots (a full pass over the files on disk).
    fn each_blob(&self, mut each: impl FnMut(&Id, &Slot)) {
        for (id, s) in &self.blobs {
            // Where it is also on disk, its first location is there.
            let mut on_disk = false;
            self.spilled.find(id, |_| on_disk = true);
            if !on_disk {
                each(id, s);
            }
        }
        self.spilled.each_newest(|r| each(&r.id, &r.slot));
    }

    /// Blobs with a location that `skip` does not count.
    pub(crate) fn count(&self, skip: impl Fn(&Id) -> bool) -> usize {
        let mut n = 0;
        self.each_blob(|id, _| n += usize::from(!skip(id)));
        n
    }

    /// An error reading the blobs on disk back, if any: the answers left
    /// out what the file held.
    pub(crate) fn failed(&self) -> Option<&str> {
        self.spilled.failed()
    }

    /// Every pack that holds at least one indexed blob.
    pub(crate) fn packs(&self) -> &[Id] {
        &self.packs
    }

    /// Ids of the index files merged so far.
    pub(crate) fn files(&self) -> &[Id] {
        &self.files
    }

    /// Adds the blobs of the packs `keep` accepts to `m` grouped by pack
    /// (first location only), except those `skip` says another part of the
    /// index already placed.
    pub(crate) fn entries_by_pack_into(
        &self,
        m: &mut HashMap<Id, Vec<PackEntry>>,
        skip: impl Fn(&Id) -> bool,
        keep: impl Fn(&Id) -> bool,
    ) {
        self.each_blob(|id, s| {
            let Some(&pack) = self.packs.get(s.pack as usize) else {
                return;
            };
            if !keep(&pack) || skip(id) {
                return;
            }
            m.entry(pack).or_default().push(PackEntry {
                kind: s.kind,
                id: *id,
                offset: s.offset,
                length: s.length,
                raw_length: s.raw_length,
            });
        });
    }
}
