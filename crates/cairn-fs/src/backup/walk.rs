//! The parallel walk: one rayon task per directory entry, a subdirectory
//! inside its parent's task, trees stored bottom-up.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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
use crate::{Error, Progress, Result, Warning, at, meta, xattr};

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
    /// Which metadata show a file unchanged since the parent.
    pub(super) change_detection: super::ChangeDetection,
    /// Record access times as they are, even when nothing else changed.
    pub(super) exact_atime: bool,
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

/// `path` for messages when an entry is gone by the time it is opened.
fn vanished(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        std::io::Error::new(e.kind(), "vanished during the backup")
    } else {
        e
    }
}

/// Opens the entry `name` of `dir` for reading (see [`at::open_read`]) and
/// checks that it is still the inode `m` describes.
pub(super) fn open_same(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    m: &at::Meta,
    directory: bool,
) -> std::io::Result<OwnedFd> {
    let fd = at::open_read(dir, name, directory).map_err(vanished)?;
    if !at::same_inode(fd.as_fd(), m)? {
        return Err(std::io::Error::other(
            "replaced by another file during the backup",
        ));
    }
    Ok(fd)
}

/// Opens a directory given to back up (its path is the caller's, so
/// symlinks on the way are followed; the directory itself must not be one).
fn open_given_dir(p: &Path) -> Result<(OwnedFd, at::Meta)> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // Without updating its access time where the kernel allows it.
    let fd = match rustix::fs::open(p, flags | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => rustix::fs::open(p, flags, Mode::empty()),
        r => r,
    }
    .map_err(|e| Error::io(p, e.into()))?;
    let m = at::fstat(fd.as_fd()).map_err(|e| Error::io(p, e))?;
    Ok((fd, m))
}

