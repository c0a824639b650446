//! `cairn mount`: a read-only FUSE file system of a repository.
//!
//! [`MountFs`] answers the kernel from three parts: the layout of
//! snapshots by id, time, host, tag and claim ([`layout`], rebuilt from the
//! snapshot list at most once per refresh interval), the inode table
//! ([`inodes`]), and file content read chunk by chunk through a bounded
//! cache ([`content`], [`read`]). The FUSE callbacks ([`fs`]) only
//! translate; everything that can fail returns an errno.

mod attr;
mod content;
mod fs;
mod inodes;
mod layout;
mod read;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cairn::layers::core::format::Xattr;
use cairn::{Id, Repository};
use fuser::{Errno, FileAttr, FileType};

use self::attr::Owner;
use self::content::ChunkCache;
use self::inodes::{Inode, Inodes, NodeInode};
use self::layout::Entry;

/// What the mount fetched and served, reported when it ends.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Chunks fetched from the repository and opened.
    pub(crate) chunks_fetched: AtomicU64,
    /// Plaintext bytes of those chunks.
    pub(crate) chunk_bytes_fetched: AtomicU64,
    /// Chunk reads served from the cache.
    pub(crate) chunk_cache_hits: AtomicU64,
    /// Times the snapshot list was read again.
    pub(crate) refreshes: AtomicU64,
}

impl Stats {
    pub(crate) fn json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "chunks_fetched": get(&self.chunks_fetched),
            "chunk_bytes_fetched": get(&self.chunk_bytes_fetched),
            "chunk_cache_hits": get(&self.chunk_cache_hits),
            "refreshes": get(&self.refreshes),
        })
    }
}

/// How to mount.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Bytes of opened chunks to keep.
    pub(crate) cache_size: u64,
    /// The snapshot list is read again when a layout directory is looked
    /// at and the last read is older than this.
    pub(crate) refresh_every: Duration,
}

struct LayoutState {
    root: Arc<layout::Dir>,
    refreshed: Instant,
}

/// The file system; `Sync`, as the kernel's requests may come from
/// several threads.
pub(crate) struct MountFs {
    repo: Repository,
    runtime: tokio::runtime::Handle,
    opts: Options,
    owner: Owner,
    inodes: Mutex<Inodes>,
    layout: Mutex<LayoutState>,
    cache: Mutex<ChunkCache>,
    /// Chunks being fetched, each with a lock its fetcher holds.
    fetching: Mutex<HashMap<Id, Arc<Mutex<()>>>>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for MountFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountFs").field("opts", &self.opts).finish()
    }
}

/// Locks a mutex; a panic elsewhere while holding it leaves data that is
/// still consistent (every update is a single insert), so it is used on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reports a failure on stderr and answers the kernel with EIO: a damaged
/// or missing blob, or storage that does not answer.
fn io_error(what: &str, e: impl std::fmt::Display) -> Errno {
    eprintln!("cairn mount: {what}: {e}");
    Errno::EIO
}

/// Reads the index again (backups since the last read added blobs) and
/// the snapshot list, and lays them out.
async fn load_layout(repo: &Repository) -> cairn::layers::repo::Result<layout::Dir> {
    repo.reload_index().await?;
    let snaps = repo.list_snapshots().await?;
    Ok(layout::build(&snaps))
}

impl MountFs {
    /// A file system over `repo`, whose snapshot list is read now; blocking
    /// calls into the repository go through `runtime`.
    pub(crate) async fn new(
        repo: Repository,
        runtime: tokio::runtime::Handle,
        opts: Options,
    ) -> anyhow::Result<MountFs> {
        let snaps = repo.list_snapshots().await?;
        Ok(MountFs {
            layout: Mutex::new(LayoutState {
                root: Arc::new(layout::build(&snaps)),
                refreshed: Instant::now(),
            }),
            repo,
            runtime,
            owner: Owner::current(),
            inodes: Mutex::new(Inodes::new()),
            cache: Mutex::new(ChunkCache::new(opts.cache_size)),
            fetching: Mutex::new(HashMap::new()),
            stats: Arc::new(Stats::default()),
            opts,
        })
    }

