//! A local cache of immutable repository objects.
//!
//! Index files, snapshots and tree blobs never change once written (their
//! names derive from their content), so a copy on local disk stays valid
//! for as long as the object exists. Caching them means a no-change backup
//! or a listing against a remote store makes only a handful of requests.
//! Pack data is never cached.
//!
//! Entries are `BLAKE3(content) | content`, written to a temporary file and
//! renamed into place, so several cairn processes can share one cache: a
//! reader sees a whole entry or none, and an entry damaged on disk is
//! detected, dropped and fetched again rather than reported as tampering.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

/// A file-name-safe key for a repository URL, used as its cache folder, so
/// repositories never share cached objects.
pub fn cache_key(url: &str) -> String {
    blake3::hash(url.as_bytes()).to_hex()[..16].to_owned()
}

/// A directory of cached objects.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    hits: AtomicU64,
    misses: AtomicU64,
    counter: AtomicU64,
}

impl Cache {
    /// Uses (and creates) `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Cache> {
        std::fs::create_dir_all(dir)?;
        Ok(Cache {
            dir: dir.to_owned(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            counter: AtomicU64::new(0),
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn file(&self, key: &str) -> PathBuf {
        let h = blake3::hash(key.as_bytes()).to_hex();
        self.dir.join(&h[..2]).join(h.as_str())
    }

    /// The cached bytes for `key`, if present and intact.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        let path = self.file(key);
        let Ok(raw) = std::fs::read(&path) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        if raw.len() < 32 || blake3::hash(&raw[32..]).as_bytes() != &raw[..32] {
            let _ = std::fs::remove_file(&path);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(Bytes::from(raw).slice(32..))
    }

    /// Stores `data` under `key`. Failures only cost a later refetch, so
    /// they are ignored (a full disk must not fail a backup).
    pub fn put(&self, key: &str, data: &[u8]) {
        let path = self.file(key);
        let Some(parent) = path.parent() else { return };
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!(".tmp-{}-{n}", std::process::id()));
        let r = std::fs::create_dir_all(parent)
            .and_then(|()| std::fs::File::create(&tmp))
            .and_then(|mut f| {
                f.write_all(blake3::hash(data).as_bytes())?;
                f.write_all(data)
            })
            .and_then(|()| std::fs::rename(&tmp, &path));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_drops_damaged_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Cache::open(dir.path()).expect("open");
        assert_eq!(c.get("index/a"), None);
        c.put("index/a", b"sealed bytes");
        assert_eq!(c.get("index/a").as_deref(), Some(&b"sealed bytes"[..]));
        // Damage the entry on disk: it must be refetched, not returned.
        let f = c.file("index/a");
        let mut raw = std::fs::read(&f).expect("read");
        raw[40] ^= 1;
        std::fs::write(&f, raw).expect("write");
        assert_eq!(c.get("index/a"), None);
        assert!(!f.exists(), "a damaged entry is removed");
        assert_eq!(c.stats(), (1, 2));
    }
}
