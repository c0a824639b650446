//! The backup pipeline.
//!
//! Directories are walked in parallel on rayon (entries of one directory,
//! and chunks of one file, are processed concurrently). A file whose size,
//! mtime, ctime and inode match the parent snapshot reuses the parent's
//! chunk list without being opened. Trees are written bottom-up; the
//! snapshot is saved only after every pack and index file is stored.

mod content;
pub(crate) mod copy;
mod direct;
mod prefetch;
mod select;
mod sparse;
mod stream;
mod walk;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cairn_core::Id;
use cairn_core::format::{RootLayout, Snapshot, SnapshotStats, Source, Timestamp};
use cairn_repo::{Repository, WriterStats};

pub use select::{CACHEDIR_SIGNATURE, Selection};
use walk::Walker;

use crate::{Error, Progress, Result, Warning};

/// Which snapshot to compare against to skip unchanged files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ParentChoice {
    /// The newest snapshot with the same hostname and paths.
    #[default]
    Auto,
    /// Read every file.
    None,
    /// This snapshot.
    Snapshot(Id),
}

/// What to back up and how to label it. Made by [`BackupOptions::new`]
/// (which fills the time, host and user), then changed field by field.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupOptions {
    /// Paths to back up (made absolute, not resolved through symlinks).
    pub paths: Vec<PathBuf>,
    /// Host recorded in the snapshot and used to choose the parent.
    pub hostname: String,
    /// User recorded in the snapshot.
    pub username: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Parent selection.
    pub parent: ParentChoice,
    /// Source identity.
    pub source: Source,
    /// Snapshot time.
    pub time: Timestamp,
    /// Program version recorded in the snapshot.
    pub program_version: String,
    /// What to leave out.
    pub selection: Selection,
    /// Which metadata show a file unchanged since the parent snapshot.
    pub change_detection: ChangeDetection,
    /// Record every entry's access time as it is now. Without it, an entry
    /// whose only change since the parent snapshot is its access time keeps
    /// the parent's record: reading a volume (another backup tool, a web
    /// server) then does not make each of its trees new.
    pub exact_atime: bool,
}

impl BackupOptions {
    /// Options for backing up `paths` into `repo` now, as this host and
    /// user: the time from the repository's clock, the host from the
    /// system, the user from `USER` or `LOGNAME`; the newest snapshot of the
    /// same host and paths as the parent; nothing excluded. Set fields on
    /// the result for anything else.
    pub fn new(repo: &Repository, paths: Vec<PathBuf>) -> BackupOptions {
        BackupOptions {
            paths,
            time: Timestamp {
                secs: repo.clock().now(),
                nanos: 0,
            },
            ..BackupOptions::default()
        }
    }
}

impl Default for BackupOptions {
    /// No paths yet; as [`BackupOptions::new`] otherwise, with the time
    /// from the system clock.
    fn default() -> BackupOptions {
        BackupOptions {
            paths: Vec::new(),
            hostname: cairn_repo::hostname(),
            username: cairn_repo::username(),
            parent: ParentChoice::Auto,
            source: Source::Filesystem,
            time: Timestamp {
                secs: cairn_core::Clock::now(&cairn_core::SystemClock),
                nanos: 0,
            },
            program_version: concat!("cairn ", env!("CARGO_PKG_VERSION")).to_owned(),
            tags: Vec::new(),
            selection: Selection::default(),
            change_detection: ChangeDetection::default(),
            exact_atime: false,
        }
    }
}

/// Which metadata show a file unchanged since the parent snapshot, so that
/// its content is not read again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChangeDetection {
    /// Size, modification time, status change time and inode number: the
    /// safe choice for a file system backed up in place.
    #[default]
    Strict,
    /// Size and modification time only: for a copy of the file system
    /// whose inode numbers and change times differ from the original's at
    /// every backup (a volume cloned from a snapshot, an NFS or CephFS
    /// mount). A file rewritten with the same size and a restored mtime is
    /// taken as unchanged.
    SizeAndMtime,
}

/// The result of a backup.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// The new snapshot's id.
    pub snapshot_id: Id,
    /// The new snapshot.
    pub snapshot: Snapshot,
    /// What was added to the repository.
    pub writer: WriterStats,
    /// Entries that could not be read (they are not in the snapshot).
    pub warnings: Vec<Warning>,
}

