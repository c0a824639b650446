//! Reading data blobs stored in bundles (docs/FORMAT.md §7.1).
//!
//! Every blob of a bundle is indexed at the bundle's whole range, so the
//! readers that fetch a range and open its blobs one by one (restores of
//! small files, check, repack) would decrypt and decompress the same bundle
//! once per blob. [`BundleCache`] keeps the last few opened bundles, keyed by
//! their sealed bytes' nonce, tag and length: a storage server that answers
//! the same range with other bytes later gets them opened afresh, and every
//! blob taken from a cached bundle is checked against its id again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cairn_core::format::Bundle;
use cairn_core::format::bundle_v1::BUNDLE_SEAL_ID;
use cairn_core::{Id, Kind, open};

use crate::{BlobLocation, Error, Repository, Result};

/// Opened bundles kept: a few per concurrent reader (cairn writes bundles
/// of about 1 MiB).
const CACHED_BUNDLES: usize = 8;
/// Plaintext bytes the cache holds at most, whatever a repository's
/// bundles are like (a hostile one may make each 16 MiB): a larger bundle
/// is opened for each of its blobs instead.
const CACHED_BYTES: usize = 12 << 20;
/// The largest bundle kept.
const CACHED_BUNDLE_MAX: usize = 2 << 20;
/// Nonce (24 bytes), tag (16) and length (8) of a sealed bundle.
type Key = [u8; 48];

/// The bundles opened last. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct BundleCache {
    entries: Mutex<VecDeque<(Key, Arc<Bundle>)>>,
    /// Bundles opened (decrypted and decoded): for tests.
    opened: std::sync::atomic::AtomicU64,
}

/// Opens the blobs of one range read, one after another: a bundle is
/// opened once for all of its blobs in the range, whatever its size. The
/// shared cache keeps bundles of up to 2 MiB only; a bundle of tiny files
/// written before 2026-12-02 could be larger (its directory did not count
/// toward its target), and was opened again for each of its blobs.
#[derive(Debug)]
pub struct RangeOpener<'a> {
    repo: &'a Repository,
    last: Option<(Key, Arc<Bundle>)>,
}

impl RangeOpener<'_> {
    /// [`Repository::open_blob`], keeping the last bundle opened.
    pub fn open(&mut self, loc: &BlobLocation, id: &Id, sealed: &[u8]) -> Result<Vec<u8>> {
        if loc.kind != Kind::Bundle {
            return self.repo.open_blob(loc, id, sealed);
        }
        let key = key_of(sealed);
        if let (Some(k), Some((last, bundle))) = (&key, &self.last) {
            if k == last {
                return self.repo.blob_from_bundle(bundle, loc, id);
            }
        }
        let bundle = self.repo.bundle(loc, id, sealed, key.as_ref())?;
        let plain = self.repo.blob_from_bundle(&bundle, loc, id);
        self.last = key.map(|k| (k, bundle));
        plain
    }
}

fn key_of(sealed: &[u8]) -> Option<Key> {
    let n = sealed.len();
    if n < cairn_core::SEAL_OVERHEAD {
        return None;
    }
    let mut k = [0u8; 48];
    k[..24].copy_from_slice(&sealed[..24]);
    k[24..40].copy_from_slice(&sealed[n - 16..]);
    k[40..].copy_from_slice(&(n as u64).to_le_bytes());
    Some(k)
}

impl BundleCache {
    fn get(&self, key: &Key) -> Option<Arc<Bundle>> {
        let q = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().find(|(k, _)| k == key).map(|(_, b)| b.clone())
    }

    fn put(&self, key: Key, bundle: Arc<Bundle>) {
        if bundle.plain_len() > CACHED_BUNDLE_MAX {
            return;
        }
        let mut q = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if q.iter().any(|(k, _)| *k == key) {
            return;
        }
        q.push_back((key, bundle));
        let bytes = |q: &VecDeque<(Key, Arc<Bundle>)>| -> usize {
            q.iter().map(|(_, b)| b.plain_len()).sum()
        };
        while q.len() > CACHED_BUNDLES || bytes(&q) > CACHED_BYTES {
            q.pop_front();
        }
    }
}

impl Repository {
    /// Opens a sealed bundle read from `loc` (any of its blobs' locations).
    /// `id` is the blob the error names.
    fn open_bundle(&self, loc: &BlobLocation, id: &Id, sealed: &[u8]) -> Result<Bundle> {
        let corrupt = |detail: String| Error::CorruptBlob {
            id: *id,
            pack: loc.pack,
            detail,
        };
        (self.inner.bundles.opened).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let plain = open(self.keys(), Kind::Bundle, &BUNDLE_SEAL_ID, sealed)
            .map_err(|e| corrupt(format!("its bundle: {e}")))?;
        Bundle::decode(plain).map_err(|e| corrupt(format!("its bundle: {e}")))
    }

