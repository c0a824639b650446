//! File content for ranged reads: where each chunk of a file starts, which
//! chunks a read covers, and a bounded cache of opened chunks.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use cairn::Id;

/// A file's chunks and the offset where each one ends.
#[derive(Debug)]
pub(crate) struct ChunkMap {
    ids: Vec<Id>,
    ends: Vec<u64>,
}

impl ChunkMap {
    /// The map of chunks `ids` with plaintext sizes `sizes` (the same
    /// length, in order).
    pub(crate) fn new(ids: Vec<Id>, sizes: impl IntoIterator<Item = u64>) -> ChunkMap {
        let ends = sizes
            .into_iter()
            .scan(0u64, |end, size| {
                *end = end.saturating_add(size);
                Some(*end)
            })
            .collect();
        ChunkMap { ids, ends }
    }

    /// The sum of the chunk sizes: the file's size when the tree is sound.
    pub(crate) fn len(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Indexes of the chunks that hold bytes of `[offset, offset + len)`
    /// (clipped to the file): only those are fetched for a read.
    pub(crate) fn covering(&self, offset: u64, len: u64) -> Range<usize> {
        let end = offset.saturating_add(len).min(self.len());
        if offset >= end {
            return 0..0;
        }
        // The first chunk that ends after `offset`, through the first that
        // ends at or after `end`.
        let first = self.ends.partition_point(|&e| e <= offset);
        let last = self.ends.partition_point(|&e| e < end);
        first..last + 1
    }

    /// Chunk `i`: its id and where it starts in the file.
    pub(crate) fn chunk(&self, i: usize) -> Option<(Id, u64)> {
        let start = match i {
            0 => 0,
            _ => *self.ends.get(i - 1)?,
        };
        Some((*self.ids.get(i)?, start))
    }
}

/// Opened chunks, least recently used evicted first once their sizes add up
/// to more than the capacity. Holes are one chunk repeated, so a sparse
/// file's zeros are fetched once.
#[derive(Debug)]
pub(crate) struct ChunkCache {
    capacity: u64,
    used: u64,
    clock: u64,
    chunks: HashMap<Id, (Arc<Vec<u8>>, u64)>,
    by_use: BTreeMap<u64, Id>,
}

impl ChunkCache {
    /// An empty cache holding up to `capacity` bytes of plaintext.
    pub(crate) fn new(capacity: u64) -> ChunkCache {
        ChunkCache {
            capacity,
            used: 0,
            clock: 0,
            chunks: HashMap::new(),
            by_use: BTreeMap::new(),
        }
    }

    /// The chunk, if cached; it becomes the most recently used.
    pub(crate) fn get(&mut self, id: &Id) -> Option<Arc<Vec<u8>>> {
        self.clock += 1;
        let (data, used) = self.chunks.get_mut(id)?;
        self.by_use.remove(used);
        *used = self.clock;
        self.by_use.insert(self.clock, *id);
        Some(data.clone())
    }

    /// Caches a chunk, evicting the least recently used ones to make room.
    /// A chunk larger than the whole cache is not kept.
    pub(crate) fn insert(&mut self, id: Id, data: Arc<Vec<u8>>) {
        let size = data.len() as u64;
        if size > self.capacity || self.chunks.contains_key(&id) {
            return;
        }
        while self.used + size > self.capacity {
            let Some((_, old)) = self.by_use.pop_first() else {
                break;
            };
            if let Some((d, _)) = self.chunks.remove(&old) {
                self.used -= d.len() as u64;
            }
        }
        self.clock += 1;
        self.used += size;
        self.chunks.insert(id, (data, self.clock));
        self.by_use.insert(self.clock, id);
    }

    /// Bytes of plaintext held.
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 32])
    }

    #[test]
    fn a_read_covers_only_the_chunks_it_touches() {
        // Chunks of 10, 20, 30 bytes: [0,10) [10,30) [30,60).
        let map = ChunkMap::new(vec![id(1), id(2), id(3)], [10, 20, 30]);
        assert_eq!(map.len(), 60);
        assert_eq!(map.covering(0, 10), 0..1);
        assert_eq!(map.covering(0, 11), 0..2);
        assert_eq!(map.covering(10, 20), 1..2);
        assert_eq!(map.covering(29, 2), 1..3);
        assert_eq!(map.covering(59, 100), 2..3);
        assert_eq!(map.covering(60, 1), 0..0);
        assert_eq!(map.covering(5, 0), 0..0);
        assert_eq!(map.chunk(2), Some((id(3), 30)));
        assert_eq!(map.chunk(3), None);
    }

    #[test]
    fn an_empty_file_has_nothing_to_read() {
        let map = ChunkMap::new(Vec::new(), []);
        assert_eq!(map.len(), 0);
        assert_eq!(map.covering(0, 4096), 0..0);
    }

    #[test]
    fn the_cache_evicts_the_least_recently_used_first() {
        let mut cache = ChunkCache::new(30);
        let chunk = |n: u8| Arc::new(vec![n; 10]);
        cache.insert(id(1), chunk(1));
        cache.insert(id(2), chunk(2));
        cache.insert(id(3), chunk(3));
        assert!(cache.get(&id(1)).is_some());
        cache.insert(id(4), chunk(4));
        assert!(cache.get(&id(2)).is_none(), "2 was the least recently used");
        assert!(cache.get(&id(1)).is_some());
        assert!(cache.get(&id(3)).is_some());
        assert!(cache.get(&id(4)).is_some());
        assert_eq!(cache.used(), 30);
        cache.insert(id(5), Arc::new(vec![5; 31]));
        assert!(cache.get(&id(5)).is_none(), "larger than the cache");
        assert_eq!(cache.used(), 30);
    }
}
