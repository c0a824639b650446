//! The trees prune's walk has visited, exactly: sorted per bucket of the
//! first byte of their id, with what was added since a bucket's last merge
//! in a small hash set. 32 bytes a tree and an eighth more while it grows,
//! where a hash set takes 33 bytes a slot at a load of 44–88% (a million
//! trees, a directory each: 69 MB at its peak).

use std::collections::HashSet;

use cairn_core::Id;

/// Buckets by the first byte of the id: a merge copies one bucket.
const BUCKETS: usize = 256;
/// A bucket merges what it added once that is an eighth of what it holds
/// sorted, or this many.
const MIN_RECENT: usize = 64;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Trees {
    buckets: Vec<Bucket>,
    len: usize,
}

#[derive(Debug, Default)]
struct Bucket {
    sorted: Vec<Id>,
    recent: HashSet<Id>,
}

impl Default for Trees {
    fn default() -> Self {
        Trees {
            buckets: (0..BUCKETS).map(|_| Bucket::default()).collect(),
            len: 0,
        }
    }
}

impl Trees {
    /// Adds `id`; true if it was not there.
    pub(crate) fn insert(&mut self, id: Id) -> bool {
        let b = &mut self.buckets[usize::from(id.as_bytes()[0])];
        if b.sorted.binary_search(&id).is_ok() || !b.recent.insert(id) {
            return false;
        }
        self.len += 1;
        if b.recent.len() >= MIN_RECENT.max(b.sorted.len() / 8) {
            b.merge();
        }
        true
    }

    /// Whether `id` was added.
    pub(crate) fn contains(&self, id: &Id) -> bool {
        let b = &self.buckets[usize::from(id.as_bytes()[0])];
        b.recent.contains(id) || b.sorted.binary_search(id).is_ok()
    }

    /// Trees added.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Bucket {
    /// Moves what was added recently into the sorted vector.
    fn merge(&mut self) {
        let mut fresh: Vec<Id> = self.recent.drain().collect();
        fresh.sort_unstable();
        let mut merged = Vec::with_capacity(self.sorted.len() + fresh.len());
        let (mut i, mut j) = (0, 0);
        while i < self.sorted.len() && j < fresh.len() {
            if self.sorted[i] < fresh[j] {
                merged.push(self.sorted[i]);
                i += 1;
            } else {
                merged.push(fresh[j]);
                j += 1;
            }
        }
        merged.extend_from_slice(&self.sorted[i..]);
        merged.extend_from_slice(&fresh[j..]);
        self.sorted = merged;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trees_are_exactly_those_added_however_often_and_in_any_order() {
        let ids: Vec<Id> = (0..200_000u32)
            .map(|i| Id::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .collect();
        let mut t = Trees::default();
        let mut reference = HashSet::new();
        // Every id once, then every third again, in reverse.
        let again = ids.iter().rev().step_by(3);
        for id in ids.iter().chain(again) {
            assert_eq!(t.insert(*id), reference.insert(*id), "{id}");
        }
        assert_eq!(t.len(), ids.len());
        assert!(ids.iter().all(|id| t.contains(id)));
        // Ids that differ from added ones only in their last byte are not
        // taken for them: a tree taken for visited would not be walked.
        for id in &ids[..1000] {
            let mut b = *id.as_bytes();
            b[31] ^= 1;
            assert!(!t.contains(&Id::from_bytes(b)));
        }
        // Merged on the way: most ids are in the sorted vectors.
        let sorted: usize = t.buckets.iter().map(|b| b.sorted.len()).sum();
        assert!(sorted > ids.len() / 2, "{sorted}");
    }
}
