//! The restore engine.
//!
//! Directories, symlinks and special files are created first while the
//! trees are walked; file contents are then fetched with ranged reads,
//! several files and several chunks of each file at once, opened and
//! verified on blocking threads and written with positional writes. Each
//! file is written under a temporary name and renamed into place only when
//! complete and verified, so a failed restore never leaves a file with wrong
//! or missing bytes under its real name. All-zero chunks are not written,
//! leaving holes. Directory metadata is applied last, deepest first.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_core::Id;
use cairn_core::format::{Node, NodeKind, Snapshot};
use cairn_repo::Repository;
use futures::{StreamExt, TryStreamExt};

use crate::browse::resolve;
use crate::{Error, Progress, Result, Warning, meta};

/// Files restored at once.
const FILE_CONCURRENCY: usize = 4;
/// Chunks of one file fetched at once.
const CHUNK_CONCURRENCY: usize = 4;

/// What to restore and where.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Directory to restore into (created if missing).
    pub target: PathBuf,
    /// Path inside the snapshot (`/`-separated; empty for everything). A
    /// directory's contents go into the target; a file goes to target/name.
    pub path: Vec<u8>,
    /// Restore ownership; `None` means "when running as root".
    pub owners: Option<bool>,
}

/// What a restore did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreOutcome {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// FIFOs and device nodes created.
    pub special: u64,
    /// Bytes of file content restored (holes included).
    pub bytes: u64,
    /// Entries that could not be restored.
    pub errors: Vec<Warning>,
}

struct Plan {
    files: Vec<(PathBuf, Node)>,
    dirs: Vec<(PathBuf, Node)>,
    outcome: RestoreOutcome,
    owners: bool,
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// Restores `opts.path` of `snapshot` into `opts.target`.
pub async fn restore(
    repo: &Repository,
    snapshot: &Snapshot,
    opts: RestoreOptions,
    progress: Arc<Progress>,
) -> Result<RestoreOutcome> {
    let start = resolve(repo, snapshot, &opts.path).await?;
    std::fs::create_dir_all(&opts.target).map_err(|e| Error::io(&opts.target, e))?;
    let mut plan = Plan {
        files: Vec::new(),
        dirs: Vec::new(),
        outcome: RestoreOutcome::default(),
        owners: opts
            .owners
            .unwrap_or_else(|| rustix::process::geteuid().is_root()),
    };
    if start.kind == NodeKind::Dir {
        if let Some(id) = start.subtree {
            plan_dir(repo, id, opts.target.clone(), &mut plan).await?;
        }
    } else {
        let path = opts.target.join(os(&start.name));
        plan_node(repo, start, path, &mut plan).await?;
    }
    let total: u64 = plan.files.iter().map(|(_, n)| n.size).sum();
    progress.total_files.store(
        plan.files.len() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    progress
        .total_bytes
        .store(total, std::sync::atomic::Ordering::Relaxed);

    let owners = plan.owners;
    let files = std::mem::take(&mut plan.files);
    let mut results = futures::stream::iter(files)
        .map(|(path, node)| {
            let progress = progress.clone();
            async move {
                let r = restore_file(repo, &path, &node, owners, &progress).await;
                (path, node.size, r)
            }
        })
        .buffer_unordered(FILE_CONCURRENCY);
    while let Some((path, size, r)) = results.next().await {
        match r {
            Ok(()) => {
                plan.outcome.files += 1;
                plan.outcome.bytes += size;
                progress.add(1, 0);
            }
            Err(message) => plan.outcome.errors.push(Warning { path, message }),
        }
    }
    drop(results);
    for (path, node) in plan.dirs.iter().rev() {
        if let Err(e) = meta::apply(path, node, owners) {
            plan.outcome.errors.push(Warning {
                path: path.clone(),
                message: format!("cannot set metadata: {e}"),
            });
        }
    }
    Ok(plan.outcome)
}

fn plan_dir<'a>(
    repo: &'a Repository,
    tree: Id,
    dir: PathBuf,
    plan: &'a mut Plan,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        let tree = repo.load_tree(&tree).await?;
        for node in tree.nodes {
            let path = dir.join(os(&node.name));
            plan_node(repo, node, path, plan).await?;
        }
        Ok(())
    })
}

