//! Trees loaded ahead of the planner.
//!
//! Planning walks the snapshot depth first and needs each directory's tree
//! before it can go on. Loaded one at a time, every tree is a request and a
//! wait: from S3 without a local cache, the PVC-like dataset's 2,519 trees
//! took about 105 s of a 113 s restore (docs/PERFORMANCE-2026-12-01.md,
//! "Restores from S3 without a cache: trees loaded ahead"; trees of
//! remote repositories are now read in windows, `cairn-repo`'s
//! `windows.rs`). Here the subtrees of each directory the
//! planner enters are loaded on tasks of their own, in the planner's
//! order, and (for a walk of everything) the subtrees of each tree loaded
//! ahead as well, at most [`AHEAD`] trees loading or waiting across the
//! whole walk, so memory stays bounded however wide or deep the snapshot
//! is.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use cairn_core::Id;
use cairn_core::format::{NodeKind, Tree};
use cairn_repo::Repository;
use tokio::task::JoinHandle;

/// Trees loading or loaded and not yet planned, at most. Loads started
/// for the subtrees of trees loaded ahead stop at half of it: the rest is
/// kept for the directories the walk is in, whose subtrees it needs first
/// (the deeper ones are needed later, and taking every place, they left
/// the walk loading its next tree alone).
pub(super) const AHEAD: usize = 64;

type Load = JoinHandle<cairn_repo::Result<Tree>>;

/// Trees being loaded ahead; see the module docs. Dropped, it stops the
/// loads still running.
#[derive(Default)]
pub(super) struct Prefetch {
    inner: Arc<Inner>,
}

struct Inner {
    loads: Mutex<HashMap<Id, Load>>,
    /// Loads out at most: [`AHEAD`], or 0 where every tree is a cheap
    /// read (a local repository: loading ahead there only added memory).
    limit: usize,
    /// A loaded tree's own subtrees are loaded ahead too, while there is
    /// room: a walk of everything enters them all (with patterns, only
    /// the subtrees of the directories entered are).
    deep: bool,
}

impl Default for Inner {
    fn default() -> Inner {
        Inner {
            loads: Mutex::default(),
            limit: AHEAD,
            deep: false,
        }
    }
}

impl Inner {
    fn loads(&self) -> std::sync::MutexGuard<'_, HashMap<Id, Load>> {
        self.loads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts loading `id` unless it is loading already; false when
    /// `limit` are out.
    fn start(self: &Arc<Self>, repo: &Repository, id: Id, limit: usize) -> bool {
        let mut loads = self.loads();
        if loads.contains_key(&id) {
            return true;
        }
        if loads.len() >= limit {
            return false;
        }
        let (repo, inner) = (repo.clone(), self.clone());
        let load = tokio::spawn(async move {
            let tree = repo.load_tree(&id).await?;
            if inner.deep {
                let subtrees = tree.nodes.iter().filter(|n| n.kind == NodeKind::Dir);
                for sub in subtrees.filter_map(|n| n.subtree) {
                    if !inner.start(&repo, sub, inner.limit / 2) {
                        break;
                    }
                }
            }
            Ok(tree)
        });
        loads.insert(id, load);
        true
    }
}

impl Prefetch {
    /// Loads ahead for a walk of the whole snapshot: each loaded tree's
    /// subtrees too, while there is room.
    pub(super) fn deep() -> Prefetch {
        Prefetch {
            inner: Arc::new(Inner {
                deep: true,
                ..Inner::default()
            }),
        }
    }

    /// Loads nothing ahead: every tree is loaded when the walk needs it.
    pub(super) fn off() -> Prefetch {
        Prefetch {
            inner: Arc::new(Inner {
                limit: 0,
                ..Inner::default()
            }),
        }
    }

    /// Starts loading trees from the front of `queue` (a directory's
    /// subtrees, in the order they are planned) while fewer than
    /// [`AHEAD`] are out. Must run inside a tokio runtime.
    pub(super) fn top_up(&mut self, repo: &Repository, queue: &mut VecDeque<Id>) {
        while let Some(&id) = queue.front() {
            if !self.inner.start(repo, id, self.inner.limit) {
                return;
            }
            queue.pop_front();
        }
    }

    /// The tree `id`: the one loaded ahead, or loaded now.
    pub(super) async fn load(&mut self, repo: &Repository, id: &Id) -> cairn_repo::Result<Tree> {
        let ahead = self.inner.loads().remove(id);
        match ahead {
            Some(load) => load.await.unwrap_or_else(|e| {
                Err(cairn_repo::Error::Internal(format!("tree load task: {e}")))
            }),
            None => repo.load_tree(id).await,
        }
    }

