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
use futures::StreamExt;

use super::overwrite::{layout, matches, matching_chunks};
use super::plan::clear_for;
use super::{CHUNK_CONCURRENCY, os};
use crate::longpath::access;
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

/// How one file is to be restored.
#[derive(Debug, Clone, Copy)]
pub(super) struct FileJob {
    pub(super) owners: bool,
    /// Keep the file in place if its content already matches.
    pub(super) check_first: bool,
    /// Re-read and re-hash what was written.
    pub(super) verify: bool,
}

/// What restoring one file did.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FileDone {
    /// Bytes written to disk (holes and kept files write nothing).
    pub(super) written: u64,
    /// Bytes copied from the file in place instead of fetched.
    pub(super) reused: u64,
    /// The file was already in place and only its metadata was applied.
    pub(super) unchanged: bool,
    /// The file was re-read and matched.
    pub(super) verified: bool,
}

/// Restores one file through a temporary name. Errors are messages for the
/// file's entry in the outcome.
pub(super) async fn restore_file(
    repo: &Repository,
    path: &Path,
    node: &Node,
    job: FileJob,
    progress: &Progress,
    zeros: &Zeros,
) -> Result<FileDone, String> {
    let chunks = layout(repo, node)?;
    let chunks = Arc::new(chunks);
    // In place: which chunks the existing file already holds.
    let mut local = None;
    if job.check_first {
        let (r, p, c) = (repo.clone(), path.to_owned(), chunks.clone());
        let found = tokio::task::spawn_blocking(move || matching_chunks(&r, &p, &c))
            .await
            .map_err(|e| format!("restore task failed: {e}"))?
            .map_err(|e| format!("cannot read the file in place: {e}"))?;
        if let Some(same) = found {
            let size = crate::longpath::lstat(path).map(|m| m.len()).ok();
            if size == Some(node.size) && same.iter().all(|&b| b) {
                meta::apply(path, node, job.owners)
                    .map_err(|e| format!("cannot set metadata: {e}"))?;
                progress.add(0, node.size);
                return Ok(FileDone {
                    written: 0,
                    reused: 0,
                    unchanged: true,
                    verified: job.verify,
                });
            }
            if same.iter().any(|&b| b) {
                let old = std::fs::File::from(
                    crate::backup::open_quietly(path, false)
                        .map_err(|e| format!("cannot read the file in place: {e}"))?,
                );
                local = Some(Local {
                    file: Arc::new(old),
                    same,
                });
            }
        }
    }
    let tmp = temp_path(path);
    let r = write_content(repo, &tmp, node, &chunks, local.as_ref(), progress, zeros).await;
    let r = r.and_then(|written| finish(&tmp, path, node, job.owners).map(|()| written));
    if r.is_err() {
        let _ = access(&tmp).and_then(|a| std::fs::remove_file(a.path()));
    }
    let (written, reused) = r?;
    if job.verify && !check(repo, path, node.size, &chunks).await? {
        return Err("verification failed: the file on disk differs from the snapshot".into());
    }
    Ok(FileDone {
        written,
        reused,
        unchanged: false,
        verified: job.verify,
    })
}

/// Applies the metadata to the complete temporary file and renames it
/// over `path`.
fn finish(tmp: &Path, path: &Path, node: &Node, owners: bool) -> Result<(), String> {
    meta::apply(tmp, node, owners).map_err(|e| format!("cannot set metadata: {e}"))?;
    clear_for(path, false)
        .and_then(|()| {
            let (from, to) = (access(tmp)?, access(path)?);
            std::fs::rename(from.path(), to.path())
        })
        .map_err(|e| format!("cannot move into place: {e}"))
}

