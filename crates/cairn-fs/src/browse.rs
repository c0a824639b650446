//! Finding and listing paths inside a snapshot.

use std::future::Future;
use std::pin::Pin;

use cairn_core::Id;
use cairn_core::format::{Node, NodeKind, Snapshot};
use cairn_repo::Repository;

use crate::{Error, Result};

/// An entry found by [`walk`]: its path inside the snapshot and its node.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `/`-separated path relative to the snapshot root.
    pub path: Vec<u8>,
    /// The entry.
    pub node: Node,
}

/// The node at `path` (`/`-separated, leading `/` optional; empty or `/` is
/// the root, returned as a directory node with an empty name).
pub async fn resolve(repo: &Repository, snapshot: &Snapshot, path: &[u8]) -> Result<Node> {
    let mut node = Node::new(Vec::new(), NodeKind::Dir);
    node.subtree = Some(snapshot.tree);
    node.mode = 0o755;
    for comp in path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        let not_found = || {
            Error::Invalid(format!(
                "{}: no such path in the snapshot",
                String::from_utf8_lossy(path)
            ))
        };
        let sub = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(id)) => id,
            _ => return Err(not_found()),
        };
        let tree = repo.load_tree(&sub).await?;
        node = tree.find(comp).cloned().ok_or_else(not_found)?;
    }
    Ok(node)
}

/// Lists what is below a directory node, depth first in name order (each
/// directory's entries right after it); with `recursive`, the whole subtree.
/// Paths are `prefix` joined with the entry names.
pub async fn walk(
    repo: &Repository,
    dir: &Node,
    prefix: &[u8],
    recursive: bool,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    if let (NodeKind::Dir, Some(id)) = (dir.kind, dir.subtree) {
        walk_into(repo, id, prefix.to_vec(), recursive, &mut out).await?;
    }
    Ok(out)
}

/// Joins a snapshot path and a name with one `/`.
pub(crate) fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = prefix.to_vec();
    if !p.is_empty() && !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn walk_into<'a>(
    repo: &'a Repository,
    id: Id,
    prefix: Vec<u8>,
    recursive: bool,
    out: &'a mut Vec<Entry>,
) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>> {
    Box::pin(async move {
        let tree = repo.load_tree(&id).await?;
        for node in tree.nodes {
            let path = join(&prefix, &node.name);
            let sub = node
                .subtree
                .filter(|_| recursive && node.kind == NodeKind::Dir);
            out.push(Entry {
                path: path.clone(),
                node,
            });
            if let Some(s) = sub {
                walk_into(repo, s, path, true, out).await?;
            }
        }
        Ok(())
    })
}
