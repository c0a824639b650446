//! Which packs a restore reads, and warming them up before it does
//! (docs/ARCHIVAL.md, "Cold restores"): `cairn warm-up` and the first step
//! of a restore from archival storage.

use std::collections::BTreeSet;

use cairn_core::Id;
use cairn_core::format::{Node, NodeKind, Snapshot};
use cairn_repo::{Repository, WarmOptions, WarmReport};

use crate::Result;
use crate::browse::resolve;

/// Warms up the packs holding the file content under `paths` of
/// `snapshot` (everything when `paths` is empty), whatever the settings
/// say: see [`Repository::warm_packs`].
pub async fn warm_up(
    repo: &Repository,
    snapshot: &Snapshot,
    paths: &[Vec<u8>],
    opts: &WarmOptions,
) -> Result<WarmReport> {
    let packs = data_packs(repo, snapshot, paths).await?;
    Ok(repo.warm_packs(&packs, opts).await?)
}

/// Warms up the source packs a copy of `snapshots` reads, when the source
/// repository (or `opts.when`) asks for it, and waits for them: `None`
/// when there was nothing to do. A copy reads every data blob of a
/// snapshot it copies (the target keys its ids differently), so these are
/// all the data packs of those snapshots.
pub async fn warm_for_copy(
    src: &Repository,
    snapshots: &[&Snapshot],
    opts: &WarmOptions,
) -> Result<Option<WarmReport>> {
    if !src.should_warm(opts.when) {
        return Ok(None);
    }
    let mut packs = BTreeSet::new();
    for s in snapshots {
        packs.extend(data_packs(src, s, &[]).await?);
    }
    let mut opts = opts.clone();
    opts.wait = true;
    Ok(Some(src.warm_packs(&packs, &opts).await?))
}

/// The packs holding the data blobs of every file under `paths` of
/// `snapshot` (the whole snapshot when `paths` is empty): what restoring
/// those paths reads. Holds the packs and the trees seen, not the files.
pub async fn data_packs(
    repo: &Repository,
    snapshot: &Snapshot,
    paths: &[Vec<u8>],
) -> Result<BTreeSet<Id>> {
    let root = [Vec::new()];
    let paths = if paths.is_empty() { &root[..] } else { paths };
    let mut packs: BTreeSet<Id> = BTreeSet::new();
    // Exact and on local disk past 2^17 trees: a snapshot of millions of
    // directories does not hold them all in memory.
    let mut trees = repo.trees_visited();
    for path in paths {
        let node = resolve(repo, snapshot, path).await?;
        let mut stack: Vec<Id> = Vec::new();
        add_node(repo, &node, &mut packs, &mut stack);
        // Depth first over the trees, each loaded once: identical
        // directories share a tree.
        while let Some(id) = stack.pop() {
            if !trees.insert(id) {
                continue;
            }
            for n in repo.load_tree(&id).await?.nodes {
                add_node(repo, &n, &mut packs, &mut stack);
            }
        }
    }
    Ok(packs)
}

/// Notes the packs of a node's content blobs, or its subtree to visit. A
/// blob the index lacks is left out: reading it fails with its own error,
/// as without a warm-up.
fn add_node(repo: &Repository, node: &Node, packs: &mut BTreeSet<Id>, stack: &mut Vec<Id>) {
    match node.kind {
        NodeKind::Dir => stack.extend(node.subtree),
        // Block devices backed up with --read-special have content too.
        _ => packs.extend(packs_of(repo, node.content.iter())),
    }
}

/// The packs the index places `blobs` in. A blob the index lacks is left
/// out: reading it fails with its own error, as without a warm-up.
pub(crate) fn packs_of<'a>(repo: &Repository, blobs: impl Iterator<Item = &'a Id>) -> BTreeSet<Id> {
    let index = repo.index();
    blobs.filter_map(|b| index.get(b)).map(|l| l.pack).collect()
}
