//! Walking the snapshot's trees: directories, symlinks and special files
//! are created at once; regular files and extra hard links are collected.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_core::format::{Node, NodeKind, Tree};
use cairn_repo::Repository;
use rustix::fs::{AtFlags, Mode, OFlags};

use super::filter::PathFilter;
use super::overwrite::Overwrite;
use super::prefetch::Prefetch;
use super::{RestoreOutcome, os};
use crate::at::{self, Root};
use crate::browse::join;
use crate::{Result, Warning, meta};

/// What the walk of the trees found to do.
pub(super) struct Plan {
    /// Regular files to write (the first name of each hard-linked file),
    /// and whether one is already in place.
    pub(super) files: Vec<(PathBuf, Node, bool)>,
    /// Further names of hard-linked files: (name, first name).
    pub(super) links: Vec<(PathBuf, PathBuf)>,
    /// Directories, in the order they were created.
    pub(super) dirs: Vec<(PathBuf, Node)>,
    pub(super) outcome: RestoreOutcome,
    pub(super) owners: bool,
    pub(super) filter: PathFilter,
    pub(super) overwrite: Overwrite,
    /// Remove what the target holds and the snapshot does not.
    pub(super) delete: bool,
    /// The target, which every path above is below.
    pub(super) root: Arc<Root>,
    /// Restore without what could raise privileges (see
    /// `RestoreOptions::untrusted`).
    pub(super) untrusted: bool,
    /// First restored name of each (device, inode) with several links.
    seen: HashMap<(u64, u64), PathBuf>,
    /// Directories on the way to what include patterns select, created
    /// only once something inside them is restored: (path, node if not
    /// created yet).
    pending: Vec<(PathBuf, Option<Node>)>,
    /// Trees loading ahead of the walk.
    prefetch: Prefetch,
}

impl Plan {
    pub(super) fn new(
        root: Arc<Root>,
        owners: bool,
        filter: PathFilter,
        overwrite: Overwrite,
        delete: bool,
    ) -> Plan {
        // A walk of everything enters every subtree: load them ahead deep.
        let prefetch = if filter.is_empty() {
            Prefetch::deep()
        } else {
            Prefetch::default()
        };
        Plan {
            files: Vec::new(),
            links: Vec::new(),
            dirs: Vec::new(),
            outcome: RestoreOutcome::default(),
            owners,
            filter,
            overwrite,
            delete,
            root,
            untrusted: false,
            seen: HashMap::new(),
            pending: Vec::new(),
            prefetch,
        }
    }

    /// Loads every tree only when the walk needs it.
    pub(super) fn no_prefetch(&mut self) {
        self.prefetch = Prefetch::off();
    }

    /// Creates the directories leading to an entry that is restored.
    fn materialize(&mut self) -> bool {
        for i in 0..self.pending.len() {
            if let Some(node) = self.pending[i].1.take() {
                let path = self.pending[i].0.clone();
                if !self.create_dir(path, node) {
                    return false;
                }
            }
        }
        true
    }

    fn create_dir(&mut self, path: PathBuf, node: Node) -> bool {
        if let Err(e) = mkdir(&self.root, &path) {
            self.fail(&path, "cannot create directory", e);
            return false;
        }
        self.outcome.dirs += 1;
        self.dirs.push((path, node));
        true
    }

    /// Whether an existing entry at `path` is kept (`Overwrite::Never`).
    fn keep_existing(&mut self, path: &Path) -> bool {
        if self.overwrite == Overwrite::Never && exists(&self.root, path) {
            self.outcome.skipped += 1;
            return true;
        }
        false
    }

    /// `node` as it is to be restored: for an untrusted snapshot without
    /// what could raise privileges, `None` for a device node (counted).
    fn admit(&mut self, node: Node, path: &Path) -> Option<Node> {
        if !self.untrusted {
            return Some(node);
        }
        let (node, changed) = sanitize(node);
        self.outcome.dropped += u64::from(changed);
        if node.is_none() {
            tracing::info!(path = %path.display(), "device node left out: untrusted snapshot");
        }
        node
    }

    fn fail(&mut self, path: &Path, what: &str, e: std::io::Error) {
        self.outcome.errors.push(Warning {
            path: path.to_owned(),
            message: format!("{what}: {e}"),
        });
    }
}

/// Plans the entries of `tree`, restored into `dir`; `rel` is the
/// directory's path inside the snapshot and `included` whether include
/// patterns (if any) selected it.
pub(super) fn plan_dir<'a>(
    repo: &'a Repository,
    tree: Tree,
    dir: PathBuf,
    rel: Vec<u8>,
    included: bool,
    plan: &'a mut Plan,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        if plan.delete && included {
            delete_extra(&dir, &rel, &tree.nodes, plan);
        }
        // The subtrees this walk will enter, loaded ahead in its order.
        let mut ahead: std::collections::VecDeque<_> = tree
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Dir && !plan.filter.excluded(&join(&rel, &n.name)))
            .filter_map(|n| n.subtree)
            .collect();
        for node in tree.nodes {
            plan.prefetch.top_up(repo, &mut ahead);
            let path = dir.join(os(&node.name));
            let r = join(&rel, &node.name);
            plan_node(repo, node, path, r, included, plan).await?;
        }
        Ok(())
    })
}

/// Removes the entries of `dir` that are not among `nodes` (and not
/// excluded: what the patterns leave out is left alone).
fn delete_extra(dir: &Path, rel: &[u8], nodes: &[Node], plan: &mut Plan) {
    let Ok(fd) = plan.root.dir(dir, OFlags::RDONLY) else {
        return;
    };
    let Ok(names) = at::list(fd.as_fd()) else {
        return;
    };
    for name in names {
        if nodes.iter().any(|n| n.name == name) || plan.filter.excluded(&join(rel, &name)) {
            continue;
        }
        match at::clear(fd.as_fd(), os(&name), false) {
            Ok(()) => plan.outcome.deleted += 1,
            Err(e) => plan.fail(&dir.join(os(&name)), "cannot delete", e),
        }
    }
}

