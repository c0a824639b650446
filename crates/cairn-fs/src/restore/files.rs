//! Writing one file: a temporary name, ranged reads of its chunks, verified
//! plaintext written with positional writes (all-zero chunks left as
//! holes), metadata through the file's descriptor, a sync, then a rename
//! over the final name in the same directory.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cairn_core::Id;
use cairn_core::format::Node;
use cairn_repo::Repository;
use futures::StreamExt;
use rustix::fs::{AtFlags, Mode, OFlags};

use super::cold::Halt;
use super::overwrite::{layout, matches, matching_chunks, open_existing};
use super::{CHUNK_CONCURRENCY, direct, os, writeback};
use crate::at::{self, Root};
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

/// What the files of one restore share.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) zeros: Zeros,
    /// Set by the first read that finds its pack archived.
    pub(super) halt: Halt,
    /// The chunk bytes in memory at once.
    pub(super) budget: super::budget::Budget,
}

/// The longest file name Linux file systems accept (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// `.<name>.cairn-restore-<pid>`, in the file's directory. A name too long
/// to extend keeps only a prefix, and a number unique in this process keeps
/// apart names that share that prefix.
pub(super) fn temp_name(name: &OsStr) -> OsString {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = name.as_bytes();
    // The process id once: std asks the kernel at every call.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let mut suffix = format!(".cairn-restore-{}", PID.get_or_init(std::process::id));
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
    os(&tmp).to_owned()
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

/// The directory of a file being restored, open, and the file's name.
pub(super) struct Place {
    pub(super) dir: OwnedFd,
    pub(super) name: OsString,
}

impl Place {
    /// The directory holding `path`, below the root, reached without
    /// following a symlink.
    pub(super) fn of(root: &Root, path: &Path) -> Result<Place, String> {
        let (dir, name) = root
            .parent(path)
            .map_err(|e| format!("cannot open its directory: {e}"))?;
        Ok(Place { dir, name })
    }
}

/// Restores one file through a temporary name. Errors are messages for the
/// file's entry in the outcome.
pub(super) async fn restore_file(
    repo: &Repository,
    place: Place,
    node: &Node,
    job: FileJob,
    progress: &Progress,
    shared: &Shared,
) -> Result<FileDone, String> {
    let chunks = layout(repo, node)?;
    let chunks = Arc::new(chunks);
    let place = Arc::new(place);
    // In place: which chunks the existing file already holds.
    let mut local = None;
    if job.check_first {
        let (r, p, c) = (repo.clone(), place.clone(), chunks.clone());
        let found = tokio::task::spawn_blocking(move || {
            let Some((file, m)) = open_existing(p.dir.as_fd(), &p.name)? else {
                return Ok(None);
            };
            let same = matching_chunks(&r, &file, &m, &c)?;
            Ok::<_, std::io::Error>(Some((file, m, same)))
        })
        .await
        .map_err(|e| format!("restore task failed: {e}"))?
        .map_err(|e| format!("cannot read the file in place: {e}"))?;
        if let Some((file, m, same)) = found {
            if m.len() == node.size && same.iter().all(|&b| b) {
                meta::apply(file.as_fd(), false, node, job.owners)
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
                local = Some(Local {
                    file: Arc::new(file),
                    same,
                });
            }
        }
    }
    let tmp = temp_name(&place.name);
    let file = Arc::new(create(place.dir.as_fd(), &tmp)?);
    let r = write_content(repo, &file, node, &chunks, local.as_ref(), progress, shared).await;
    let r = r.and_then(|written| finish(&place, &tmp, &file, node, job.owners).map(|()| written));
    if r.is_err() {
        let _ = rustix::fs::unlinkat(&place.dir, &tmp, AtFlags::empty());
    }
    let (written, reused) = r?;
    if job.verify && !check(repo, &place, node.size, &chunks).await? {
        return Err("verification failed: the file on disk differs from the snapshot".into());
    }
    Ok(FileDone {
        written,
        reused,
        unchanged: false,
        verified: job.verify,
    })
}

/// Applies the metadata to the complete temporary file through its
/// descriptor, makes its content durable, and renames it over the final
/// name in the same directory. The directory itself is synced once, after
/// all its files (see `restore::finish_dirs`).
fn finish(
    place: &Place,
    tmp: &OsStr,
    file: &std::fs::File,
    node: &Node,
    owners: bool,
) -> Result<(), String> {
    meta::apply(file.as_fd(), false, node, owners)
        .map_err(|e| format!("cannot set metadata: {e}"))?;
    file.sync_all().map_err(|e| format!("cannot sync: {e}"))?;
    into_place(place, tmp)
}

/// Renames the complete, durable temporary file `tmp` over the final name
/// in the same directory, replacing what is there.
pub(super) fn into_place(place: &Place, tmp: &OsStr) -> Result<(), String> {
    at::clear(place.dir.as_fd(), &place.name, false)
        .and_then(|()| {
            rustix::fs::renameat(&place.dir, tmp, &place.dir, &place.name).map_err(Into::into)
        })
        .map_err(|e| format!("cannot move into place: {e}"))
}

/// Writes a file whose whole, verified content is `plain` under a
/// temporary name, as [`restore_file`] does (an all-zero content as a
/// hole), with its metadata, and notes its file system in `devices`; the
/// caller syncs the file systems and then renames it ([`into_place`]), so
/// one sync covers many files. Returns the temporary name. On a blocking
/// thread.
pub(super) fn stage_whole(
    place: &Place,
    node: &Node,
    plain: &[u8],
    owners: bool,
    devices: &Devices,
) -> Result<(FileDone, OsString), String> {
    if plain.len() as u64 != node.size {
        return Err(format!(
            "the content is {} bytes, the snapshot says {}",
            plain.len(),
            node.size
        ));
    }
    let tmp = temp_name(&place.name);
    let zero = direct::all_zeros(plain);
    let r = create(place.dir.as_fd(), &tmp).and_then(|file| {
        if zero {
            file.set_len(node.size)
                .map_err(|e| format!("cannot size: {e}"))?;
        } else {
            file.write_all_at(plain, 0)
                .map_err(|e| format!("write failed: {e}"))?;
        }
        meta::apply(file.as_fd(), false, node, owners)
            .map_err(|e| format!("cannot set metadata: {e}"))?;
        devices.note(&file)
    });
    if r.is_err() {
        let _ = rustix::fs::unlinkat(&place.dir, &tmp, AtFlags::empty());
    }
    r?;
    let done = FileDone {
        written: if zero { 0 } else { node.size },
        ..FileDone::default()
    };
    Ok((done, tmp))
}

/// The file systems that staged files were written to, one descriptor on
/// each: what a sync before their renames must cover.
#[derive(Debug, Default)]
pub(super) struct Devices(Mutex<Vec<(u64, OwnedFd)>>);

impl Devices {
    /// Notes the file system of `file`.
    fn note(&self, file: &std::fs::File) -> Result<(), String> {
        self.note_fd(file.as_fd())
    }

    /// Notes the file system of the file or directory `fd`.
    pub(super) fn note_fd(&self, fd: BorrowedFd<'_>) -> Result<(), String> {
        let dev = at::fstat(fd)
            .map_err(|e| format!("cannot look at the file: {e}"))?
            .dev();
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !all.iter().any(|(d, _)| *d == dev) {
            let fd = fd
                .try_clone_to_owned()
                .map_err(|e| format!("cannot keep a descriptor: {e}"))?;
            all.push((dev, fd));
        }
        Ok(())
    }

    /// Makes everything written to the noted file systems durable: one
    /// `syncfs` each.
    pub(super) fn sync(&self) -> Result<(), String> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for (_, fd) in all.iter() {
            rustix::fs::syncfs(fd).map_err(|e| format!("cannot sync: {e}"))?;
        }
        Ok(())
    }
}

