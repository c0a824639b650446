//! The restore engine.
//!
//! Directories, symlinks and special files are created first while the
//! trees are walked; file contents are then fetched with ranged reads,
//! several files and several chunks of each file at once, opened and
//! verified on blocking threads and written with positional writes. Each
//! file is written under a temporary name, synced, and renamed into place
//! only when complete and verified, so a failed restore (or a power cut)
//! never leaves a file with wrong or missing bytes under its real name.
//! All-zero chunks are not written, leaving holes. Further names of a
//! hard-linked file are linked to its first name once that is in place.
//! The walk stops to write every [`RESTORE_ROUND`] files it planned (or
//! directories it left), so memory does not grow with the snapshot. A
//! directory gets its metadata once the walk has left it and the files
//! in it are written, deepest first, and each directory is synced once.
//!
//! Every entry is reached from a descriptor of the target ([`crate::at`]):
//! its directory is opened below the target without following a symlink,
//! and the entry is made and given its metadata relative to that, so a
//! directory swapped for a symlink during the run leads nowhere outside.

mod batch;
mod budget;
mod cold;
mod direct;
mod files;
mod filter;
mod overwrite;
mod plan;
mod prefetch;
mod stream;
mod writeback;

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cairn_core::format::{NodeKind, Snapshot};
use cairn_repo::{Repository, WarmOptions, WarmReport};
use futures::StreamExt;

use crate::at::{self, Root};
use crate::browse::resolve;
use crate::{Error, Progress, Result, Warning, meta};
use files::{Devices, FileJob, Place, Shared, restore_file};
pub(crate) use filter::PathFilter;
pub use overwrite::Overwrite;
pub use plan::ROUND as RESTORE_ROUND;
use plan::{Plan, plan_dir, plan_node};
use rustix::fs::{AtFlags, OFlags};

/// Files restored at once.
const FILE_CONCURRENCY: usize = 4;
/// Chunks of one file fetched at once.
const CHUNK_CONCURRENCY: usize = 4;

/// What to restore and where.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Directory to restore into (created if missing). When `path` names a
    /// file (or a block device backed up as a stream) and `target` is an
    /// existing file or block device, the content is written into it.
    pub target: PathBuf,
    /// Path inside the snapshot (`/`-separated; empty for everything). A
    /// directory's contents go into the target; a file goes to target/name.
    pub path: Vec<u8>,
    /// Restore ownership; `None` means "when running as root".
    pub owners: Option<bool>,
    /// Restore only entries matching one of these patterns, and the
    /// directories leading to them (see the pattern rules below).
    ///
    /// A pattern without `/` matches an entry's name at any depth; one with
    /// `/` matches its whole path in the snapshot (`*` stays within one
    /// component, `**` crosses them). A directory that matches is restored
    /// with everything in it.
    pub include: Vec<String>,
    /// Leave out entries matching one of these patterns (and everything
    /// below a directory that matches).
    pub exclude: Vec<String>,
    /// What to do with entries that already exist in the target.
    pub overwrite: Overwrite,
    /// Remove entries of restored directories that the snapshot does not
    /// have (excluded ones are left alone).
    pub delete: bool,
    /// Re-read every file written (or kept) and compare it with the
    /// snapshot chunk by chunk.
    pub verify: bool,
    /// The snapshot comes from someone who must not gain privileges by
    /// restoring it (a tenant's volume restored by a root agent): files
    /// lose their set-user-ID and set-group-ID bits and their file
    /// capabilities (`security.capability`), and device nodes are left
    /// out. Counted in [`RestoreOutcome::dropped`]; not errors.
    pub untrusted: bool,
    /// Warming up packs in an archival storage class before reading them
    /// (docs/ARCHIVAL.md): by default when the repository's settings put
    /// data packs in one. The restore then waits until every pack it
    /// needs is readable; `wait` is ignored. Without a warm-up, the first
    /// read of an archived pack ends the restore with
    /// [`cairn_store::StoreError::Archived`].
    pub warm: WarmOptions,
}