/// The directory holding a path given to back up, opened as the caller
/// named it, and the path's last name.
fn open_given_parent(p: &Path) -> Result<(OwnedFd, Vec<u8>)> {
    use rustix::fs::{Mode, OFlags};
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return Err(Error::Invalid(format!(
            "{}: no name to back up",
            p.display()
        )));
    };
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd =
        rustix::fs::open(parent, flags, Mode::empty()).map_err(|e| Error::io(parent, e.into()))?;
    Ok((fd, name.as_bytes().to_vec()))
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
            change_detection: super::ChangeDetection::default(),
            exact_atime: false,
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
        // Local repositories: read here, without a round trip through
        // the async runtime for each of the parent's trees.
        if let Some(t) = self.repo.load_tree_now(&id) {
            return Some(t);
        }
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
                let (fd, m) = open_given_dir(p)?;
                let rules = self.select.root_rules(p, &m);
                self.backup_dir(fd.as_fd(), p, parent, &rules)
            }
            _ => {
                let parent = self.load_parent_tree(parent, Path::new("/"));
                let nodes: Vec<Option<Node>> = paths
                    .par_iter()
                    .map(|p| {
                        let (dir, name) = open_given_parent(p)?;
                        let old = parent.as_ref().and_then(|t| t.find(&name));
                        let (pinned, m) =
                            at::pin(dir.as_fd(), at::os(&name)).map_err(|e| Error::io(p, e))?;
                        let rules = self.select.root_rules(p, &m);
                        let e = Entry {
                            dir: dir.as_fd(),
                            path: p,
                            pinned: Some(pinned.as_fd()),
                            m: &m,
                        };
                        self.entry(e, name, old, &rules)
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

    /// Backs up the contents of the directory open as `dir` (at `path`);
    /// returns its tree id. `rules` are the selection rules in force for
    /// the directory's entries.
    fn backup_dir(
        &self,
        dir: BorrowedFd<'_>,
        path: &Path,
        parent: Option<Id>,
        rules: &DirRules,
    ) -> Result<Id> {
        let parent = self.load_parent_tree(parent, path);
        let names = match at::list(dir) {
            Ok(n) => n,
            Err(e) => {
                self.warn(path, format!("cannot list directory: {e}"));
                Vec::new()
            }
        };
        let rules = self
            .select
            .enter(dir, path, &names, rules, |p, m| self.warn(p, m));
        let nodes: Vec<Option<Node>> = names
            .into_par_iter()
            .map(|name| {
                self.progress.check()?;
                let path = path.join(at::os(&name));
                let old = parent.as_ref().and_then(|t| t.find(&name));
                // An entry the parent has is looked at without opening it:
                // unchanged, it needs nothing more (see `entry`).
                let looked = match old {
                    Some(_) => at::stat(dir, at::os(&name)).map(|m| (None, m)),
                    None => at::pin(dir, at::os(&name)).map(|(fd, m)| (Some(fd), m)),
                };
                let (pinned, m) = match looked {
                    Ok(p) => p,
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
                let e = Entry {
                    dir,
                    path: &path,
                    pinned: pinned.as_ref().map(|fd| fd.as_fd()),
                    m: &m,
                };
                self.entry(e, name, old, &rules)
            })
            .collect::<Result<_>>()?;
        self.save_tree(nodes.into_iter().flatten().collect())
    }

    /// Backs up one entry; `Ok(None)` when it is skipped with a warning.
    fn entry(
        &self,
        e: Entry<'_>,
        name: Vec<u8>,
        old: Option<&Node>,
        rules: &DirRules,
    ) -> Result<Option<Node>> {
        let path = e.path;
        let mut node = meta::node_from(name, e.m);
        // Looked at without opening it (see `backup_dir`): an entry whose
        // extended attributes or link must be read is pinned now, and its
        // metadata taken from the pinned inode, as when pinned at once.
        let (held, pinned_meta);
        let mut e = e;
        let reuse = old.is_some_and(|o| meta::same_xattrs(o, &node));
        let must_read = (!reuse && node.kind != NodeKind::Socket) || node.kind == NodeKind::Symlink;
        if e.pinned.is_none() && must_read {
            match at::pin_same(e.dir, at::os(&node.name), e.m).map_err(vanished) {
                Ok((fd, m)) => (held, pinned_meta) = (fd, m),
                Err(err) => {
                    self.warn(path, format!("cannot stat: {err}"));
                    return Ok(None);
                }
            }
            e.pinned = Some(held.as_fd());
            e.m = &pinned_meta;
            node = meta::node_from(std::mem::take(&mut node.name), e.m);
        }
        if let Some(o) = old.filter(|o| meta::same_xattrs(o, &node)) {
            node.xattrs = o.xattrs.clone();
        } else if let (Some(pinned), false) = (e.pinned, node.kind == NodeKind::Socket) {
            match xattr::read(pinned, true) {
                Ok(x) => node.xattrs = x,
                Err(e) => self.warn(path, format!("extended attributes not saved: {e}")),
            }
        }
        match self.fill(e, &mut node, old, rules) {
            Ok(()) => {
                if let (Some(o), false) = (old, self.exact_atime) {
                    meta::keep_parent_atime(&mut node, o);
                }
                Ok(Some(node))
            }
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
        e: Entry<'_>,
        node: &mut Node,
        old: Option<&Node>,
        rules: &DirRules,
    ) -> Result<(), EntryError> {
        let path = e.path;
        let skip = |e: std::io::Error| {
            EntryError::Skip(Warning {
                path: path.to_owned(),
                message: e.to_string(),
            })
        };
        match node.kind {
            NodeKind::File => self.fill_file(e, node, old)?,
            NodeKind::Dir => self.fill_dir(e, node, old, rules)?,
            NodeKind::Symlink => {
                // The link held by the pinned descriptor, whatever the name
                // points at now.
                let pinned = e
                    .pinned
                    .ok_or_else(|| skip(std::io::Error::other("a symlink reached unpinned")))?;
                node.link_target = rustix::fs::readlinkat(pinned, "", Vec::new())
                    .map_err(|e| skip(e.into()))?
                    .into_bytes();
            }
            NodeKind::Socket => {
                return Err(EntryError::Omit(
                    "socket left out: a socket has no content to restore",
                ));
            }
            // A device given as a path is always read; one met in the walk
            // only with --read-special.
            NodeKind::BlockDevice if self.select.read_special || rules.given => {
                let name = at::os(&node.name);
                let file = File::from(open_same(e.dir, name, e.m, false).map_err(skip)?);
                let (content, size) = self.read_content(&file, u64::MAX, 0)?;
                node.content = content;
                node.size = size;
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {}
        }
        Ok(())
    }

    /// A regular file's content: the parent's chunk list when unchanged,
    /// another name's when hard-linked, else read.
    fn fill_file(
        &self,
        e: Entry<'_>,
        node: &mut Node,
        old: Option<&Node>,
    ) -> Result<(), EntryError> {
        let (path, m) = (e.path, e.m);
        let skip = |e: std::io::Error| {
            EntryError::Skip(Warning {
                path: path.to_owned(),
                message: e.to_string(),
            })
        };
        let s = &self.stats;
        s.bytes_total.fetch_add(node.size, Ordering::Relaxed);
        // Asked of the writer: it answers once its session is announced and
        // the index reloaded, and only for packs that exist.
        let reusable = match old.filter(|o| meta::unchanged(o, node, self.change_detection)) {
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
        let name = at::os(&node.name);
        let file = File::from(open_same(e.dir, name, m, false).map_err(skip)?);
        let (content, size) =
            self.read_content(&file, node.size, m.blocks())
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
        Ok(())
    }

    /// A directory's tree: walked through a descriptor opened from its
    /// parent's, or empty when it cannot be listed or is a mount point left
    /// out by --one-file-system.
    fn fill_dir(
        &self,
        e: Entry<'_>,
        node: &mut Node,
        old: Option<&Node>,
        rules: &DirRules,
    ) -> Result<(), EntryError> {
        let path = e.path;
        let old_sub = old
            .filter(|o| o.kind == NodeKind::Dir)
            .and_then(|o| o.subtree);
        let rules = self.select.descend(path, e.m, rules);
        let fd = match rules
            .as_ref()
            .map(|_| open_same(e.dir, at::os(&node.name), e.m, true))
        {
            Some(Err(err)) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(EntryError::Skip(Warning {
                    path: path.to_owned(),
                    message: err.to_string(),
                }));
            }
            Some(Err(err)) => {
                // Kept as an empty directory, as one that cannot be listed.
                self.warn(path, format!("cannot list directory: {err}"));
                None
            }
            Some(Ok(fd)) => Some(fd),
            None => None,
        };
        let id = match (fd, rules) {
            (Some(fd), Some(rules)) => self
                .backup_dir(fd.as_fd(), path, old_sub, &rules)
                .map_err(EntryError::Fatal)?,
            // A mount point left out by --one-file-system: kept as an
            // empty directory, so it can be mounted on again.
            _ => self.save_tree(Vec::new()).map_err(EntryError::Fatal)?,
        };
        node.subtree = Some(id);
        let s = &self.stats;
        let counter = match old_sub {
            None => &s.dirs_new,
            Some(o) if o == id => &s.dirs_unchanged,
            Some(_) => &s.dirs_changed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// One entry met in the walk: the directory it is in (open), its path for
/// messages and patterns, an `O_PATH` descriptor of it (when it was
/// opened) and its metadata.
#[derive(Clone, Copy)]
pub(super) struct Entry<'a> {
    pub(super) dir: BorrowedFd<'a>,
    pub(super) path: &'a Path,
    pub(super) pinned: Option<BorrowedFd<'a>>,
    pub(super) m: &'a at::Meta,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_repo::InitOptions;
    use cairn_store::Store;

    use super::*;

    fn open_dir(p: &Path) -> OwnedFd {
        open_given_dir(p).expect("open").0
    }

    /// Entries listed and looked at, then deleted before they are read:
    /// each becomes a warning, and the walk goes on.
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
        let fd = open_dir(dir.path());
        let pin = |n: &str| at::pin(fd.as_fd(), n.as_ref()).expect("pin");
        let ((pf, mf), (ps, ms)) = (pin("file"), pin("sub"));
        let md = open_given_dir(dir.path()).expect("open").1;
        std::fs::remove_file(&file).expect("rm");
        std::fs::remove_dir_all(&sub).expect("rm");

        let walker =
            Walker::new(&repo, &Default::default(), Arc::new(Progress::default())).expect("walker");
        let rules = walker.select.root_rules(dir.path(), &md);
        let (walker, results) = tokio::task::spawn_blocking(move || {
            let a = Entry {
                dir: fd.as_fd(),
                path: &file,
                pinned: Some(pf.as_fd()),
                m: &mf,
            };
            let b = Entry {
                dir: fd.as_fd(),
                path: &sub,
                pinned: Some(ps.as_fd()),
                m: &ms,
            };
            let a = walker.entry(a, b"file".to_vec(), None, &rules);
            let b = walker.entry(b, b"sub".to_vec(), None, &rules);
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

    /// A file deleted after it was looked at, just before it is opened,
    /// is a warning too (the open fails).
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
        let fd = open_dir(dir.path());
        let (pinned, m) = at::pin(fd.as_fd(), "file".as_ref()).expect("pin");
        let md = open_given_dir(dir.path()).expect("open").1;
        std::fs::remove_file(&file).expect("rm");
        let walker =
            Walker::new(&repo, &Default::default(), Arc::new(Progress::default())).expect("walker");
        let rules = walker.select.root_rules(dir.path(), &md);
        let mut node = meta::node_from(b"file".to_vec(), &m);
        let (walker, r) = tokio::task::spawn_blocking(move || {
            let e = Entry {
                dir: fd.as_fd(),
                path: &file,
                pinned: Some(pinned.as_fd()),
                m: &m,
            };
            let r = walker.fill(e, &mut node, None, &rules);
            (walker, r)
        })
        .await
        .expect("join");
        match r {
            Err(EntryError::Skip(w)) => assert_eq!(w.message, "vanished during the backup"),
            _ => panic!("expected a skipped entry"),
        }
        walker.writer.finish().await.expect("finish");
    }

    /// A file replaced by a symlink after it was looked at is not read
    /// through the symlink: the open refuses it, and it is a warning.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_replaced_by_a_symlink_before_it_is_opened_is_not_followed() {
        let repo = Repository::init(
            Store::memory(),
            b"pw",
            InitOptions::insecure_fast_for_tests(),
        )
        .await
        .expect("init");
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        std::fs::write(&file, b"mine").expect("write");
        std::fs::write(outside.path().join("secret"), b"not mine").expect("write");
        let fd = open_dir(dir.path());
        let (pinned, m) = at::pin(fd.as_fd(), "file".as_ref()).expect("pin");
        let md = open_given_dir(dir.path()).expect("open").1;
        std::fs::remove_file(&file).expect("rm");
        std::os::unix::fs::symlink(outside.path().join("secret"), &file).expect("symlink");
        let walker =
            Walker::new(&repo, &Default::default(), Arc::new(Progress::default())).expect("walker");
        let rules = walker.select.root_rules(dir.path(), &md);
        let mut node = meta::node_from(b"file".to_vec(), &m);
        let (walker, r, node) = tokio::task::spawn_blocking(move || {
            let e = Entry {
                dir: fd.as_fd(),
                path: &file,
                pinned: Some(pinned.as_fd()),
                m: &m,
            };
            let r = walker.fill(e, &mut node, None, &rules);
            (walker, r, node)
        })
        .await
        .expect("join");
        match r {
            Err(EntryError::Skip(w)) => assert!(w.message.contains("symbolic links"), "{w:?}"),
            _ => panic!("expected a skipped entry, got content {:?}", node.content),
        }
        walker.writer.finish().await.expect("finish");
    }
}
