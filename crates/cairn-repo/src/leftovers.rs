//! What interrupted writers leave behind: packs that no index file lists
//! (a backup killed between an upload and its next index file), stray
//! objects under `probe/` (capability probes of a killed `init`), in a
//! local repository the temporary files of uploads killed before their
//! rename (`NAME#N`, which listings never show), and in an S3 repository
//! the multipart uploads of packs a killed backup was streaming (never
//! completed, never listed, their parts still stored). `check` reports
//! them as warnings; prune adopts such packs (re-indexes them from their
//! header), deletes stray probes and temporary files and aborts pending
//! uploads once they are older than the grace period, so a writer still
//! running is never disturbed.

use std::collections::HashSet;

use cairn_core::Id;
use cairn_core::format::IndexPack;

use crate::{Repository, Result, paths};

/// Where capability probes live (see `cairn_store::Store::probe_create_only`).
const PROBE: &str = "probe";

/// Objects no index or snapshot accounts for.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Leftovers {
    /// Packs in `data/` that no index file lists: (pack, size, age in
    /// seconds on the repository's clock).
    pub unindexed_packs: Vec<(Id, u64, i64)>,
    /// Other objects that no writer keeps: (path, age in seconds).
    pub stray_objects: Vec<(String, i64)>,
    /// Temporary files of killed uploads in a local repository: (path,
    /// size, age in seconds on this host's clock).
    pub staging_files: Vec<(String, u64, i64)>,
    /// Multipart uploads of killed writers in an S3 repository: (path,
    /// upload id, age in seconds on the repository's clock).
    pub pending_uploads: Vec<(String, String, i64)>,
}

impl Leftovers {
    /// True if nothing was found.
    pub fn is_empty(&self) -> bool {
        self.unindexed_packs.is_empty()
            && self.stray_objects.is_empty()
            && self.staging_files.is_empty()
            && self.pending_uploads.is_empty()
    }

    /// Stray objects, temporary files and pending uploads at least `age`
    /// seconds old: what prune deletes or aborts.
    pub fn strays_older_than(&self, age: i64) -> usize {
        self.stray_objects.iter().filter(|(_, a)| *a >= age).count()
            + self
                .staging_files
                .iter()
                .filter(|(_, _, a)| *a >= age)
                .count()
            + self
                .pending_uploads
                .iter()
                .filter(|(_, _, a)| *a >= age)
                .count()
    }

    /// One line per object, for warnings.
    pub fn describe(&self) -> Vec<String> {
        let packs = self.unindexed_packs.iter().map(|(p, size, age)| {
            format!("pack {p} ({size} bytes, {age} s old) is listed by no index file")
        });
        let stray = self
            .stray_objects
            .iter()
            .map(|(path, age)| format!("{path} ({age} s old) is a leftover of an interrupted run"));
        let staging = self.staging_files.iter().map(|(path, size, age)| {
            format!(
                "{path} ({size} bytes, {age} s old) is a temporary file of an interrupted upload"
            )
        });
        let uploads = self.pending_uploads.iter().map(|(path, id, age)| {
            format!("{path} ({age} s old) has a multipart upload that was never completed ({id})")
        });
        packs.chain(stray).chain(staging).chain(uploads).collect()
    }
}

/// The age at `now` (repository's clock) of an upload the server says it
/// started at `initiated` (server's clock, `skew` ahead); 0 for a date
/// that does not parse, so that such an upload is never aborted.
fn upload_age(initiated: &str, now: i64, skew: i64) -> i64 {
    cairn_store::parse_date(initiated)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| now - (d.as_secs() as i64 - skew))
}

impl Repository {
    /// Finds leftovers. `indexed` holds every pack some index file lists
    /// (superseded files included); `skew` converts the server's
    /// timestamps to the repository's clock (server minus local).
    pub async fn find_leftovers(&self, indexed: &HashSet<Id>, skew: i64) -> Result<Leftovers> {
        let now = self.clock().now();
        let age = |modified: i64| now - (modified - skew);
        let mut out = Leftovers::default();
        for o in self.list_timed(paths::DATA).await? {
            if let Some(id) = paths::id_in(paths::DATA, &o.path) {
                if !indexed.contains(&id) {
                    out.unindexed_packs.push((id, o.size, age(o.modified)));
                }
            }
        }
        out.stray_objects = self.stray_objects(skew).await?;
        out.staging_files = self.staging_files()?;
        out.pending_uploads = self.pending_uploads(skew).await?;
        out.unindexed_packs.sort();
        out.stray_objects.sort();
        Ok(out)
    }

