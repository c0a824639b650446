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
use crate::{Progress, Result, Warning, meta};

/// Files a restore plans before it writes them, and directories it
/// leaves before it gives them their metadata, at most: its memory does
/// not grow with the snapshot (the PVC-like dataset's 45,000 files took
/// 20-45 MiB of plan at once). A restore that warms up archived packs
/// with patterns or `Overwrite::Never` plans every file first.
pub const ROUND: usize = 8192;

/// What the walk of the trees found to do. The walk writes the files it
/// planned, and finishes the directories it left, every [`ROUND`] files
/// or directories (`Plan::round`), and once more at its end.
pub(super) struct Plan {
    /// Regular files to write (the first name of each hard-linked file),
    /// and whether one is already in place.
    pub(super) files: Vec<(PathBuf, Node, bool)>,
    /// Files planned before the walk stops to write them.
    pub(super) round: usize,
    /// Files and bytes written (or tried) in earlier rounds.
    pub(super) planned: (u64, u64),
    /// First names of files that could not be written: their further
    /// names are not linked.
    pub(super) failed: std::collections::HashSet<PathBuf>,
    /// Re-read every file written and compare it with the snapshot.
    pub(super) verify: bool,
    pub(super) progress: Arc<Progress>,
    /// Further names of hard-linked files: (name, first name).
    pub(super) links: Vec<(PathBuf, PathBuf)>,
    /// Directories created and not yet given their metadata, in the order
    /// created, and whether the walk has left each (everything in it is
    /// planned). Those left get their metadata once the files planned
    /// with them are written (`write_round`), so this holds the path the
    /// walk is on and at most a round of directories left.
    pub(super) dirs: Vec<(PathBuf, Node, bool)>,
    /// Of `dirs`, the indices of those the walk is in, outermost first.
    open: Vec<usize>,
    /// Of `dirs`, how many the walk has left.
    pub(super) left: usize,
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
            round: ROUND,
            planned: (0, 0),
            failed: Default::default(),
            verify: false,
            progress: Arc::default(),
            links: Vec::new(),
            dirs: Vec::new(),
            open: Vec::new(),
            left: 0,
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
        self.open.push(self.dirs.len());
        self.dirs.push((path, node, false));
        true
    }

    /// The walk leaves the innermost directory it created and is in.
    fn leave_dir(&mut self) {
        if let Some(i) = self.open.pop() {
            self.dirs[i].2 = true;
            self.left += 1;
        }
    }

    /// Takes the directories the walk has left, in the order created;
    /// those it is in stay.
    pub(super) fn take_left(&mut self) -> Vec<(PathBuf, Node)> {
        let (left, open): (Vec<_>, Vec<_>) = std::mem::take(&mut self.dirs)
            .into_iter()
            .partition(|d| d.2);
        self.open = (0..open.len()).collect();
        self.dirs = open;
        self.left = 0;
        left.into_iter().map(|(p, n, _)| (p, n)).collect()
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
            if plan.files.len() >= plan.round || plan.left >= plan.round {
                super::write_round(repo, plan).await?;
            }
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
        // Made here, or on the way to something restored inside.
        let made = included || plan.pending.pop().is_some_and(|(_, n)| n.is_none());
        if made {
            plan.leave_dir();
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use cairn_core::{Id, Kind};
    use cairn_repo::BlobWriter;

    fn dir(name: &str, subtree: Option<Id>) -> Node {
        let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::Dir);
        n.mode = 0o750;
        n.subtree = subtree;
        n
    }

    /// Three directories of five empty ones each.
    async fn snapshot_of_dirs() -> (Repository, Tree) {
        let repo = cairn_testkit::memory_repository(b"pw").await;
        let writer = BlobWriter::new(&repo).expect("writer");
        let (writer, root) = tokio::task::spawn_blocking(move || {
            let empty = Tree { nodes: Vec::new() }.encode().expect("encode");
            let empty = writer.add_blob(Kind::Tree, &empty).expect("add").0;
            let inner = Tree {
                nodes: (0..5).map(|i| dir(&format!("{i}"), Some(empty))).collect(),
            };
            let plain = inner.encode().expect("encode");
            let id = writer.add_blob(Kind::Tree, &plain).expect("add").0;
            let nodes = ["a", "b", "c"].iter().map(|n| dir(n, Some(id))).collect();
            (writer, Tree { nodes })
        })
        .await
        .expect("join");
        writer.finish().await.expect("finish");
        (repo, root)
    }

    fn with_mode(root: &Path, mode: u32) -> usize {
        walkdir(root)
            .iter()
            .filter(|p| p.metadata().expect("stat").permissions().mode() & 0o7777 == mode)
            .count()
    }

    fn walkdir(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(root).expect("read_dir") {
            let p = e.expect("entry").path();
            out.extend(walkdir(&p));
            out.push(p);
        }
        out
    }

    /// With rounds of 4, the walk keeps no more than 4 directories it
    /// left waiting for their metadata; the others already have it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn directories_the_walk_left_get_their_metadata_every_round() {
        let (repo, tree) = snapshot_of_dirs().await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let target = tmp.path().to_owned();
        let root = Arc::new(Root::open(&target).expect("root"));
        let filter = PathFilter::new(&[], &[]).expect("filter");
        let mut plan = Plan::new(root, false, filter, Overwrite::default(), false);
        plan.round = 4;
        plan_dir(&repo, tree, target.clone(), b"/".to_vec(), true, &mut plan)
            .await
            .expect("walk");
        assert_eq!(plan.outcome.dirs, 18);
        assert!(plan.dirs.len() <= 4, "{} directories wait", plan.dirs.len());
        assert!(plan.dirs.iter().all(|d| d.2), "the walk is over");
        assert_eq!(with_mode(&target, 0o750), 18 - plan.dirs.len());
        assert_eq!(with_mode(&target, 0o700), plan.dirs.len());
        super::super::write_round(&repo, &mut plan)
            .await
            .expect("last round");
        assert_eq!(with_mode(&target, 0o750), 18);
        assert!(plan.dirs.is_empty());
    }
}
