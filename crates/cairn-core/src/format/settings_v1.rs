//! Repository settings that may change after `init` (`settings/<id>`):
//! which storage class each kind of object is written with, and the object
//! lock retention new objects carry.
//!
//! ```text
//! version u8 = 1 | sequence u64 | written i64
//! data storage class bytes (UTF-8) | metadata storage class bytes (UTF-8)
//! lock mode u8 (0 none, 1 governance, 2 compliance) | lock seconds u64
//! ```
//! Sealed as kind `Settings` under the object's name, the keyed hash of the
//! plaintext (like snapshots). Every change is a new object with a higher
//! sequence; the one with the highest sequence is in force (ties: the
//! larger id). The config stays what it is, written once.

use crate::codec::{Reader, Writer, expect_version};
use crate::{Error, Result};

const WHAT: &str = "settings";
const VERSION: u8 = 1;
/// The longest storage class name accepted (S3's are at most 19 bytes).
pub const MAX_CLASS_LEN: usize = 64;
/// The longest retention accepted: 100 years of 365.25 days.
pub const MAX_LOCK_SECONDS: u64 = 3_155_760_000;

/// S3 Object Lock retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` can still delete.
    Governance,
    /// Nobody, the account's root included, can delete before the date.
    Compliance,
}

impl LockMode {
    /// The name S3 uses in headers and XML.
    pub fn s3_name(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    /// Parses `governance` or `compliance` (any case).
    pub fn parse(s: &str) -> Option<LockMode> {
        match s.to_ascii_lowercase().as_str() {
            "governance" => Some(LockMode::Governance),
            "compliance" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// How long new objects are locked, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Lock {
    /// The retention mode.
    pub mode: LockMode,
    /// Retention from the moment an object is written (or extended), in
    /// seconds: 1 ..= [`MAX_LOCK_SECONDS`].
    pub seconds: u64,
}

/// One settings object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    /// Higher than every settings object the writer saw.
    pub sequence: u64,
    /// Writer's clock, seconds since the epoch (informational).
    pub written: i64,
    /// Storage class of data packs (`""`: the bucket's default).
    pub data_class: String,
    /// Storage class of everything else: tree packs, index files,
    /// snapshots, keys, config, settings, sessions (`""`: the default).
    pub metadata_class: String,
    /// Object lock retention of new objects, if any.
    pub lock: Option<Lock>,
}

/// Checks a storage class name: empty (the default) or upper-case ASCII
/// letters, digits and `_`, as every S3 provider spells them.
pub fn check_class(class: &str) -> std::result::Result<(), String> {
    if class.len() > MAX_CLASS_LEN {
        return Err(format!(
            "storage class is {} bytes, more than {MAX_CLASS_LEN}",
            class.len()
        ));
    }
    if let Some(c) = class
        .chars()
        .find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "storage class {class:?} has {c:?}: use upper-case letters, digits and _ (e.g. GLACIER_IR)"
        ));
    }
    Ok(())
}

impl Settings {
    /// The plaintext encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(34 + self.data_class.len() + self.metadata_class.len());
        w.u8(VERSION);
        w.u64(self.sequence);
        w.i64(self.written);
        w.bytes(self.data_class.as_bytes());
        w.bytes(self.metadata_class.as_bytes());
        match self.lock {
            None => {
                w.u8(0);
                w.u64(0);
            }
            Some(l) => {
                w.u8(match l.mode {
                    LockMode::Governance => 1,
                    LockMode::Compliance => 2,
                });
                w.u64(l.seconds);
            }
        }
        w.finish()
    }

    /// Decodes and validates a plaintext.
    pub fn decode(b: &[u8]) -> Result<Settings> {
        let mut r = Reader::new(b, WHAT);
        expect_version(&mut r, WHAT, VERSION)?;
        let sequence = r.u64()?;
        let written = r.i64()?;
        let data_class = r.string()?;
        let metadata_class = r.string()?;
        let mode = r.u8()?;
        let seconds = r.u64()?;
        r.end()?;
        let lock = match (mode, seconds) {
            (0, 0) => None,
            (0, s) => {
                return Err(Error::corrupt(
                    WHAT,
                    format!("lock seconds {s} without a mode"),
                ));
            }
            (1 | 2, s) if s == 0 || s > MAX_LOCK_SECONDS => {
                return Err(Error::corrupt(
                    WHAT,
                    format!("lock seconds {s} outside 1..={MAX_LOCK_SECONDS}"),
                ));
            }
            (1, seconds) => Some(Lock {
                mode: LockMode::Governance,
                seconds,
            }),
            (2, seconds) => Some(Lock {
                mode: LockMode::Compliance,
                seconds,
            }),
            (m, _) => return Err(Error::corrupt(WHAT, format!("invalid lock mode {m}"))),
        };
        for class in [&data_class, &metadata_class] {
            check_class(class).map_err(|e| Error::corrupt(WHAT, e))?;
        }
        if sequence == 0 {
            return Err(Error::corrupt(WHAT, "sequence 0"));
        }
        Ok(Settings {
            sequence,
            written,
            data_class,
            metadata_class,
            lock,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Settings {
        Settings {
            sequence: 2,
            written: 1_700_000_000,
            data_class: "GLACIER".into(),
            metadata_class: "STANDARD".into(),
            lock: Some(Lock {
                mode: LockMode::Compliance,
                seconds: 30 * 86_400,
            }),
        }
    }

    /// docs/FORMAT.md §17's vector.
    #[test]
    fn settings_match_their_golden_vector() {
        let want = concat!(
            "01",
            "0200000000000000",
            "00f1536500000000",
            "07000000",
            "474c4143494552",
            "08000000",
            "5354414e44415244",
            "02",
            "008d270000000000"
        );
        assert_eq!(hex::encode(example().encode()), want);
        assert_eq!(
            Settings::decode(&example().encode()).expect("decode"),
            example()
        );
        let none = Settings {
            lock: None,
            data_class: String::new(),
            metadata_class: String::new(),
            ..example()
        };
        assert_eq!(Settings::decode(&none.encode()).expect("decode"), none);
    }

    #[test]
    fn invalid_fields_are_corrupt() {
        let bad = |f: &dyn Fn(&mut Settings)| {
            let mut s = example();
            f(&mut s);
            Settings::decode(&s.encode()).expect_err("refused")
        };
        bad(&|s| s.sequence = 0);
        bad(&|s| s.data_class = "glacier".into());
        bad(&|s| s.metadata_class = "A".repeat(65));
        bad(&|s| {
            s.lock = Some(Lock {
                mode: LockMode::Governance,
                seconds: 0,
            })
        });
        bad(&|s| {
            s.lock = Some(Lock {
                mode: LockMode::Governance,
                seconds: MAX_LOCK_SECONDS + 1,
            })
        });
        let mut b = example().encode();
        let n = b.len();
        b[n - 9] = 3;
        assert!(Settings::decode(&b).is_err(), "unknown mode");
        b[n - 9] = 0;
        assert!(Settings::decode(&b).is_err(), "seconds without a mode");
        let mut b = example().encode();
        b.push(0);
        assert!(Settings::decode(&b).is_err(), "trailing byte");
        let mut b = example().encode();
        b[0] = 2;
        assert!(
            matches!(Settings::decode(&b), Err(Error::UnsupportedVersion { .. })),
            "version 2"
        );
    }
}
