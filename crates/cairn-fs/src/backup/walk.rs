//! The parallel walk: one rayon task per directory entry, a subdirectory
//! inside its parent's task, trees stored bottom-up.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use cairn_core::format::{Node, NodeKind, RootLayout, Tree};
use cairn_core::{Id, Kind};
use cairn_repo::{BlobWriter, Repository};
use rayon::prelude::*;

use super::Counters;
use super::select::{DirRules, Selector, Verdict};
use crate::{Error, Progress, Result, Warning, meta, xattr};

pub(super) struct Walker {
    pub(super) repo: Repository,
    pub(super) handle: tokio::runtime::Handle,
    pub(super) writer: BlobWriter,
    pub(super) progress: std::sync::Arc<Progress>,
    pub(super) warnings: Mutex<Vec<Warning>>,
    pub(super) stats: Counters,
    pub(super) select: Selector,
    /// Content of files with several hard links, by (device, inode): the
    /// first name read gives the chunk list every other name reuses.
    pub(super) linked: Mutex<HashMap<(u64, u64), Content>>,
    /// Ids of all-zero chunks by length, for holes.
    pub(super) zeros: Mutex<HashMap<usize, Id>>,
}

/// A file's chunk ids and length.
pub(super) type Content = (Vec<Id>, u64);

/// Why an entry is not in the snapshot: left out by design (a note in the
/// log), unreadable (a warning: exit code 3), or a repository failure (fatal).
pub(super) enum EntryError {
    Omit(&'static str),
    Skip(Warning),
    Fatal(Error),
}

impl From<cairn_repo::Error> for EntryError {
    fn from(e: cairn_repo::Error) -> Self {
        EntryError::Fatal(e.into())
    }
}

/// Opens `path` read-only without updating its access time when the
/// kernel allows it (owner or CAP_FOWNER), so a backup leaves atimes alone.
/// Never blocks on a FIFO that replaced a file since it was listed.
pub(crate) fn open_quietly(path: &Path, dir: bool) -> std::io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let mut flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    if dir {
        flags |= OFlags::DIRECTORY;
    }
    let a = crate::longpath::access(path)?;
    let path = a.path();
    match rustix::fs::open(path, flags | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => Ok(rustix::fs::open(path, flags, Mode::empty())?),
        r => Ok(r?),
    }
}

