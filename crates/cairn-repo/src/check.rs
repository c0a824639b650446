//! `check`: is every snapshot fully restorable?
//!
//! Structure: every snapshot's trees load, every blob they reference is
//! indexed, every indexed pack exists and is long enough. With `read_data`,
//! every pack is downloaded, its header compared with the index and every
//! blob opened and re-hashed.

use std::collections::{HashMap, HashSet};

use cairn_core::format::{NodeKind, PackEntry, pack_v1};
use cairn_core::{Id, Kind};
use futures::StreamExt;

use crate::{Repository, Result, paths};

/// What to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Download and verify every blob.
    pub read_data: bool,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckProblem {
    /// The object concerned, e.g. `data/ab/ab12…` or `snapshots/…`.
    pub object: String,
    /// What is wrong.
    pub message: String,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: usize,
    /// Distinct trees loaded.
    pub trees: usize,
    /// Packs in the index.
    pub packs: usize,
    /// Blobs opened and re-hashed (with `read_data`).
    pub blobs_verified: u64,
    /// Problems that make data unrestorable.
    pub errors: Vec<CheckProblem>,
    /// Harmless oddities (e.g. packs no index lists, left by an interrupted backup).
    pub warnings: Vec<CheckProblem>,
}

impl CheckReport {
    /// True when no error was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
    fn error(&mut self, object: String, message: String) {
        self.errors.push(CheckProblem { object, message });
    }
}

impl Repository {
    /// Checks the repository. Problems are collected in the report, not
    /// returned as errors; `Err` means the check itself could not run.
    pub async fn check(&self, opts: CheckOptions) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let by_pack = self.index().entries_by_pack();
        report.packs = by_pack.len();

        let listed: HashMap<Id, u64> = self
            .store()
            .list(paths::DATA)
            .await?
            .into_iter()
            .filter_map(|o| paths::id_in(paths::DATA, &o.path).map(|id| (id, o.size)))
            .collect();
        for (pack, entries) in &by_pack {
            match listed.get(pack) {
                None => report.error(paths::pack(pack), "indexed pack is missing".into()),
                Some(&size) => {
                    let end = entries.iter().map(PackEntry::end).max().unwrap_or(0);
                    if end + pack_v1::TRAILER_LEN as u64 > size {
                        report.error(
                            paths::pack(pack),
                            format!(
                                "pack is {size} bytes but the index places a blob ending at {end}"
                            ),
                        );
                    }
                }
            }
        }
        for pack in listed.keys().filter(|p| !by_pack.contains_key(*p)) {
            report.warnings.push(CheckProblem {
                object: paths::pack(pack),
                message: "pack is not in any index (left by an interrupted backup?)".into(),
            });
        }

        self.check_snapshots(&mut report).await?;

        if opts.read_data {
            let mut results = futures::stream::iter(by_pack.iter())
                .filter(|(p, _)| futures::future::ready(listed.contains_key(*p)))
                .map(|(pack, entries)| self.verify_pack(*pack, entries))
                .buffer_unordered(2);
            while let Some((verified, problems)) = results.next().await {
                report.blobs_verified += verified;
                report.errors.extend(problems);
            }
        }
        Ok(report)
    }

    async fn check_snapshots(&self, report: &mut CheckReport) -> Result<()> {
        let ids = self.snapshot_ids().await?;
        report.snapshots = ids.len();
        let mut seen: HashSet<Id> = HashSet::new();
        for sid in ids {
            let obj = paths::snapshot(&sid);
            let snap = match self.load_snapshot(&sid).await {
                Ok(s) => s,
                Err(e) => {
                    report.error(obj, e.to_string());
                    continue;
                }
            };
            let mut stack = vec![snap.tree];
            while let Some(tid) = stack.pop() {
                if !seen.insert(tid) {
                    continue;
                }
                let tree = match self.load_tree(&tid).await {
                    Ok(t) => t,
                    Err(e) => {
                        report.error(obj.clone(), format!("tree {tid}: {e}"));
                        continue;
                    }
                };
                report.trees += 1;
                for node in &tree.nodes {
                    match node.kind {
                        NodeKind::Dir => stack.extend(node.subtree),
                        NodeKind::File | NodeKind::BlockDevice => {
                            for c in &node.content {
                                if !self.index().contains(c) {
                                    report.error(
                                        obj.clone(),
                                        format!(
                                            "file {:?}: data blob {c} is not indexed",
                                            String::from_utf8_lossy(&node.name)
                                        ),
                                    );
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Downloads one pack and verifies its header and every blob the index
    /// places in it. Returns the number of blobs verified and the problems.
    async fn verify_pack(&self, pack: Id, indexed: &[PackEntry]) -> (u64, Vec<CheckProblem>) {
        let obj = paths::pack(&pack);
        let problem = |message: String| CheckProblem {
            object: obj.clone(),
            message,
        };
        let bytes = match self.store().get(&obj).await {
            Ok(b) => b,
            Err(e) => return (0, vec![problem(format!("cannot read: {e}"))]),
        };
        let repo = self.clone();
        let indexed = indexed.to_vec();
        let r = tokio::task::spawn_blocking(move || {
            let mut problems = Vec::new();
            let header = match pack_v1::read_header(repo.keys(), &pack, &bytes) {
                Ok(h) => h,
                Err(e) => {
                    problems.push(format!("header: {e}"));
                    Vec::new()
                }
            };
            let in_header: HashSet<(Id, u32, u32)> =
                header.iter().map(|e| (e.id, e.offset, e.length)).collect();
            let mut verified = 0;
            for e in &indexed {
                if !header.is_empty() && !in_header.contains(&(e.id, e.offset, e.length)) {
                    problems.push(format!(
                        "blob {} is indexed here but not in the pack header",
                        e.id
                    ));
                }
                let range = e.offset as usize..e.end() as usize;
                let Some(sealed) = bytes.get(range) else {
                    problems.push(format!("blob {} lies beyond the end of the pack", e.id));
                    continue;
                };
                let loc = crate::BlobLocation {
                    pack,
                    kind: e.kind,
                    offset: e.offset,
                    length: e.length,
                    raw_length: e.raw_length,
                };
                match repo.open_blob(&loc, &e.id, sealed) {
                    Ok(plain) => {
                        verified += 1;
                        if e.kind == Kind::Tree {
                            if let Err(err) = cairn_core::format::Tree::decode(&plain) {
                                problems.push(format!("tree blob {}: {err}", e.id));
                            }
                        }
                    }
                    Err(err) => problems.push(err.to_string()),
                }
            }
            (verified, problems)
        })
        .await;
        match r {
            Ok((v, problems)) => (v, problems.into_iter().map(problem).collect()),
            Err(e) => (0, vec![problem(format!("verification task failed: {e}"))]),
        }
    }
}
