//! `cairn lock recover`: undoes what a delete-everything attempt can do to
//! a versioned bucket.
//!
//! A plain DELETE on a versioned bucket destroys nothing: it hides the
//! object behind a delete marker, and the repository looks empty. Deleting
//! the versions themselves is what destroys data, and Object Lock refuses
//! that for every retained version. So after such an attack the repository
//! comes back by removing the delete markers that hide a retained version.
//!
//! Only markers that hide a version still retained are removed (unless
//! asked for every one): prune and forget delete an object only once its
//! retention has ended, and on a versioned bucket their deletes leave
//! markers too, over versions a lifecycle rule expires later. Removing
//! those would bring back snapshots forgotten on purpose, whose data prune
//! may have deleted since. Sessions and probes are never brought back.
//! Nothing is decrypted: recovery needs the bucket's credentials only.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use cairn_store::{ObjectClass, ObjectVersion, Store, StoreError};
use futures::{StreamExt, TryStreamExt};

use super::LOCK_CONCURRENCY;
use crate::Result;

/// What `lock recover` is to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoverOptions {
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
    /// Also remove markers over versions whose retention has ended (or
    /// that never had one), which prune and forget leave too.
    pub include_unretained: bool,
}

/// What `lock recover` found and did (or would do, in a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoverReport {
    /// True if nothing was changed.
    pub dry_run: bool,
    /// Objects hidden by a delete marker with a version beneath.
    pub hidden: usize,
    /// Hidden objects made visible again.
    pub restored: usize,
    /// Restored objects per folder (`config`, `data`, `index`, `keys`, …).
    pub restored_by_folder: BTreeMap<String, usize>,
    /// Delete markers removed.
    pub markers_removed: usize,
    /// Hidden objects left hidden: their newest version is no longer
    /// retained (deleted by prune or forget, most likely).
    pub left_unretained: usize,
    /// Objects whose every version is gone: nothing to bring back.
    pub destroyed: usize,
    /// Hidden sessions and probes, never brought back.
    pub volatile_skipped: usize,
}

/// An object whose current entry is a delete marker, with data beneath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hidden {
    /// Path relative to the repository root.
    pub(crate) path: String,
    /// The newest version that is not a delete marker: what reappears.
    pub(crate) version_id: String,
    /// Every delete marker of the object (removing older ones as well
    /// changes nothing visible, and leaves no marker to trip over).
    pub(crate) markers: Vec<String>,
}

/// Hidden objects found in a version listing, sorted by path; and how many
/// objects are hidden with no version left, and how many are volatile.
pub(crate) fn hidden_objects(versions: &[ObjectVersion]) -> (Vec<Hidden>, usize, usize) {
    let mut by_path: BTreeMap<&str, Vec<&ObjectVersion>> = BTreeMap::new();
    for v in versions {
        by_path.entry(v.path.as_str()).or_default().push(v);
    }
    let (mut hidden, mut destroyed, mut volatile) = (Vec::new(), 0, 0);
    for (path, entries) in by_path {
        let current_is_marker = entries.iter().any(|v| v.is_latest && v.is_delete_marker);
        if !current_is_marker {
            continue;
        }
        if ObjectClass::of_path(path) == ObjectClass::Volatile {
            volatile += 1;
            continue;
        }
        // The server lists a key's versions newest first; a later date
        // wins, an equal one (second resolution) keeps the listing order.
        let mut newest: Option<&ObjectVersion> = None;
        for v in entries.iter().filter(|v| !v.is_delete_marker) {
            if newest.is_none_or(|n| v.last_modified > n.last_modified) {
                newest = Some(v);
            }
        }
        let Some(newest) = newest else {
            destroyed += 1;
            continue;
        };
        hidden.push(Hidden {
            path: path.to_owned(),
            version_id: newest.version_id.clone(),
            markers: entries
                .iter()
                .filter(|v| v.is_delete_marker)
                .map(|v| v.version_id.clone())
                .collect(),
        });
    }
    (hidden, destroyed, volatile)
}

/// Splits `hidden` into the objects to bring back and those left hidden:
/// an object comes back when its newest version is retained (its path is
/// in `retained`), or with `include_unretained`.
pub(crate) fn to_restore(
    hidden: Vec<Hidden>,
    retained: &HashSet<String>,
    include_unretained: bool,
) -> (Vec<Hidden>, Vec<Hidden>) {
    hidden
        .into_iter()
        .partition(|h| include_unretained || retained.contains(&h.path))
}

/// The top folder of a path (`data/ab/ab12…` → `data`).
fn folder(path: &str) -> String {
    path.split('/').next().unwrap_or(path).to_owned()
}

