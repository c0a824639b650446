//! The snapshot walk: every snapshot opens, every tree it reaches loads,
//! every data blob it references is indexed.

use std::collections::{HashMap, HashSet};

use cairn_core::format::{NodeKind, Snapshot, Tree};
use cairn_core::{Id, Kind};

use super::{CheckReport, Damage, View};
use crate::{Error, Repository, Result, paths};

pub(super) async fn check_snapshots(
    repo: &Repository,
    view: &View,
    report: &mut CheckReport,
    damage: &mut Damage,
) -> Result<()> {
    let ids = repo.snapshot_ids().await?;
    report.snapshots = ids.len();
    let mut trees: HashMap<Id, Option<Walked>> = HashMap::new();
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
        let mut seen: HashSet<Id> = HashSet::new();
        let mut stack = vec![snap.tree];
        while let Some(tid) = stack.pop() {
            if !seen.insert(tid) {
                continue;
            }
            damage.hit(&tid, sid);
            if let std::collections::hash_map::Entry::Vacant(slot) = trees.entry(tid) {
                let walked = match tree_in(repo, view, &tid).await {
                    Ok(plain) => walk_first(repo, view, &tid, &plain, damage),
                    Err(e) => Err(e),
                };
                let t = match walked {
                    Ok(w) => {
                        report.trees += 1;
                        Some(w)
                    }
                    Err(e) => {
                        let key = (format!("tree {tid}"), e.to_string());
                        damage.problems.entry(key.clone()).or_default();
                        damage.blobs.entry(tid).or_insert(key);
                        damage.hit(&tid, sid);
                        None
                    }
                };
                slot.insert(t);
            }
            let Some(Some(walked)) = trees.get(&tid) else {
                continue;
            };
            stack.extend(walked.subtrees.iter().copied());
            for c in &walked.damaged {
                damage.hit(c, sid);
            }
        }
    }
    Ok(())
}

/// What the walk keeps of a tree it loaded, to walk it again for the next
/// snapshot that reaches it: its subtrees, and those of its data blobs
/// with a problem. Every problem of a data blob is known by the time the
/// tree is first walked (the packs were checked before the walk, and a
/// blob missing from the index is found then), so the snapshots are
/// attributed as if the whole tree were kept, without keeping every
/// content id of every tree in memory.
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
