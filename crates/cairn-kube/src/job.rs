//! What the controller and the agent need from both kinds of job
//! (VolumeBackup and VolumeRestore), so one reconciler serves both.

use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crd::{
    ClaimTemplate, JobStatus, Phase, PvcRef, RepositoryRef, SnapshotPolicy, VolumeBackup,
    VolumeRestore,
};
use crate::names::snapshot_object;

/// Backup or restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// A VolumeBackup.
    Backup,
    /// A VolumeRestore.
    Restore,
}

impl JobKind {
    /// `backup` or `restore` (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Restore => "restore",
        }
    }
}

/// What the agent does for a job, from its spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// Back the volume up.
    Backup {
        /// Snapshot tags.
        tags: Vec<String>,
        /// Patterns to leave out (relative to the volume's root).
        excludes: Vec<String>,
    },
    /// Restore into the volume.
    Restore {
        /// Snapshot id or prefix.
        snapshot: Option<String>,
        /// Restore the newest snapshot of this claim (namespace, name).
        source: Option<(String, String)>,
        /// …recorded by the cluster of this name (administrators only).
        cluster: Option<String>,
    },
}

/// A VolumeBackup or a VolumeRestore.
pub trait Job:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Which kind this is.
    const KIND: JobKind;
    /// The status, if any was written yet.
    fn job_status(&self) -> Option<&JobStatus>;
    /// Whether the user asked to stop.
    fn cancel(&self) -> bool;
    /// The repository.
    fn repository(&self) -> &RepositoryRef;
    /// The claim the agent reaches: the source of a backup, the target of a
    /// restore.
    fn pvc(&self) -> &PvcRef;
    /// What the agent does.
    fn work(&self) -> Work;

    /// The phase (New without a status).
    fn phase(&self) -> Phase {
        self.job_status().map(|s| s.phase).unwrap_or_default()
    }
    /// The assigned node.
    fn node(&self) -> Option<&str> {
        self.job_status().and_then(|s| s.node.as_deref())
    }
    /// The namespace (jobs are namespaced; empty if unset).
    fn ns(&self) -> String {
        self.meta().namespace.clone().unwrap_or_default()
    }
    /// The name.
    fn name_str(&self) -> String {
        self.meta().name.clone().unwrap_or_default()
    }
    /// The uid.
    fn uid_str(&self) -> String {
        self.meta().uid.clone().unwrap_or_default()
    }
    /// Whether deletion has begun.
    fn deleting(&self) -> bool {
        self.meta().deletion_timestamp.is_some()
    }
    /// Whether the object carries `finalizer`.
    fn has_finalizer(&self, finalizer: &str) -> bool {
        self.meta()
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == finalizer))
    }
    /// (namespace, name) of the claim the job is about: the source of a
    /// backup (what its snapshot records), the target of a restore.
    fn claim(&self) -> (String, String) {
        self.pvc().resolve(&self.ns())
    }
    /// The snapshot policy of a backup of a CSI snapshot.
    fn snapshot(&self) -> Option<&SnapshotPolicy> {
        None
    }
    /// The claim a restore creates when its target does not exist.
    fn claim_template(&self) -> Option<&ClaimTemplate> {
        None
    }
    /// (namespace, name) of the claim the agent reads or writes: the
    /// claim itself, or for a snapshot backup the temporary claim made from
    /// the snapshot, in the claim's namespace.
    fn reach(&self) -> (String, String) {
        let (ns, claim) = self.claim();
        match self.snapshot() {
            Some(_) => (ns, snapshot_object(&self.name_str(), &self.uid_str())),
            None => (ns, claim),
        }
    }
    /// The VolumeSnapshot a snapshot backup reads: the one its policy
    /// names, or the one cairn takes (named like the temporary claim).
    fn snapshot_name(&self) -> String {
        self.snapshot()
            .and_then(|p| p.volume_snapshot_name.clone())
            .unwrap_or_else(|| self.reach().1)
    }
    /// (namespace, name) of the repository.
    fn repository_key(&self) -> (String, String) {
        self.repository().resolve(&self.ns())
    }
}

impl Job for VolumeBackup {
    const KIND: JobKind = JobKind::Backup;
    fn job_status(&self) -> Option<&JobStatus> {
        self.status.as_ref()
    }
    fn cancel(&self) -> bool {
        self.spec.cancel
    }
    fn repository(&self) -> &RepositoryRef {
        &self.spec.repository
    }
    fn pvc(&self) -> &PvcRef {
        &self.spec.pvc
    }
    fn work(&self) -> Work {
        Work::Backup {
            tags: self.spec.tags.clone(),
            excludes: self.spec.excludes.clone(),
        }
    }
    fn snapshot(&self) -> Option<&SnapshotPolicy> {
        self.spec.snapshot.as_ref()
    }
}

impl Job for VolumeRestore {
    const KIND: JobKind = JobKind::Restore;
    fn claim_template(&self) -> Option<&ClaimTemplate> {
        self.spec.create_target_pvc.as_ref()
    }
    fn job_status(&self) -> Option<&JobStatus> {
        self.status.as_ref()
    }
    fn cancel(&self) -> bool {
        self.spec.cancel
    }
    fn repository(&self) -> &RepositoryRef {
        &self.spec.repository
    }
    fn pvc(&self) -> &PvcRef {
        &self.spec.target_pvc
    }
    fn work(&self) -> Work {
        let ns = self.ns();
        Work::Restore {
            snapshot: self.spec.snapshot.clone().filter(|s| !s.is_empty()),
            source: Some(
                self.spec
                    .source_pvc
                    .as_ref()
                    .unwrap_or(&self.spec.target_pvc)
                    .resolve(&ns),
            ),
            cluster: self.spec.source_cluster.clone(),
        }
    }
}