/// Replaces whatever is at `path` unless it is already a directory.
fn clear_for(path: &Path, want_dir: bool) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() && want_dir => Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

async fn plan_node(repo: &Repository, node: Node, path: PathBuf, plan: &mut Plan) -> Result<()> {
    let mut fail = |path: &Path, what: &str, e: std::io::Error| {
        plan.outcome.errors.push(Warning {
            path: path.to_owned(),
            message: format!("{what}: {e}"),
        });
    };
    match node.kind {
        NodeKind::Dir => {
            if let Err(e) = clear_for(&path, true).and_then(|()| std::fs::create_dir_all(&path)) {
                fail(&path, "cannot create directory", e);
                return Ok(());
            }
            plan.outcome.dirs += 1;
            let sub = node.subtree;
            plan.dirs.push((path.clone(), node));
            if let Some(id) = sub {
                plan_dir(repo, id, path, plan).await?;
            }
        }
        NodeKind::File => plan.files.push((path, node)),
        NodeKind::Symlink => {
            let r = clear_for(&path, false)
                .and_then(|()| std::os::unix::fs::symlink(os(&node.link_target), &path))
                .and_then(|()| meta::apply(&path, &node, plan.owners));
            match r {
                Ok(()) => plan.outcome.symlinks += 1,
                Err(e) => fail(&path, "cannot create symlink", e),
            }
        }
        NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
            use rustix::fs::FileType;
            let ft = match node.kind {
                NodeKind::Fifo => FileType::Fifo,
                NodeKind::CharDevice => FileType::CharacterDevice,
                _ => FileType::BlockDevice,
            };
            let r = clear_for(&path, false)
                .and_then(|()| {
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &path,
                        ft,
                        rustix::fs::Mode::from_raw_mode(node.mode),
                        node.rdev,
                    )
                    .map_err(std::io::Error::from)
                })
                .and_then(|()| meta::apply(&path, &node, plan.owners));
            match r {
                Ok(()) => plan.outcome.special += 1,
                Err(e) => fail(&path, "cannot create special file", e),
            }
        }
        NodeKind::Socket => {}
    }
    Ok(())
}

/// The longest file name Linux file systems accept (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// `.<name>.cairn-restore-<pid>`, in the file's directory. A name too long
/// to extend keeps only a prefix, and a number unique in this process keeps
/// apart names that share that prefix.
fn temp_path(path: &Path) -> PathBuf {
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
async fn restore_file(
    repo: &Repository,
    path: &Path,
    node: &Node,
    owners: bool,
    progress: &Progress,
) -> Result<(), String> {
    let tmp = temp_path(path);
    let r = write_content(repo, &tmp, node, progress).await;
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
                let (loc, sealed) = repo.fetch_blob(&id).await.map_err(|e| e.to_string())?;
                let repo = repo.clone();
                tokio::task::spawn_blocking(move || {
                    let plain = repo
                        .open_blob(&loc, &id, &sealed)
                        .map_err(|e| e.to_string())?;
                    // Holes stay holes: the file was sized with set_len.
                    if plain.iter().any(|&b| b != 0) {
                        file.write_all_at(&plain, offset)
                            .map_err(|e| format!("write failed: {e}"))?;
                    }
                    Ok::<u64, String>(plain.len() as u64)
                })
                .await
                .map_err(|e| format!("restore task failed: {e}"))?
            }
        })
        .buffered(CHUNK_CONCURRENCY)
        .try_for_each(|n| {
            progress.add(0, n);
            futures::future::ready(Ok(()))
        })
        .await
}