    /// The counters, shared with whoever reports them.
    pub(crate) fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The current layout; read again first when `refresh` is asked and
    /// the last read is older than the interval. A failed read keeps the
    /// previous layout.
    fn layout(&self, refresh: bool) -> Arc<layout::Dir> {
        let mut state = lock(&self.layout);
        if refresh && state.refreshed.elapsed() >= self.opts.refresh_every {
            match self.runtime.block_on(load_layout(&self.repo)) {
                Ok(root) => state.root = Arc::new(root),
                Err(e) => eprintln!("cairn mount: cannot refresh the snapshot list: {e}"),
            }
            state.refreshed = Instant::now();
            self.stats.refreshes.fetch_add(1, Ordering::Relaxed);
        }
        state.root.clone()
    }

    /// Whether what the kernel learns about `ino` may change with a
    /// refresh: the layout's entries, snapshot roots among them.
    pub(crate) fn is_layout(&self, ino: u64) -> bool {
        let inodes = lock(&self.inodes);
        let layout = |i| matches!(inodes.get(i), Some(Inode::Layout(_)));
        layout(ino) || layout(inodes.parent(ino))
    }

    fn inode(&self, ino: u64) -> Result<Inode, Errno> {
        lock(&self.inodes).get(ino).ok_or(Errno::ENOENT)
    }

    /// The current layout (read again first if `refresh` and due) and the
    /// directory at `path` in it, for `f`.
    fn in_layout_dir<T>(
        &self,
        path: &[Vec<u8>],
        refresh: bool,
        f: impl FnOnce(&layout::Dir) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let root = self.layout(refresh);
        match path.is_empty() {
            true => f(&root),
            false => match root.get(path) {
                Some(Entry::Dir(d)) => f(d),
                Some(_) => Err(Errno::ENOTDIR),
                None => Err(Errno::ENOENT),
            },
        }
    }

    /// The attributes of inode `ino`.
    pub(crate) fn getattr(&self, ino: u64) -> Result<FileAttr, Errno> {
        match self.inode(ino)? {
            Inode::Node(n) => Ok(attr::of_node(ino, &n.node)),
            Inode::Layout(path) => {
                let root = self.layout(false);
                let entry = match path.is_empty() {
                    true => None,
                    false => Some(root.get(&path).ok_or(Errno::ENOENT)?),
                };
                Ok(match entry {
                    None => self.owner.layout(ino, None, root.time),
                    Some(Entry::Dir(d)) => self.owner.layout(ino, None, d.time),
                    Some(Entry::Link(t)) => self.owner.layout(ino, Some(t.len()), root.time),
                    // Snapshot roots are node inodes, never layout ones.
                    Some(Entry::Snapshot(_)) => return Err(Errno::ENOENT),
                })
            }
        }
    }

    /// Looks `name` up in directory `parent`: its inode and attributes.
    pub(crate) fn lookup(&self, parent: u64, name: &[u8]) -> Result<FileAttr, Errno> {
        let ino = match self.inode(parent)? {
            Inode::Layout(path) => {
                // A name the layout lacks may be a snapshot taken since
                // the last read: only then is it worth reading again.
                let find = |refresh| {
                    self.in_layout_dir(&path, refresh, |dir| {
                        let entry = dir.entries.get(name).ok_or(Errno::ENOENT)?;
                        Ok(self.layout_child(parent, &path, name, entry))
                    })
                };
                match find(false) {
                    Err(Errno::ENOENT) => find(true)?,
                    found => found?,
                }
            }
            Inode::Node(n) => {
                let tree = self.tree(&n)?;
                let node = tree.find(name).ok_or(Errno::ENOENT)?;
                lock(&self.inodes).child(parent, name, || Inode::Node(NodeInode::new(node.clone())))
            }
        };
        self.getattr(ino)
    }