    /// Blob `id` from an opened bundle, checked against its indexed length
    /// and its id.
    fn blob_from_bundle(&self, bundle: &Bundle, loc: &BlobLocation, id: &Id) -> Result<Vec<u8>> {
        let corrupt = |detail: String| Error::CorruptBlob {
            id: *id,
            pack: loc.pack,
            detail,
        };
        let plain = bundle
            .get(id)
            .ok_or_else(|| corrupt("not in the bundle its index entry names".into()))?;
        if plain.len() != loc.raw_length as usize {
            return Err(corrupt(format!(
                "length {} differs from the indexed {}",
                plain.len(),
                loc.raw_length
            )));
        }
        if self.keys().blob_id(Kind::Data, plain) != *id {
            return Err(corrupt("content does not hash to its id".into()));
        }
        Ok(plain.to_vec())
    }

    /// [`Repository::open_blob`] for a blob in a bundle: through the cache.
    pub(crate) fn open_bundled(
        &self,
        loc: &BlobLocation,
        id: &Id,
        sealed: &[u8],
    ) -> Result<Vec<u8>> {
        let bundle = self.bundle(loc, id, sealed, key_of(sealed).as_ref())?;
        self.blob_from_bundle(&bundle, loc, id)
    }

    /// The bundle `sealed` (whose key is `key`), from the cache or opened.
    fn bundle(
        &self,
        loc: &BlobLocation,
        id: &Id,
        sealed: &[u8],
        key: Option<&Key>,
    ) -> Result<Arc<Bundle>> {
        let cache = &self.inner.bundles;
        if let Some(b) = key.and_then(|k| cache.get(k)) {
            return Ok(b);
        }
        let b = Arc::new(self.open_bundle(loc, id, sealed)?);
        if let Some(k) = key {
            cache.put(*k, b.clone());
        }
        Ok(b)
    }

    /// Opens the blobs of one range read: see [`RangeOpener`].
    pub fn range_opener(&self) -> RangeOpener<'_> {
        RangeOpener {
            repo: self,
            last: None,
        }
    }

    /// Bundles opened (decrypted and decoded) so far: for tests.
    #[doc(hidden)]
    pub fn bundles_opened(&self) -> u64 {
        (self.inner.bundles.opened).load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_last_bundles_by_sealed_identity() {
        let cache = BundleCache::default();
        let bundle = |b: u8| {
            let mut x = cairn_core::format::BundleBuilder::default();
            x.push(Id::from_bytes([b; 32]), &[b]);
            Arc::new(Bundle::decode(x.finish().0).expect("decode"))
        };
        let sealed = |b: u8| vec![b; 100];
        assert!(key_of(&[0; 40]).is_none());
        for b in 0..=CACHED_BUNDLES as u8 {
            let k = key_of(&sealed(b)).expect("key");
            cache.put(k, bundle(b));
        }
        // The oldest went; the others are there.
        assert!(cache.get(&key_of(&sealed(0)).expect("key")).is_none());
        let last = key_of(&sealed(CACHED_BUNDLES as u8)).expect("key");
        assert_eq!(cache.get(&last), Some(bundle(CACHED_BUNDLES as u8)));
        // Same nonce and tag, another length: another object.
        let mut longer = sealed(1);
        longer.push(1);
        assert!(cache.get(&key_of(&longer).expect("key")).is_none());
    }

    #[test]
    fn the_cache_holds_a_bounded_number_of_bytes() {
        let cache = BundleCache::default();
        let bundle = |b: u8, len: usize| {
            let mut x = cairn_core::format::BundleBuilder::default();
            x.push(Id::from_bytes([b; 32]), &vec![b; len]);
            Arc::new(Bundle::decode(x.finish().0).expect("decode"))
        };
        let key = |b: u8| key_of(&[b; 64]).expect("key");
        // Too large to keep at all.
        cache.put(key(0), bundle(0, CACHED_BUNDLE_MAX + 1));
        assert!(cache.get(&key(0)).is_none());
        // Bundles of 1.9 MiB: the byte bound, not the count, evicts.
        let big = CACHED_BUNDLE_MAX - (100 << 10);
        for b in 1..=7 {
            cache.put(key(b), bundle(b, big));
        }
        let held: usize = (1..=7u8)
            .filter_map(|b| cache.get(&key(b)))
            .map(|b| b.plain_len())
            .sum();
        assert!(held <= CACHED_BYTES, "{held} bytes held");
        assert!(cache.get(&key(1)).is_none());
        assert!(cache.get(&key(7)).is_some());
    }
}
