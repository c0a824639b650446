//! Snapshots copied from one repository into another (`cairn copy`).
//!
//! Blob ids are keyed per repository, so nothing can be copied as it is:
//! every tree is rewritten with the target's ids. When both repositories
//! cut chunks with the same parameters (`init --copy-chunker-params-from`),
//! each chunk is opened and sealed again with the target's keys, and the
//! target stores only the chunks it lacks. Otherwise each file's content is
//! read in order and cut again with the target's parameters.
//!
//! What was copied before is not read again: a snapshot whose copy exists
//! in the target is skipped, and the copy of a snapshot's parent maps the
//! parent's trees and chunks to the target's, so an incremental copy reads
//! only what changed since.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use cairn_core::format::{Node, NodeKind, Snapshot};
use cairn_core::{Id, Kind};
use cairn_repo::{Repository, WriterStats};
use rayon::prelude::*;

use super::walk::{EntryError, Walker};
use crate::{Error, Progress, Result};

/// Source ids already known in the target: trees, files' chunk lists, and
/// chunks (the latter only when both repositories share chunker
/// parameters).
#[derive(Debug, Default)]
pub struct CopyMemo {
    trees: Mutex<HashMap<Id, Id>>,
    files: Mutex<HashMap<Vec<Id>, Vec<Id>>>,
    chunks: Mutex<HashMap<Id, Id>>,
}

/// One snapshot copied.
#[derive(Debug, Clone)]
pub struct CopyOutcome {
    /// Its id in the source.
    pub source_id: Id,
    /// Its id in the target.
    pub target_id: Id,
    /// What the target's writer stored for it.
    pub writer: WriterStats,
}

/// Whether `a` (in one repository) and `b` (in another) record the same
/// backup: same time, host, user, paths, source and layout. Tags are left
/// out, as a user may change them on either side.
pub fn same_backup(a: &Snapshot, b: &Snapshot) -> bool {
    a.time == b.time
        && a.hostname == b.hostname
        && a.username == b.username
        && a.paths == b.paths
        && a.source == b.source
        && a.root_layout == b.root_layout
}

/// Whether chunks can be re-sealed as they are (same cut points).
pub fn same_chunking(src: &Repository, dst: &Repository) -> bool {
    src.config().chunker == dst.config().chunker
}

