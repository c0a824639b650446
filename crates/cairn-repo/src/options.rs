//! Options for creating ([`InitOptions`]) and opening ([`OpenOptions`])
//! a repository.

use std::sync::Arc;

use cairn_core::format::{Config, KdfParams};
use cairn_core::{Clock, OsRandom, RandomSource, SystemClock};

use crate::Result;

/// Default bound on the local disk the index table may take while it is
/// built (the table and its sort runs), about 5 million blobs: a
/// repository whose index files list more is refused with a clear error
/// rather than filling the cache disk (docs/FORMAT.md, "Limits").
pub const DEFAULT_INDEX_TABLE_LIMIT: u64 = 1 << 30;

/// Settings for [`Repository::init`].
#[derive(Clone)]
#[non_exhaustive]
pub struct InitOptions {
    /// Password hashing cost.
    pub kdf: KdfParams,
    /// zstd level for the new repository (0 = no compression).
    pub compression_level: i32,
    /// Override chunker sizes (min, avg, max); `None` keeps the defaults.
    pub chunk_sizes: Option<(u32, u32, u32)>,
    /// Use exactly these chunker parameters, seed included (another
    /// repository's, so that `copy` between the two keeps chunks as they
    /// are); overrides `chunk_sizes`.
    pub chunker: Option<cairn_core::ChunkerParams>,
    /// Override the data pack target size in bytes.
    pub data_pack_size: Option<u32>,
    /// Host recorded in the key file.
    pub host: String,
    /// User recorded in the key file.
    pub user: String,
    /// Creation time (seconds since the epoch).
    pub now: i64,
    /// Randomness for keys, ids and nonces.
    pub rng: Arc<dyn RandomSource>,
    /// Time source for what the repository records.
    pub clock: Arc<dyn Clock>,
    /// Storage classes and object lock from the start (docs/FORMAT.md
    /// §17); the key file and config are written by them too.
    pub settings: crate::SettingsChange,
}

impl std::fmt::Debug for InitOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitOptions")
            .field("kdf", &self.kdf)
            .field("compression_level", &self.compression_level)
            .finish_non_exhaustive()
    }
}

impl InitOptions {
    /// Production defaults: Argon2id at 64 MiB, zstd level 3, OS randomness.
    pub fn new(host: &str, user: &str, now: i64) -> InitOptions {
        InitOptions {
            kdf: KdfParams::DEFAULT,
            compression_level: 3,
            chunk_sizes: None,
            chunker: None,
            data_pack_size: None,
            host: host.to_owned(),
            user: user.to_owned(),
            now,
            rng: Arc::new(OsRandom),
            clock: Arc::new(SystemClock),
            settings: crate::SettingsChange::default(),
        }
    }

    /// Production defaults, recorded as this host and user (`USER` or
    /// `LOGNAME`) at the system clock's time.
    pub fn from_env() -> InitOptions {
        InitOptions::new(
            &crate::session_handle::hostname(),
            &crate::session_handle::username(),
            SystemClock.now(),
        )
    }

    /// The config these options ask for, validated.
    pub(crate) fn config(&self) -> Result<Config> {
        let mut config = Config::new(self.now, self.rng.as_ref());
        config.compression_level = self.compression_level;
        if let Some((min, avg, max)) = self.chunk_sizes {
            config.chunker.min_size = min;
            config.chunker.avg_size = avg;
            config.chunker.max_size = max;
        }
        if let Some(params) = self.chunker {
            config.chunker = params;
        }
        if let Some(size) = self.data_pack_size {
            config.data_pack_size = size;
        }
        config.validate()?;
        Ok(config)
    }

    /// Cheap password hashing and small chunks: for tests and examples only.
    pub fn insecure_fast_for_tests() -> InitOptions {
        InitOptions {
            kdf: KdfParams::INSECURE_FAST,
            chunk_sizes: Some((16 * 1024, 64 * 1024, 256 * 1024)),
            ..InitOptions::new("test-host", "test-user", 0)
        }
    }
}

/// Settings for [`Repository::open`].
#[derive(Clone)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Randomness for ids and nonces of what this process writes.
    pub rng: Arc<dyn RandomSource>,
    /// Time source for what this process records.
    pub clock: Arc<dyn Clock>,
    /// Where to keep the merged index as a table on local disk, so the
    /// index costs one small read per lookup rather than its size in RAM. The
    /// default is the store cache's `index/` directory, or a temporary
    /// directory removed when the repository is dropped.
    pub index_dir: Option<std::path::PathBuf>,
    /// The most local disk, in bytes, the index table may take while it
    /// is built ([`DEFAULT_INDEX_TABLE_LIMIT`] by default).
    pub index_table_limit: u64,
    /// Verify the index table's checksum on a thread of its own while the
    /// table is already used, rather than before (ADR 0028). For writers
    /// that call [`Repository::index_checked`] before anything they wrote
    /// counts, as [`Repository::save_snapshot`] does: a backup.
    pub overlap_table_check: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            rng: Arc::new(OsRandom),
            clock: Arc::new(SystemClock),
            index_dir: None,
            index_table_limit: DEFAULT_INDEX_TABLE_LIMIT,
            overlap_table_check: false,
        }
    }
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenOptions")
    }
}
