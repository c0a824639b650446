//! Velero never tells a data mover other than its own that a backup was
//! deleted: it makes a DeleteBackupRequest (also when a backup's TTL ends)
//! and deletes its own data. cairn watches those requests and forgets the
//! snapshots tagged with the backup's uid in the repositories of Velero's
//! locations; scheduled maintenance then frees their data. The request is
//! annotated with how many were forgotten, so each is handled once.
//!
//! A snapshot that Object Lock still retains cannot be forgotten yet: it
//! is counted (`cairn.dev/retained-snapshots`), the request is looked at
//! again after [`RETAINED_RECHECK`], and only when nothing is retained any
//! more does it get its final count. Retention is days or years, so a
//! retained snapshot is a state to wait out, not an error to retry.

use cairn::Maintenance as _;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::{BACKUP_UID_TAG, spec_of};
use crate::controller::Context;
use crate::crd::BackupRepository;
use crate::{Error, Result};

/// Annotation on a DeleteBackupRequest once cairn handled it: how many
/// snapshots it forgot.
pub const FORGOTTEN_ANNOTATION: &str = "cairn.dev/forgotten-snapshots";

/// Annotation on a DeleteBackupRequest while Object Lock retains some of
/// its backup's snapshots: how many.
pub const RETAINED_ANNOTATION: &str = "cairn.dev/retained-snapshots";

/// Annotation on a DeleteBackupRequest while it waits for retained
/// snapshots: how many were forgotten so far.
pub const SO_FAR_ANNOTATION: &str = "cairn.dev/forgotten-so-far";

/// How long a request with retained snapshots waits before it is looked
/// at again.
pub const RETAINED_RECHECK: Duration = Duration::from_secs(3600);

/// What one pass over a repository did with a backup's snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Snapshots deleted.
    pub forgotten: usize,
    /// Snapshots Object Lock still retains: left for a later pass.
    pub retained: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.forgotten += o.forgotten;
        self.retained += o.retained;
    }
}

/// The annotations a pass writes on its request, and when to look again:
/// with snapshots retained, the count so far and a recheck; without, the
/// final count (with the earlier passes') and the waiting marks removed.
pub fn handled(so_far: usize, tally: Tally) -> (Value, Option<Duration>) {
    // `so_far` is read back from the request, which others can edit.
    let total = so_far.saturating_add(tally.forgotten);
    if tally.retained > 0 {
        let notes = json!({
            RETAINED_ANNOTATION: tally.retained.to_string(),
            SO_FAR_ANNOTATION: total.to_string(),
        });
        (notes, Some(RETAINED_RECHECK))
    } else {
        let notes = json!({
            FORGOTTEN_ANNOTATION: total.to_string(),
            RETAINED_ANNOTATION: null,
            SO_FAR_ANNOTATION: null,
        });
        (notes, None)
    }
}

/// The label Velero puts on a DeleteBackupRequest: the backup's uid.
pub const BACKUP_UID_LABEL: &str = "velero.io/backup-uid";

/// Whether a snapshot with `tags` belongs to the backup with `uid`.
pub fn of_backup(tags: &[String], uid: &str) -> bool {
    let want = format!("{BACKUP_UID_TAG}={uid}");
    !uid.is_empty() && tags.contains(&want)
}