/// Records in `memo` that source tree `src` was copied as target tree
/// `dst`, and, walking both, every subtree and (with equal chunking) every
/// chunk they share by position. Entries that differ are left out.
pub async fn learn_copied(
    src: &Repository,
    dst: &Repository,
    memo: &CopyMemo,
    src_tree: Id,
    dst_tree: Id,
) -> Result<()> {
    let chunks = same_chunking(src, dst);
    let mut stack = vec![(src_tree, dst_tree)];
    while let Some((s, d)) = stack.pop() {
        if lock(&memo.trees).insert(s, d).is_some() {
            continue;
        }
        let (a, b) = (src.load_tree(&s).await?, dst.load_tree(&d).await?);
        for (x, y) in a.nodes.iter().zip(&b.nodes) {
            if x.name != y.name || x.kind != y.kind {
                continue;
            }
            if let (Some(sx), Some(sy)) = (x.subtree, y.subtree) {
                stack.push((sx, sy));
            }
            if x.size == y.size && !x.content.is_empty() {
                lock(&memo.files).insert(x.content.clone(), y.content.clone());
            }
            if chunks && x.content.len() == y.content.len() {
                let mut map = lock(&memo.chunks);
                map.extend(x.content.iter().copied().zip(y.content.iter().copied()));
            }
        }
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Copies snapshot `id` of `src` into `dst` as a new snapshot whose parent
/// is `parent` (the copy of the source's parent, if known). Saves the
/// snapshot only after every blob it needs is stored and indexed.
pub async fn copy_snapshot(
    src: &Repository,
    dst: &Repository,
    id: Id,
    parent: Option<Id>,
    memo: Arc<CopyMemo>,
    progress: Arc<Progress>,
) -> Result<CopyOutcome> {
    let snap = src.load_snapshot(&id).await?;
    let walker = Walker::new(dst, &super::Selection::default(), progress.clone())?;
    let copier = Copier {
        src: src.clone(),
        reseal: same_chunking(src, dst),
        memo,
    };
    let root = snap.tree;
    let (walker, tree) = tokio::task::spawn_blocking(move || {
        let tree = copier.tree(&walker, root);
        (walker, tree)
    })
    .await
    .map_err(|e| Error::Invalid(format!("copy task failed: {e}")))?;
    let finished = walker.writer.finish().await;
    let (tree, writer) = match (tree, finished) {
        (_, Err(e)) => return Err(e.into()),
        (Err(e), _) => return Err(e),
        (Ok(t), Ok(w)) => (t, w),
    };
    progress.check()?;
    let copy = Snapshot {
        tree,
        parent,
        ..snap
    };
    let target_id = dst.save_snapshot(&copy).await?;
    Ok(CopyOutcome {
        source_id: id,
        target_id,
        writer,
    })
}

struct Copier {
    src: Repository,
    reseal: bool,
    memo: Arc<CopyMemo>,
}

impl Copier {
    fn tree(&self, w: &Walker, id: Id) -> Result<Id> {
        if let Some(done) = lock(&self.memo.trees).get(&id) {
            return Ok(*done);
        }
        let tree = w.handle.block_on(self.src.load_tree(&id))?;
        let nodes: Vec<Node> = tree
            .nodes
            .into_par_iter()
            .map(|mut node| {
                w.progress.check()?;
                if let Some(sub) = node.subtree {
                    node.subtree = Some(self.tree(w, sub)?);
                }
                if matches!(node.kind, NodeKind::File | NodeKind::BlockDevice) {
                    node.content = self.content(w, &node.content)?;
                    w.progress.add(1, node.size);
                }
                Ok(node)
            })
            .collect::<Result<_>>()?;
        let copied = w.save_tree(nodes)?;
        lock(&self.memo.trees).insert(id, copied);
        Ok(copied)
    }

    fn content(&self, w: &Walker, ids: &[Id]) -> Result<Vec<Id>> {
        if let Some(done) = lock(&self.memo.files).get(ids) {
            return Ok(done.clone());
        }
        let copied = self.copy_content(w, ids)?;
        lock(&self.memo.files).insert(ids.to_vec(), copied.clone());
        Ok(copied)
    }

    fn copy_content(&self, w: &Walker, ids: &[Id]) -> Result<Vec<Id>> {
        if self.reseal {
            return ids.par_iter().map(|id| self.chunk(w, id)).collect();
        }
        let reader = Chunks {
            src: &self.src,
            handle: &w.handle,
            ids,
            next: 0,
            buf: Vec::new(),
            pos: 0,
        };
        let mut out = Vec::new();
        w.chunk_reader(reader, &mut out).map_err(|e| match e {
            EntryError::Fatal(e) => e,
            EntryError::Skip(warning) => Error::Invalid(warning.message),
            EntryError::Omit(why) => Error::Invalid(why.to_owned()),
        })?;
        Ok(out)
    }

    fn chunk(&self, w: &Walker, id: &Id) -> Result<Id> {
        if let Some(done) = lock(&self.memo.chunks).get(id) {
            return Ok(*done);
        }
        let plain = w.handle.block_on(self.src.read_blob(Kind::Data, id))?;
        let (copied, _) = w.writer.add_blob(Kind::Data, &plain)?;
        lock(&self.memo.chunks).insert(*id, copied);
        Ok(copied)
    }
}

/// A file's content read from its chunks in the source, in order.
struct Chunks<'a> {
    src: &'a Repository,
    handle: &'a tokio::runtime::Handle,
    ids: &'a [Id],
    next: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for Chunks<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(id) = self.ids.get(self.next) else {
                return Ok(0);
            };
            self.buf = self
                .handle
                .block_on(self.src.read_blob(Kind::Data, id))
                .map_err(std::io::Error::other)?;
            self.pos = 0;
            self.next += 1;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What copying snapshots into a repository involves, decided from the
/// two repositories' snapshot lists alone ([`plan_copies`]).
#[derive(Debug, Clone, Default)]
pub struct CopyPlan {
    /// Source snapshots to copy, oldest first (a parent before its
    /// children).
    pub todo: Vec<(Id, Snapshot)>,
    /// Wanted source snapshots the target holds a copy of: (source, copy).
    pub copied_before: Vec<(Id, Id)>,
    /// Every source snapshot with a copy in the target, and that copy: the
    /// parents incremental copies start from.
    pub copies: HashMap<Id, Id>,
}

/// Decides which of `wanted` (source snapshots) to copy, given every
/// snapshot of the source and of the target: those with no copy in the
/// target ([`same_backup`]), oldest first. Pure.
pub fn plan_copies(
    wanted: &[(Id, Snapshot)],
    source: &[(Id, Snapshot)],
    target: &[(Id, Snapshot)],
) -> CopyPlan {
    let copy_of = |s: &Snapshot| {
        target
            .iter()
            .find(|(_, t)| same_backup(s, t))
            .map(|(id, _)| *id)
    };
    let mut plan = CopyPlan::default();
    for (id, s) in source {
        if let Some(t) = copy_of(s) {
            plan.copies.insert(*id, t);
        }
    }
    let mut wanted: Vec<&(Id, Snapshot)> = wanted.iter().collect();
    wanted.sort_by_key(|(id, s)| (s.time, *id));
    wanted.dedup_by_key(|(id, _)| *id);
    for (id, s) in wanted {
        match copy_of(s) {
            Some(t) => plan.copied_before.push((*id, t)),
            None => plan.todo.push((*id, s.clone())),
        }
    }
    plan
}

/// Copies what `plan` lists, in order, each snapshot starting from the
/// copy of its parent; `done` hears of each copy as it is saved. Stops at
/// the first failure: what was stored stays indexed and a later run
/// reuses it.
pub async fn execute_copies(
    src: &Repository,
    dst: &Repository,
    plan: &mut CopyPlan,
    progress: Arc<Progress>,
    mut done: impl FnMut(&CopyOutcome),
) -> Result<Vec<CopyOutcome>> {
    let memo = Arc::new(CopyMemo::default());
    let mut out = Vec::new();
    for (id, s) in plan.todo.clone() {
        let parent = s.parent.and_then(|p| plan.copies.get(&p).copied());
        if let (Some(sp), Some(tp)) = (s.parent, parent) {
            let from = src.load_snapshot(&sp).await?.tree;
            let to = dst.load_snapshot(&tp).await?.tree;
            learn_copied(src, dst, &memo, from, to).await?;
        }
        let copy = copy_snapshot(src, dst, id, parent, memo.clone(), progress.clone()).await?;
        plan.copies.insert(id, copy.target_id);
        done(&copy);
        out.push(copy);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::format::{Source, Timestamp};

    fn snap(secs: i64, host: &str) -> Snapshot {
        Snapshot {
            time: Timestamp { secs, nanos: 0 },
            tree: Id::from_bytes([0; 32]),
            hostname: host.into(),
            username: "u".into(),
            paths: vec![b"/data".to_vec()],
            root_layout: Default::default(),
            source: Source::Filesystem,
            tags: vec![],
            parent: None,
            stats: Default::default(),
            program_version: "t".into(),
        }
    }

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 32])
    }

    #[test]
    fn copies_what_the_target_lacks_oldest_first_and_knows_earlier_copies() {
        let source = vec![
            (id(3), snap(30, "a")),
            (id(1), snap(10, "a")),
            (id(2), snap(20, "b")),
        ];
        // The target has a copy of the snapshot at 10 (under its own id),
        // and a snapshot of its own.
        let target = vec![(id(9), snap(10, "a")), (id(8), snap(5, "z"))];
        let plan = plan_copies(&source, &source, &target);
        let todo: Vec<Id> = plan.todo.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            todo,
            vec![id(2), id(3)],
            "oldest first, the copied one left out"
        );
        assert_eq!(plan.copied_before, vec![(id(1), id(9))]);
        assert_eq!(plan.copies.get(&id(1)), Some(&id(9)));
        let only = plan_copies(&source[..1], &source, &target);
        assert_eq!(only.todo.len(), 1);
        assert!(only.copied_before.is_empty());
        assert_eq!(
            only.copies.len(),
            1,
            "parents are known from every source snapshot"
        );
    }

    #[test]
    fn a_copy_differs_by_time_host_user_paths_or_source_but_not_tags() {
        let a = snap(10, "a");
        let mut tagged = a.clone();
        tagged.tags = vec!["x".into()];
        assert!(same_backup(&a, &tagged));
        let mut other = a.clone();
        other.username = "someone".into();
        assert!(!same_backup(&a, &other));
        assert!(!same_backup(&a, &snap(11, "a")));
        assert!(!same_backup(&a, &snap(10, "b")));
    }
}
