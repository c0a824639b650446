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
    let mut trees: HashMap<Id, Option<Tree>> = HashMap::new();
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
                let t = match tree_in(repo, view, &tid).await {
                    Ok(t) => {
                        report.trees += 1;
                        Some(t)
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
            let Some(Some(tree)) = trees.get(&tid) else {
                continue;
            };
            for node in &tree.nodes {
                match node.kind {
                    NodeKind::Dir => stack.extend(node.subtree),
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
                            damage.hit(c, sid);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// A snapshot, from the view's store.
async fn snapshot_in(repo: &Repository, view: &View, id: &Id) -> Result<Snapshot> {
    match view.index {
        None => repo.load_snapshot(id).await,
        Some(_) => repo.load_snapshot_from(&view.store, id).await,
    }
}

/// A tree, located in the view's index and read from its store, never
/// from the tree cache.
async fn tree_in(repo: &Repository, view: &View, id: &Id) -> Result<Tree> {
    if view.index.is_none() {
        return repo.load_tree(id).await;
    }
    let loc = view
        .locate(repo, id)
        .ok_or(Error::BlobNotIndexed { id: *id })?;
    let corrupt = |detail: String| Error::CorruptBlob {
        id: *id,
        pack: loc.pack,
        detail,
    };
    if loc.kind != Kind::Tree {
        return Err(corrupt(format!(
            "indexed as {} but referenced as a tree",
            loc.kind
        )));
    }
    let start = u64::from(loc.offset);
    let sealed = view
        .store
        .get_range(
            &paths::pack(&loc.pack),
            start..start + u64::from(loc.length),
        )
        .await?;
    let plain = repo.open_blob(&loc, id, &sealed)?;
    Tree::decode(&plain).map_err(|e| corrupt(e.to_string()))
}