    /// Stray objects of interrupted runs, with their age on the
    /// repository's clock (`skew`: server minus local). Cheap: one listing.
    pub async fn stray_objects(&self, skew: i64) -> Result<Vec<(String, i64)>> {
        let now = self.clock().now();
        Ok(self
            .list_timed(PROBE)
            .await?
            .into_iter()
            .map(|o| (o.path, now - (o.modified - skew)))
            .collect())
    }

    /// Multipart uploads never completed (S3 repositories only), with
    /// their age on the repository's clock (`skew`: server minus local).
    /// One whose start the server did not date is taken as new: it is
    /// never aborted.
    pub async fn pending_uploads(&self, skew: i64) -> Result<Vec<(String, String, i64)>> {
        let now = self.clock().now();
        let mut out: Vec<_> = self
            .store()
            .pending_uploads(paths::DATA)
            .await?
            .into_iter()
            .map(|u| {
                let age = upload_age(&u.initiated, now, skew);
                (u.path, u.upload_id, age)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Temporary files of killed uploads (local repositories only), aged on
    /// the system clock, which stamped them: never on the repository's
    /// clock, which a test (or a wrong setting) may have moved, and which
    /// would make a running writer's file look old.
    pub fn staging_files(&self) -> Result<Vec<(String, u64, i64)>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Ok(self
            .store()
            .staging_files()?
            .into_iter()
            .map(|f| (f.path, f.size, now - f.modified))
            .collect())
    }

    /// Leftovers against the packs `indexed` (those every index file
    /// lists, superseded files included).
    pub(crate) async fn leftovers_of(&self, indexed: HashSet<Id>, skew: i64) -> Result<Leftovers> {
        self.find_leftovers(&indexed, skew).await
    }

    /// Leftovers as `check` sees them: against every index file there is.
    pub async fn check_leftovers(&self) -> Result<Leftovers> {
        let mut indexed = HashSet::new();
        for (_, f) in self.read_index_files().await? {
            indexed.extend(f.packs.iter().map(|p| p.pack));
        }
        self.find_leftovers(&indexed, 0).await
    }

    /// Prune's part: reads the header of each unindexed pack older than
    /// `grace` and returns its index entries (unreadable ones are left for
    /// `check` and `repair`), and deletes stray objects older than `grace`.
    pub(crate) async fn adopt_leftovers(
        &self,
        found: &Leftovers,
        grace: i64,
    ) -> Result<Vec<IndexPack>> {
        let mut adopted = Vec::new();
        for (pack, _, age) in &found.unindexed_packs {
            if *age < grace {
                continue;
            }
            match self.read_pack_header(pack).await {
                Ok((blobs, _)) => adopted.push(IndexPack { pack: *pack, blobs }),
                Err(e) => tracing::warn!("leaving unindexed pack {pack}: {e}"),
            }
        }
        for (path, age) in &found.stray_objects {
            if *age >= grace {
                self.store().delete(path).await?;
            }
        }
        for (path, _, age) in &found.staging_files {
            if *age >= grace {
                self.store().delete_staging_file(path)?;
            }
        }
        for (path, upload_id, age) in &found.pending_uploads {
            if *age >= grace {
                let upload = cairn_store::PendingUpload {
                    path: path.clone(),
                    upload_id: upload_id.clone(),
                    initiated: String::new(),
                };
                self.store().abort_upload(&upload).await?;
            }
        }
        Ok(adopted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_aged_on_the_repository_clock_and_an_undated_one_is_new() {
        // 2026-12-01T10:00:00Z
        let t = 1_796_119_200;
        assert_eq!(upload_age("2026-12-01T10:00:00.000Z", t + 7200, 0), 7200);
        // A server 100 s ahead started it at 10:00 its time, 09:58:20 ours.
        assert_eq!(upload_age("2026-12-01T10:00:00Z", t + 7200, 100), 7300);
        assert_eq!(upload_age("yesterday", t + 7200, 0), 0);
        assert_eq!(upload_age("", t, 0), 0);
    }
}
