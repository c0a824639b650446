//! The writer's bundles (docs/FORMAT.md §7.1): small data blobs gathered
//! until the bundle's plaintext reaches its target, then sealed and
//! appended to a data pack as one object.

use std::sync::atomic::Ordering;

use cairn_core::format::BundleBuilder;
use cairn_core::format::bundle_v1::{BUNDLE_SEAL_ID, DIR_ENTRY_LEN};
use cairn_core::{Id, Kind, seal_into};

use super::{BlobWriter, SCRATCH, lock};
use crate::Result;

impl BlobWriter {
    /// Adds a small data blob to the bundle being filled, and seals and
    /// stores the bundle once it is full.
    pub(super) fn add_to_bundle(&self, id: Id, data: &[u8]) -> Result<()> {
        self.count(Kind::Data, data.len(), 0);
        let full = {
            let mut b = lock(&self.shared.bundle);
            b.push(id, data);
            // The directory counts: a bundle of blobs of a few bytes took
            // 2.6 times its target, too large for readers to keep opened
            // (`bundles.rs`), so each blob read opened the whole of it.
            if b.plain_len() < self.shared.bundle_target {
                return Ok(());
            }
            std::mem::replace(&mut *b, BundleBuilder::with_buffer(self.bundle_buffer()))
        };
        SCRATCH.with_borrow_mut(|sealed| {
            let members = self.seal_bundle(full, sealed);
            self.append(Kind::Data, sealed, members.len(), |p| {
                p.push_bundle(sealed, &members)
            })
        })
    }

    /// A buffer for the next bundle: a sealed bundle's, or a new one with
    /// room for a full bundle and a directory of 4 KiB blobs.
    fn bundle_buffer(&self) -> Vec<u8> {
        lock(&self.shared.bundle_spare).take().unwrap_or_else(|| {
            let full = self.shared.bundle_target + self.shared.bundle_blob_max;
            Vec::with_capacity(full + full / 4096 * DIR_ENTRY_LEN)
        })
    }

    /// Seals a bundle into `sealed`; returns its members.
    pub(super) fn seal_bundle(&self, b: BundleBuilder, sealed: &mut Vec<u8>) -> Vec<(Id, u32)> {
        let repo = &self.shared.repo;
        let (plain, members) = b.finish();
        seal_into(
            repo.keys(),
            Kind::Bundle,
            &BUNDLE_SEAL_ID,
            &plain,
            repo.config().compression(),
            repo.rng(),
            sealed,
        );
        self.shared
            .counters
            .bytes_stored
            .fetch_add(sealed.len() as u64, Ordering::Relaxed);
        // One kept: two bundles are rarely sealed at once.
        lock(&self.shared.bundle_spare).get_or_insert(plain);
        members
    }
}
