//! Prune's compaction: many index files replaced by few, without changing
//! which copies a tombstone covers.
//!
//! A tombstone created at T covers the copies of its blobs listed by index
//! files created at or before T. Rewriting every pack into one file created
//! at the newest time would make old copies look newly listed, and the
//! tombstones still waiting would stop covering them (nothing would ever
//! be deleted on a repository that is backed up between prunes). So packs
//! are grouped by where their listing time falls among the times of the
//! tombstone files that remain, and each group gets the newest listing
//! time in it: every copy stays on the same side of every tombstone.
//!
//! Compaction is tiered: prune leaves alone the large index files that
//! list nothing it removes (`STABLE_ENTRIES` in `commands/prune.rs`), and
//! within the files it writes, packs go oldest first, so packs that a
//! later `forget` retires together sit in few files. After a prune a
//! client downloads the files that changed, not the whole index again.

use std::collections::{BTreeMap, HashMap};

use cairn_core::Id;
use cairn_core::format::IndexPack;

use crate::session_handle::SessionHandle;
use crate::spool::{PackView, Spool};
use crate::{Repository, Result, paths};

/// A pack to list: when it was listed, its id, and its entries (in the
/// spool, or those of a pack this run wrote).
type Listing<'a> = (i64, Id, Entries<'a>);

enum Entries<'a> {
    Spooled(&'a PackView),
    New(Vec<cairn_core::format::PackEntry>),
}

/// The index file entries of a group of listings, each pack's entries
/// read from the spool as the file that lists it is written.
struct Lists<'a> {
    spool: &'a Spool,
    listings: std::vec::IntoIter<Listing<'a>>,
}

impl Iterator for Lists<'_> {
    type Item = Result<IndexPack>;
    fn next(&mut self) -> Option<Self::Item> {
        let (_, pack, entries) = self.listings.next()?;
        let blobs = match entries {
            Entries::Spooled(v) => self.spool.pack_entries(v),
            Entries::New(blobs) => Ok(blobs),
        };
        Some(blobs.map(|blobs| IndexPack { pack, blobs }))
    }
}

/// What a compaction writes.
pub(crate) struct Compaction<'a> {
    /// Each pack to keep listing: newest `created` of the files listing
    /// it, and its listings.
    pub(crate) listed: HashMap<Id, &'a PackView>,
    /// Where their entries wait.
    pub(crate) spool: &'a Spool,
    /// `created` of every tombstone file that stays.
    pub(crate) cuts: Vec<i64>,
    /// Packs written (or adopted) by this run: listed as new.
    pub(crate) new_packs: Vec<IndexPack>,
    /// Index files the new ones replace.
    pub(crate) supersedes: Vec<Id>,
    /// Those of `supersedes` retained by Object Lock: superseded, but left
    /// in place for a run after their date to delete.
    pub(crate) retained: &'a HashMap<Id, std::time::SystemTime>,
}

impl Repository {
    /// Writes the compacted index files (the last one naming the files
    /// they supersede), then deletes the superseded files. Packs missing
    /// from `data/` now are left out; returns how many.
    pub(crate) async fn write_compaction(
        &self,
        me: &SessionHandle,
        plan: Compaction<'_>,
    ) -> Result<usize> {
        // Only packs that exist now: a pack another run deleted must not
        // come back into the index as a deduplication target.
        let present = self.list_packs().await?;
        let mut cuts = plan.cuts;
        cuts.sort_unstable();
        cuts.dedup();
        // Each group's packs with their listing time, to order them by age;
        // entries are copied out of the files read only as each new file
        // is written.
        let mut groups: BTreeMap<usize, (i64, Vec<Listing<'_>>)> = BTreeMap::new();
        let mut missing = 0;
        for (pack, view) in plan.listed {
            let listed = view.listed;
            // A listing may lag behind a pack just uploaded: ask for the
            // object itself before leaving it out.
            if !present.contains_key(&pack) && !self.pack_exists(&pack).await? {
                missing += 1;
                continue;
            }
            let g = groups
                .entry(cuts.partition_point(|&c| c < listed))
                .or_insert((listed, Vec::new()));
            g.0 = g.0.max(listed);
            g.1.push((listed, pack, Entries::Spooled(view)));
        }
        if !plan.new_packs.is_empty() {
            let newest = groups.values().map(|g| g.0).max();
            let last = groups.keys().next_back().copied().unwrap_or(cuts.len());
            let g = groups
                .entry(last)
                .or_insert((newest.unwrap_or(i64::MIN), Vec::new()));
            if g.0 == i64::MIN {
                g.0 = self.clock().now();
            }
            let new = plan.new_packs.into_iter();
            g.1.extend(new.map(|p| (i64::MAX, p.pack, Entries::New(p.blobs))));
        }
        if groups.is_empty() {
            groups.insert(0, (self.clock().now(), Vec::new()));
        }
        let n = groups.len();
        for (i, (_, (created, mut packs))) in groups.into_iter().enumerate() {
            // Oldest first (new packs last), then by id: a stable order
            // that keeps packs of one age together across compactions.
            packs.sort_unstable_by_key(|(listed, pack, _)| (*listed, *pack));
            let packs = Lists {
                spool: plan.spool,
                listings: packs.into_iter(),
            };
            let supersedes = if i + 1 == n {
                plan.supersedes.clone()
            } else {
                Vec::new()
            };
            self.refresh_if_due(me).await?;
            self.store_index_files(me.id, created, packs, supersedes)
                .await?;
        }
        self.refresh_if_due(me).await?;
        for id in plan
            .supersedes
            .iter()
            .filter(|id| !plan.retained.contains_key(id))
        {
            // One retained after all (extended since prune asked) is left
            // like the others: superseded, so readers ignore it.
            self.delete_unless_retained(&paths::index(id)).await?;
        }
        Ok(missing)
    }

    async fn pack_exists(&self, pack: &Id) -> Result<bool> {
        match self.store().head(&paths::pack(pack)).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
