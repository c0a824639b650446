//! The backup pipeline.
//!
//! Directories are walked in parallel on rayon (entries of one directory,
//! and chunks of one file, are processed concurrently). A file whose size,
//! mtime, ctime and inode match the parent snapshot reuses the parent's
//! chunk list without being opened. Trees are written bottom-up; the
//! snapshot is saved only after every pack and index file is stored.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cairn_core::format::{
    Node, NodeKind, RootLayout, Snapshot, SnapshotStats, Source, Timestamp, Tree,
};
use cairn_core::{Id, Kind};
use cairn_repo::{BlobWriter, Repository, WriterStats};
use rayon::prelude::*;

use crate::chunking::chunk_stream;
use crate::{Error, Progress, Result, Warning, meta};

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

/// What to back up and how to label it.
#[derive(Debug, Clone)]
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
    let started = Instant::now();
    if opts.paths.is_empty() {
        return Err(Error::Invalid("no paths to back up".into()));
    }
    let paths: Vec<PathBuf> = opts
        .paths
        .iter()
        .map(|p| absolute(p))
        .collect::<Result<_>>()?;
    let path_bytes: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .collect();
    let parent = match &opts.parent {
        ParentChoice::None => None,
        ParentChoice::Snapshot(id) => Some((*id, repo.load_snapshot(id).await?)),
        ParentChoice::Auto => select_parent(repo, &opts.hostname, &path_bytes).await?,
    };
    let layout = root_layout(&paths)?;
    // A parent with another root layout cannot be compared entry by entry.
    let parent = parent.filter(|(_, s)| s.root_layout == layout);
    let parent_root = parent.as_ref().map(|(_, s)| s.tree);
    let writer = BlobWriter::new(repo)?;
    let handle = tokio::runtime::Handle::current();
    let walker = Walker {
        repo: repo.clone(),
        handle,
        writer,
        progress,
        warnings: Mutex::new(Vec::new()),
        stats: Counters::default(),
    };
    let (walker, root) = tokio::task::spawn_blocking(move || {
        let root = walker.backup_root(&paths, layout, parent_root);
        (walker, root)
    })
    .await
    .map_err(|e| Error::Invalid(format!("backup task failed: {e}")))?;
    let Walker {
        writer,
        warnings,
        stats,
        ..
    } = walker;
    // On a fatal error, still wait for the uploads in flight: what they
    // stored is indexed and the next backup reuses it.
    let finished = writer.finish().await;
    // An upload failure stops the walk with a generic "uploader stopped";
    // the uploader's own error is the cause the user needs to see.
    let (root, writer_stats) = match (root, finished) {
        (_, Err(e)) => return Err(e.into()),
        (Err(e), _) => return Err(e),
        (Ok(root), Ok(stats)) => (root, stats),
    };
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
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unchanged: AtomicU64,
    dirs_new: AtomicU64,
    dirs_changed: AtomicU64,
    dirs_unchanged: AtomicU64,
    bytes_read: AtomicU64,
    bytes_total: AtomicU64,
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

struct Walker {
    repo: Repository,
    handle: tokio::runtime::Handle,
    writer: BlobWriter,
    progress: std::sync::Arc<Progress>,
    warnings: Mutex<Vec<Warning>>,
    stats: Counters,
}

/// Why an entry is not in the snapshot: left out by design (a note in the
/// log), unreadable (a warning: exit code 3), or a repository failure (fatal).
enum EntryError {
    Omit(&'static str),
    Skip(Warning),
    Fatal(Error),
}

impl From<cairn_repo::Error> for EntryError {
    fn from(e: cairn_repo::Error) -> Self {
        EntryError::Fatal(e.into())
    }
}

impl Walker {
    fn warn(&self, path: &Path, message: String) {
        tracing::warn!(path = %path.display(), "{message}");
        let w = Warning {
            path: path.to_owned(),
            message,
        };
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(w);
    }

    fn load_parent_tree(&self, id: Option<Id>, path: &Path) -> Option<Tree> {
        let id = id?;
        match self.handle.block_on(self.repo.load_tree(&id)) {
            Ok(t) => Some(t),
            Err(e) => {
                // Without the parent's tree every file is read: slower, not wrong.
                self.warn(path, format!("cannot use the parent snapshot here: {e}"));
                None
            }
        }
    }

    fn backup_root(&self, paths: &[PathBuf], layout: RootLayout, parent: Option<Id>) -> Result<Id> {
        match (layout, paths) {
            (RootLayout::Directory, [p]) => self.backup_dir(p, parent),
            _ => {
                let parent = self.load_parent_tree(parent, Path::new("/"));
                let nodes: Vec<Option<Node>> = paths
                    .par_iter()
                    .map(|p| {
                        let name = p
                            .file_name()
                            .map(|n| n.as_bytes().to_vec())
                            .unwrap_or_default();
                        let old = parent.as_ref().and_then(|t| t.find(&name));
                        let m = std::fs::symlink_metadata(p).map_err(|e| Error::io(p, e))?;
                        self.entry(p, name, &m, old)
                    })
                    .collect::<Result<_>>()?;
                self.save_tree(nodes.into_iter().flatten().collect())
            }
        }
    }