/// One reconcile of a DeleteBackupRequest.
pub async fn reconcile(dbr: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Requeue> {
    if dbr.annotations().contains_key(FORGOTTEN_ANNOTATION) {
        return Ok(Requeue::await_change());
    }
    let cfg = super::settings(&ctx)?;
    let backup_name = dbr
        .data
        .get("spec")
        .and_then(|s| s.get("backupName"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let backups = super::api(&ctx.client, cfg, "v1", "Backup");
    let backup = match backup_name.as_str() {
        "" => None,
        name => backups.get_opt(name).await?,
    };
    let uid = dbr
        .labels()
        .get(BACKUP_UID_LABEL)
        .cloned()
        .or_else(|| backup.as_ref().and_then(|b| b.uid()))
        .unwrap_or_default();
    if uid.is_empty() {
        tracing::warn!(request = %dbr.name_any(), "DeleteBackupRequest names no backup cairn can find");
        return Ok(Requeue::await_change());
    }
    // The backup's location if it is still there, else every location.
    let locations: Vec<String> = match backup.as_ref().and_then(|b| {
        b.data
            .get("spec")?
            .get("storageLocation")?
            .as_str()
            .map(str::to_owned)
    }) {
        Some(l) => vec![l],
        None => super::api(&ctx.client, cfg, "v1", "BackupStorageLocation")
            .list(&Default::default())
            .await?
            .items
            .iter()
            .map(|l| l.name_any())
            .collect(),
    };
    let mut tally = Tally::default();
    for location in locations {
        tally += forget_in(&ctx, &location, &uid).await?;
    }
    // Written by this controller only; anything unreadable counts as none.
    let so_far = dbr
        .annotations()
        .get(SO_FAR_ANNOTATION)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let (notes, recheck) = handled(so_far, tally);
    let dbrs = super::api(&ctx.client, cfg, "v1", "DeleteBackupRequest");
    let patch = json!({"metadata": {"annotations": notes}});
    dbrs.patch(
        &dbr.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    tracing::info!(backup = %backup_name, uid = %uid, forgotten = tally.forgotten, retained = tally.retained, "forgot a Velero backup's snapshots");
    Ok(recheck.map_or_else(Requeue::await_change, Requeue::requeue))
}

/// Forgets the snapshots of the backup with `uid` in `repo`; those Object
/// Lock still retains are counted, not an error.
pub async fn forget_backup(
    repo: &cairn::Repository,
    uid: &str,
) -> cairn::layers::repo::Result<Tally> {
    let mut tally = Tally::default();
    for (id, snap) in repo.list_snapshots().await? {
        if !of_backup(&snap.tags, uid) {
            continue;
        }
        match repo.forget_snapshot(&id).await {
            Ok(true) => tally.forgotten += 1,
            Ok(false) => {}
            Err(cairn::error::RepoError::Store(cairn::StoreError::Locked { .. })) => {
                tally.retained += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(tally)
}

/// Forgets the backup's snapshots in the repository of `location`, unless
/// the location is read-only or has no repository of cairn's.
async fn forget_in(ctx: &Context, location: &str, uid: &str) -> Result<Tally> {
    let cfg = super::settings(ctx)?;
    let Some(bsl) = super::api(&ctx.client, cfg, "v1", "BackupStorageLocation")
        .get_opt(location)
        .await?
    else {
        return Ok(Tally::default());
    };
    let defaults = super::bsl::Defaults {
        password: cfg.password_secret.clone(),
        maintenance_schedule: None,
    };
    match super::bsl::location(&spec_of(&bsl), &defaults) {
        Ok(l) if !l.read_only => {}
        _ => return Ok(Tally::default()),
    }
    let repos: Api<BackupRepository> = Api::namespaced(ctx.client.clone(), &cfg.namespace);
    let Some(repo_obj) = repos.get_opt(&super::repository_name(location)).await? else {
        return Ok(Tally::default());
    };
    let repo = crate::repo::open(
        &ctx.client,
        &repo_obj,
        ctx.config.cache_dir.as_deref(),
        cairn::OpenOptions::default(),
    )
    .await?;
    let tally = forget_backup(&repo, uid)
        .await
        .map_err(|source| Error::Repository {
            location: repo_obj.spec.url.clone(),
            source,
        })?;
    ctx.metrics.forgotten.inc_by(tally.forgotten as u64);
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retained_snapshots_wait_for_a_recheck_and_the_final_count_adds_every_pass() {
        let tally = |forgotten, retained| Tally {
            forgotten,
            retained,
        };
        // Nothing retained: the final count, the waiting marks removed.
        let (notes, recheck) = handled(0, tally(2, 0));
        assert_eq!(notes[FORGOTTEN_ANNOTATION], "2");
        assert!(notes[RETAINED_ANNOTATION].is_null() && notes[SO_FAR_ANNOTATION].is_null());
        assert_eq!(recheck, None);
        // Some retained: no final count yet, how many so far, a recheck.
        let (notes, recheck) = handled(0, tally(1, 2));
        assert!(notes.get(FORGOTTEN_ANNOTATION).is_none(), "{notes}");
        assert_eq!(notes[RETAINED_ANNOTATION], "2");
        assert_eq!(notes[SO_FAR_ANNOTATION], "1");
        assert_eq!(recheck, Some(RETAINED_RECHECK));
        // The pass after retention ended: the earlier pass's count is kept.
        let (notes, recheck) = handled(1, tally(2, 0));
        assert_eq!(notes[FORGOTTEN_ANNOTATION], "3");
        assert_eq!(recheck, None);
        let (notes, _) = handled(3, tally(0, 1));
        assert_eq!(notes[SO_FAR_ANNOTATION], "3");
        // An edited count cannot make the sum overflow.
        let (notes, _) = handled(usize::MAX, tally(2, 0));
        assert_eq!(notes[FORGOTTEN_ANNOTATION], usize::MAX.to_string());
    }

    #[test]
    fn only_snapshots_tagged_with_the_backups_uid_belong_to_it() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(of_backup(&tags(&["x", "velero-backup-uid=u1"]), "u1"));
        assert!(!of_backup(&tags(&["velero-backup-uid=u12"]), "u1"));
        assert!(!of_backup(&tags(&["velero-backup-uid=u1x"]), "u1"));
        assert!(!of_backup(&tags(&["velero-backup=u1"]), "u1"));
        assert!(
            !of_backup(&tags(&["velero-backup-uid="]), ""),
            "no uid matches nothing"
        );
    }
}
