//! 32-byte identifiers: blob ids, pack ids, index, snapshot and key-file names.

use std::fmt;
use std::str::FromStr;

/// A 32-byte identifier, shown as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
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
