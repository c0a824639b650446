//! Index files (`index/<id>`): which blobs each pack holds.
//!
//! ```text
//! version u8 = 1 | session id [32] | created i64
//! pack count u32 | per pack: pack id [32] | entry count u32 | entries (as in pack headers)
//! tombstone count u32 | blob ids [32] each
//! supersedes count u32 | index ids [32] each
//! ```
//! Sealed as kind `Index`; the id (and object name) is the keyed hash of the
//! plaintext. Tombstones and supersedes are written by prune and compaction.
//! Version 2 is version 1 whose entries may be of kind `Bundle`, as in pack
//! headers; writers use it only for files that list a bundle.

use crate::codec::{Reader, Writer};
use crate::format::pack_v1::{ENTRY_LEN, PackEntry, check_version_used, read_version, version_for};
use crate::{Id, Result};

const WHAT: &str = "index";

/// The blobs of one pack, as listed in an index file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexPack {
    /// The pack's id.
    pub pack: Id,
    /// Its blobs.
    pub blobs: Vec<PackEntry>,
}

/// One index file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexFile {
    /// The writer session that wrote it (random per writer).
    pub session: Id,
    /// When it was written, seconds since the epoch.
    pub created: i64,
    /// Packs and their blobs.
    pub packs: Vec<IndexPack>,
    /// Blobs that prune declared dead: writers must not deduplicate against them.
    pub tombstones: Vec<Id>,
    /// Index files whose content this one replaces.
    pub supersedes: Vec<Id>,
}

impl IndexFile {
    /// The plaintext encoding.
    pub fn encode(&self) -> Vec<u8> {
        let blobs: usize = self.packs.iter().map(|p| p.blobs.len()).sum();
        let mut w = Writer::with_capacity(
            16 + self.packs.len() * 36
                + blobs * ENTRY_LEN
                + 32 * (self.tombstones.len() + self.supersedes.len()),
        );
        w.u8(version_for(self.packs.iter().flat_map(|p| &p.blobs)));
        w.id(&self.session);
        w.i64(self.created);
        w.count(self.packs.len());
        for p in &self.packs {
            w.id(&p.pack);
            w.count(p.blobs.len());
            for e in &p.blobs {
                e.write(&mut w);
            }
        }
        w.count(self.tombstones.len());
        for t in &self.tombstones {
            w.id(t);
        }
        w.count(self.supersedes.len());
        for s in &self.supersedes {
            w.id(s);
        }
        w.finish()
    }

    /// Decodes the plaintext.
    pub fn decode(b: &[u8]) -> Result<IndexFile> {
        let mut r = Reader::new(b, WHAT);
        let version = read_version(&mut r, WHAT)?;
        let session = r.id()?;
        let created = r.i64()?;
        let np = r.count(36)?;
        let mut packs = Vec::with_capacity(np);
        for _ in 0..np {
            let pack = r.id()?;
            let n = r.count(ENTRY_LEN)?;
            let mut blobs = Vec::with_capacity(n);
            for _ in 0..n {
                blobs.push(PackEntry::read(&mut r, version)?);
            }
            packs.push(IndexPack { pack, blobs });
        }
        // Reserved once: a collect through `Result` grows by doubling
        // (a file of 200,000 tombstones is 6.4 MB).
        let tombstones = ids(&mut r)?;
        let supersedes = ids(&mut r)?;
        r.end()?;
        check_version_used(version, packs.iter().flat_map(|p| &p.blobs), WHAT)?;
        Ok(IndexFile {
            session,
            created,
            packs,
            tombstones,
            supersedes,
        })
    }
}

/// A count and that many ids.
fn ids(r: &mut Reader<'_>) -> Result<Vec<Id>> {
    let n = r.count(32)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.id()?);
    }
    Ok(out)
}
