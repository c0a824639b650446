//! Ranged reads of file content: a read fetches only the chunks that hold
//! its bytes, each opened (decrypted, verified) by the repository and kept
//! in the bounded chunk cache.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use cairn::{Id, Kind};
use fuser::Errno;

use super::content::ChunkMap;
use super::inodes::{Inode, NodeInode};
use super::{MountFs, attr, io_error, lock};

impl MountFs {
    /// Whether `ino` can be opened for reading: content-bearing entries
    /// only (the kernel opens fifos and refuses devices itself).
    pub(crate) fn check_readable(&self, ino: u64) -> Result<(), Errno> {
        match self.inode(ino)? {
            Inode::Node(n) if attr::has_content(&n.node) => Ok(()),
            Inode::Node(n) if n.node.kind == cairn::NodeKind::Dir => Err(Errno::EISDIR),
            Inode::Layout(_) => Err(Errno::EISDIR),
            Inode::Node(_) => Err(Errno::EINVAL),
        }
    }

    /// Up to `size` bytes of file `ino` from `offset` (fewer at the end).
    pub(crate) fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let Inode::Node(n) = self.inode(ino)? else {
            return Err(Errno::EISDIR);
        };
        let map = self.chunk_map(&n)?;
        let end = offset.saturating_add(u64::from(size)).min(map.len());
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        for i in map.covering(offset, u64::from(size)) {
            let Some((id, start)) = map.chunk(i) else {
                break;
            };
            let data = self.chunk(&id)?;
            let from = offset.saturating_sub(start) as usize;
            let to = (end - start).min(data.len() as u64) as usize;
            let piece = data
                .get(from..to)
                .ok_or_else(|| io_error(&format!("chunk {id}"), "shorter than the index says"))?;
            out.extend_from_slice(piece);
        }
        Ok(out)
    }

    /// A file's chunk map, made once from the index's plaintext lengths
    /// (no download); a file whose chunks do not add up to its recorded
    /// size is damaged, and every read of it fails.
    fn chunk_map(&self, n: &NodeInode) -> Result<Arc<ChunkMap>, Errno> {
        if let Some(m) = n.chunks.get() {
            return Ok(m.clone());
        }
        let name = String::from_utf8_lossy(&n.node.name);
        let mut sizes = Vec::with_capacity(n.node.content.len());
        for id in &n.node.content {
            let loc = self
                .repo
                .locate(id)
                .map_err(|e| io_error(&format!("{name}: chunk {id}"), e))?;
            sizes.push(u64::from(loc.raw_length));
        }
        let map = ChunkMap::new(n.node.content.clone(), sizes);
        if map.len() != n.node.size {
            let detail = format!(
                "chunks add up to {} bytes but the file was {} bytes",
                map.len(),
                n.node.size
            );
            return Err(io_error(&name, detail));
        }
        Ok(n.chunks.get_or_init(|| Arc::new(map)).clone())
    }

    /// One opened chunk, from the cache or fetched. Requests run on several
    /// threads, and the kernel's read-ahead asks for neighbouring pages at
    /// once: a chunk being fetched is waited for, not fetched twice.
    fn chunk(&self, id: &Id) -> Result<Arc<Vec<u8>>, Errno> {
        if let Some(data) = self.cached(id) {
            return Ok(data);
        }
        let slot = lock(&self.fetching).entry(*id).or_default().clone();
        let _one_at_a_time = lock(&slot);
        if let Some(data) = self.cached(id) {
            return Ok(data);
        }
        let fetched = self.fetch(id);
        lock(&self.fetching).remove(id);
        fetched
    }

    fn cached(&self, id: &Id) -> Option<Arc<Vec<u8>>> {
        let data = lock(&self.cache).get(id)?;
        self.stats.chunk_cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(data)
    }

    /// Fetches and opens a chunk, and caches it.
    fn fetch(&self, id: &Id) -> Result<Arc<Vec<u8>>, Errno> {
        let data = self
            .runtime
            .block_on(self.repo.read_blob_blocking(Kind::Data, id))
            .map_err(|e| io_error(&format!("chunk {id}"), e))?;
        let data = Arc::new(data);
        self.stats.chunks_fetched.fetch_add(1, Ordering::Relaxed);
        self.stats
            .chunk_bytes_fetched
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        lock(&self.cache).insert(*id, data.clone());
        Ok(data)
    }
}
