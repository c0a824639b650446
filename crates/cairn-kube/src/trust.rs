//! Who may do what: pure decisions over objects read from the API, made by
//! the controller and made again by the agent from objects it re-reads
//! (never from a job's `status`, which whoever can edit the job can write).
//!
//! - Jobs in an **administrator namespace** (`--admin-namespace`, given to
//!   both the controller and the agent) may back up and restore claims of
//!   any namespace, and restore any snapshot.
//! - Jobs anywhere else reach only claims of their own namespace, restore
//!   only snapshots of claims of their own namespace in this cluster, and
//!   retention forgets only snapshots of the schedule's own claims.
//! - A repository outside the administrator namespaces must be remote
//!   storage: a local path would let its author choose a directory on the
//!   agent's or controller's file system.

use std::collections::BTreeSet;

use cairn::Source;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};

use crate::crd::{BackupRepositorySpec, VolumeSource};

/// The administrator namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admins(BTreeSet<String>);

impl Admins {
    /// The namespaces given (empty names are ignored).
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(namespaces: I) -> Admins {
        Admins(
            namespaces
                .into_iter()
                .map(Into::into)
                .filter(|n| !n.is_empty())
                .collect(),
        )
    }
    /// Whether `ns` is an administrator namespace.
    pub fn contains(&self, ns: &str) -> bool {
        self.0.contains(ns)
    }
}

/// What a job may reach, once authorized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// A job of an administrator namespace: any claim, any snapshot.
    Admin,
    /// A job of this namespace: its own claims and snapshots only.
    Tenant(String),
}

/// Refuses a repository in a namespace that is not an administrator's
/// unless its storage is remote.
pub fn check_location(admins: &Admins, repo_ns: &str, url: &str) -> Result<(), String> {
    if admins.contains(repo_ns) {
        return Ok(());
    }
    let remote = cairn::layers::store::parse_location(url).is_ok_and(|l| l.is_remote());
    if remote {
        Ok(())
    } else {
        Err(format!(
            "namespace {repo_ns} is not an administrator namespace, so its repositories must be \
             remote storage (s3://, gs://, az://), not {url:?}"
        ))
    }
}

/// Whether a job in `job_ns` may use the repository `repo_ns/repo_name` on
/// a claim in `claim_ns`, and with what access.
pub fn authorize(
    admins: &Admins,
    job_ns: &str,
    (repo_ns, repo_name): (&str, &str),
    repo: &BackupRepositorySpec,
    claim_ns: &str,
) -> Result<Access, String> {
    if !repo.allows(repo_ns, job_ns) {
        return Err(format!(
            "repository {repo_ns}/{repo_name} does not list namespace {job_ns} in allowedNamespaces"
        ));
    }
    check_location(admins, repo_ns, &repo.url)
        .map_err(|why| format!("repository {repo_ns}/{repo_name}: {why}"))?;
    if admins.contains(job_ns) {
        return Ok(Access::Admin);
    }
    if claim_ns != job_ns {
        return Err(format!(
            "namespace {job_ns} is not an administrator namespace: its jobs may only use claims \
             of namespace {job_ns}, not {claim_ns}"
        ));
    }
    Ok(Access::Tenant(job_ns.to_owned()))
}

/// Whether a restore with `access` may ask for the newest snapshot of a
/// claim of `source_ns` (refused early; [`may_restore`] checks the snapshot
/// itself).
pub fn check_restore_source(access: &Access, source_ns: &str) -> Result<(), String> {
    match access {
        Access::Tenant(ns) if ns != source_ns => Err(format!(
            "namespace {ns} is not an administrator namespace: it may only restore snapshots of \
             its own claims, not of namespace {source_ns}"
        )),
        _ => Ok(()),
    }
}

/// Whether a restore with `access` may ask for the snapshots another
/// cluster recorded (`sourceCluster`): only administrators may; tenants may
/// only name their own cluster, `this`.
pub fn check_source_cluster(
    access: &Access,
    this: &str,
    wanted: Option<&str>,
) -> Result<(), String> {
    match (access, wanted) {
        (Access::Tenant(ns), Some(c)) if c != this => Err(format!(
            "sourceCluster {c:?} is another cluster's; only an administrator namespace may \
             restore it, not {ns}"
        )),
        _ => Ok(()),
    }
}

/// Whether a job with `access` may restore snapshot `id` (of `source`) in
/// the cluster named `cluster`.
pub fn may_restore(
    access: &Access,
    cluster: &str,
    id: &str,
    source: &Source,
) -> Result<(), String> {
    let Access::Tenant(ns) = access else {
        return Ok(());
    };
    match source {
        Source::KubernetesVolume {
            cluster: c,
            namespace,
            ..
        } if namespace == ns && c == cluster => Ok(()),
        _ => Err(format!(
            "snapshot {id} is not of a claim of namespace {ns} in this cluster ({cluster:?}); \
             only an administrator namespace may restore it"
        )),
    }
}