/// Chooses the newest snapshot with the same hostname and set of paths.
pub async fn select_parent(
    repo: &Repository,
    hostname: &str,
    paths: &[Vec<u8>],
) -> Result<Option<(Id, Snapshot)>> {
    let mut want: Vec<&Vec<u8>> = paths.iter().collect();
    want.sort();
    Ok(repo
        .list_snapshots()
        .await?
        .into_iter()
        .rev()
        .find(|(_, s)| {
            let mut have: Vec<&Vec<u8>> = s.paths.iter().collect();
            have.sort();
            s.hostname == hostname && have == want
        }))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, e))
}

/// Backs up `opts.paths` into a new snapshot.
pub async fn backup(
    repo: &Repository,
    opts: BackupOptions,
    progress: std::sync::Arc<Progress>,
) -> Result<BackupOutcome> {
    if opts.paths.is_empty() {
        return Err(Error::Invalid("no paths to back up".into()));
    }
    run(repo, opts, None, progress).await
}

/// Backs up everything `reader` yields as one file named `name`, in a
/// snapshot of its own (root layout 1, path `/<name>`): standard input, a
/// database dump, a volume read by another program. The file gets mode
/// 0644, the current user and group, and the snapshot's time as mtime.
pub async fn backup_stream(
    repo: &Repository,
    opts: BackupOptions,
    name: &str,
    reader: Box<dyn std::io::Read + Send>,
    progress: std::sync::Arc<Progress>,
) -> Result<BackupOutcome> {
    if !cairn_core::format::Node::valid_name(name.as_bytes()) {
        return Err(Error::Invalid(format!("{name:?} is not a valid file name")));
    }
    run(repo, opts, Some((name.to_owned(), reader)), progress).await
}

type Stream = (String, Box<dyn std::io::Read + Send>);

async fn run(
    repo: &Repository,
    opts: BackupOptions,
    stream: Option<Stream>,
    progress: std::sync::Arc<Progress>,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let paths: Vec<PathBuf> = match &stream {
        Some((name, _)) => vec![Path::new("/").join(name)],
        None => opts
            .paths
            .iter()
            .map(|p| absolute(p))
            .collect::<Result<_>>()?,
    };
    let path_bytes: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .collect();
    let layout = match &stream {
        Some(_) => RootLayout::PerPath,
        None => root_layout(&paths)?,
    };
    let parent = match stream {
        Some(_) => None,
        None => parent_of(repo, &opts, &path_bytes, layout).await?,
    };
    let parent_root = parent.as_ref().map(|(_, s)| s.tree);
    if let Some((_, p)) = &parent {
        estimate_from_parent(&progress, &p.stats);
    }
    // Without a parent every file is read: the small ones are read ahead.
    let _prefetch =
        (stream.is_none() && parent.is_none()).then(|| prefetch::start(&paths, &progress));
    let mut walker = Walker::new(repo, &opts.selection, progress.clone())?;
    (walker.change_detection, walker.exact_atime) = (opts.change_detection, opts.exact_atime);
    let (walker, root) = walk(walker, stream, paths, layout, parent_root, opts.time).await?;
    let Walker {
        writer,
        warnings,
        stats,
        ..
    } = walker;
    // On a fatal error, still wait for the uploads in flight: what they
    // stored is indexed and the next backup reuses it.
    let finished = writer.finish().await;
    let progress_check = progress.check();
    // An upload failure stops the walk with a generic "uploader stopped";
    // the uploader's own error is the cause the user needs to see.
    let (root, writer_stats) = match (root, finished) {
        (_, Err(e)) => return Err(e.into()),
        (Err(e), _) => return Err(e),
        (Ok(root), Ok(stats)) => (root, stats),
    };
    // Cancelled while the last uploads finished: they are indexed, but no
    // snapshot is saved for a run the caller asked to stop.
    progress_check?;
    let warnings = warnings.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut snapshot = Snapshot {
        time: opts.time,
        tree: root,
        hostname: opts.hostname,
        username: opts.username,
        paths: path_bytes,
        root_layout: layout,
        source: opts.source,
        tags: opts.tags,
        parent: parent.map(|(id, _)| id),
        stats: stats.to_stats(&writer_stats, warnings.len() as u64),
        program_version: opts.program_version,
    };
    snapshot.stats.duration_nanos = started.elapsed().as_nanos() as u64;
    let snapshot_id = repo.save_snapshot(&snapshot).await?;
    Ok(BackupOutcome {
        snapshot_id,
        snapshot,
        writer: writer_stats,
        warnings,
    })
}