/// Finds the objects under the repository's prefix that delete markers
/// hide and brings back those whose newest version is still retained (see
/// the module docs). Works on the store alone: the repository's config
/// and keys may be among the hidden objects.
pub async fn recover(store: &Store, opts: RecoverOptions) -> Result<RecoverReport> {
    let versions = store.versions("").await?;
    let (hidden, destroyed, volatile) = hidden_objects(&versions);
    let mut report = RecoverReport {
        dry_run: opts.dry_run,
        hidden: hidden.len(),
        destroyed,
        volatile_skipped: volatile,
        ..RecoverReport::default()
    };
    let retained: HashSet<String> = if opts.include_unretained {
        HashSet::new()
    } else {
        let now = SystemTime::now();
        let found: Vec<Option<String>> = futures::stream::iter(&hidden)
            .map(|h| async move {
                match store.version_retention(&h.path, &h.version_id).await {
                    Ok(r) => Ok(r.filter(|r| r.until > now).map(|_| h.path.clone())),
                    Err(StoreError::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(LOCK_CONCURRENCY)
            .try_collect()
            .await?;
        found.into_iter().flatten().collect()
    };
    let (restore, left) = to_restore(hidden, &retained, opts.include_unretained);
    report.left_unretained = left.len();
    report.restored = restore.len();
    for h in &restore {
        *report
            .restored_by_folder
            .entry(folder(&h.path))
            .or_default() += 1;
        report.markers_removed += h.markers.len();
    }
    if opts.dry_run {
        return Ok(report);
    }
    let markers = restore
        .iter()
        .flat_map(|h| h.markers.iter().map(move |m| (h.path.as_str(), m.as_str())));
    futures::stream::iter(markers)
        .map(|(path, marker)| store.delete_version(path, marker))
        .buffer_unordered(LOCK_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(path: &str, id: &str, latest: bool, marker: bool, at: &str) -> ObjectVersion {
        ObjectVersion {
            path: path.into(),
            version_id: id.into(),
            is_latest: latest,
            is_delete_marker: marker,
            last_modified: format!("2026-11-30T07:00:{at}.000Z"),
        }
    }

    #[test]
    fn only_objects_whose_current_entry_is_a_marker_over_data_are_hidden() {
        let listing = [
            // Hidden twice over (two attacks): both markers go.
            v("config", "c1", false, false, "01"),
            v("config", "m1", true, true, "05"),
            v("config", "m2", false, true, "03"),
            // Visible, with an old marker beneath: left alone.
            v("index/aa", "i2", true, false, "04"),
            v("index/aa", "m3", false, true, "02"),
            v("index/aa", "i1", false, false, "01"),
            // Rewritten once: the newer version comes back.
            v("keys/k", "k1", false, false, "01"),
            v("keys/k", "k2", false, false, "02"),
            v("keys/k", "m4", true, true, "03"),
            // Every version destroyed.
            v("data/ab/ab", "m5", true, true, "03"),
            // Sessions stay gone.
            v("sessions/s", "s1", false, false, "01"),
            v("sessions/s", "m6", true, true, "02"),
        ];
        let (hidden, destroyed, volatile) = hidden_objects(&listing);
        assert_eq!(
            hidden,
            vec![
                Hidden {
                    path: "config".into(),
                    version_id: "c1".into(),
                    markers: vec!["m1".into(), "m2".into()],
                },
                Hidden {
                    path: "keys/k".into(),
                    version_id: "k2".into(),
                    markers: vec!["m4".into()],
                },
            ]
        );
        assert_eq!((destroyed, volatile), (1, 1));
    }

    #[test]
    fn equal_dates_keep_the_servers_newest_first_order() {
        let listing = [
            v("snapshots/s", "new", false, false, "01"),
            v("snapshots/s", "old", false, false, "01"),
            v("snapshots/s", "m", true, true, "01"),
        ];
        let (hidden, _, _) = hidden_objects(&listing);
        assert_eq!(hidden[0].version_id, "new");
    }

    #[test]
    fn only_retained_versions_come_back_unless_asked_for_all() {
        let h = |p: &str| Hidden {
            path: p.into(),
            version_id: "v".into(),
            markers: vec!["m".into()],
        };
        let retained = HashSet::from(["config".to_owned()]);
        let (back, left) = to_restore(vec![h("config"), h("snapshots/old")], &retained, false);
        assert_eq!(back, vec![h("config")]);
        assert_eq!(left, vec![h("snapshots/old")]);
        let (back, left) = to_restore(vec![h("config"), h("snapshots/old")], &retained, true);
        assert_eq!((back.len(), left.len()), (2, 0));
        assert_eq!(folder("data/ab/abc"), "data");
        assert_eq!(folder("config"), "config");
    }
}
