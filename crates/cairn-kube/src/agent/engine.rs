//! The agent's use of the engine: a volume backup with the volume's own
//! parent snapshot and excludes relative to the volume, and a restore of a
//! chosen snapshot into a volume, with ownership.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cairn::{
    BackupOptions, Id, Overwrite, ParentChoice, Progress, Repository, RestoreOptions, RootLayout,
    Selection, Snapshot, Source, Timestamp,
};

use super::volume::VolumePath;
use crate::crd::human;
use crate::trust::{self, Access};
use crate::{Error, Result};

/// What a finished run reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The snapshot written or read.
    pub snapshot_id: String,
    /// Bytes the backup added to the repository (sealed).
    pub incremental_bytes: Option<u64>,
    /// One line for people.
    pub message: String,
}

/// Identity of the volume a snapshot is of.
#[derive(Clone, Debug, Default)]
pub struct VolumeId {
    /// Cluster name (may be empty).
    pub cluster: String,
    /// Claim namespace.
    pub namespace: String,
    /// Claim name.
    pub name: String,
}

fn is_of(s: &Snapshot, v: &VolumeId, any_cluster: bool) -> bool {
    matches!(&s.source, Source::KubernetesVolume { cluster, namespace, name }
        if (any_cluster || cluster == &v.cluster) && namespace == &v.namespace && name == &v.name)
}

/// The newest snapshot of volume `v` (of any cluster when `any_cluster`).
pub async fn latest_of(
    repo: &Repository,
    v: &VolumeId,
    any_cluster: bool,
) -> Result<Option<(Id, Snapshot)>> {
    Ok(repo
        .list_snapshots()
        .await
        .map_err(|e| repo_err(repo, e))?
        .into_iter()
        .rev()
        .find(|(_, s)| is_of(s, v, any_cluster)))
}

fn repo_err(repo: &Repository, source: cairn::error::RepoError) -> Error {
    Error::Repository {
        location: repo.store().describe().to_owned(),
        source,
    }
}

/// Exclude patterns relative to the volume's root, made absolute: a pattern
/// with a `/` before its end is anchored at the root, others match at any
/// depth (gitignore rules).
pub fn anchor_excludes(root: &Path, patterns: &[String]) -> Vec<String> {
    let root = root.to_string_lossy();
    let root = root.trim_end_matches('/');
    patterns
        .iter()
        .map(|p| {
            let (neg, body) = match p.strip_prefix('!') {
                Some(b) => ("!", b),
                None => ("", p.as_str()),
            };
            if body.trim_end_matches('/').contains('/') {
                format!("{neg}{root}/{}", body.trim_start_matches('/'))
            } else {
                p.clone()
            }
        })
        .collect()
}

/// Counts the files and bytes under `dir` (one file system) into the
/// progress totals, so status can show a percentage while the backup runs.
fn count_totals(dir: PathBuf, progress: Arc<Progress>) {
    let (mut files, mut bytes) = (0u64, 0u64);
    for e in walkdir::WalkDir::new(dir)
        .same_file_system(true)
        .into_iter()
        .flatten()
    {
        if progress.is_cancelled() {
            return;
        }
        if e.file_type().is_file() {
            files += 1;
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    progress.total_files.store(files, Ordering::Relaxed);
    progress.total_bytes.store(bytes, Ordering::Relaxed);
}

/// What a backup needs beyond the repository and volume.
#[derive(Clone, Debug)]
pub struct BackupJob {
    /// The volume's identity.
    pub volume: VolumeId,
    /// The node (recorded as the snapshot's host).
    pub node: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Excludes relative to the volume.
    pub excludes: Vec<String>,
    /// Snapshot time.
    pub time: i64,
    /// Which metadata show a file unchanged since the parent.
    pub change_detection: cairn::ChangeDetection,
}

/// Backs the volume up.
pub async fn backup(
    repo: &Repository,
    at: &VolumePath,
    job: BackupJob,
    progress: Arc<Progress>,
) -> Result<Outcome> {
    let root = at.path().to_owned();
    let layout = match at {
        VolumePath::Dir(_) => RootLayout::Directory,
        VolumePath::Block(_) => RootLayout::PerPath,
    };
    if let VolumePath::Dir(d) = at {
        let (d, p) = (d.clone(), progress.clone());
        tokio::task::spawn_blocking(move || count_totals(d, p));
    }
    let parent = latest_of(repo, &job.volume, false)
        .await?
        .filter(|(_, s)| s.root_layout == layout)
        .map_or(ParentChoice::None, |(id, _)| ParentChoice::Snapshot(id));
    let mut opts = BackupOptions::new(repo, vec![root.clone()]);
    opts.hostname = job.node.clone();
    opts.username = "root".into();
    opts.tags = job.tags.clone();
    opts.parent = parent;
    opts.source = Source::KubernetesVolume {
        cluster: job.volume.cluster.clone(),
        namespace: job.volume.namespace.clone(),
        name: job.volume.name.clone(),
    };
    opts.time = Timestamp {
        secs: job.time,
        nanos: 0,
    };
    opts.program_version = concat!("cairn-agent ", env!("CARGO_PKG_VERSION")).into();
    opts.selection = Selection {
        exclude: anchor_excludes(&root, &job.excludes),
        one_file_system: true,
        ..Default::default()
    };
    opts.change_detection = job.change_detection;
    let out = cairn::backup(repo, opts, progress).await?;
    let st = out.snapshot.stats;
    let warn = if out.warnings.is_empty() {
        String::new()
    } else {
        format!(
            "; {} entries could not be read and were left out",
            out.warnings.len()
        )
    };
    Ok(Outcome {
        snapshot_id: out.snapshot_id.to_hex(),
        incremental_bytes: Some(out.writer.bytes_stored),
        message: format!(
            "backed up {} files ({} new, {} changed), {} stored{warn}",
            st.files_new + st.files_changed + st.files_unchanged,
            st.files_new,
            st.files_changed,
            human(out.writer.bytes_stored)
        ),
    })
}

/// Which snapshot to restore.
#[derive(Clone, Debug)]
pub struct RestoreJob {
    /// Id or prefix; otherwise the newest of `source`.
    pub snapshot: Option<String>,
    /// The claim whose newest snapshot to restore (of any cluster when its
    /// cluster is empty).
    pub source: VolumeId,
    /// What the job may read ([`trust::may_restore`]).
    pub access: Access,
    /// This cluster's name.
    pub cluster: String,
}

/// Finds the snapshot a restore asks for, checking it may be read.
pub async fn choose(repo: &Repository, job: &RestoreJob) -> Result<(Id, Snapshot)> {
    let (id, snap) = match &job.snapshot {
        Some(spec) => repo
            .find_snapshot(spec)
            .await
            .map_err(|e| repo_err(repo, e))?,
        None => latest_of(repo, &job.source, job.source.cluster.is_empty())
            .await?
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "no snapshot of claim {}/{} in the repository",
                    job.source.namespace, job.source.name
                ))
            })?,
    };
    trust::may_restore(&job.access, &job.cluster, &id.to_hex(), &snap.source)
        .map_err(Error::Invalid)?;
    Ok((id, snap))
}