    /// Stops loading `id` ahead: the walk will not enter it.
    pub(super) fn forget(&mut self, id: &Id) {
        if let Some(load) = self.inner.loads().remove(id) {
            load.abort();
        }
    }

    /// Loads started and not yet taken (for tests).
    #[cfg(test)]
    pub(super) fn pending(&self) -> usize {
        self.inner.loads().len()
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        for (_, load) in self.inner.loads().drain() {
            load.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::Kind;
    use cairn_core::format::{Node, NodeKind};
    use cairn_repo::BlobWriter;
    use cairn_testkit::memory_repository;

    /// More trees queued than go ahead: no more than [`AHEAD`] load at
    /// once, each comes back as stored, and taking one makes room for the
    /// next.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_ahead_trees_load_and_each_is_the_stored_one() {
        let repo = memory_repository(b"pw").await;
        let writer = BlobWriter::new(&repo).expect("writer");
        let (writer, trees) = tokio::task::spawn_blocking(move || {
            let trees: Vec<(Id, Tree)> = (0..(AHEAD as u32 + 8))
                .map(|i| {
                    let node = Node::new(format!("f{i}").into_bytes(), NodeKind::File);
                    let tree = Tree { nodes: vec![node] };
                    let plain = tree.encode().expect("encode");
                    (writer.add_blob(Kind::Tree, &plain).expect("add").0, tree)
                })
                .collect();
            (writer, trees)
        })
        .await
        .expect("join");
        writer.finish().await.expect("finish");

        let mut queue: VecDeque<Id> = trees.iter().map(|(id, _)| *id).collect();
        let mut ahead = Prefetch::deep();
        ahead.top_up(&repo, &mut queue);
        assert_eq!((ahead.pending(), queue.len()), (AHEAD, 8));
        let (id, tree) = &trees[0];
        assert_eq!(&ahead.load(&repo, id).await.expect("load"), tree);
        assert_eq!(ahead.pending(), AHEAD - 1);
        ahead.top_up(&repo, &mut queue);
        assert_eq!((ahead.pending(), queue.len()), (AHEAD, 7));
        ahead.forget(&trees[1].0);
        assert_eq!(ahead.pending(), AHEAD - 1);
        // Not loaded ahead (forgotten, or never queued): loaded now.
        for (id, tree) in &trees[1..] {
            assert_eq!(&ahead.load(&repo, id).await.expect("load"), tree);
        }
    }

    /// Loaded deep, a tree's subtrees start loading on their own; not
    /// deep (a walk with patterns), only what the walk queues does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deep_load_starts_the_subtrees_of_what_it_loaded() {
        let repo = memory_repository(b"pw").await;
        let writer = BlobWriter::new(&repo).expect("writer");
        let (writer, parent) = tokio::task::spawn_blocking(move || {
            let add = |tree: &Tree| {
                let plain = tree.encode().expect("encode");
                writer.add_blob(Kind::Tree, &plain).expect("add").0
            };
            let mut nodes = Vec::new();
            for i in 0..3u32 {
                let leaf = Node::new(format!("f{i}").into_bytes(), NodeKind::File);
                let mut dir = Node::new(format!("d{i}").into_bytes(), NodeKind::Dir);
                dir.subtree = Some(add(&Tree { nodes: vec![leaf] }));
                nodes.push(dir);
            }
            let parent = add(&Tree { nodes });
            (writer, parent)
        })
        .await
        .expect("join");
        writer.finish().await.expect("finish");
        for (mut ahead, started) in [(Prefetch::deep(), 3), (Prefetch::default(), 0)] {
            ahead.top_up(&repo, &mut VecDeque::from([parent]));
            // Deep, the parent's load starts its three subtrees before it
            // ends.
            let tree = ahead.load(&repo, &parent).await.expect("load");
            assert_eq!(tree.nodes.len(), 3);
            assert_eq!(ahead.pending(), started);
        }
        // Off (a local repository), nothing is loaded ahead.
        let mut off = Prefetch::off();
        off.top_up(&repo, &mut VecDeque::from([parent]));
        assert_eq!(off.pending(), 0);
        assert_eq!(off.load(&repo, &parent).await.expect("load").nodes.len(), 3);
    }
}
