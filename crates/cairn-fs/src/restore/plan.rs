//! Walking the snapshot's trees: directories, symlinks and special files
//! are created at once; regular files and extra hard links are collected.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cairn_core::Id;
use cairn_core::format::{Node, NodeKind};
use cairn_repo::Repository;

use super::{RestoreOutcome, os};
use crate::{Result, Warning, meta};

/// What the walk of the trees found to do.
pub(super) struct Plan {
    /// Regular files to write (the first name of each hard-linked file).
    pub(super) files: Vec<(PathBuf, Node)>,
    /// Further names of hard-linked files: (name, first name).
    pub(super) links: Vec<(PathBuf, PathBuf)>,
    /// Directories, in the order they were created.
    pub(super) dirs: Vec<(PathBuf, Node)>,
    pub(super) outcome: RestoreOutcome,
    pub(super) owners: bool,
    /// First restored name of each (device, inode) with several links.
    seen: HashMap<(u64, u64), PathBuf>,
}

impl Plan {
    pub(super) fn new(owners: bool) -> Plan {
        Plan {
            files: Vec::new(),
            links: Vec::new(),
            dirs: Vec::new(),
            outcome: RestoreOutcome::default(),
            owners,
            seen: HashMap::new(),
        }
    }

    fn fail(&mut self, path: &Path, what: &str, e: std::io::Error) {
        self.outcome.errors.push(Warning {
            path: path.to_owned(),
            message: format!("{what}: {e}"),
        });
    }
}

pub(super) fn plan_dir<'a>(
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
pub(super) fn clear_for(path: &Path, want_dir: bool) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() && want_dir => Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub(super) async fn plan_node(
    repo: &Repository,
    node: Node,
    path: PathBuf,
    plan: &mut Plan,
) -> Result<()> {
    match node.kind {
        NodeKind::Dir => {
            if let Err(e) = clear_for(&path, true).and_then(|()| std::fs::create_dir_all(&path)) {
                plan.fail(&path, "cannot create directory", e);
                return Ok(());
            }
            plan.outcome.dirs += 1;
            let sub = node.subtree;
            plan.dirs.push((path.clone(), node));
            if let Some(id) = sub {
                plan_dir(repo, id, path, plan).await?;
            }
        }
        NodeKind::File => {
            if node.links > 1 {
                let key = (node.device, node.inode);
                if let Some(first) = plan.seen.get(&key) {
                    plan.links.push((path, first.clone()));
                    return Ok(());
                }
                plan.seen.insert(key, path.clone());
            }
            plan.files.push((path, node));
        }
        // A block device with content was backed up as a stream: restored
        // as a regular file holding that content (to a device with
        // `restore_stream`).
        NodeKind::BlockDevice if !node.content.is_empty() => plan.files.push((path, node)),
        NodeKind::Symlink => {
            let r = clear_for(&path, false)
                .and_then(|()| std::os::unix::fs::symlink(os(&node.link_target), &path))
                .and_then(|()| meta::apply(&path, &node, plan.owners));
            match r {
                Ok(()) => plan.outcome.symlinks += 1,
                Err(e) => plan.fail(&path, "cannot create symlink", e),
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
                Err(e) => plan.fail(&path, "cannot create special file", e),
            }
        }
        NodeKind::Socket => {}
    }
    Ok(())
}
