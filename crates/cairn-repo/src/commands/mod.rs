//! The maintenance commands, each as observe → plan → apply: what the
//! repository holds is read first, a pure function decides what to change
//! (table-tested without a store in each module's tests), and the changes
//! are applied in the order the module documents.
//!
//! - [`check`]: which objects and packs to verify; the report.
//! - [`forget`]: which snapshots a retention policy removes
//!   ([`forget::plan`], Object Lock holds in `hold_retained`).
//! - [`lock`]: Object Lock upkeep (`extend`, `recover`).
//! - [`prune`]: what to tombstone, repack and delete (`prune_plan`), with
//!   the safety checks against concurrent writers (`prune_checks`),
//!   archival packs (`prune_cold`) and Object Lock (`prune_lock`).
//! - [`repair`]: which index files a rebuilt index replaces and which packs
//!   it lists (`repair::plan`).

pub(crate) mod check;
pub(crate) mod forget;
pub mod lock;
pub(crate) mod prune;
pub(crate) mod prune_checks;
pub(crate) mod prune_cold;
pub(crate) mod prune_lock;
pub(crate) mod prune_plan;
pub(crate) mod repair;
