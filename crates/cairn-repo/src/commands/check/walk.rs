//! The snapshot walk: every snapshot opens, every tree it reaches loads,
//! every data blob it references is indexed.
//!
//! Each tree is loaded and checked once, whatever the number of snapshots
//! and directories that reach it: the walk keeps the set of trees visited
//! (on local disk past a budget, `visited.rs`, ADR 0025) and, of the trees
//! it walked, only those that reach damage, to name every snapshot a
//! problem affects.

use std::collections::{HashMap, HashSet};

use cairn_core::format::{NodeKind, Snapshot, Tree};
use cairn_core::{Id, Kind};

use super::{CheckReport, Damage, View};
use crate::visited::{self, Visited};
use crate::{Error, Repository, Result, paths};

pub(super) async fn check_snapshots(
    repo: &Repository,
    view: &View,
    report: &mut CheckReport,
    damage: &mut Damage,
) -> Result<()> {
    let ids = repo.snapshot_ids().await?;
    report.snapshots = ids.len();
    // Removed when the walk ends; in memory without an index directory.
    let dir = match repo.private_dir("check") {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            tracing::warn!("check's trees visited kept in memory: {e}");
            None
        }
        None => None,
    };
    let mut walk = Walk {
        visited: Visited::spilling(
            dir.as_ref().map(|d| d.path().to_path_buf()),
            VISITED_IN_MEMORY.load(std::sync::atomic::Ordering::Relaxed),
        ),
        tainted: HashMap::new(),
    };
    for sid in ids {
        let obj = paths::snapshot(&sid);
        let snap = match snapshot_in(repo, view, &sid).await {
            Ok(s) => s,
            Err(Error::Store(e)) if e.is_not_found() => continue,
            Err(e) => {
                damage
                    .problems
                    .entry((obj, e.to_string()))
                    .or_default()
                    .insert(sid);
                continue;
            }
        };
        walk.new_trees(repo, view, snap.tree, report, damage)
            .await?;
        walk.attribute(snap.tree, sid, damage);
    }
    // A tree taken for new because the set could not be read was walked
    // twice: the counts would be wrong.
    walk.visited.verify()
}

/// Trees the walk holds in memory before they go to local disk:
/// [`visited::IN_MEMORY`]; tests lower it ([`check_trees_in_memory`]).
static VISITED_IN_MEMORY: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(visited::IN_MEMORY);

