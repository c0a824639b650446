//! The merged in-memory view of every index file.

use std::collections::HashMap;

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
}

/// Every known blob and the pack it lives in.
///
/// Pack ids are interned so each entry costs a 32-byte key plus 20 bytes.
#[derive(Debug, Default)]
pub struct Index {
    blobs: HashMap<Id, Slot>,
    packs: Vec<Id>,
    pack_numbers: HashMap<Id, u32>,
    files: Vec<Id>,
}

impl Index {
    /// Adds the contents of an index file named `id`.
    pub fn add_file(&mut self, id: Id, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p);
        }
        self.files.push(id);
    }

    /// Adds one pack's entries. A blob already known keeps its first location:
    /// every copy is equally valid.
    pub fn add_pack(&mut self, p: &IndexPack) {
        let next = self.packs.len() as u32;
        let n = *self.pack_numbers.entry(p.pack).or_insert(next);
        if n == next {
            self.packs.push(p.pack);
        }
        for e in &p.blobs {
            self.blobs.entry(e.id).or_insert(Slot {
                pack: n,
                kind: e.kind,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
            });
        }
    }

    /// Looks a blob up.
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.blobs.get(id).map(|s| BlobLocation {
            pack: self.packs[s.pack as usize],
            kind: s.kind,
            offset: s.offset,
            length: s.length,
            raw_length: s.raw_length,
        })
    }

    /// True if the blob is stored.
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
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
