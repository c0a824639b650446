//! Inode numbers for what the kernel has looked up: the same (parent, name)
//! always gets the same number while mounted, so `find`, `cp -a` and the
//! kernel's caches see a stable tree. Numbers are never reused; the table
//! grows with the entries visited, like restic's and rustic's.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cairn::{Node, Tree};

use super::content::ChunkMap;

/// The root of the mount.
pub(crate) const ROOT: u64 = 1;

/// What an inode stands for.
#[derive(Debug, Clone)]
pub(crate) enum Inode {
    /// A directory or link of the layout, by its path from the root: looked
    /// up in the current layout at each use, so a refresh that drops it
    /// makes it vanish.
    Layout(Vec<Vec<u8>>),
    /// An entry of a snapshot's tree (or a snapshot's root directory).
    Node(Arc<NodeInode>),
}

/// A tree entry with what was loaded for it, kept while mounted.
#[derive(Debug)]
pub(crate) struct NodeInode {
    /// The entry as recorded.
    pub(crate) node: Node,
    /// A directory's tree, once listed.
    pub(crate) tree: OnceLock<Arc<Tree>>,
    /// A file's chunk map, once read.
    pub(crate) chunks: OnceLock<Arc<ChunkMap>>,
}

impl NodeInode {
    pub(crate) fn new(node: Node) -> Arc<NodeInode> {
        Arc::new(NodeInode {
            node,
            tree: OnceLock::new(),
            chunks: OnceLock::new(),
        })
    }
}

/// The table: inode `n` is at index `n - 1`.
#[derive(Debug)]
pub(crate) struct Inodes {
    table: Vec<(u64, Inode)>,
    names: HashMap<(u64, Vec<u8>), u64>,
}

impl Inodes {
    /// A table holding only the root, a layout directory.
    pub(crate) fn new() -> Inodes {
        Inodes {
            table: vec![(ROOT, Inode::Layout(Vec::new()))],
            names: HashMap::new(),
        }
    }

    /// The inode numbered `ino`, if there is one.
    pub(crate) fn get(&self, ino: u64) -> Option<Inode> {
        let i = usize::try_from(ino.checked_sub(1)?).ok()?;
        self.table.get(i).map(|(_, inode)| inode.clone())
    }

    /// The parent of `ino` (the root is its own parent).
    pub(crate) fn parent(&self, ino: u64) -> u64 {
        ino.checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.table.get(i))
            .map_or(ROOT, |(parent, _)| *parent)
    }

    /// The number of `name` in `parent`, made with `make` the first time.
    pub(crate) fn child(&mut self, parent: u64, name: &[u8], make: impl FnOnce() -> Inode) -> u64 {
        if let Some(&ino) = self.names.get(&(parent, name.to_vec())) {
            return ino;
        }
        self.table.push((parent, make()));
        let ino = self.table.len() as u64;
        self.names.insert((parent, name.to_vec()), ino);
        ino
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_its_number() {
        let mut inodes = Inodes::new();
        let layout = |p: &str| Inode::Layout(vec![p.as_bytes().to_vec()]);
        let ids = inodes.child(ROOT, b"ids", || layout("ids"));
        let tags = inodes.child(ROOT, b"tags", || layout("tags"));
        assert_eq!((ids, tags), (2, 3));
        assert_eq!(inodes.child(ROOT, b"ids", || layout("other")), ids);
        assert!(matches!(inodes.get(ids), Some(Inode::Layout(p)) if p == [b"ids".to_vec()]));
        assert_eq!(inodes.parent(ids), ROOT);
        assert_eq!(inodes.parent(ROOT), ROOT);
        assert!(inodes.get(0).is_none());
        assert!(inodes.get(4).is_none());
    }
}
