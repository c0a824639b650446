//! Comparing snapshots (`cairn diff`) and searching them (`cairn find`).
//!
//! Trees are content-addressed, so two directories with the same subtree
//! id are identical to the last byte and are skipped without being loaded.

use std::future::Future;
use std::pin::Pin;

use cairn_core::Id;
use cairn_core::format::{Node, NodeKind, Snapshot, Tree};
use cairn_repo::Repository;

use crate::browse::{Entry, join, walk};
use crate::restore::PathFilter;
use crate::{Result, resolve};

/// How an entry differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only in the newer snapshot.
    Added,
    /// Only in the older snapshot.
    Removed,
    /// In both, with differences listed in [`Change::what`].
    Changed,
}

/// One difference between two snapshots.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    /// `/`-separated path from the snapshot root, with a leading `/`.
    pub path: Vec<u8>,
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// For a changed entry, what changed: `type`, `content`, `size`,
    /// `mode`, `owner`, `mtime`, `xattrs`, `target` (symlink), `device`
    /// (device number), `links`.
    pub what: Vec<&'static str>,
}

/// What differs between two nodes of the same name (the subtree of a
/// directory is compared by walking it, not here).
fn node_changes(a: &Node, b: &Node) -> Vec<&'static str> {
    let mut what = Vec::new();
    if a.kind != b.kind {
        what.push("type");
        return what;
    }
    if a.content != b.content {
        what.push("content");
    }
    if a.size != b.size {
        what.push("size");
    }
    if a.mode != b.mode {
        what.push("mode");
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        what.push("owner");
    }
    if a.mtime != b.mtime {
        what.push("mtime");
    }
    if a.xattrs != b.xattrs {
        what.push("xattrs");
    }
    if a.link_target != b.link_target {
        what.push("target");
    }
    if a.rdev != b.rdev {
        what.push("device");
    }
    if a.links != b.links && a.kind != NodeKind::Dir {
        what.push("links");
    }
    what
}

/// The differences from snapshot `a` to snapshot `b`, depth first in name
/// order. An added or removed directory is listed with everything in it.
pub async fn diff(repo: &Repository, a: &Snapshot, b: &Snapshot) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_trees(repo, Some(a.tree), Some(b.tree), b"/".to_vec(), &mut out).await?;
    Ok(out)
}

async fn load(repo: &Repository, id: Option<Id>) -> Result<Tree> {
    Ok(match id {
        Some(id) => repo.load_tree(&id).await?,
        None => Tree { nodes: Vec::new() },
    })
}

fn diff_trees<'a>(
    repo: &'a Repository,
    a: Option<Id>,
    b: Option<Id>,
    prefix: Vec<u8>,
    out: &'a mut Vec<Change>,
) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        if a == b {
            return Ok(());
        }
        let (ta, tb) = (load(repo, a).await?, load(repo, b).await?);
        let (mut i, mut j) = (0, 0);
        while i < ta.nodes.len() || j < tb.nodes.len() {
            let order = match (ta.nodes.get(i), tb.nodes.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let (old, new) = match order {
                std::cmp::Ordering::Less => {
                    i += 1;
                    (Some(&ta.nodes[i - 1]), None)
                }
                std::cmp::Ordering::Greater => {
                    j += 1;
                    (None, Some(&tb.nodes[j - 1]))
                }
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                    (Some(&ta.nodes[i - 1]), Some(&tb.nodes[j - 1]))
                }
            };
            let name = old.or(new).map(|n| n.name.clone()).unwrap_or_default();
            let path = join(&prefix, &name);
            let sub = |n: Option<&Node>| {
                n.filter(|n| n.kind == NodeKind::Dir)
                    .and_then(|n| n.subtree)
            };
            match (old, new) {
                (Some(o), Some(n)) => {
                    let what = node_changes(o, n);
                    if !what.is_empty() {
                        out.push(Change {
                            path: path.clone(),
                            kind: ChangeKind::Changed,
                            what,
                        });
                    }
                }
                (o, _) => out.push(Change {
                    path: path.clone(),
                    kind: if o.is_some() {
                        ChangeKind::Removed
                    } else {
                        ChangeKind::Added
                    },
                    what: Vec::new(),
                }),
            }
            let (sa, sb) = (sub(old), sub(new));
            if sa.is_some() || sb.is_some() {
                diff_trees(repo, sa, sb, path, out).await?;
            }
        }
        Ok(())
    })
}

/// The entries of `snapshot` whose path matches `pattern` (a glob; without
/// `/` it matches names at any depth, with `/` whole paths from the root).
pub async fn find(repo: &Repository, snapshot: &Snapshot, pattern: &str) -> Result<Vec<Entry>> {
    let filter = PathFilter::new(&[pattern.to_owned()], &[])?;
    let root = resolve(repo, snapshot, b"/").await?;
    Ok(walk(repo, &root, b"/", true)
        .await?
        .into_iter()
        .filter(|e| filter.included(&e.path))
        .collect())
}
