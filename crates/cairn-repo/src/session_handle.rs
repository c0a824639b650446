//! This process's handle on one writer session: its id, the nonces of its
//! objects and the state the refresh protocol in [`crate::sessions`]
//! keeps. Kept apart from the protocol so that [`crate::Repository`] can
//! hold its live sessions without depending on the protocol's module.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use cairn_core::format::SessionPurpose;
use cairn_core::{Id, RandomSource};

/// Nonces for one session's objects, from 32 secret random bytes drawn when
/// the session starts (BLAKE3 keyed XOF over a counter). Session objects are
/// rewritten at times that depend on scheduling, so drawing their nonces from
/// the repository's injected generator would make everything else a seeded
/// test writes depend on that scheduling.
pub(crate) struct NonceStream {
    key: [u8; 32],
    counter: AtomicU64,
}

impl RandomSource for NonceStream {
    fn fill(&self, buf: &mut [u8]) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&n.to_le_bytes());
        h.finalize_xof().fill(buf);
    }
}

/// One session of this process.
pub(crate) struct SessionHandle {
    pub(crate) id: Id,
    pub(crate) purpose: SessionPurpose,
    pub(crate) host: String,
    pub(crate) started: AtomicI64,
    pub(crate) last_refresh: AtomicI64,
    pub(crate) announced: AtomicBool,
    /// The writer is done; the session ends when the snapshot is stored.
    pub(crate) finished: AtomicBool,
    /// The session lapsed (a refresh came too late, or its object was
    /// gone): it is never written again, and nothing is saved under it.
    pub(crate) expired: AtomicBool,
    /// Server time minus local time, measured when it was announced.
    pub(crate) skew: AtomicI64,
    pub(crate) nonces: NonceStream,
}

impl SessionHandle {
    /// A session with id and nonce key drawn from `rng` in one call of 64
    /// bytes (the first 32 are the id).
    pub(crate) fn new(rng: &dyn RandomSource, purpose: SessionPurpose) -> SessionHandle {
        let mut b = [0u8; 64];
        rng.fill(&mut b);
        let mut id = [0u8; 32];
        let mut key = [0u8; 32];
        id.copy_from_slice(&b[..32]);
        key.copy_from_slice(&b[32..]);
        SessionHandle {
            id: Id::from_bytes(id),
            purpose,
            host: hostname(),
            started: AtomicI64::new(0),
            last_refresh: AtomicI64::new(0),
            announced: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            expired: AtomicBool::new(false),
            skew: AtomicI64::new(0),
            nonces: NonceStream {
                key,
                counter: AtomicU64::new(0),
            },
        }
    }

    pub(crate) fn mark_finished(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    /// Server time minus this host's time, as measured at the announcement.
    pub(crate) fn skew(&self) -> i64 {
        self.skew.load(Ordering::Relaxed)
    }

    pub(crate) fn expire(&self) {
        self.expired.store(true, Ordering::Relaxed);
    }
}

/// This machine's hostname, as recorded in sessions and (by the CLI) in
/// snapshots and key files; `localhost` when it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
