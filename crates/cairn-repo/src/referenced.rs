//! The blobs snapshots reference, as prune asks about them (ADR 0021,
//! ADR 0022): trees exactly (the walk visits each once by that set), data
//! blobs by the first 8 bytes of their id, held sorted.
//!
//! Ids are keyed hashes that no one without the keys can steer, and a data
//! blob taken for referenced because a referenced one shares those 8 bytes
//! (about one in 2^64 divided by the blobs referenced) is only kept, never
//! deleted.

use std::collections::HashSet;

use cairn_core::Id;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Referenced {
    pub(crate) trees: HashSet<Id>,
    pub(crate) data: DataRefs,
}

impl Referenced {
    /// True if a snapshot references the blob (or, for a data blob, one
    /// with the same first 8 bytes of id).
    pub(crate) fn contains(&self, id: &Id) -> bool {
        self.data.contains(prefix(id)) || self.trees.contains(id)
    }

    /// Distinct trees and data blobs referenced.
    pub(crate) fn len(&self) -> usize {
        self.trees.len() + self.data.len()
    }

    /// Sorts what is gathered, so that [`Referenced::contains`] sees it.
    pub(crate) fn seal(&mut self) {
        self.data.seal();
    }
}

#[cfg(test)]
impl FromIterator<Id> for Referenced {
    /// Every id as a data blob.
    fn from_iter<I: IntoIterator<Item = Id>>(ids: I) -> Self {
        let mut data = DataRefs::default();
        ids.into_iter().for_each(|id| data.insert(&id));
        data.seal();
        Referenced {
            trees: HashSet::new(),
            data,
        }
    }
}

/// Buckets by the first byte of the prefix: each sorts and merges on its
/// own, so the memory a merge takes besides the set is a bucket's.
const BUCKETS: usize = 256;
/// A bucket merges what it gathered once that is a quarter of what it
/// holds sorted (or this many): the set takes about 8 bytes per distinct
/// prefix, a quarter more while it gathers, instead of the 16 to 24 a
/// hash set takes (ten million blobs referenced: 226 MiB at its peak).
const MIN_GATHERED: usize = 1024;

/// Data blobs referenced, by the first 8 bytes of their id: a sorted,
/// distinct vector per bucket, and what was gathered since it was merged.
#[derive(Debug)]
pub(crate) struct DataRefs {
    buckets: Vec<Bucket>,
}

#[derive(Debug, Default)]
struct Bucket {
    sorted: Vec<u64>,
    gathered: Vec<u64>,
    /// Once sealed: where the prefixes of each value of the `bits` bits
    /// after the first byte start in `sorted`, so a lookup searches a
    /// few neighbours instead of the whole bucket (each step of a binary
    /// search over tens of MiB is a miss in every cache).
    dir: Vec<u32>,
    bits: u32,
}

impl Default for DataRefs {
    fn default() -> Self {
        DataRefs {
            buckets: (0..BUCKETS).map(|_| Bucket::default()).collect(),
        }
    }
}

impl DataRefs {
    /// Adds the data blob `id`.
    pub(crate) fn insert(&mut self, id: &Id) {
        let p = prefix(id);
        let b = &mut self.buckets[(p >> 56) as usize];
        if b.gathered.capacity() == 0 {
            b.gathered
                .reserve_exact(MIN_GATHERED.max(b.sorted.len() / 4));
        }
        b.gathered.push(p);
        if b.gathered.len() >= MIN_GATHERED.max(b.sorted.len() / 4) {
            b.merge();
        }
    }

    /// Merges every bucket's gathered prefixes, and indexes them.
    pub(crate) fn seal(&mut self) {
        for b in &mut self.buckets {
            b.merge();
            b.index();
        }
    }

    /// True if `p` was inserted and merged since ([`DataRefs::seal`]).
    fn contains(&self, p: u64) -> bool {
        let b = &self.buckets[(p >> 56) as usize];
        let range = match b.dir.get(b.sub(p)..b.sub(p) + 2) {
            Some(&[lo, hi]) => &b.sorted[lo as usize..hi as usize],
            _ => &b.sorted[..],
        };
        range.binary_search(&p).is_ok()
    }

