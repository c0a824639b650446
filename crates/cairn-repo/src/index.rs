//! The merged in-memory view of every index file.
//!
//! Besides where each blob lives, the index remembers the tombstones prune
//! wrote, so that [`Index::contains`] (the deduplication question) answers no
//! for a blob prune may delete. The rule, from docs/FORMAT.md §8: a blob is
//! live when the newest index file that lists it was created strictly after
//! the newest index file that tombstones it.

use std::collections::{HashMap, HashSet};

use cairn_core::format::{IndexFile, IndexPack, PackEntry};
use cairn_core::{Id, Kind};

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: Id,
    /// Data or tree.
    pub kind: Kind,
    /// Offset of the sealed blob in the pack.
    pub offset: u32,
    /// Sealed length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

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
pub struct Index {
    blobs: HashMap<Id, Slot>,
    packs: Vec<Id>,
    pack_numbers: HashMap<Id, u32>,
    files: Vec<Id>,
    /// Newest `created` of the index files tombstoning each blob.
    tombstones: HashMap<Id, i64>,
}

impl Index {
    /// Merges a set of index files, ignoring any file that another file of
    /// the set supersedes (its live content is repeated in the newer file).
    pub fn from_files<'a>(files: impl IntoIterator<Item = (Id, &'a IndexFile)>) -> Index {
        let files: Vec<(Id, &IndexFile)> = files.into_iter().collect();
        let superseded: HashSet<Id> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let mut index = Index::default();
        for (id, f) in files {
            if !superseded.contains(&id) {
                index.add_file(id, f);
            }
        }
        index
    }

    /// Adds the contents of an index file named `id`.
    pub fn add_file(&mut self, id: Id, file: &IndexFile) {
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
    pub fn add_pack_at(&mut self, p: &IndexPack, created: i64) {
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
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
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
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs
            .get(id)
            .is_some_and(|s| self.tombstones.get(id).is_none_or(|&t| s.listed > t))
    }

    /// True if some index file tombstones the blob and no newer file lists it.
    pub fn is_tombstoned(&self, id: &Id) -> bool {
        self.blobs.contains_key(id) && !self.contains(id)
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True when no blob is known.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Every pack that holds at least one indexed blob.
    pub fn packs(&self) -> &[Id] {
        &self.packs
    }

    /// Ids of the index files merged so far.
    pub fn files(&self) -> &[Id] {
        &self.files
    }

    /// Blobs grouped by pack, as the index records them (first location only).
    pub fn entries_by_pack(&self) -> HashMap<Id, Vec<PackEntry>> {
        let mut m: HashMap<Id, Vec<PackEntry>> = HashMap::new();
        for (id, s) in &self.blobs {
            m.entry(self.packs[s.pack as usize])
                .or_default()
                .push(PackEntry {
                    kind: s.kind,
                    id: *id,
                    offset: s.offset,
                    length: s.length,
                    raw_length: s.raw_length,
                });
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(b: u8) -> PackEntry {
        PackEntry {
            kind: Kind::Data,
            id: Id::from_bytes([b; 32]),
            offset: 0,
            length: 41,
            raw_length: 0,
        }
    }

    fn listing(created: i64, pack: u8, blobs: &[u8]) -> IndexFile {
        IndexFile {
            created,
            packs: vec![IndexPack {
                pack: Id::from_bytes([pack; 32]),
                blobs: blobs.iter().map(|&b| entry(b)).collect(),
            }],
            ..IndexFile::default()
        }
    }

    fn tombstones(created: i64, blobs: &[u8]) -> IndexFile {
        IndexFile {
            created,
            tombstones: blobs.iter().map(|&b| Id::from_bytes([b; 32])).collect(),
            ..IndexFile::default()
        }
    }

    #[test]
    fn tombstoned_blobs_are_not_deduplicated_until_listed_again_later() {
        let id = |b| Id::from_bytes([b; 32]);
        let files = [
            (id(100), listing(10, 50, &[1, 2, 3])),
            (id(101), tombstones(20, &[1, 2])),
            // A fresh copy of 2 stored after the tombstone; 3 listed at the
            // same second as a tombstone does not count as after it.
            (id(102), listing(30, 51, &[2])),
            (id(103), tombstones(30, &[3])),
            (id(104), listing(30, 52, &[3])),
        ];
        let index = Index::from_files(files.iter().map(|(i, f)| (*i, f)));
        assert!(!index.contains(&id(1)));
        assert!(index.is_tombstoned(&id(1)));
        assert!(index.get(&id(1)).is_some(), "still readable");
        assert!(index.contains(&id(2)));
        assert!(!index.contains(&id(3)));
        assert!(!index.contains(&id(4)));
        assert!(!index.is_tombstoned(&id(4)));
    }

    #[test]
    fn superseded_files_are_ignored() {
        let id = |b| Id::from_bytes([b; 32]);
        let old = listing(10, 50, &[1]);
        let new = IndexFile {
            supersedes: vec![id(100)],
            ..listing(10, 51, &[1])
        };
        let files = [(id(100), old), (id(101), new)];
        let index = Index::from_files(files.iter().map(|(i, f)| (*i, f)));
        assert_eq!(index.get(&id(1)).map(|l| l.pack), Some(id(51)));
        assert_eq!(index.files(), &[id(101)]);
    }
}
