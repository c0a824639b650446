//! The writer's packs: one being filled, and one finished on its way to
//! the uploader.

use cairn_core::format::{PackBuilder, PackEntry};
use cairn_core::{Id, Kind};
use cairn_store::{Slot, Spool};

use crate::Result;

pub(super) struct FinishedPack {
    pub(super) id: Id,
    pub(super) kind: Kind,
    /// The pack; for a spooled one, empty (its file holds it).
    pub(super) bytes: Vec<u8>,
    pub(super) entries: Vec<PackEntry>,
    /// The place of a data pack's buffer (see [`cairn_store::BufferPool`]).
    pub(super) slot: Option<Slot>,
    pub(super) spool: Option<Spool>,
}

/// The pack of one kind being filled: in a buffer from the pool (data
/// packs), in memory (tree packs, and the last data pack of a writer), or
/// written as it fills (data packs of a local repository into its file,
/// and those of a remote one as a multipart upload).
#[derive(Default)]
pub(super) struct Filling {
    pub(super) pack: PackBuilder,
    pub(super) slot: Option<Slot>,
    /// The pack's file or upload.
    pub(super) spool: Option<Spool>,
    /// The pack's name, drawn when it started for an upload (which is
    /// made for a name); a file's is drawn when the pack is sealed.
    pub(super) id: Option<Id>,
}

impl Filling {
    /// True for a pack not started yet (no buffer, no file).
    pub(super) fn unstarted(&self) -> bool {
        self.slot.is_none() && self.spool.is_none()
    }

    /// From now on, never wait for a part buffer (see [`Spool::never_wait`]).
    pub(super) fn never_wait(&mut self) {
        if let Some(spool) = &mut self.spool {
            spool.never_wait();
        }
    }

    /// Appends a sealed object with `push` (which lists it), writing it to
    /// the pack's file first if it has one.
    pub(super) fn push(
        &mut self,
        sealed: &[u8],
        push: impl FnOnce(&mut PackBuilder),
    ) -> Result<()> {
        if let Some(spool) = &mut self.spool {
            spool.write(sealed)?;
        }
        push(&mut self.pack);
        Ok(())
    }
}
