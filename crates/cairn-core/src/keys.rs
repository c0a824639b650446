//! The master key and the subkeys derived from it.

use std::fmt;

use zeroize::Zeroize;

use crate::{Id, Kind, RandomSource};

/// BLAKE3 `derive_key` contexts. Changing one changes every id and
/// ciphertext in every repository: they are part of the format.
const CONTEXT_ID: &str = "cairn 2026-11 v1 blob id key";
const CONTEXT_TREE_ID: &str = "cairn 2026-11 v1 tree id key";
const CONTEXT_DATA: &str = "cairn 2026-11 v1 data sealing key";
const CONTEXT_META: &str = "cairn 2026-11 v1 metadata sealing key";

/// The repository's 32-byte master key. Everything else derives from it;
/// key files store it wrapped under a password.
///
/// Not `Clone`, so the key lives in one place, and wiped when dropped.
#[derive(PartialEq, Eq)]
pub struct MasterKey([u8; 32]);

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate(rng: &dyn RandomSource) -> Self {
        let mut k = [0u8; 32];
        rng.fill(&mut k);
        MasterKey(k)
    }
    /// Wraps raw key bytes (as unwrapped from a key file). The caller
    /// wipes its own copy of `b`.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        MasterKey(b)
    }
    /// The raw key bytes, for wrapping into a key file.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Derives the working subkeys.
    pub fn derive(&self) -> Keys {
        Keys {
            id: blake3::derive_key(CONTEXT_ID, &self.0),
            tree_id: blake3::derive_key(CONTEXT_TREE_ID, &self.0),
            data: blake3::derive_key(CONTEXT_DATA, &self.0),
            meta: blake3::derive_key(CONTEXT_META, &self.0),
        }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Subkeys derived from the master key, wiped when dropped.
///
/// - the **id key** keys the BLAKE3 hash that names data blobs, index files
///   and snapshots, so the storage provider cannot test whether a known file
///   is in the repository;
/// - the **tree id key** names tree blobs, so a file whose bytes equal an
///   encoded tree can never share an id with that tree;
/// - the **data key** seals data blobs;
/// - the **metadata key** seals everything else (trees, pack headers, index
///   files, snapshots, config).
#[derive(Clone)]
pub struct Keys {
    id: [u8; 32],
    tree_id: [u8; 32],
    data: [u8; 32],
    meta: [u8; 32],
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.id.zeroize();
        self.tree_id.zeroize();
        self.data.zeroize();
        self.meta.zeroize();
    }
}

impl Keys {
    /// The keyed BLAKE3 hash of `plaintext` under the id key: the id of a
    /// data blob, index file or snapshot with that content.
    pub fn id_of(&self, plaintext: &[u8]) -> Id {
        Id::from_bytes(*blake3::keyed_hash(&self.id, plaintext).as_bytes())
    }

    /// The id of a blob of `kind`: [`id_of`](Self::id_of) for data, the
    /// keyed hash under the tree id key for trees.
    pub fn blob_id(&self, kind: Kind, plaintext: &[u8]) -> Id {
        match kind {
            Kind::Tree => Id::from_bytes(*blake3::keyed_hash(&self.tree_id, plaintext).as_bytes()),
            _ => self.id_of(plaintext),
        }
    }
    /// The AEAD key for objects of `kind`.
    pub(crate) fn sealing_key(&self, kind: Kind) -> &[u8; 32] {
        match kind {
            Kind::Data | Kind::Bundle => &self.data,
            _ => &self.meta,
        }
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(..)")
    }
}
