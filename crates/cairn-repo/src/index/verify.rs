//! The local table's checksum. Verified before the table is used, or, for
//! a backup, on a thread of its own while lookups already use it: a table
//! of ten million entries is 961 MB, whose reading and hashing took
//! 0.4–0.9 s of every backup's start (ADR 0028). What such a backup wrote
//! counts only once the verdict is in: [`Repository::index_checked`]
//! waits for it before a snapshot is stored, and a table is only merged
//! into a new one once it passed.
//!
//! [`Repository::index_checked`]: crate::Repository::index_checked

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Bytes read and hashed at a time.
const READ: usize = 1 << 20;

/// The verdict on one table's checksum: passed, failed, or still being
/// reached on its own thread.
pub(crate) struct Verdict {
    state: Mutex<State>,
}

enum State {
    Pending(JoinHandle<Result<(), String>>),
    Done(Result<(), String>),
}

impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verdict")
    }
}

impl Verdict {
    /// A table verified already, or written and checksummed by this process.
    pub(super) fn passed() -> Arc<Verdict> {
        Arc::new(Verdict {
            state: Mutex::new(State::Done(Ok(()))),
        })
    }

    /// Starts verifying the table open as `file`, `len` bytes long, on a
    /// thread of its own (verified at once if no thread can be started).
    /// A table that fails is removed from `path` if `path` still names it,
    /// so that the next open builds a new one.
    pub(super) fn start(file: &File, len: u64, path: PathBuf) -> Arc<Verdict> {
        let theirs = path.clone();
        let spawned = file.try_clone().and_then(|own| {
            let path = theirs;
            std::thread::Builder::new()
                .name("cairn-table-check".into())
                .spawn(move || {
                    let r = check(&own, len);
                    if r.is_err() {
                        remove_if_same(&own, &path);
                    }
                    r
                })
        });
        let state = match spawned {
            Ok(handle) => State::Pending(handle),
            Err(_) => {
                let r = check(file, len);
                if r.is_err() {
                    remove_if_same(file, &path);
                }
                State::Done(r)
            }
        };
        Arc::new(Verdict {
            state: Mutex::new(state),
        })
    }

    /// Waits for the verdict: `Err` names what was wrong with the table.
    pub(crate) fn wait(&self) -> Result<(), String> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let State::Pending(_) = &*state {
            let State::Pending(handle) = std::mem::replace(&mut *state, State::Done(Ok(()))) else {
                unreachable!("matched above");
            };
            let r = handle
                .join()
                .unwrap_or_else(|_| Err("the index table's check failed".into()));
            *state = State::Done(r);
        }
        match &*state {
            State::Done(r) => r.clone(),
            State::Pending(_) => Err("the index table's check did not finish".into()),
        }
    }
}

/// Verifies the checksum that ends the table open as `file`, `len` bytes
/// long, with positional reads (the handle's cursor may be shared).
pub(super) fn check(file: &File, len: u64) -> Result<(), String> {
    let body = len
        .checked_sub(32)
        .ok_or_else(|| "the index table is too short".to_string())?;
    let hash = hash_of(file, body).map_err(|e| format!("reading the index table: {e}"))?;
    let mut stored = [0u8; 32];
    file.read_exact_at(&mut stored, body)
        .map_err(|e| format!("reading the index table: {e}"))?;
    if hash.as_bytes() != &stored {
        return Err("the index table's checksum does not match: it is damaged".into());
    }
    Ok(())
}

/// BLAKE3 of the first `len` bytes of `file`, read with positional reads.
pub(super) fn hash_of(file: &File, len: u64) -> std::io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; READ];
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from(len - at).map_or(READ, |left| left.min(READ));
        file.read_exact_at(&mut buf[..n], at)?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hasher.finalize())
}

/// Removes `path` if it still names the file open as `file` (a newer table
/// may have been renamed over it meanwhile).
fn remove_if_same(file: &File, path: &std::path::Path) {
    let (Ok(open), Ok(named)) = (file.metadata(), std::fs::metadata(path)) else {
        return;
    };
    if open.dev() == named.dev() && open.ino() == named.ino() {
        match std::fs::remove_file(path) {
            Ok(()) => tracing::warn!("removed the damaged index table {}", path.display()),
            Err(e) => tracing::warn!(
                "cannot remove the damaged index table {}: {e}",
                path.display()
            ),
        }
    }
}