impl RestoreOptions {
    /// Restore everything into `target`, ownership only as root, existing
    /// files replaced; set fields on the result for anything else.
    pub fn new(target: impl Into<PathBuf>) -> RestoreOptions {
        RestoreOptions {
            target: target.into(),
            ..Default::default()
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreOutcome {
    /// Regular files written.
    pub files: u64,
    /// Files already in place with the right content (`IfChanged`): only
    /// their metadata was applied.
    pub unchanged: u64,
    /// Existing entries left alone (`Never`).
    pub skipped: u64,
    /// Entries removed from the target (`delete`).
    pub deleted: u64,
    /// Files re-read and found equal to the snapshot (`verify`).
    pub verified: u64,
    /// Further names of hard-linked files, linked rather than written.
    pub hardlinks: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// FIFOs and device nodes created.
    pub special: u64,
    /// Bytes of file content restored (holes and files kept in place
    /// included).
    pub bytes: u64,
    /// Entries changed or left out by [`RestoreOptions::untrusted`]: files
    /// without their set-id bits or capabilities, device nodes not made.
    pub dropped: u64,
    /// Bytes actually written to disk: holes and kept files write none.
    pub bytes_written: u64,
    /// Of `bytes_written`, bytes copied from chunks that a file in place
    /// already held at the right offset (`IfChanged`), not fetched.
    pub bytes_reused: u64,
    /// Entries that could not be restored.
    pub errors: Vec<Warning>,
    /// What warming up the packs did, when the restore warmed them up.
    pub warm_up: Option<WarmReport>,
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// Adds one file's outcome to the restore's.
fn record(
    o: &mut RestoreOutcome,
    failed: &mut std::collections::HashSet<PathBuf>,
    progress: &Progress,
    path: PathBuf,
    size: u64,
    r: std::result::Result<files::FileDone, String>,
) {
    match r {
        Ok(done) => {
            if done.unchanged {
                o.unchanged += 1;
            } else {
                o.files += 1;
            }
            o.verified += u64::from(done.verified);
            o.bytes += size;
            o.bytes_written += done.written;
            o.bytes_reused += done.reused;
            progress.add(1, 0);
        }
        Err(message) => {
            failed.insert(path.clone());
            o.errors.push(Warning { path, message });
        }
    }
}

/// Restores `opts.path` of `snapshot` into `opts.target`.
pub async fn restore(
    repo: &Repository,
    snapshot: &Snapshot,
    opts: RestoreOptions,
    progress: Arc<Progress>,
) -> Result<RestoreOutcome> {
    let start = resolve(repo, snapshot, &opts.path).await?;
    // One file's content into an existing file or block device.
    let has_content = matches!(start.kind, NodeKind::File | NodeKind::BlockDevice);
    if has_content && std::fs::metadata(&opts.target).is_ok_and(|m| !m.is_dir()) {
        let warm_up = cold::warm(repo, &[&start], &opts.warm, &progress).await?;
        let mut out = stream::restore_into(repo, &start, &opts.target, progress).await?;
        out.warm_up = warm_up;
        return Ok(out);
    }
    std::fs::create_dir_all(&opts.target).map_err(|e| Error::io(&opts.target, e))?;
    let root = Arc::new(Root::open(&opts.target).map_err(|e| Error::io(&opts.target, e))?);
    let filter = PathFilter::new(&opts.include, &opts.exclude)?;
    let all = !filter.has_includes();
    let mut plan = Plan::new(
        root.clone(),
        opts.owners
            .unwrap_or_else(|| rustix::process::geteuid().is_root()),
        filter,
        opts.overwrite,
        opts.delete,
    );
    plan.untrusted = opts.untrusted;
    plan.verify = opts.verify;
    plan.progress = progress.clone();
    let exact = warm_first(repo, snapshot, &opts, &mut plan).await?;
    if !repo.store().is_remote() {
        // Trees of a local repository are cheap reads: loading them ahead
        // took 0.7-1.0 s off the PVC-like restore (two runs) and put 7 MiB
        // on its peak RSS, past the 96 MiB budget.
        plan.no_prefetch();
    }
    if opts.path.is_empty() && plan.filter.is_empty() {
        // The whole snapshot: its own count is the estimate until the
        // walk is done.
        let s = &snapshot.stats;
        let files = s.files_new + s.files_changed + s.files_unchanged;
        progress.total_files.store(files, Ordering::Relaxed);
        progress.total_bytes.store(s.bytes_total, Ordering::Relaxed);
    }
    // Paths inside the snapshot, for the patterns: "/a/b".
    let rel = in_snapshot(&opts.path);
    if start.kind == NodeKind::Dir {
        if let Some(id) = start.subtree {
            let tree = repo.load_tree(&id).await?;
            plan_dir(repo, tree, opts.target.clone(), rel, all, &mut plan).await?;
        }
    } else {
        let path = opts.target.join(os(&start.name));
        plan_node(repo, start, path, rel, all, &mut plan).await?;
    }
    if exact {
        // Exactly the packs of the files to be written (with `IfChanged`,
        // also those of files that turn out to be in place already: which
        // ones are is known only once the files in place are read).
        let files: Vec<&cairn_core::format::Node> = plan.files.iter().map(|(_, n, _)| n).collect();
        plan.outcome.warm_up = cold::warm(repo, &files, &opts.warm, &progress).await?;
    }
    write_round(repo, &mut plan).await?;
    let (files, bytes) = plan.planned;
    progress.total_files.store(files, Ordering::Relaxed);
    progress.total_bytes.store(bytes, Ordering::Relaxed);
    if let Err(e) = root.sync() {
        plan.outcome.errors.push(Warning {
            path: root.path().to_owned(),
            message: format!("cannot sync: {e}"),
        });
    }
    Ok(plan.outcome)
}

/// `path` as the patterns see it: "/a/b".
fn in_snapshot(path: &[u8]) -> Vec<u8> {
    let mut rel = b"/".to_vec();
    rel.extend(
        path.split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect::<Vec<_>>()
            .join(&b'/'),
    );
    rel
}

/// Warms up what the restore reads before the walk, when the repository
/// asks for a warm-up; true when the walk must plan every file first and
/// warm exactly their packs. A warm-up asks for every pack before any is
/// read. Patterns and `Never` leave files out, which only the walk knows;
/// otherwise every file under the path is read (or, with `IfChanged`, may
/// be), and a walk that keeps only the packs finds them, so the restore
/// can go in rounds.
async fn warm_first(
    repo: &Repository,
    snapshot: &Snapshot,
    opts: &RestoreOptions,
    plan: &mut Plan,
) -> Result<bool> {
    if !repo.should_warm(opts.warm.when) {
        return Ok(false);
    }
    if !plan.filter.is_empty() || opts.overwrite == Overwrite::Never {
        plan.round = usize::MAX;
        return Ok(true);
    }
    let progress = plan.progress.clone();
    let report = cold::warm_under(repo, snapshot, &opts.path, &opts.warm, &progress).await?;
    plan.outcome.warm_up = Some(report);
    Ok(false)
}

/// Writes the files planned so far, then gives the directories the walk
/// has left their metadata: everything in them is written.
async fn write_round(repo: &Repository, plan: &mut Plan) -> Result<()> {
    write_files(repo, plan).await?;
    let left = plan.take_left();
    finish_dirs(&plan.root, &left, plan.owners, &mut plan.outcome.errors);
    Ok(())
}

/// Writes the files planned so far (a round: see [`Plan`]), then links
/// their further names; the plan keeps only the names of files that
/// failed.
async fn write_files(repo: &Repository, plan: &mut Plan) -> Result<()> {
    // A cancelled restore stops here, whatever the round holds (files of
    // one chunk are not otherwise checked one by one).
    plan.progress.check()?;
    let (owners, verify) = (plan.owners, plan.verify);
    let (root, progress) = (&plan.root.clone(), &plan.progress.clone());
    let shared = Shared::default();
    let files = std::mem::take(&mut plan.files);
    let bytes: u64 = files.iter().map(|(_, n, _)| n.size).sum();
    plan.planned.0 += files.len() as u64;
    plan.planned.1 += bytes;
    // The totals only grow while the walk goes on (an estimate from the
    // snapshot may be ahead of them).
    progress
        .total_files
        .fetch_max(plan.planned.0, Ordering::Relaxed);
    progress
        .total_bytes
        .fetch_max(plan.planned.1, Ordering::Relaxed);
    let mut failed = std::mem::take(&mut plan.failed);
    let (small, files): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(_, node, check_first)| !check_first && !verify && batch::is_small(node));
    let small: Vec<_> = small.into_iter().map(|(p, n, _)| (p, n)).collect();
    let done = batch::restore_small(repo, root, small, owners, progress, &shared).await;
    for (path, size, r) in done {
        progress.check()?;
        shared.halt.check()?;
        record(&mut plan.outcome, &mut failed, progress, path, size, r);
    }
    let mut results = futures::stream::iter(files)
        .map(|(path, node, check_first)| {
            let progress = progress.clone();
            let (shared, root) = (&shared, root);
            let job = FileJob {
                owners,
                check_first,
                verify,
            };
            async move {
                let r = match Place::of(root, &path) {
                    Ok(place) => restore_file(repo, place, &node, job, &progress, shared).await,
                    Err(e) => Err(e),
                };
                (path, node.size, r)
            }
        })
        .buffer_unordered(FILE_CONCURRENCY);
    while let Some((path, size, r)) = results.next().await {
        progress.check()?;
        shared.halt.check()?;
        record(&mut plan.outcome, &mut failed, progress, path, size, r);
    }
    drop(results);
    shared.halt.check()?;
    link_all(root, plan, &failed);
    plan.failed = failed;
    Ok(())
}

/// Links the further names of hard-linked files to their first names.
fn link_all(root: &Root, plan: &mut Plan, failed: &std::collections::HashSet<PathBuf>) {
    for (path, first) in std::mem::take(&mut plan.links) {
        if failed.contains(&first) {
            plan.outcome.errors.push(Warning {
                path,
                message: format!("not linked: {} was not restored", first.display()),
            });
            continue;
        }
        let link = || {
            let ((from_dir, from), (to_dir, to)) = (root.parent(&first)?, root.parent(&path)?);
            at::clear(to_dir.as_fd(), &to, false)?;
            rustix::fs::linkat(&from_dir, &from, &to_dir, &to, AtFlags::empty())?;
            Ok::<(), std::io::Error>(())
        };
        match link() {
            Ok(()) => plan.outcome.hardlinks += 1,
            Err(e) => plan.outcome.errors.push(Warning {
                path,
                message: format!("cannot link to {}: {e}", first.display()),
            }),
        }
    }
}

/// One directory's metadata (see [`finish_dirs`]), and its file system
/// noted in `devices` for the sync. A directory the restoring user may not
/// read (mode 0311 kept from an earlier restore, say) cannot be opened for
/// reading: it gets its metadata through an `O_PATH` descriptor, which a
/// sync cannot take; the sync of its file system for the others covers it.
fn finish_dir(
    root: &Root,
    path: &std::path::Path,
    node: &cairn_core::format::Node,
    owners: bool,
    devices: &Devices,
) -> std::result::Result<(), String> {
    let meta_err = |e: std::io::Error| format!("cannot set metadata: {e}");
    match root.dir(path, OFlags::RDONLY) {
        Ok(fd) => {
            meta::apply(fd.as_fd(), false, node, owners).map_err(meta_err)?;
            devices.note_fd(fd.as_fd())
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let fd = root.dir(path, OFlags::PATH).map_err(meta_err)?;
            meta::apply(fd.as_fd(), true, node, owners).map_err(meta_err)
        }
        Err(e) => Err(meta_err(e)),
    }
}

/// Directory metadata: each directory of `dirs` (in the order created),
/// deepest first, gets its metadata through a descriptor opened below the
/// root without following a symlink (so one swapped in meanwhile is
/// refused, never chmod-ed through); then one `syncfs` per file system
/// makes the names renamed into them and their metadata durable. An
/// `fsync` per directory forced a journal commit each: a tree of a
/// million directories took a million. The root is synced last of all, by
/// the caller.
fn finish_dirs(
    root: &Root,
    dirs: &[(PathBuf, cairn_core::format::Node)],
    owners: bool,
    errors: &mut Vec<Warning>,
) {
    let devices = Devices::default();
    for (path, node) in dirs.iter().rev() {
        if let Err(message) = finish_dir(root, path, node, owners, &devices) {
            errors.push(Warning {
                path: path.clone(),
                message,
            });
        }
    }
    if let Err(message) = devices.sync() {
        errors.push(Warning {
            path: root.path().to_owned(),
            message,
        });
    }
}
