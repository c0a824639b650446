//! S3 Object Lock on a [`Store`]: the retention every new object gets
//! under the store's [`StoragePolicy`](crate::StoragePolicy), reading and
//! extending retentions, and the object versions a versioned bucket keeps
//! (for `cairn lock recover`).

use std::time::SystemTime;

use crate::s3api::{ObjectVersion, parse_date};
use crate::store::{ObjectClass, Store};
use crate::{StoreError, StoreResult};

/// An object's retention as the server states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionState {
    /// `GOVERNANCE` or `COMPLIANCE`.
    pub mode: String,
    /// When it ends (possibly already past).
    pub until: SystemTime,
}

impl Store {
    /// Gives a new object the policy's retention. object_store sends no
    /// Object Lock headers, so the retention is a second request right
    /// after the write; an object left unlocked by a crash in between is
    /// locked by the next `cairn lock extend`.
    pub(crate) async fn lock_new(&self, path: &str, class: ObjectClass) -> StoreResult<()> {
        let Some(lock) = self
            .policy()
            .lock
            .filter(|_| class != ObjectClass::Volatile)
        else {
            return Ok(());
        };
        let until = SystemTime::now() + lock.period;
        self.s3_api("object lock")?
            .put_retention(path, &lock.mode, until)
            .await
    }

    /// Gives `path` the policy's retention from now, as a write would have
    /// (after [`put_new_unlocked`](Self::put_new_unlocked)). Nothing
    /// without a retention policy.
    pub async fn lock(&self, path: &str) -> StoreResult<()> {
        self.lock_new(path, ObjectClass::of_path(path)).await
    }

    /// Sets an object's retention (S3 refuses to shorten a compliance one).
    pub async fn set_retention(
        &self,
        path: &str,
        mode: &str,
        until: SystemTime,
    ) -> StoreResult<()> {
        self.s3_api("object lock")?
            .put_retention(path, mode, until)
            .await
    }

    /// Whether the bucket has Object Lock enabled.
    pub async fn lock_enabled(&self) -> StoreResult<bool> {
        self.s3_api("object lock")?.lock_enabled().await
    }

    /// The current version's retention, ended or not (`None`: it has
    /// none). A missing object is [`StoreError::NotFound`].
    pub async fn retention(&self, path: &str) -> StoreResult<Option<RetentionState>> {
        self.retention_of(path, None).await
    }

    /// The retention of one version of an object.
    pub async fn version_retention(
        &self,
        path: &str,
        version_id: &str,
    ) -> StoreResult<Option<RetentionState>> {
        self.retention_of(path, Some(version_id)).await
    }

    async fn retention_of(
        &self,
        path: &str,
        version_id: Option<&str>,
    ) -> StoreResult<Option<RetentionState>> {
        let status = self
            .s3_api("object lock")?
            .status_of(path, version_id)
            .await?;
        Ok(status
            .retention
            .and_then(|(mode, date)| parse_date(&date).map(|until| RetentionState { mode, until })))
    }

    /// When an object's retention ends, if it has not yet (`None` for an
    /// object without retention, a past one, a missing object, or a store
    /// other than S3).
    pub async fn locked_until(&self, path: &str) -> StoreResult<Option<SystemTime>> {
        if !self.is_s3() {
            return Ok(None);
        }
        match self.retention(path).await {
            Ok(r) => Ok(r.map(|r| r.until).filter(|u| *u > SystemTime::now())),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every version and delete marker under `prefix`.
    pub async fn versions(&self, prefix: &str) -> StoreResult<Vec<ObjectVersion>> {
        self.s3_api("object versions")?.versions(prefix).await
    }

    /// Deletes one version or delete marker.
    pub async fn delete_version(&self, path: &str, version_id: &str) -> StoreResult<()> {
        self.s3_api("object versions")?
            .delete_version(path, version_id)
            .await
    }

    /// Multipart uploads under `prefix` that were never completed or
    /// aborted (S3 stores; none on others, whose uploads leave nothing
    /// behind a listing cannot see, or which cairn does not stream to).
    pub async fn pending_uploads(&self, prefix: &str) -> StoreResult<Vec<crate::PendingUpload>> {
        match &self.s3 {
            Some(api) => api.uploads(prefix).await,
            None => Ok(Vec::new()),
        }
    }

    /// Aborts a pending multipart upload, deleting its parts.
    pub async fn abort_upload(&self, upload: &crate::PendingUpload) -> StoreResult<()> {
        self.s3_api("multipart uploads")?
            .abort_upload(&upload.path, &upload.upload_id)
            .await
    }
}