/// Sets how many trees a check's walk holds in memory before they go to
/// local disk: for tests, which have few.
#[doc(hidden)]
pub fn check_trees_in_memory(n: usize) {
    VISITED_IN_MEMORY.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// See the module docs.
struct Walk {
    visited: Visited,
    /// The trees walked that reach damage: a tree that does not load, is
    /// damaged itself, references a damaged data blob, or has a subtree
    /// that reaches damage. Empty in a sound repository.
    tainted: HashMap<Id, Walked>,
}

/// A tree on the walk's way down: what it lists and how far the walk went.
struct Frame {
    id: Id,
    walked: Walked,
    next: usize,
    /// Its subtrees that reach damage.
    tainted: Vec<Id>,
}

impl Walk {
    /// Loads and checks every tree under `root` not visited before, each
    /// after its subtrees (so that whether it reaches damage is known when
    /// it is done); the trees on the way down are the only ones held.
    async fn new_trees(
        &mut self,
        repo: &Repository,
        view: &View,
        root: Id,
        report: &mut CheckReport,
        damage: &mut Damage,
    ) -> Result<()> {
        let mut stack: Vec<Frame> = Vec::new();
        stack.extend(self.enter(repo, view, root, report, damage).await);
        while let Some(top) = stack.last_mut() {
            if let Some(&child) = top.walked.subtrees.get(top.next) {
                top.next += 1;
                match self.enter(repo, view, child, report, damage).await {
                    Some(frame) => stack.push(frame),
                    // Walked before (or not loaded): known already.
                    None if self.tainted.contains_key(&child) => {
                        if let Some(top) = stack.last_mut() {
                            top.tainted.push(child);
                        }
                    }
                    None => {}
                }
                continue;
            }
            let Some(done) = stack.pop() else { break };
            let hurt = !done.walked.damaged.is_empty()
                || !done.tainted.is_empty()
                || damage.blobs.contains_key(&done.id);
            if hurt {
                if let Some(parent) = stack.last_mut() {
                    parent.tainted.push(done.id);
                }
                let kept = Walked {
                    subtrees: done.tainted,
                    damaged: done.walked.damaged,
                };
                self.tainted.insert(done.id, kept);
            }
        }
        Ok(())
    }

    /// The tree `id` loaded and checked, if the walk has not visited it; a
    /// tree that does not load is a problem, and reaches damage.
    async fn enter(
        &mut self,
        repo: &Repository,
        view: &View,
        id: Id,
        report: &mut CheckReport,
        damage: &mut Damage,
    ) -> Option<Frame> {
        if !self.visited.insert(id) {
            return None;
        }
        let walked = match tree_in(repo, view, &id).await {
            Ok(plain) => walk_first(repo, view, &id, &plain, damage),
            Err(e) => Err(e),
        };
        match walked {
            Ok(walked) => {
                report.trees += 1;
                Some(Frame {
                    id,
                    walked,
                    next: 0,
                    tainted: Vec::new(),
                })
            }
            Err(e) => {
                let key = (format!("tree {id}"), e.to_string());
                damage.problems.entry(key.clone()).or_default();
                damage.blobs.entry(id).or_insert(key);
                self.tainted.insert(id, Walked::default());
                None
            }
        }
    }

    /// Names `snapshot` in every problem it reaches from `root`: a walk of
    /// the trees that reach damage only.
    fn attribute(&self, root: Id, snapshot: Id, damage: &mut Damage) {
        let mut seen: HashSet<Id> = HashSet::new();
        let mut stack = vec![root];
        while let Some(tid) = stack.pop() {
            let Some(walked) = self.tainted.get(&tid) else {
                continue;
            };
            if !seen.insert(tid) {
                continue;
            }
            damage.hit(&tid, snapshot);
            for c in &walked.damaged {
                damage.hit(c, snapshot);
            }
            stack.extend(walked.subtrees.iter().copied());
        }
    }
}

/// What the walk keeps of a tree: its subtrees and those of its data
/// blobs with a problem; once the tree is done, of its subtrees only those
/// that reach damage. Every problem of a data blob is known by the time
/// the tree is first walked (the packs were checked before the walk, and a
/// blob missing from the index is found then), so the snapshots are
/// attributed as if the whole tree were kept.
#[derive(Default)]
struct Walked {
    subtrees: Vec<Id>,
    damaged: Vec<Id>,
}

/// Checks that every data blob the tree `plain` (decoded once already by
/// [`tree_in`]) references is indexed, and what of it the walk keeps; a
/// node at a time, since a tree may list millions of chunks.
fn walk_first(
    repo: &Repository,
    view: &View,
    id: &Id,
    plain: &[u8],
    damage: &mut Damage,
) -> Result<Walked> {
    let mut walked = Walked {
        subtrees: Vec::new(),
        damaged: Vec::new(),
    };
    let visited = Tree::visit(plain, |node| {
        match node.kind {
            NodeKind::Dir => walked.subtrees.extend(node.subtree),
            NodeKind::File | NodeKind::BlockDevice => {
                for c in &node.content {
                    if view.locate(repo, c).is_none() {
                        let key = (
                            format!("data blob {c}"),
                            "referenced but not indexed".to_owned(),
                        );
                        damage.blobs.entry(*c).or_insert(key.clone());
                        damage.problems.entry(key).or_default();
                    }
                    if damage.blobs.contains_key(c) {
                        walked.damaged.push(*c);
                    }
                }
            }
            _ => {}
        }
        Ok::<(), std::convert::Infallible>(())
    });
    match visited {
        Ok(Ok(())) => Ok(walked),
        Ok(Err(never)) => match never {},
        Err(e) => Err(corrupt_tree(repo, view, id, e.to_string())),
    }
}

/// A tree that does not decode, at its indexed location.
fn corrupt_tree(repo: &Repository, view: &View, id: &Id, detail: String) -> Error {
    let pack = view.locate(repo, id).map(|l| l.pack).unwrap_or_default();
    Error::CorruptBlob {
        id: *id,
        pack,
        detail,
    }
}

/// A snapshot, from the view's store.
async fn snapshot_in(repo: &Repository, view: &View, id: &Id) -> Result<Snapshot> {
    match view.index {
        None => repo.load_snapshot(id).await,
        Some(_) => repo.load_snapshot_from(&view.store, id).await,
    }
}

/// A tree's plaintext, located in the view's index and read from its
/// store, never from the tree cache; decoded once to check it (the walk
/// decodes it again a node at a time instead of holding its nodes).
async fn tree_in(repo: &Repository, view: &View, id: &Id) -> Result<Vec<u8>> {
    let plain = if view.index.is_none() {
        repo.read_blob(Kind::Tree, id).await?
    } else {
        tree_from_view(repo, view, id).await?
    };
    match Tree::visit(&plain, |_| Ok::<(), std::convert::Infallible>(())) {
        Ok(_) => Ok(plain),
        Err(e) => Err(corrupt_tree(repo, view, id, e.to_string())),
    }
}

/// A tree's verified plaintext from the view's store.
async fn tree_from_view(repo: &Repository, view: &View, id: &Id) -> Result<Vec<u8>> {
    let loc = view
        .locate(repo, id)
        .ok_or(Error::BlobNotIndexed { id: *id })?;
    if loc.kind != Kind::Tree {
        return Err(Error::CorruptBlob {
            id: *id,
            pack: loc.pack,
            detail: format!("indexed as {} but referenced as a tree", loc.kind),
        });
    }
    let start = u64::from(loc.offset);
    let sealed = view
        .store
        .get_range(
            &paths::pack(&loc.pack),
            start..start + u64::from(loc.length),
        )
        .await?;
    repo.open_blob_owned(&loc, id, sealed)
}
