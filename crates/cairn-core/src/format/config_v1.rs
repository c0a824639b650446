//! The repository config (`config`).
//!
//! Stored as `"CAIRNCFG" | storage version u8 = 1 | sealed(kind Config, id 0)`,
//! the plaintext being:
//!
//! ```text
//! version u8 = 1 | repo id [32]
//! chunker algorithm u8 = 1 | min u32 | avg u32 | max u32 | normalization u8 | seed u64
//! compression u8 (0 none, 1 zstd) | level i32
//! data pack target u32 | tree pack target u32 | created i64
//! ```

use crate::chunker::ALGORITHM_FASTCDC_2020;
use crate::codec::{Reader, Writer, expect_version};
use crate::seal::{Compression, open, seal};
use crate::{ChunkerParams, Error, Id, Keys, Kind, RandomSource, Result};

const WHAT: &str = "config";
const VERSION: u8 = 1;
const MAGIC: &[u8; 8] = b"CAIRNCFG";
const STORAGE_VERSION: u8 = 1;

/// Repository-wide settings, fixed at `init`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    /// Format version of the repository.
    pub version: u32,
    /// Random id of this repository.
    pub repo_id: Id,
    /// How file content is cut into chunks.
    pub chunker: ChunkerParams,
    /// zstd level; 0 disables compression.
    pub compression_level: i32,
    /// Target size of data packs in bytes.
    pub data_pack_size: u32,
    /// Target size of tree packs in bytes.
    pub tree_pack_size: u32,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
}

impl Config {
    /// A config with the default parameters and fresh random ids.
    pub fn new(created: i64, rng: &dyn RandomSource) -> Config {
        let mut id = [0u8; 32];
        rng.fill(&mut id);
        let mut seed = [0u8; 8];
        rng.fill(&mut seed);
        Config {
            version: 1,
            repo_id: Id::from_bytes(id),
            chunker: ChunkerParams::with_seed(u64::from_le_bytes(seed)),
            compression_level: 3,
            data_pack_size: 16 * 1024 * 1024,
            tree_pack_size: 4 * 1024 * 1024,
            created,
        }
    }

    /// How blobs in this repository are compressed.
    pub fn compression(&self) -> Compression {
        if self.compression_level == 0 {
            Compression::None
        } else {
            Compression::Zstd(self.compression_level)
        }
    }

    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<()> {
        self.chunker.validate()?;
        if !(-7..=22).contains(&self.compression_level) {
            return Err(Error::InvalidParameter(format!(
                "zstd level {} outside -7..=22",
                self.compression_level
            )));
        }
        let limit = 1u32 << 31;
        for (name, v) in [("data", self.data_pack_size), ("tree", self.tree_pack_size)] {
            if !(64 * 1024..=limit).contains(&v) {
                return Err(Error::InvalidParameter(format!(
                    "{name} pack size {v} outside 64 KiB..=2 GiB"
                )));
            }
        }
        Ok(())
    }

    /// The plaintext encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(96);
        w.u8(VERSION);
        w.id(&self.repo_id);
        w.u8(ALGORITHM_FASTCDC_2020);
        w.u32(self.chunker.min_size);
        w.u32(self.chunker.avg_size);
        w.u32(self.chunker.max_size);
        w.u8(self.chunker.normalization);
        w.u64(self.chunker.seed);
        w.u8(u8::from(self.compression_level != 0));
        w.i32(self.compression_level);
        w.u32(self.data_pack_size);
        w.u32(self.tree_pack_size);
        w.i64(self.created);
        w.finish()
    }

    /// Decodes and validates the plaintext.
    pub fn decode(b: &[u8]) -> Result<Config> {
        let mut r = Reader::new(b, WHAT);
        expect_version(&mut r, WHAT, VERSION)?;
        let repo_id = r.id()?;
        let algo = r.u8()?;
        if algo != ALGORITHM_FASTCDC_2020 {
            return Err(r.err(format!("unknown chunker algorithm {algo}")));
        }
        let chunker = ChunkerParams {
            min_size: r.u32()?,
            avg_size: r.u32()?,
            max_size: r.u32()?,
            normalization: r.u8()?,
            seed: r.u64()?,
        };
        let compression = r.u8()?;
        let level = r.i32()?;
        let compression_level = match compression {
            0 if level == 0 => 0,
            1 if level != 0 => level,
            _ => return Err(r.err(format!("compression {compression} with level {level}"))),
        };
        let c = Config {
            version: u32::from(VERSION),
            repo_id,
            chunker,
            compression_level,
            data_pack_size: r.u32()?,
            tree_pack_size: r.u32()?,
            created: r.i64()?,
        };
        r.end()?;
        c.validate()
            .map_err(|e| Error::corrupt(WHAT, e.to_string()))?;
        Ok(c)
    }

    /// The stored object: magic, storage version, sealed plaintext.
    pub fn seal(&self, keys: &Keys, rng: &dyn RandomSource) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(STORAGE_VERSION);
        out.extend(seal(
            keys,
            Kind::Config,
            &Id::ZERO,
            &self.encode(),
            Compression::None,
            rng,
        ));
        out
    }

    /// Checks that `stored` looks like a cairn config, without a key.
    pub fn check_magic(stored: &[u8]) -> Result<()> {
        if stored.len() < 9 || &stored[..8] != MAGIC {
            return Err(Error::corrupt(
                WHAT,
                "not a cairn repository config (no CAIRNCFG magic)",
            ));
        }
        if stored[8] != STORAGE_VERSION {
            return Err(Error::UnsupportedVersion {
                what: WHAT,
                version: u32::from(stored[8]),
                supported: u32::from(STORAGE_VERSION),
            });
        }
        Ok(())
    }

    /// Opens a stored config.
    pub fn open(keys: &Keys, stored: &[u8]) -> Result<Config> {
        Self::check_magic(stored)?;
        Config::decode(&open(keys, Kind::Config, &Id::ZERO, &stored[9..])?)
    }
}