/// Restores a snapshot into the volume.
pub async fn restore(
    repo: &Repository,
    at: &VolumePath,
    job: RestoreJob,
    progress: Arc<Progress>,
) -> Result<Outcome> {
    let (id, snap) = choose(repo, &job).await?;
    let path = match (at, snap.root_layout) {
        (VolumePath::Dir(_), RootLayout::Directory) => Vec::new(),
        (VolumePath::Block(_), RootLayout::PerPath) => {
            let tree = repo
                .load_tree(&snap.tree)
                .await
                .map_err(|e| repo_err(repo, e))?;
            let [node] = tree.nodes.as_slice() else {
                return Err(Error::Invalid(format!(
                    "snapshot {id} holds more than one device image"
                )));
            };
            [b"/".as_slice(), &node.name].concat()
        }
        (VolumePath::Dir(_), _) => {
            return Err(Error::Invalid(format!(
                "snapshot {id} is of a block volume; the target is a file system"
            )));
        }
        (VolumePath::Block(_), _) => {
            return Err(Error::Invalid(format!(
                "snapshot {id} is of a file system; the target is a block volume"
            )));
        }
    };
    let opts = restore_options(at.path(), path, &job.access);
    let out = cairn::restore(repo, &snap, opts, progress).await?;
    if !out.errors.is_empty() {
        let first = out
            .errors
            .first()
            .map(|e| format!("{}: {}", e.path.display(), e.message))
            .unwrap_or_default();
        return Err(Error::Invalid(format!(
            "{} entries could not be restored; first: {first}",
            out.errors.len()
        )));
    }
    Ok(Outcome {
        snapshot_id: id.to_hex(),
        incremental_bytes: None,
        message: format!(
            "restored {} files from snapshot {}",
            out.files,
            &id.to_hex()[..12]
        ),
    })
}

/// How the agent restores `path` of a snapshot into `target`. A tenant's
/// restore is untrusted: a tenant may own the repository and so write any
/// snapshot, and a root restore must not hand it set-id executables, file
/// capabilities or device nodes.
fn restore_options(target: &Path, path: Vec<u8>, access: &Access) -> RestoreOptions {
    let mut o = RestoreOptions::new(target);
    o.path = path;
    o.owners = Some(true);
    o.overwrite = Overwrite::Always;
    o.untrusted = !matches!(access, Access::Admin);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_restores_are_untrusted_and_administrator_restores_are_not() {
        let target = Path::new("/v");
        let tenant = restore_options(target, Vec::new(), &Access::Tenant("shop".into()));
        assert!(tenant.untrusted);
        assert!(!restore_options(target, Vec::new(), &Access::Admin).untrusted);
        assert_eq!(tenant.owners, Some(true));
        assert_eq!(tenant.target, target);
    }

    #[test]
    fn excludes_with_a_slash_are_anchored_at_the_volume() {
        let root = Path::new("/var/lib/kubelet/pods/u/volumes/p/pv/mount");
        let got = anchor_excludes(
            root,
            &[
                "/cache".into(),
                "logs/old".into(),
                "*.tmp".into(),
                "tmp/".into(),
                "!/cache/keep".into(),
            ],
        );
        assert_eq!(
            got,
            [
                "/var/lib/kubelet/pods/u/volumes/p/pv/mount/cache",
                "/var/lib/kubelet/pods/u/volumes/p/pv/mount/logs/old",
                "*.tmp",
                "tmp/",
                "!/var/lib/kubelet/pods/u/volumes/p/pv/mount/cache/keep",
            ]
        );
    }
}