/// The names in a directory, sorted, `.` and `..` left out; read through a
/// descriptor opened with `O_NOATIME`.
fn list_dir(dir: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let fd = open_quietly(dir, true)?;
    let mut names = Vec::new();
    for e in rustix::fs::Dir::new(fd)? {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

impl Walker {
    /// A walker storing into a new writer session on `repo`. Must be
    /// called inside a tokio runtime.
    pub(super) fn new(
        repo: &Repository,
        selection: &super::Selection,
        progress: std::sync::Arc<Progress>,
    ) -> Result<Walker> {
        Ok(Walker {
            repo: repo.clone(),
            handle: tokio::runtime::Handle::current(),
            writer: BlobWriter::new(repo)?,
            progress,
            warnings: Mutex::new(Vec::new()),
            stats: Counters::default(),
            select: Selector::new(selection)?,
            linked: Mutex::new(HashMap::new()),
            zeros: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn warn(&self, path: &Path, message: String) {
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

    pub(super) fn backup_root(
        &self,
        paths: &[PathBuf],
        layout: RootLayout,
        parent: Option<Id>,
    ) -> Result<Id> {
        match (layout, paths) {
            (RootLayout::Directory, [p]) => {
                let m = std::fs::symlink_metadata(p).map_err(|e| Error::io(p, e))?;
                let rules = self.select.root_rules(p, &m);
                self.backup_dir(p, parent, &rules)
            }
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
                        let rules = self.select.root_rules(p, &m);
                        self.entry(p, name, &m, old, &rules)
                    })
                    .collect::<Result<_>>()?;
                self.save_tree(nodes.into_iter().flatten().collect())
            }
        }
    }

    pub(super) fn save_tree(&self, nodes: Vec<Node>) -> Result<Id> {
        let mut tree = Tree { nodes };
        tree.sort();
        let plain = tree.encode().map_err(cairn_repo::Error::from)?;
        Ok(self.writer.add_blob(Kind::Tree, &plain)?.0)
    }

    /// Backs up a directory's contents; returns its tree id. `rules` are
    /// the selection rules in force for the directory's entries.
    fn backup_dir(&self, dir: &Path, parent: Option<Id>, rules: &DirRules) -> Result<Id> {
        let parent = self.load_parent_tree(parent, dir);
        let names = match list_dir(dir) {
            Ok(n) => n,
            Err(e) => {
                self.warn(dir, format!("cannot list directory: {e}"));
                Vec::new()
            }
        };
        let rules = self
            .select
            .enter(dir, &names, rules, |p, m| self.warn(p, m));
        let nodes: Vec<Option<Node>> = names
            .into_par_iter()
            .map(|name| {
                self.progress.check()?;
                let path = dir.join(std::ffi::OsStr::from_bytes(&name));
                let m = match crate::longpath::lstat(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        self.warn(&path, format!("cannot stat: {e}"));
                        return Ok(None);
                    }
                };
                match self.select.verdict(&path, &name, &m, &rules) {
                    Verdict::Keep => {}
                    Verdict::Exclude(why) => {
                        tracing::debug!(path = %path.display(), "{why}");
                        return Ok(None);
                    }
                }
                let old = parent.as_ref().and_then(|t| t.find(&name));
                self.entry(&path, name, &m, old, &rules)
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
        rules: &DirRules,
    ) -> Result<Option<Node>> {
        let mut node = meta::node_from(name, m);
        if let Some(o) = old.filter(|o| meta::same_xattrs(o, &node)) {
            node.xattrs = o.xattrs.clone();
        } else if node.kind != NodeKind::Socket {
            match xattr::read(path) {
                Ok(x) => node.xattrs = x,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.warn(path, "vanished during the backup".into());
                    return Ok(None);
                }
                Err(e) => self.warn(path, format!("extended attributes not saved: {e}")),
            }
        }
        match self.fill(path, m, &mut node, old, rules) {
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

    fn fill(
        &self,
        path: &Path,
        m: &std::fs::Metadata,
        node: &mut Node,
        old: Option<&Node>,
        rules: &DirRules,
    ) -> Result<(), EntryError> {
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
                // Asked of the writer: it answers once its session is
                // announced and the index reloaded, and only for packs
                // that exist.
                let reusable = match old.filter(|o| meta::unchanged(o, node)) {
                    Some(o) if self.writer.reusable(&o.content)? => Some(o),
                    _ => None,
                };
                if let Some(o) = reusable {
                    node.content = o.content.clone();
                    s.files_unchanged.fetch_add(1, Ordering::Relaxed);
                    self.progress.add(1, node.size);
                    return Ok(());
                }
                let key = (node.device, node.inode);
                if node.links > 1 {
                    let linked = self.linked.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some((content, size)) = linked.get(&key) {
                        node.content = content.clone();
                        node.size = *size;
                        self.progress.add(1, node.size);
                        return Ok(());
                    }
                }
                self.progress.set_current(path);
                let file = File::from(open_quietly(path, false).map_err(skip)?);
                let same = file.metadata().map_err(skip)?;
                if !same.is_file() || std::os::unix::fs::MetadataExt::ino(&same) != node.inode {
                    return Err(skip(std::io::Error::other(
                        "replaced by another file during the backup",
                    )));
                }
                let (content, size) = self
                    .read_content(&file, node.size, std::os::unix::fs::MetadataExt::blocks(m))
                    .map_err(|e| match e {
                        EntryError::Skip(w) => EntryError::Skip(Warning {
                            path: path.to_owned(),
                            message: w.message,
                        }),
                        f => f,
                    })?;
                node.content = content;
                node.size = size;
                if node.links > 1 {
                    self.linked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key, (node.content.clone(), size));
                }
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
                let id = match self.select.descend(path, m, rules) {
                    Some(rules) => self
                        .backup_dir(path, old_sub, &rules)
                        .map_err(EntryError::Fatal)?,
                    // A mount point left out by --one-file-system: kept
                    // as an empty directory, so it can be mounted on again.
                    None => self.save_tree(Vec::new()).map_err(EntryError::Fatal)?,
                };
                node.subtree = Some(id);
                let counter = match old_sub {
                    None => &s.dirs_new,
                    Some(o) if o == id => &s.dirs_unchanged,
                    Some(_) => &s.dirs_changed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            NodeKind::Symlink => {
                node.link_target = crate::longpath::read_link(path)
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
            // A device given as a path is always read; one met in the walk
            // only with --read-special.
            NodeKind::BlockDevice if self.select.read_special || rules.given => {
                let file = File::from(open_quietly(path, false).map_err(skip)?);
                let (content, size) = self.read_content(&file, u64::MAX, 0)?;
                node.content = content;
                node.size = size;
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_repo::InitOptions;
    use cairn_store::Store;

    use super::*;

    /// Entries listed and stat'ed, then deleted before they are read: each
    /// becomes a warning, and the walk goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_that_vanish_after_listing_are_warnings() {
        let repo = Repository::init(
            Store::memory(),
            b"pw",
            InitOptions::insecure_fast_for_tests(),
        )
        .await
        .expect("init");
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, sub) = (dir.path().join("file"), dir.path().join("sub"));
        std::fs::write(&file, b"here, then gone").expect("write");
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::write(sub.join("inner"), b"x").expect("write");
        let lstat = |p: &Path| std::fs::symlink_metadata(p).expect("lstat");
        let (mf, ms, md) = (lstat(&file), lstat(&sub), lstat(dir.path()));
        std::fs::remove_file(&file).expect("rm");
        std::fs::remove_dir_all(&sub).expect("rm");

        let walker =
            Walker::new(&repo, &Default::default(), Arc::new(Progress::default())).expect("walker");
        let rules = walker.select.root_rules(dir.path(), &md);
        let (walker, results) = tokio::task::spawn_blocking(move || {
            let a = walker.entry(&file, b"file".to_vec(), &mf, None, &rules);
            let b = walker.entry(&sub, b"sub".to_vec(), &ms, None, &rules);
            (walker, [a, b])
        })
        .await
        .expect("join");
        for r in results {
            assert!(matches!(r, Ok(None)), "{r:?}");
        }
        let warnings = walker.warnings.lock().expect("lock").clone();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .all(|w| w.message == "vanished during the backup"),
            "{warnings:?}"
        );
        walker.writer.finish().await.expect("finish");
    }

    /// A file deleted after it was checked for attributes, just before it
    /// is opened, is a warning too (the open fails).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_that_vanishes_before_it_is_opened_is_a_warning() {
        let repo = Repository::init(
            Store::memory(),
            b"pw",
            InitOptions::insecure_fast_for_tests(),
        )
        .await
        .expect("init");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        std::fs::write(&file, b"gone").expect("write");
        let m = std::fs::symlink_metadata(&file).expect("lstat");
        let md = std::fs::symlink_metadata(dir.path()).expect("lstat");
        std::fs::remove_file(&file).expect("rm");
        let walker =
            Walker::new(&repo, &Default::default(), Arc::new(Progress::default())).expect("walker");
        let rules = walker.select.root_rules(dir.path(), &md);
        let mut node = meta::node_from(b"file".to_vec(), &m);
        let (walker, r) = tokio::task::spawn_blocking(move || {
            let r = walker.fill(&file, &m, &mut node, None, &rules);
            (walker, r)
        })
        .await
        .expect("join");
        match r {
            Err(EntryError::Skip(w)) => assert!(w.message.contains("No such file"), "{w:?}"),
            _ => panic!("expected a skipped entry"),
        }
        walker.writer.finish().await.expect("finish");
    }
}