    /// The inode of `name`, an entry of layout directory `path`.
    fn layout_child(&self, parent: u64, path: &[Vec<u8>], name: &[u8], entry: &Entry) -> u64 {
        lock(&self.inodes).child(parent, name, || match entry {
            Entry::Snapshot(s) => {
                let mut root = cairn::Node::new(name.to_vec(), cairn::NodeKind::Dir);
                root.subtree = Some(s.tree);
                root.mode = 0o555;
                (root.uid, root.gid) = (self.owner.uid, self.owner.gid);
                (root.mtime, root.atime, root.ctime) = (s.time, s.time, s.time);
                Inode::Node(NodeInode::new(root))
            }
            Entry::Dir(_) | Entry::Link(_) => {
                let mut p = path.to_vec();
                p.push(name.to_vec());
                Inode::Layout(p)
            }
        })
    }

    /// A directory's tree, loaded once.
    fn tree(&self, n: &NodeInode) -> Result<Arc<cairn::Tree>, Errno> {
        if let Some(t) = n.tree.get() {
            return Ok(t.clone());
        }
        let (cairn::NodeKind::Dir, Some(id)) = (n.node.kind, n.node.subtree) else {
            return Err(Errno::ENOTDIR);
        };
        let tree = self
            .runtime
            .block_on(self.repo.load_tree(&id))
            .map_err(|e| io_error(&format!("tree {id}"), e))?;
        Ok(n.tree.get_or_init(|| Arc::new(tree)).clone())
    }

    /// The entries of directory `ino` with their inodes and types, `.`
    /// and `..` first. A layout directory is read again first if `refresh`
    /// (the start of a listing, not its continuation) and due.
    pub(crate) fn readdir(
        &self,
        ino: u64,
        refresh: bool,
    ) -> Result<Vec<(u64, FileType, Vec<u8>)>, Errno> {
        let parent = lock(&self.inodes).parent(ino);
        let mut out = vec![
            (ino, FileType::Directory, b".".to_vec()),
            (parent, FileType::Directory, b"..".to_vec()),
        ];
        match self.inode(ino)? {
            Inode::Layout(path) => {
                self.in_layout_dir(&path, refresh, |dir| {
                    for (name, entry) in &dir.entries {
                        let child = self.layout_child(ino, &path, name, entry);
                        let kind = match entry {
                            Entry::Link(_) => FileType::Symlink,
                            Entry::Dir(_) | Entry::Snapshot(_) => FileType::Directory,
                        };
                        out.push((child, kind, name.clone()));
                    }
                    Ok(())
                })?;
            }
            Inode::Node(n) => {
                let tree = self.tree(&n)?;
                let mut inodes = lock(&self.inodes);
                for node in &tree.nodes {
                    let child = inodes.child(ino, &node.name, || {
                        Inode::Node(NodeInode::new(node.clone()))
                    });
                    out.push((child, attr::file_type(node), node.name.clone()));
                }
            }
        }
        Ok(out)
    }

    /// A symlink's target.
    pub(crate) fn readlink(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        match self.inode(ino)? {
            Inode::Node(n) if n.node.kind == cairn::NodeKind::Symlink => {
                Ok(n.node.link_target.clone())
            }
            Inode::Layout(path) => match self.layout(false).get(&path) {
                Some(Entry::Link(t)) => Ok(t.clone()),
                Some(_) => Err(Errno::EINVAL),
                None => Err(Errno::ENOENT),
            },
            Inode::Node(_) => Err(Errno::EINVAL),
        }
    }

    /// The recorded extended attributes of `ino` (none for the layout).
    pub(crate) fn xattrs(&self, ino: u64) -> Result<Vec<Xattr>, Errno> {
        Ok(match self.inode(ino)? {
            Inode::Node(n) => n.node.xattrs.clone(),
            Inode::Layout(_) => Vec::new(),
        })
    }
}