    /// Distinct prefixes merged.
    fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.sorted.len()).sum()
    }
}

impl Bucket {
    /// Which of the directory's slots `p` falls in.
    fn sub(&self, p: u64) -> usize {
        ((p >> (56 - self.bits)) & ((1 << self.bits) - 1)) as usize
    }

    /// Builds the directory: about one slot per four prefixes (at most
    /// 2^16 slots), a byte per prefix.
    fn index(&mut self) {
        let bits = usize::BITS - (self.sorted.len() / 4).leading_zeros();
        self.bits = bits.min(16);
        let slots = 1usize << self.bits;
        let mut dir = Vec::with_capacity(slots + 1);
        let mut at = 0;
        for slot in 0..slots {
            while at < self.sorted.len() && self.sub(self.sorted[at]) < slot {
                at += 1;
            }
            dir.push(at as u32);
        }
        dir.push(self.sorted.len() as u32);
        self.dir = dir;
    }

    fn merge(&mut self) {
        if self.gathered.is_empty() {
            return;
        }
        self.dir = Vec::new();
        let mut fresh = std::mem::take(&mut self.gathered);
        fresh.sort_unstable();
        fresh.dedup();
        let old = std::mem::take(&mut self.sorted);
        let mut merged = Vec::with_capacity(old.len() + fresh.len());
        let (mut i, mut j) = (0, 0);
        while i < old.len() && j < fresh.len() {
            match old[i].cmp(&fresh[j]) {
                std::cmp::Ordering::Less => {
                    merged.push(old[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    merged.push(fresh[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    merged.push(old[i]);
                    i += 1;
                    j += 1;
                }
            }
        }
        merged.extend_from_slice(&old[i..]);
        merged.extend_from_slice(&fresh[j..]);
        merged.shrink_to_fit();
        self.sorted = merged;
    }
}

/// The first 8 bytes of an id, big-endian.
pub(crate) fn prefix(id: &Id) -> u64 {
    let b = id.as_bytes();
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8, last: u8) -> Id {
        let mut b = [first; 32];
        b[31] = last;
        Id::from_bytes(b)
    }

    #[test]
    fn trees_are_told_apart_exactly_and_data_blobs_by_their_first_eight_bytes() {
        let mut r = Referenced::default();
        assert!(r.trees.insert(id(1, 0)));
        // A tree that differs from a visited one only late in its id is
        // still walked: the walk's set of trees is exact.
        assert!(r.trees.insert(id(1, 1)));
        r.data.insert(&id(2, 0));
        r.seal();
        assert!(r.contains(&id(1, 0)) && r.contains(&id(2, 0)));
        // Data blobs sharing the first 8 bytes are kept together (the
        // safe way), the rest are not referenced.
        assert!(r.contains(&id(2, 9)));
        assert!(!r.contains(&id(3, 0)) && !r.contains(&id(1, 2)));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn the_sorted_set_holds_exactly_what_was_inserted_however_often_and_in_any_order() {
        let ids: Vec<Id> = (0..400_000u32)
            .map(|i| Id::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .collect();
        let mut r = DataRefs::default();
        // Every id once, then the even ones again (as trees that list the
        // same content do), in another order.
        ids.iter().for_each(|id| r.insert(id));
        let merged = r.len();
        assert!(
            merged > 0 && merged < ids.len(),
            "merged on the way: {merged}"
        );
        ids.iter().rev().step_by(2).for_each(|id| r.insert(id));
        r.seal();
        assert_eq!(r.len(), ids.len());
        assert!(ids.iter().all(|id| r.contains(prefix(id))));
        let absent = (400_000..410_000u32)
            .map(|i| Id::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes()));
        assert!(absent.into_iter().all(|id| !r.contains(prefix(&id))));
        for b in &r.buckets {
            assert!(b.sorted.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
        }
    }
}