/// Creates `tmp` in `dir` for writing, never through a symlink, replacing
/// a leftover of an earlier run.
fn create(dir: BorrowedFd<'_>, tmp: &OsStr) -> Result<std::fs::File, String> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = || rustix::fs::openat(dir, tmp, flags, Mode::from_raw_mode(0o600));
    match open() {
        Err(rustix::io::Errno::EXIST) => {
            let _ = rustix::fs::unlinkat(dir, tmp, AtFlags::empty());
            open()
        }
        r => r,
    }
    .map(std::fs::File::from)
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
    place: &Arc<Place>,
    size: u64,
    chunks: &Arc<Vec<(Id, u64, u32)>>,
) -> Result<bool, String> {
    let (repo, place, chunks) = (repo.clone(), place.clone(), chunks.clone());
    tokio::task::spawn_blocking(move || {
        matches(&repo, place.dir.as_fd(), &place.name, size, &chunks)
    })
    .await
    .map_err(|e| format!("restore task failed: {e}"))?
    .map_err(|e| format!("cannot read the file in place: {e}"))
}

/// Writes the content to the temporary `file`; returns the bytes written
/// and, of those, the bytes copied from the file in place.
async fn write_content(
    repo: &Repository,
    file: &Arc<std::fs::File>,
    node: &Node,
    chunks: &[(Id, u64, u32)],
    local: Option<&Local>,
    progress: &Progress,
    shared: &Shared,
) -> Result<(u64, u64), String> {
    let zeros = &shared.zeros;
    file.set_len(node.size)
        .map_err(|e| format!("cannot size: {e}"))?;
    if local.is_none() && node.size >= direct::MIN_SIZE {
        return write_direct(repo, file, chunks, progress, shared).await;
    }
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
                // Sealed and opened, or read from the file in place.
                let _held = shared.budget.hold(2 * u64::from(len)).await;
                if let Some(old) = old {
                    return tokio::task::spawn_blocking(move || {
                        let mut buf = vec![0u8; len as usize];
                        old.read_exact_at(&mut buf, offset)
                            .map_err(|e| format!("cannot read the file in place: {e}"))?;
                        if direct::all_zeros(&buf) {
                            return Ok((u64::from(len), 0, 0));
                        }
                        file.write_all_at(&buf, offset)
                            .map_err(|e| format!("write failed: {e}"))?;
                        writeback::start(&file, offset, u64::from(len));
                        Ok((u64::from(len), u64::from(len), u64::from(len)))
                    })
                    .await
                    .map_err(|e| format!("restore task failed: {e}"))?;
                }
                let plain = fetch(repo, shared, &id).await?;
                let (n, zero) = tokio::task::spawn_blocking(move || {
                    // Holes stay holes: the file was sized with set_len.
                    let zero = direct::all_zeros(&plain);
                    if !zero {
                        file.write_all_at(&plain, offset)
                            .map_err(|e| format!("write failed: {e}"))?;
                        writeback::start(&file, offset, plain.len() as u64);
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
        if progress.is_cancelled() || shared.halt.is_set() {
            return Err("cancelled".into());
        }
        let (n, w, from_old) = r?;
        progress.add(0, n);
        written += w;
        reused += from_old;
    }
    Ok((written, reused))
}

/// [`write_content`] for a large file with nothing to reuse: the chunks
/// are fetched as before and written in order through a
/// [`direct::Stager`], on blocking threads.
async fn write_direct(
    repo: &Repository,
    file: &Arc<std::fs::File>,
    chunks: &[(Id, u64, u32)],
    progress: &Progress,
    shared: &Shared,
) -> Result<(u64, u64), String> {
    let zeros = &shared.zeros;
    let _stage = shared.budget.hold(direct::STAGE as u64).await;
    let mut stager = Some(direct::Stager::new(file));
    let mut results = futures::stream::iter(chunks.iter().copied())
        .map(|(id, offset, len)| async move {
            if zeros.contains(&id) {
                return Ok((id, offset, len, None, None));
            }
            let held = shared.budget.hold(2 * u64::from(len)).await;
            let plain = fetch(repo, shared, &id).await?;
            Ok::<_, String>((id, offset, len, Some(plain), held))
        })
        .buffered(CHUNK_CONCURRENCY);
    let mut written = 0u64;
    while let Some(r) = results.next().await {
        if progress.is_cancelled() || shared.halt.is_set() {
            return Err("cancelled".into());
        }
        let (id, offset, len, plain, held) = r?;
        let zero = direct::add_blocking(&mut stager, file, offset, plain, u64::from(len))
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        if zero {
            zeros.insert(id);
        } else {
            written += u64::from(len);
        }
        drop(held);
        progress.add(0, u64::from(len));
    }
    direct::finish_blocking(stager, file)
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    Ok((written, 0))
}

/// Reads and opens a data chunk; another copy of the blob is tried if
/// this one is damaged, and what must halt the restore halts it.
async fn fetch(repo: &Repository, shared: &Shared, id: &Id) -> Result<Vec<u8>, String> {
    repo.read_blob_blocking(cairn_core::Kind::Data, id)
        .await
        .map_err(|e| {
            shared.halt.note(&e);
            e.to_string()
        })
}