/// Whether something is at `path`.
fn exists(root: &Root, path: &Path) -> bool {
    root.parent(path)
        .is_ok_and(|(dir, name)| rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW).is_ok())
}

/// Creates the directory `path` unless there is one (replacing anything
/// else); its parent exists, as directories are created in the order of
/// the walk. A new directory is private to its owner until the last pass
/// gives it its mode.
fn mkdir(root: &Root, path: &Path) -> std::io::Result<()> {
    let (dir, name) = root.parent(path)?;
    at::clear(dir.as_fd(), &name, true)?;
    match rustix::fs::mkdirat(&dir, &name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates a symlink, FIFO or device node at `path` (replacing what is
/// there) with `make`, then applies its metadata through a descriptor of
/// what was made.
fn make_special(
    root: &Root,
    path: &Path,
    node: &Node,
    owners: bool,
    make: impl FnOnce(BorrowedFd<'_>, &OsStr) -> rustix::io::Result<()>,
) -> std::io::Result<()> {
    let (dir, name) = root.parent(path)?;
    at::clear(dir.as_fd(), &name, false)?;
    make(dir.as_fd(), &name)?;
    let (pinned, m) = at::pin(dir.as_fd(), &name)?;
    // What was just made has one name; anything else was put there since
    // (possibly another name of something outside the target).
    if meta::kind_of(&m) != node.kind || m.nlink() != 1 {
        return Err(std::io::Error::other("replaced during the restore"));
    }
    meta::apply(pinned.as_fd(), true, node, owners)
}

/// The attribute that gives a file capabilities when executed.
const CAPABILITY: &[u8] = b"security.capability";

/// `node` without what could raise the privileges of whoever runs it, for
/// an untrusted snapshot: `None` for a device node (which would give raw
/// access to a device), else the node without set-id bits or file
/// capabilities, and whether anything was taken away.
pub(super) fn sanitize(mut node: Node) -> (Option<Node>, bool) {
    let device = node.content.is_empty()
        && matches!(node.kind, NodeKind::CharDevice | NodeKind::BlockDevice);
    if device {
        return (None, true);
    }
    let mut changed = false;
    if node.kind != NodeKind::Dir && node.mode & 0o6000 != 0 {
        node.mode &= !0o6000;
        changed = true;
    }
    let before = node.xattrs.len();
    node.xattrs.retain(|x| x.name != CAPABILITY);
    changed |= node.xattrs.len() != before;
    (Some(node), changed)
}

pub(super) async fn plan_node(
    repo: &Repository,
    node: Node,
    path: PathBuf,
    rel: Vec<u8>,
    included: bool,
    plan: &mut Plan,
) -> Result<()> {
    if plan.filter.excluded(&rel) {
        return Ok(());
    }
    let included = included || plan.filter.included(&rel);
    if node.kind == NodeKind::Dir {
        let sub = node.subtree;
        if included {
            if !plan.materialize() || !plan.create_dir(path.clone(), node) {
                if let Some(id) = sub {
                    plan.prefetch.forget(&id);
                }
                return Ok(());
            }
        } else {
            plan.pending.push((path.clone(), Some(node)));
        }
        if let Some(id) = sub {
            // A damaged or missing tree costs its own directory, named in
            // the errors, not the rest of the restore.
            match plan.prefetch.load(repo, &id).await {
                Ok(tree) => plan_dir(repo, tree, path, rel, included, plan).await?,
                Err(e) => plan.outcome.errors.push(Warning {
                    path,
                    message: format!("directory not restored: {e}"),
                }),
            }
        }
        if !included {
            plan.pending.pop();
        }
        return Ok(());
    }
    if !included || !plan.materialize() || plan.keep_existing(&path) {
        return Ok(());
    }
    if let Some(node) = plan.admit(node, &path) {
        plan_leaf(plan, node, path);
    }
    Ok(())
}

/// A node that is not a directory, admitted: a file (or a hard link to
/// one already planned) to write later; a symlink, FIFO or device node
/// made now.
fn plan_leaf(plan: &mut Plan, node: Node, path: PathBuf) {
    match node.kind {
        NodeKind::Dir => {}
        NodeKind::File => {
            if node.links > 1 {
                let key = (node.device, node.inode);
                if let Some(first) = plan.seen.get(&key) {
                    plan.links.push((path, first.clone()));
                    return;
                }
                plan.seen.insert(key, path.clone());
            }
            let check = plan.overwrite == Overwrite::IfChanged;
            plan.files.push((path, node, check));
        }
        // A block device with content was backed up as a stream: restored
        // as a regular file holding that content (to a device with
        // `restore_stream`).
        NodeKind::BlockDevice if !node.content.is_empty() => {
            let check = plan.overwrite == Overwrite::IfChanged;
            plan.files.push((path, node, check));
        }
        NodeKind::Symlink => {
            let target = os(&node.link_target);
            let r = make_special(&plan.root, &path, &node, plan.owners, |dir, name| {
                rustix::fs::symlinkat(target, dir, name)
            });
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
            let (mode, rdev) = (Mode::from_raw_mode(node.mode & 0o777), node.rdev);
            let r = make_special(&plan.root, &path, &node, plan.owners, |dir, name| {
                rustix::fs::mknodat(dir, name, ft, mode, rdev)
            });
            match r {
                Ok(()) => plan.outcome.special += 1,
                Err(e) => plan.fail(&path, "cannot create special file", e),
            }
        }
        NodeKind::Socket => {}
    }
}
