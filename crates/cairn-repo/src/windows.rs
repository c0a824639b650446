//! Tree blobs of remote repositories read in windows of their pack.
//!
//! A walk of a snapshot (a restore, `ls`, `diff`, a mount) needs its trees
//! one after another, and from S3 without a local cache every tree was a
//! ranged read of a few hundred bytes: the PVC-like dataset's 2,507 trees
//! were 2,507 requests, most of a restore's time (docs/PERFORMANCE.md,
//! "Restores (and backups) from S3 without a cache"). A backup writes
//! trees into packs of their own, a snapshot's next to each other, so the
//! bytes around the tree asked for are mostly the trees asked for next.
//! Here a tree is read
//! with the [`WINDOW`]-aligned stretch of its pack around it, and the last
//! [`WINDOWS`] stretches are kept, so that dataset's trees come in three
//! reads. Every blob taken from a window is authenticated like one read
//! alone ([`Repository::open_blob`]); a window that cannot be read, or
//! does not hold the blob, sends the read to the blob's own range.
//!
//! Local repositories read each tree where it lies: a read there is cheap,
//! and a window would only take memory.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cairn_core::Id;
use tokio::sync::OnceCell;

use crate::{BlobLocation, Repository, Result, paths};

/// Bytes of a pack read around a tree. Against an S3 server a request
/// costs a round trip and more, and 1 MiB more at the tens of MB/s one
/// connection gets costs about as much again: the window reads what a
/// snapshot's trees take in a few requests while a lone tree costs at
/// most about two.
pub(crate) const WINDOW: u64 = 1 << 20;
/// Windows in memory at most, kept or being read: 4 MiB, and the trees
/// that run past their window.
pub(crate) const WINDOWS: usize = 4;

/// A window being read or read: `None` when it could not be read (its
/// trees are read alone). Counted in [`TreeWindows`]'s `alive` while any
/// reader holds it.
struct Entry {
    window: OnceCell<Option<Window>>,
    _alive: Alive,
}

type Cell = Arc<Entry>;

struct Window {
    start: u64,
    bytes: Bytes,
}

/// One window in memory; see [`TreeWindows::cell`].
struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The windows read last; see the module docs.
pub(crate) struct TreeWindows {
    on: AtomicBool,
    /// (pack, window number), most recent last.
    entries: Mutex<VecDeque<((Id, u64), Cell)>>,
    /// Windows in memory: kept, or no longer kept and still held by a
    /// reader.
    alive: Arc<AtomicUsize>,
}

impl TreeWindows {
    pub(crate) fn new(on: bool) -> TreeWindows {
        TreeWindows {
            on: AtomicBool::new(on),
            entries: Mutex::default(),
            alive: Arc::default(),
        }
    }

    pub(crate) fn on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// The cell of window `n` of `pack`: the kept one, or a new one in
    /// place of the oldest kept. `None` when [`WINDOWS`] are in memory
    /// even so (readers still hold windows no longer kept): the blob is
    /// then read alone, so the bound holds and no reader waits on another.
    fn cell(&self, pack: Id, n: u64) -> Option<Cell> {
        let mut q = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, c)) = q.iter().find(|(k, _)| *k == (pack, n)) {
            return Some(c.clone());
        }
        while q.len() >= WINDOWS {
            q.pop_front();
        }
        if self.alive.load(Ordering::Relaxed) >= WINDOWS {
            return None;
        }
        self.alive.fetch_add(1, Ordering::Relaxed);
        let c = Arc::new(Entry {
            window: OnceCell::new(),
            _alive: Alive(self.alive.clone()),
        });
        q.push_back(((pack, n), c.clone()));
        Some(c)
    }

    /// Windows in memory (for tests).
    #[cfg(test)]
    pub(crate) fn alive(&self) -> usize {
        self.alive.load(Ordering::Relaxed)
    }
}

impl Repository {
    /// Reads trees of this repository in windows of their packs (see
    /// `windows.rs`), or each alone: on for remote stores when opened.
    /// For tests, which use local and in-memory stores.
    #[doc(hidden)]
    pub fn read_trees_in_windows(&self, on: bool) {
        self.inner.windows.on.store(on, Ordering::Relaxed);
    }

    /// The sealed bytes at `loc`, taken from the window of its pack around
    /// them, which is read unless it is kept.
    pub(crate) async fn fetch_in_window(&self, loc: &BlobLocation) -> Result<Bytes> {
        let start = u64::from(loc.offset);
        let end = start + u64::from(loc.length);
        let path = paths::pack(&loc.pack);
        let n = start / WINDOW;
        let Some(cell) = self.inner.windows.cell(loc.pack, n) else {
            return Ok(self.store().get_range(&path, start..end).await?);
        };
        let window = cell
            .window
            .get_or_init(|| async {
                // The window, and the rest of a tree that runs past it.
                let from = n * WINDOW;
                let to = (from + WINDOW).max(end);
                match self.store().get_range_upto(&path, from..to).await {
                    Ok(bytes) => Some(Window { start: from, bytes }),
                    Err(e) => {
                        tracing::debug!("{path}: window {from}..{to} not read: {e}");
                        None
                    }
                }
            })
            .await;
        if let Some(w) = window
            && start >= w.start
            && end <= w.start + w.bytes.len() as u64
        {
            let at = (start - w.start) as usize;
            return Ok(w.bytes.slice(at..at + loc.length as usize));
        }
        Ok(self.store().get_range(&path, start..end).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(n: u8) -> Id {
        Id::from_bytes([n; 32])
    }

    #[test]
    fn no_more_than_the_bound_of_windows_is_in_memory_however_readers_hold_them() {
        let w = TreeWindows::new(true);
        let held: Vec<Cell> = (0..WINDOWS as u64)
            .map(|n| w.cell(pack(1), n).expect("room"))
            .collect();
        assert_eq!(w.alive(), WINDOWS);
        // The kept one is shared; a new one would be one too many while
        // the readers hold theirs.
        assert!(Arc::ptr_eq(&w.cell(pack(1), 0).expect("kept"), &held[0]));
        assert!(w.cell(pack(2), 0).is_none());
        assert_eq!(w.alive(), WINDOWS);
        drop(held);
        // What readers let go of and is no longer kept is gone.
        assert!(w.alive() < WINDOWS);
        let again: Vec<Cell> = (0..3 * WINDOWS as u64)
            .filter_map(|n| w.cell(pack(3), n))
            .collect();
        assert_eq!(again.len(), WINDOWS, "only while there is room");
        drop(again);
        for n in 0..10 {
            drop(w.cell(pack(4), n).expect("room once the last are let go"));
        }
        assert_eq!(w.alive(), WINDOWS, "the kept ones only");
    }
}
