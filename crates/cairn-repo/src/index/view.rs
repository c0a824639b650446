//! [`IndexView`]: what [`Repository::index`](crate::Repository::index)
//! hands out, a read-only view of the merged index that keeps the lock
//! behind it private. Writers (a backup's uploader) wait while a view
//! lives, so take one for a lookup or a pass, never across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, RwLockReadGuard};

use cairn_core::Id;

use super::{BlobLocation, Index, PackEntry, Table};

/// A read-only view of a repository's merged index.
pub struct IndexView<'a> {
    index: RwLockReadGuard<'a, Index>,
}

impl std::fmt::Debug for IndexView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexView")
            .field("blobs", &self.len())
            .finish_non_exhaustive()
    }
}

impl<'a> IndexView<'a> {
    pub(crate) fn new(index: RwLockReadGuard<'a, Index>) -> IndexView<'a> {
        IndexView { index }
    }

    /// Where a blob is stored, tombstoned or not (a tombstoned blob stays
    /// readable while its pack exists).
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.index.get(id)
    }

    /// True if a writer may deduplicate against the blob: indexed and not
    /// tombstoned.
    pub fn contains(&self, id: &Id) -> bool {
        self.index.contains(id)
    }

    /// Where the blob is, if a writer may deduplicate against it.
    pub fn live_location(&self, id: &Id) -> Option<BlobLocation> {
        self.index.live_location(id)
    }

    /// True if some index file tombstones the blob and no newer one lists it.
    pub fn is_tombstoned(&self, id: &Id) -> bool {
        self.index.is_tombstoned(id)
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no blob is known.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every pack that holds at least one indexed blob (a full pass).
    pub fn packs(&self) -> crate::Result<Vec<Id>> {
        self.index.packs()
    }

    /// Ids of the index files merged.
    pub fn files(&self) -> Vec<Id> {
        self.index.files()
    }

    /// Blobs grouped by pack, first location only (a full pass).
    pub fn entries_by_pack(&self) -> crate::Result<HashMap<Id, Vec<PackEntry>>> {
        self.index.entries_by_pack()
    }

    /// [`IndexView::entries_by_pack`] for the packs `keep` accepts.
    pub(crate) fn entries_of_packs(
        &self,
        keep: impl Fn(&Id) -> bool,
    ) -> crate::Result<HashMap<Id, Vec<PackEntry>>> {
        self.index.entries_of_packs(keep)
    }

    pub(crate) fn table(&self) -> Option<&Arc<Table>> {
        self.index.table()
    }
}
