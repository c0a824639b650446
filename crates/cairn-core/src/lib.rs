//! # cairn-core
//!
//! The pure heart of cairn: identifiers, keys and their derivation, sealing
//! (compress + encrypt) of objects, chunker parameters and every on-disk
//! codec. This crate performs no I/O, which makes every decoder easy to test
//! and fuzz. `docs/FORMAT.md` in the repository specifies the bytes.
//!
//! ```
//! use cairn_core::{Compression, Kind, MasterKey, OsRandom, open, seal};
//!
//! let keys = MasterKey::generate(&OsRandom).derive();
//! let chunk = b"some file content";
//! let id = keys.id_of(chunk);
//! let sealed = seal(&keys, Kind::Data, &id, chunk, Compression::Zstd(3), &OsRandom);
//! assert_eq!(open(&keys, Kind::Data, &id, &sealed)?, chunk);
//! // The same bytes opened under another name are rejected.
//! assert!(open(&keys, Kind::Data, &keys.id_of(b"other"), &sealed).is_err());
//! # Ok::<(), cairn_core::Error>(())
//! ```

#![warn(missing_docs)]

mod chunker;
mod codec;
mod error;
pub mod format;
mod id;
mod keys;
mod random;
mod seal;

pub use chunker::ChunkerParams;
pub use error::{Error, Result};
pub use id::{Id, ParseIdError};
pub use keys::{Keys, MasterKey};
pub use random::{
    Clock, FileClock, FixedClock, OsRandom, RandomSource, SeededRandom, SystemClock, TEST_NOW_VAR,
    test_clock,
};
pub use seal::{
    Compression, Kind, MAX_PLAINTEXT, SEAL_OVERHEAD, looks_incompressible, max_plaintext, open,
    open_owned, seal, seal_into,
};
