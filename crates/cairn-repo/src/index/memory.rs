//! The in-memory part of the index: what this process added since the
//! table was built, and every index file when there is no table.
//!
//! Besides where each blob lives, it remembers the tombstones prune wrote,
//! so that `contains` (the deduplication question) answers no for a blob
//! prune may delete. The rule, from docs/FORMAT.md §8: a blob is live when
//! the newest index file that lists it was created strictly after the
//! newest index file that tombstones it.

use std::collections::{HashMap, HashSet};

use cairn_core::format::{IndexFile, IndexPack, PackEntry};
use cairn_core::{Id, Kind};

use super::BlobLocation;
use super::table::Record;

#[derive(Debug, Clone, Copy)]
struct Slot {
    pack: u32,
    kind: Kind,
    offset: u32,
    length: u32,
    raw_length: u32,
    /// The newest `created` of the index files that list the blob.
    listed: i64,
}

/// Every known blob and the pack it lives in.
///
/// Pack ids are interned so each entry costs a 32-byte key plus 28 bytes.
#[derive(Debug, Default)]
pub(crate) struct MemIndex {
    blobs: HashMap<Id, Slot>,
    packs: Vec<Id>,
    pack_numbers: HashMap<Id, u32>,
    files: Vec<Id>,
    /// Newest `created` of the index files tombstoning each blob.
    tombstones: HashMap<Id, i64>,
}

impl MemIndex {
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
    }

    /// Looks a blob up, tombstoned or not: a tombstoned blob stays readable
    /// while its pack exists.
    pub(crate) fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.blobs.get(id).map(|s| BlobLocation {
            pack: self.packs[s.pack as usize],
            kind: s.kind,
            offset: s.offset,
            length: s.length,
            raw_length: s.raw_length,
        })
    }

    /// True if a writer may deduplicate against the blob: it is indexed and
    /// not tombstoned, or listed again after its newest tombstone.
    pub(crate) fn contains(&self, id: &Id) -> bool {
        self.blobs
            .get(id)
            .is_some_and(|s| self.tombstones.get(id).is_none_or(|&t| s.listed > t))
    }

    /// Everything known about `id`, tombstone-only ids included.
    pub(crate) fn record(&self, id: &Id) -> Option<Record> {
        let slot = self.blobs.get(id);
        let tomb = self.tombstones.get(id).copied();
        if slot.is_none() && tomb.is_none() {
            return None;
        }
        Some(Record {
            id: *id,
            location: self.get(id),
            listed: slot.map_or(i64::MIN, |s| s.listed),
            tomb: tomb.unwrap_or(i64::MIN),
        })
    }

    /// Ids with a location.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &Id> {
        self.blobs.keys()
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
        for (id, s) in &self.blobs {
            let pack = self.packs[s.pack as usize];
            if !keep(&pack) || skip(id) {
                continue;
            }
            m.entry(pack).or_default().push(PackEntry {
                kind: s.kind,
                id: *id,
                offset: s.offset,
                length: s.length,
                raw_length: s.raw_length,
            });
        }
    }
}
