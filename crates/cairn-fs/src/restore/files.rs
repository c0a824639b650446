//! Writing one file: a temporary name, ranged reads of its chunks, verified
//! plaintext written with positional writes (all-zero chunks left as
//! holes), metadata, then a rename over the final name.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cairn_core::Id;
use cairn_core::format::Node;
use cairn_repo::Repository;
use futures::{StreamExt, TryStreamExt};

use super::plan::clear_for;
use super::{CHUNK_CONCURRENCY, os};
use crate::{Progress, meta};

/// Ids of chunks known to be all zeros: a hole is one blob repeated, which
/// is fetched and opened once per restore, then only skipped.
#[derive(Debug, Default)]
pub(super) struct Zeros(Mutex<HashSet<Id>>);

impl Zeros {
    fn contains(&self, id: &Id) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }
    fn insert(&self, id: Id) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
    }
}

/// The longest file name Linux file systems accept (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// `.<name>.cairn-restore-<pid>`, in the file's directory. A name too long
/// to extend keeps only a prefix, and a number unique in this process keeps
/// apart names that share that prefix.
pub(super) fn temp_path(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = path.file_name().map_or(&b"file"[..], |n| n.as_bytes());
    let mut suffix = format!(".cairn-restore-{}", std::process::id());
    let mut keep = name.len();
    if 1 + name.len() + suffix.len() > NAME_MAX {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        suffix.push_str(&format!("-{n}"));
        keep = NAME_MAX - 1 - suffix.len();
    }
    let mut tmp = Vec::with_capacity(NAME_MAX);
    tmp.push(b'.');
    tmp.extend_from_slice(&name[..keep]);
    tmp.extend_from_slice(suffix.as_bytes());
    path.with_file_name(os(&tmp))
}

/// Restores one file through a temporary name. Errors are messages for the
/// file's entry in the outcome.
pub(super) async fn restore_file(
    repo: &Repository,
    path: &Path,
    node: &Node,
    owners: bool,
    progress: &Progress,
    zeros: &Zeros,
) -> Result<(), String> {
    let tmp = temp_path(path);
    let r = write_content(repo, &tmp, node, progress, zeros).await;
    let r = r.and_then(|()| {
        meta::apply(&tmp, node, owners).map_err(|e| format!("cannot set metadata: {e}"))?;
        clear_for(path, false)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot move into place: {e}"))
    });
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

async fn write_content(
    repo: &Repository,
    tmp: &Path,
    node: &Node,
    progress: &Progress,
    zeros: &Zeros,
) -> Result<(), String> {
    // Chunk offsets come from the index's plaintext lengths; they must add
    // up to the recorded size or the tree and index disagree.
    let mut offsets = Vec::with_capacity(node.content.len());
    let mut end = 0u64;
    for id in &node.content {
        let loc = repo.locate(id).map_err(|e| e.to_string())?;
        offsets.push((*id, end));
        end += u64::from(loc.raw_length);
    }
    if end != node.size {
        return Err(format!(
            "chunks add up to {end} bytes but the file was {} bytes",
            node.size
        ));
    }
    let _ = std::fs::remove_file(tmp);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| format!("cannot create: {e}"))?;
    file.set_len(node.size)
        .map_err(|e| format!("cannot size: {e}"))?;
    let file = Arc::new(file);
    futures::stream::iter(offsets)
        .map(|(id, offset)| {
            let file = file.clone();
            async move {
                if zeros.contains(&id) {
                    return repo
                        .locate(&id)
                        .map(|l| u64::from(l.raw_length))
                        .map_err(|e| e.to_string());
                }
                let (loc, sealed) = repo.fetch_blob(&id).await.map_err(|e| e.to_string())?;
                let repo = repo.clone();
                let written = tokio::task::spawn_blocking(move || {
                    let plain = repo
                        .open_blob(&loc, &id, &sealed)
                        .map_err(|e| e.to_string())?;
                    // Holes stay holes: the file was sized with set_len.
                    let zero = plain.iter().all(|&b| b == 0);
                    if !zero {
                        file.write_all_at(&plain, offset)
                            .map_err(|e| format!("write failed: {e}"))?;
                    }
                    Ok::<(u64, bool), String>((plain.len() as u64, zero))
                })
                .await
                .map_err(|e| format!("restore task failed: {e}"))??;
                if written.1 {
                    zeros.insert(id);
                }
                Ok(written.0)
            }
        })
        .buffered(CHUNK_CONCURRENCY)
        .try_for_each(|n| {
            progress.add(0, n);
            futures::future::ready(Ok(()))
        })
        .await
}
