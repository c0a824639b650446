//! A restore from archival storage: warming up the packs it will read
//! before it reads any, and, without a warm-up, stopping at the first pack
//! found archived instead of failing file after file.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use cairn_core::Id;
use cairn_core::format::{Node, Snapshot};
use cairn_repo::{Repository, WarmOptions, WarmReport};
use cairn_store::StoreError;

use crate::{Error, Progress, Result};

/// Warms up the packs holding the content of `files` when the repository
/// (or `opts.when`) asks for it, waiting until all are readable; `None`
/// when there was nothing to do. A cancelled `progress` stops the wait.
pub(super) async fn warm(
    repo: &Repository,
    files: &[&Node],
    opts: &WarmOptions,
    progress: &Arc<Progress>,
) -> Result<Option<WarmReport>> {
    if !repo.should_warm(opts.when) {
        return Ok(None);
    }
    let packs = crate::warm::packs_of(repo, files.iter().flat_map(|n| n.content.iter()));
    warm_packs(repo, &packs, opts, progress).await.map(Some)
}

/// Warms up the packs of every file under `path` of `snapshot`, found by
/// a walk of its trees that keeps only their packs, and waits as [`warm`]
/// does; for a restore that has decided to warm up.
pub(super) async fn warm_under(
    repo: &Repository,
    snapshot: &Snapshot,
    path: &[u8],
    opts: &WarmOptions,
    progress: &Arc<Progress>,
) -> Result<WarmReport> {
    let packs = crate::warm::data_packs(repo, snapshot, &[path.to_vec()]).await?;
    warm_packs(repo, &packs, opts, progress).await
}

/// Warms up `packs` and waits until all are readable, or `progress` is
/// cancelled.
async fn warm_packs(
    repo: &Repository,
    packs: &BTreeSet<Id>,
    opts: &WarmOptions,
    progress: &Arc<Progress>,
) -> Result<WarmReport> {
    let mut opts = opts.clone();
    opts.wait = true;
    let (p, theirs) = (progress.clone(), opts.stop.take());
    opts.stop = Some(Arc::new(move || {
        p.is_cancelled() || theirs.as_ref().is_some_and(|stop| stop())
    }));
    let report = repo.warm_packs(packs, &opts).await?;
    progress.check()?;
    Ok(report)
}

/// The first pack a read found archived. Every other read of an archived
/// pack would fail the same way (hours of requests for a large restore),
/// so the restore stops and says how to warm up.
#[derive(Debug, Default)]
pub(super) struct Halt(Mutex<Option<String>>);

impl Halt {
    /// Notes `e` if it is a read of an archived pack.
    pub(super) fn note(&self, e: &cairn_repo::Error) {
        if let cairn_repo::Error::Store(StoreError::Archived { path }) = e {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| path.clone());
        }
    }

    /// Whether a read found an archived pack.
    pub(super) fn is_set(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The error that ends the restore, once a read found an archived pack.
    pub(super) fn check(&self) -> Result<()> {
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(path) => Err(Error::Repo(StoreError::Archived { path }.into())),
            None => Ok(()),
        }
    }
}