/// Whether retention with `access` may forget snapshot `id` (of `source`),
/// recorded by a backup of `claim` in the cluster named `cluster`: the
/// snapshot must be of that very claim (and, for tenants, of this cluster).
pub fn may_forget(
    access: &Access,
    cluster: &str,
    claim: &(String, String),
    id: &str,
    source: &Source,
) -> Result<(), String> {
    let ok = match source {
        Source::KubernetesVolume {
            cluster: c,
            namespace,
            name,
        } => {
            namespace == &claim.0 && name == &claim.1 && (access == &Access::Admin || c == cluster)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "snapshot {id} is not a snapshot of claim {}/{} in this cluster; retention leaves it alone",
            claim.0, claim.1
        ))
    }
}

fn valid_name(s: &str, max: usize, dots: bool) -> bool {
    let ok =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
    !s.is_empty()
        && s.len() <= max
        && s.chars().all(ok)
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// Checks the strings of a volume source that become path components: a
/// pod UID (hex digits and dashes), a volume name (a DNS label) and a
/// PersistentVolume name (a DNS subdomain).
pub fn check_source_names(src: &VolumeSource) -> Result<(), String> {
    let uid = &src.pod_uid;
    if uid.is_empty() || uid.len() > 64 || !uid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(format!("pod UID {uid:?} is not a UID"));
    }
    if !valid_name(&src.volume_name, 63, false) {
        return Err(format!(
            "volume name {:?} is not a valid volume name",
            src.volume_name
        ));
    }
    if !src.persistent_volume.is_empty() && !valid_name(&src.persistent_volume, 253, true) {
        return Err(format!(
            "PersistentVolume name {:?} is not a valid name",
            src.persistent_volume
        ));
    }
    Ok(())
}

/// Checks a job's recorded volume source against the objects it names, as
/// re-read from the API: the pod exists with that UID, in the claim's
/// namespace, on `node`, and mounts the claim under that volume name; the
/// claim is bound to that PersistentVolume.
pub fn check_source(
    src: &VolumeSource,
    claim: &(String, String),
    node: &str,
    pod: Option<&Pod>,
    pvc: Option<&PersistentVolumeClaim>,
) -> Result<(), String> {
    check_source_names(src)?;
    let (ns, name) = claim;
    if &src.pod_namespace != ns {
        return Err(format!(
            "pod {}/{} is not in the claim's namespace {ns}",
            src.pod_namespace, src.pod_name
        ));
    }
    let pod_ref = format!("{ns}/{}", src.pod_name);
    let pod = pod.ok_or_else(|| format!("pod {pod_ref} does not exist"))?;
    if pod.metadata.uid.as_deref() != Some(src.pod_uid.as_str()) {
        return Err(format!("pod {pod_ref} does not have UID {}", src.pod_uid));
    }
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.node_name.as_deref()) != Some(node) {
        return Err(format!("pod {pod_ref} does not run on node {node}"));
    }
    let mounts = spec.and_then(|s| s.volumes.as_ref()).is_some_and(|vs| {
        vs.iter().any(|v| {
            v.name == src.volume_name
                && v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| &c.claim_name == name)
        })
    });
    if !mounts {
        return Err(format!(
            "pod {pod_ref} does not mount claim {name} as volume {}",
            src.volume_name
        ));
    }
    let bound = pvc
        .and_then(|c| c.spec.as_ref())
        .and_then(|s| s.volume_name.as_deref());
    if bound != Some(src.persistent_volume.as_str()) {
        return Err(format!(
            "claim {ns}/{name} is not bound to PersistentVolume {:?}",
            src.persistent_volume
        ));
    }
    Ok(())
}

/// Checks that the claim a snapshot backup reads (`reached`, re-read from
/// the API) was made from the job's VolumeSnapshot `vs` (the one cairn took,
/// named like the claim, or the one the job names), and that this snapshot
/// (`snapshot_of`: the claim its spec names, re-read) is of the job's claim: only then may the backup be recorded as the claim's.
pub fn check_snapshot_lineage(
    reached: Option<&PersistentVolumeClaim>,
    (vs, snapshot_of): (&str, Option<&str>),
    claim: &(String, String),
) -> Result<(), String> {
    let (ns, claim) = claim;
    let reached = reached.ok_or("the claim made from the snapshot does not exist")?;
    let name = reached.metadata.name.as_deref().unwrap_or_default();
    let from = reached.spec.as_ref().and_then(|s| s.data_source.as_ref());
    let from_snapshot = from.is_some_and(|d| {
        d.kind == "VolumeSnapshot"
            && d.name == vs
            && d.api_group.as_deref() == Some("snapshot.storage.k8s.io")
    });
    if !from_snapshot {
        return Err(format!(
            "claim {ns}/{name} was not made from VolumeSnapshot {vs}"
        ));
    }
    if snapshot_of != Some(claim.as_str()) {
        return Err(format!(
            "VolumeSnapshot {ns}/{vs} is not a snapshot of claim {claim}"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