    fn save_tree(&self, nodes: Vec<Node>) -> Result<Id> {
        let mut tree = Tree { nodes };
        tree.sort();
        let plain = tree.encode().map_err(cairn_repo::Error::from)?;
        Ok(self.writer.add_blob(Kind::Tree, &plain)?.0)
    }

    /// Backs up a directory's contents; returns its tree id.
    fn backup_dir(&self, dir: &Path, parent: Option<Id>) -> Result<Id> {
        let parent = self.load_parent_tree(parent, dir);
        let mut entries: Vec<(Vec<u8>, PathBuf)> = Vec::new();
        match std::fs::read_dir(dir) {
            Ok(rd) => {
                for e in rd {
                    match e {
                        Ok(e) => entries.push((e.file_name().as_bytes().to_vec(), e.path())),
                        Err(e) => self.warn(dir, format!("cannot list directory entry: {e}")),
                    }
                }
            }
            Err(e) => self.warn(dir, format!("cannot list directory: {e}")),
        }
        entries.sort();
        let nodes: Vec<Option<Node>> = entries
            .into_par_iter()
            .map(|(name, path)| {
                let m = match std::fs::symlink_metadata(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        self.warn(&path, format!("cannot stat: {e}"));
                        return Ok(None);
                    }
                };
                let old = parent.as_ref().and_then(|t| t.find(&name));
                self.entry(&path, name, &m, old)
            })
            .collect::<Result<_>>()?;
        self.save_tree(nodes.into_iter().flatten().collect())
    }

    /// Backs up one entry; `Ok(None)` when it is skipped with a warning.
    fn entry(
        &self,
        path: &Path,
        name: Vec<u8>,
        m: &std::fs::Metadata,
        old: Option<&Node>,
    ) -> Result<Option<Node>> {
        let mut node = meta::node_from(name, m);
        match self.fill(path, &mut node, old) {
            Ok(()) => Ok(Some(node)),
            Err(EntryError::Omit(why)) => {
                tracing::info!(path = %path.display(), "{why}");
                Ok(None)
            }
            Err(EntryError::Skip(w)) => {
                self.warn(&w.path, w.message);
                Ok(None)
            }
            Err(EntryError::Fatal(e)) => Err(e),
        }
    }

    fn fill(&self, path: &Path, node: &mut Node, old: Option<&Node>) -> Result<(), EntryError> {
        let skip = |e: std::io::Error| {
            EntryError::Skip(Warning {
                path: path.to_owned(),
                message: e.to_string(),
            })
        };
        let s = &self.stats;
        match node.kind {
            NodeKind::File => {
                s.bytes_total.fetch_add(node.size, Ordering::Relaxed);
                let index = self.repo.index();
                let reusable = old.filter(|o| {
                    meta::unchanged(o, node) && o.content.iter().all(|c| index.contains(c))
                });
                drop(index);
                if let Some(o) = reusable {
                    node.content = o.content.clone();
                    s.files_unchanged.fetch_add(1, Ordering::Relaxed);
                    self.progress.add(1, node.size);
                    return Ok(());
                }
                self.progress.set_current(path);
                let file = std::fs::File::open(path).map_err(skip)?;
                node.content = self.read_file(file).map_err(|e| match e {
                    EntryError::Skip(w) => EntryError::Skip(Warning {
                        path: path.to_owned(),
                        message: w.message,
                    }),
                    f => f,
                })?;
                let counter = if old.is_some_and(|o| o.kind == NodeKind::File) {
                    &s.files_changed
                } else {
                    &s.files_new
                };
                counter.fetch_add(1, Ordering::Relaxed);
                self.progress.add(1, 0);
            }
            NodeKind::Dir => {
                let old_sub = old
                    .filter(|o| o.kind == NodeKind::Dir)
                    .and_then(|o| o.subtree);
                let id = self.backup_dir(path, old_sub).map_err(EntryError::Fatal)?;
                node.subtree = Some(id);
                let counter = match old_sub {
                    None => &s.dirs_new,
                    Some(o) if o == id => &s.dirs_unchanged,
                    Some(_) => &s.dirs_changed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            NodeKind::Symlink => {
                node.link_target = std::fs::read_link(path)
                    .map_err(skip)?
                    .as_os_str()
                    .as_bytes()
                    .to_vec();
            }
            NodeKind::Socket => {
                return Err(EntryError::Omit(
                    "socket left out: a socket has no content to restore",
                ));
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {}
        }
        Ok(())
    }

    /// Reads, chunks and stores a file's content; returns its chunk ids.
    fn read_file(&self, file: std::fs::File) -> Result<Vec<Id>, EntryError> {
        let params = self.repo.config().chunker;
        let mut ids = Vec::new();
        chunk_stream(
            file,
            &params,
            |buf, chunks| {
                let batch: Vec<Id> = chunks
                    .par_iter()
                    .map(|&(o, l)| {
                        self.writer
                            .add_blob(Kind::Data, &buf[o..o + l])
                            .map(|r| r.0)
                    })
                    .collect::<Result<_, _>>()?;
                ids.extend(batch);
                Ok(())
            },
            |n| {
                self.stats.bytes_read.fetch_add(n, Ordering::Relaxed);
                self.progress.add(0, n);
            },
            |e| {
                EntryError::Skip(Warning {
                    path: PathBuf::new(),
                    message: format!("read failed: {e}"),
                })
            },
        )?;
        Ok(ids)
    }
}
