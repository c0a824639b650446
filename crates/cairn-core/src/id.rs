//! 32-byte identifiers: blob ids, pack ids, index, snapshot and key-file names.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A 32-byte identifier, shown as 64 lower-case hex digits. Ids order as
/// their bytes do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Id([u8; 32]);

impl Id {
    /// Length in bytes.
    pub const LEN: usize = 32;
    /// The all-zero id, used where an object is a singleton (the config).
    pub const ZERO: Id = Id([0; 32]);

    /// Wraps raw bytes.
    pub const fn from_bytes(b: [u8; 32]) -> Self {
        Id(b)
    }
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Full lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// The first 8 hex digits, as shown in listings.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
    /// Parses exactly 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, ParseIdError> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).map_err(|_| ParseIdError(s.to_owned()))?;
        Ok(Id(b))
    }
}

impl Id {
    /// Bytes `8 * i .. 8 * i + 8` as a big-endian word.
    fn word(&self, i: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[8 * i..8 * i + 8]);
        u64::from_be_bytes(w)
    }
}

/// Byte order, compared a word at a time: the derived order called
/// `memcmp` for every comparison, and the index table's build sorts and
/// merges tens of millions of ids (a fifth of a 10 M-entry build went to
/// `memcmp`). Big-endian words order exactly as the bytes do.
impl Ord for Id {
    fn cmp(&self, other: &Id) -> Ordering {
        for i in 0..4 {
            match self.word(i).cmp(&other.word(i)) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for Id {
    fn partial_cmp(&self, other: &Id) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::from_hex(s)
    }
}

impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not a 64-digit hex id: {0:?}")]
pub struct ParseIdError(String);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Ids that share a prefix of any length, so that every word decides
    /// some comparisons.
    fn pair() -> impl Strategy<Value = ([u8; 32], [u8; 32])> {
        (any::<[u8; 32]>(), any::<[u8; 32]>(), 0usize..=32).prop_map(|(a, mut b, shared)| {
            b[..shared].copy_from_slice(&a[..shared]);
            (a, b)
        })
    }

    proptest! {
        #[test]
        fn ids_order_as_their_bytes((a, b) in pair()) {
            let (x, y) = (Id::from_bytes(a), Id::from_bytes(b));
            prop_assert_eq!(x.cmp(&y), a.cmp(&b));
            prop_assert_eq!(x.partial_cmp(&y), Some(a.cmp(&b)));
            prop_assert_eq!(x == y, a == b);
        }
    }
}