/// Writes a file whose whole, verified content is `plain` the way
/// [`restore_file`] does: a temporary name, content (an all-zero content
/// as a hole), metadata, rename. On a blocking thread.
pub(super) fn write_whole(
    path: &Path,
    node: &Node,
    plain: &[u8],
    owners: bool,
) -> Result<FileDone, String> {
    if plain.len() as u64 != node.size {
        return Err(format!(
            "the content is {} bytes, the snapshot says {}",
            plain.len(),
            node.size
        ));
    }
    let tmp = temp_path(path);
    let zero = plain.iter().all(|&b| b == 0);
    let r = create(&tmp).and_then(|file| {
        if zero {
            file.set_len(node.size)
                .map_err(|e| format!("cannot size: {e}"))?;
        } else {
            file.write_all_at(plain, 0)
                .map_err(|e| format!("write failed: {e}"))?;
        }
        drop(file);
        finish(&tmp, path, node, owners)
    });
    if r.is_err() {
        let _ = access(&tmp).and_then(|a| std::fs::remove_file(a.path()));
    }
    r?;
    Ok(FileDone {
        written: if zero { 0 } else { node.size },
        ..FileDone::default()
    })
}

/// Creates `tmp` for writing, replacing a leftover of an earlier run.
fn create(tmp: &Path) -> Result<std::fs::File, String> {
    let a = access(tmp).map_err(|e| format!("cannot create: {e}"))?;
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(a.path())
    };
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(a.path());
            open()
        }
        r => r,
    }
    .map_err(|e| format!("cannot create: {e}"))
}

/// The file in place and which of the snapshot's chunks it already holds
/// at their offsets: those are copied from it instead of fetched.
struct Local {
    file: Arc<std::fs::File>,
    same: Vec<bool>,
}

/// [`matches`] on a blocking thread.
async fn check(
    repo: &Repository,
    path: &Path,
    size: u64,
    chunks: &Arc<Vec<(Id, u64, u32)>>,
) -> Result<bool, String> {
    let (repo, path, chunks) = (repo.clone(), path.to_owned(), chunks.clone());
    tokio::task::spawn_blocking(move || matches(&repo, &path, size, &chunks))
        .await
        .map_err(|e| format!("restore task failed: {e}"))?
        .map_err(|e| format!("cannot read the file in place: {e}"))
}

/// Writes the content to `tmp`; returns the bytes written and, of those,
/// the bytes copied from the file in place.
async fn write_content(
    repo: &Repository,
    tmp: &Path,
    node: &Node,
    chunks: &[(Id, u64, u32)],
    local: Option<&Local>,
    progress: &Progress,
    zeros: &Zeros,
) -> Result<(u64, u64), String> {
    let file = create(tmp)?;
    file.set_len(node.size)
        .map_err(|e| format!("cannot size: {e}"))?;
    let file = Arc::new(file);
    let mut reused = 0u64;
    let mut written = 0u64;
    let mut results = futures::stream::iter(chunks.iter().copied().enumerate())
        .map(|(i, (id, offset, len))| {
            let file = file.clone();
            let old = local
                .filter(|l| l.same.get(i).copied().unwrap_or(false))
                .map(|l| l.file.clone());
            async move {
                if zeros.contains(&id) {
                    return Ok((u64::from(len), 0, 0));
                }
                if let Some(old) = old {
                    return tokio::task::spawn_blocking(move || {
                        let mut buf = vec![0u8; len as usize];
                        old.read_exact_at(&mut buf, offset)
                            .map_err(|e| format!("cannot read the file in place: {e}"))?;
                        if buf.iter().all(|&b| b == 0) {
                            return Ok((u64::from(len), 0, 0));
                        }
                        file.write_all_at(&buf, offset)
                            .map_err(|e| format!("write failed: {e}"))?;
                        Ok((u64::from(len), u64::from(len), u64::from(len)))
                    })
                    .await
                    .map_err(|e| format!("restore task failed: {e}"))?;
                }
                let (loc, sealed) = repo.fetch_blob(&id).await.map_err(|e| e.to_string())?;
                let repo = repo.clone();
                let (n, zero) = tokio::task::spawn_blocking(move || {
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
                if zero {
                    zeros.insert(id);
                    return Ok((n, 0, 0));
                }
                Ok::<(u64, u64, u64), String>((n, n, 0))
            }
        })
        .buffered(CHUNK_CONCURRENCY);
    while let Some(r) = results.next().await {
        if progress.is_cancelled() {
            return Err("cancelled".into());
        }
        let (n, w, from_old) = r?;
        progress.add(0, n);
        written += w;
        reused += from_old;
    }
    Ok((written, reused))
}