/// The parent `opts` asks for, if it has the same root layout: one with
/// another cannot be compared entry by entry.
async fn parent_of(
    repo: &Repository,
    opts: &BackupOptions,
    path_bytes: &[Vec<u8>],
    layout: RootLayout,
) -> Result<Option<(Id, Snapshot)>> {
    let parent = match &opts.parent {
        ParentChoice::None => None,
        ParentChoice::Snapshot(id) => Some((*id, repo.load_snapshot(id).await?)),
        ParentChoice::Auto => select_parent(repo, &opts.hostname, path_bytes).await?,
    };
    Ok(parent.filter(|(_, s)| s.root_layout == layout))
}

/// The parent's size is the estimate of this run's: a progress display
/// gets an ETA without walking the tree twice. A total already set (by
/// the caller's own estimate) is kept.
fn estimate_from_parent(progress: &Progress, st: &SnapshotStats) {
    let files = st.files_new + st.files_changed + st.files_unchanged;
    let (bytes, relaxed) = (st.bytes_total, Ordering::Relaxed);
    let _ = progress
        .total_bytes
        .compare_exchange(0, bytes, relaxed, relaxed);
    let _ = progress
        .total_files
        .compare_exchange(0, files, relaxed, relaxed);
}

/// Walks the paths (or reads the stream) on a blocking thread; returns
/// the walker, whose writer still has uploads in flight, and the root.
async fn walk(
    walker: Walker,
    stream: Option<Stream>,
    paths: Vec<PathBuf>,
    layout: RootLayout,
    parent_root: Option<Id>,
    time: Timestamp,
) -> Result<(Walker, Result<Id>)> {
    tokio::task::spawn_blocking(move || {
        let root = match stream {
            Some((name, reader)) => walker.stream_root(&name, reader, time),
            None => walker.backup_root(&paths, layout, parent_root),
        };
        (walker, root)
    })
    .await
    .map_err(|e| Error::Invalid(format!("backup task failed: {e}")))
}

/// One directory path is stored as its listing; anything else as one entry
/// per path, which needs distinct, non-empty last components.
fn root_layout(paths: &[PathBuf]) -> Result<RootLayout> {
    if let [p] = paths {
        if std::fs::symlink_metadata(p)
            .map_err(|e| Error::io(p, e))?
            .is_dir()
        {
            return Ok(RootLayout::Directory);
        }
    }
    let mut names: Vec<&OsStr> = Vec::new();
    for p in paths {
        let name = p.file_name().ok_or_else(|| {
            Error::Invalid(format!(
                "{}: cannot be combined with other paths",
                p.display()
            ))
        })?;
        if names.contains(&name) {
            return Err(Error::Invalid(format!(
                "two paths end in {:?}; back them up in separate snapshots",
                name
            )));
        }
        names.push(name);
    }
    Ok(RootLayout::PerPath)
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) files_new: AtomicU64,
    pub(super) files_changed: AtomicU64,
    pub(super) files_unchanged: AtomicU64,
    pub(super) dirs_new: AtomicU64,
    pub(super) dirs_changed: AtomicU64,
    pub(super) dirs_unchanged: AtomicU64,
    pub(super) bytes_read: AtomicU64,
    pub(super) bytes_total: AtomicU64,
}

impl Counters {
    fn to_stats(&self, w: &WriterStats, errors: u64) -> SnapshotStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SnapshotStats {
            files_new: g(&self.files_new),
            files_changed: g(&self.files_changed),
            files_unchanged: g(&self.files_unchanged),
            dirs_new: g(&self.dirs_new),
            dirs_changed: g(&self.dirs_changed),
            dirs_unchanged: g(&self.dirs_unchanged),
            bytes_read: g(&self.bytes_read),
            bytes_total: g(&self.bytes_total),
            data_blobs_added: w.data_blobs,
            tree_blobs_added: w.tree_blobs,
            bytes_added: w.bytes_added,
            bytes_stored: w.bytes_stored,
            errors,
            duration_nanos: 0,
        }
    }
}
