//! The index files as prune holds them while it decides (ADR 0022): each
//! file's supersessions and pack ids in memory, its packs' entries and its
//! tombstones in a spool on local disk, read back a pack (or a file) at a
//! time when a decision needs them (ADR 0024). What prune holds in memory
//! then grows with the packs, not with the blobs.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;

use cairn_core::format::{IndexFile, IndexPack, PackEntry};
use cairn_core::{Id, Kind};

use crate::{Error, Result};

/// An index file as prune holds it: all but its packs' entries.
#[derive(Debug, Clone)]
pub(crate) struct HeldFile {
    pub(crate) id: Id,
    pub(crate) session: Id,
    pub(crate) created: i64,
    /// Its tombstones, in the spool ([`Spool::tombstones`]).
    pub(crate) tombstones: Tombstones,
    pub(crate) supersedes: Vec<Id>,
    /// The packs it lists, in its order.
    pub(crate) packs: Vec<Listing>,
}

impl HeldFile {
    /// How many entries its packs have.
    pub(crate) fn entries(&self) -> usize {
        self.packs.iter().map(|l| l.count as usize).sum()
    }
}

/// One pack as one index file lists it: where its entries lie in the
/// spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listing {
    pub(crate) pack: Id,
    at: u64,
    count: u32,
}

/// The tombstones of one index file: where they lie in the spool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tombstones {
    at: u64,
    count: u32,
}

impl Tombstones {
    /// How many.
    pub(crate) fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Bytes of one entry in the spool: id, kind, offset, length, raw length.
const ENTRY: usize = 32 + 1 + 4 + 4 + 4;
/// Bytes gathered before they are written to the spool's file.
const FLUSH: usize = 1 << 20;

/// Where the entries wait: a file in a directory of the run's own, or
/// memory (no index directory, the file could not be made or written, or
/// asked).
pub(crate) struct Spool {
    file: Option<(File, tempfile::TempDir)>,
    /// Everything in memory; with a file, what is not written yet.
    pending: Vec<u8>,
    /// Bytes written to the file.
    written: u64,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("on_disk", &self.file.is_some())
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl Spool {
    /// A spool in memory.
    pub(crate) fn memory() -> Spool {
        Spool {
            file: None,
            pending: Vec::new(),
            written: 0,
        }
    }

    /// A spool in a file of `dir`, removed with it.
    pub(crate) fn in_dir(dir: tempfile::TempDir) -> std::io::Result<Spool> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("entries"))?;
        Ok(Spool {
            file: Some((file, dir)),
            pending: Vec::new(),
            written: 0,
        })
    }

    /// The run's directory, while the entries are on disk there.
    pub(crate) fn dir(&self) -> Option<&std::path::Path> {
        self.file.as_ref().map(|(_, d)| d.path())
    }

    /// Whether the entries are on disk.
    #[cfg(test)]
    pub(crate) fn on_disk(&self) -> bool {
        self.file.is_some()
    }

    /// Keeps `file` named `id`: its entries go to the spool.
    pub(crate) fn hold(&mut self, id: Id, file: IndexFile) -> Result<HeldFile> {
        let mut packs = Vec::with_capacity(file.packs.len());
        for p in &file.packs {
            packs.push(self.push(p.pack, &p.blobs)?);
        }
        let tombstones = self.push_tombstones(&file.tombstones)?;
        Ok(HeldFile {
            id,
            session: file.session,
            created: file.created,
            tombstones,
            supersedes: file.supersedes,
            packs,
        })
    }

    fn push_tombstones(&mut self, ids: &[Id]) -> Result<Tombstones> {
        let count = u32::try_from(ids.len())
            .map_err(|_| Error::Internal("an index file lists too many tombstones".into()))?;
        let at = self.append(|out| {
            for t in ids {
                out.extend_from_slice(t.as_bytes());
            }
        });
        Ok(Tombstones { at, count })
    }

    fn push(&mut self, pack: Id, entries: &[PackEntry]) -> Result<Listing> {
        let count = u32::try_from(entries.len())
            .map_err(|_| Error::Internal(format!("pack {pack} lists too many blobs")))?;
        let at = self.append(|out| {
            for e in entries {
                out.extend_from_slice(e.id.as_bytes());
                out.push(e.kind as u8);
                out.extend_from_slice(&e.offset.to_le_bytes());
                out.extend_from_slice(&e.length.to_le_bytes());
                out.extend_from_slice(&e.raw_length.to_le_bytes());
            }
        });
        Ok(Listing { pack, at, count })
    }

    /// Appends what `encode` writes to the bytes pending, written out past
    /// [`FLUSH`]; returns where they start.
    fn append(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let at = self.written + self.pending.len() as u64;
        encode(&mut self.pending);
        if self.pending.len() >= FLUSH {
            self.flush();
        }
        at
    }

    /// Writes what is pending to the file; if that fails (a full disk),
    /// moves what the file holds back to memory and goes on there.
    fn flush(&mut self) {
        let Some((file, _)) = &self.file else {
            return;
        };
        match file.write_all_at(&self.pending, self.written) {
            Ok(()) => {
                self.written += self.pending.len() as u64;
                self.pending.clear();
                // A file's tombstones come in one push (6.4 MB for
                // 200,000): do not keep that much room for the rest.
                self.pending.shrink_to(FLUSH * 2);
            }
            Err(e) => self.move_to_memory(e),
        }
    }

    fn move_to_memory(&mut self, why: std::io::Error) {
        tracing::warn!("prune's index entries kept in memory: {why}");
        let Some((file, dir)) = self.file.take() else {
            return;
        };
        let mut all = vec![0u8; self.written as usize];
        if let Err(e) = file.read_exact_at(&mut all, 0) {
            // Nothing to go on with: every later read fails the run.
            tracing::warn!("reading back {}: {e}", dir.path().display());
            self.file = Some((file, dir));
            return;
        }
        all.append(&mut self.pending);
        self.pending = all;
        self.written = 0;
    }

    /// Makes every entry pushed readable.
    pub(crate) fn seal(&mut self) {
        if !self.pending.is_empty() {
            self.flush();
        }
    }

    /// The entries of `l`, as its file lists them.
    pub(crate) fn entries(&self, l: &Listing) -> Result<Vec<PackEntry>> {
        let bytes = self.bytes(l.at, l.count as usize * ENTRY)?;
        bytes.chunks_exact(ENTRY).map(decode).collect()
    }

    /// The tombstones `t` places, in their file's order.
    pub(crate) fn tombstones(&self, t: &Tombstones) -> Result<Vec<Id>> {
        let bytes = self.bytes(t.at, t.len() * 32)?;
        let mut out = Vec::with_capacity(t.len());
        for b in bytes.chunks_exact(32) {
            let id: [u8; 32] = b
                .try_into()
                .map_err(|_| Error::Internal("short spool tombstone".into()))?;
            out.push(Id::from_bytes(id));
        }
        Ok(out)
    }

    /// `len` bytes pushed at `at`: a push is written whole or not at all.
    fn bytes(&self, at: u64, len: usize) -> Result<Cow<'_, [u8]>> {
        match &self.file {
            Some((file, dir)) if at < self.written => {
                let mut b = vec![0u8; len];
                file.read_exact_at(&mut b, at).map_err(|e| {
                    Error::Internal(format!("reading {}: {e}", dir.path().display()))
                })?;
                Ok(Cow::Owned(b))
            }
            _ => {
                let at = (at - self.written) as usize;
                let b = self.pending.get(at..at + len).ok_or_else(|| {
                    Error::Internal("prune's entry spool is shorter than written".into())
                })?;
                Ok(Cow::Borrowed(b))
            }
        }
    }

    /// `held` again as the index file it was read as.
    pub(crate) fn file(&self, held: &HeldFile) -> Result<IndexFile> {
        let mut packs = Vec::with_capacity(held.packs.len());
        for l in &held.packs {
            packs.push(IndexPack {
                pack: l.pack,
                blobs: self.entries(l)?,
            });
        }
        Ok(IndexFile {
            session: held.session,
            created: held.created,
            packs,
            tombstones: self.tombstones(&held.tombstones)?,
            supersedes: held.supersedes.clone(),
        })
    }

    /// The distinct entries of a pack (by id and offset) over every
    /// listing of it, in the order first listed.
    pub(crate) fn pack_entries(&self, v: &PackView) -> Result<Vec<PackEntry>> {
        let mut out: Vec<PackEntry> = Vec::new();
        let mut seen: HashSet<(Id, u32)> = HashSet::new();
        for l in &v.listings {
            for e in self.entries(l)? {
                if seen.insert((e.id, e.offset)) {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }
}

fn decode(b: &[u8]) -> Result<PackEntry> {
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let id: [u8; 32] = b[..32]
        .try_into()
        .map_err(|_| Error::Internal("short spool entry".into()))?;
    let kind = Kind::from_u8(b[32])
        .ok_or_else(|| Error::Internal(format!("prune's entry spool: kind {}", b[32])))?;
    Ok(PackEntry {
        kind,
        id: Id::from_bytes(id),
        offset: u32_at(33),
        length: u32_at(37),
        raw_length: u32_at(41),
    })
}

/// One pack as the index files describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackView {
    /// Every listing of it, in the order of the files (nearly always
    /// one).
    pub(crate) listings: Vec<Listing>,
    /// Newest `created` of the files listing it.
    pub(crate) listed: i64,
}

/// Every pack the (not superseded) index files list, and where their
/// entries wait.
pub(crate) struct Packs<'s> {
    pub(crate) views: HashMap<Id, PackView>,
    pub(crate) spool: &'s Spool,
}

impl<'s> Packs<'s> {
    /// The packs `files` list.
    pub(crate) fn of(files: &[&HeldFile], spool: &'s Spool) -> Packs<'s> {
        let mut views: HashMap<Id, PackView> = HashMap::new();
        for f in files {
            for l in &f.packs {
                let v = views.entry(l.pack).or_insert(PackView {
                    listings: Vec::new(),
                    listed: f.created,
                });
                v.listed = v.listed.max(f.created);
                v.listings.push(*l);
            }
        }
        Packs { views, spool }
    }

    /// The distinct entries of `v` (see [`Spool::pack_entries`]).
    pub(crate) fn entries(&self, v: &PackView) -> Result<Vec<PackEntry>> {
        self.spool.pack_entries(v)
    }
}

/// `files` held in a spool in memory: for tests.
#[cfg(test)]
pub(crate) fn held(files: &[(Id, IndexFile)]) -> (Vec<HeldFile>, Spool) {
    let mut spool = Spool::memory();
    let held = files
        .iter()
        .map(|(id, f)| spool.hold(*id, f.clone()).expect("hold"))
        .collect();
    (held, spool)
}

/// Packs with these entries, each listed once at time 0, spooled in
/// memory: for tests (`Packs { views, spool: &spool }`).
#[cfg(test)]
pub(crate) fn spooled(packs: Vec<(Id, Vec<PackEntry>)>) -> (Spool, HashMap<Id, PackView>) {
    let mut spool = Spool::memory();
    let mut views = HashMap::new();
    for (pack, entries) in packs {
        let l = spool.push(pack, &entries).expect("push");
        let listings = vec![l];
        views.insert(
            pack,
            PackView {
                listings,
                listed: 0,
            },
        );
    }
    (spool, views)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 32])
    }

    fn entry(n: u8, offset: u32) -> PackEntry {
        PackEntry {
            kind: if n % 2 == 0 { Kind::Data } else { Kind::Tree },
            id: id(n),
            offset,
            length: 10 + u32::from(n),
            raw_length: 20 + u32::from(n),
        }
    }

    fn big_id(n: u32) -> Id {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_le_bytes());
        Id::from_bytes(b)
    }

    fn listing(created: i64, pack: u8, blobs: Vec<PackEntry>) -> (Id, IndexFile) {
        let file = IndexFile {
            session: id(0),
            created,
            packs: vec![IndexPack {
                pack: id(pack),
                blobs,
            }],
            // None, one, two or three, and far more than a flush in one.
            tombstones: match created {
                7 => (0..40_000u32).map(big_id).collect(),
                n => (0..n % 4).map(|k| id(90 + k as u8)).collect(),
            },
            supersedes: vec![id(80)],
        };
        (id(created as u8), file)
    }

    #[test]
    fn files_come_back_as_they_were_held_from_memory_and_from_disk() {
        let files: Vec<(Id, IndexFile)> = (0..40u8)
            .map(|n| listing(i64::from(n), n, (0..n).map(|b| entry(b, 7)).collect()))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let held_in = tempfile::tempdir_in(dir.path()).expect("tempdir");
        for mut spool in [Spool::memory(), Spool::in_dir(held_in).expect("spool")] {
            let held: Vec<HeldFile> = files
                .iter()
                .map(|(id, f)| spool.hold(*id, f.clone()).expect("hold"))
                .collect();
            spool.seal();
            for ((id, f), h) in files.iter().zip(&held) {
                assert_eq!(h.id, *id);
                assert_eq!(h.entries(), f.packs[0].blobs.len());
                assert_eq!(&spool.file(h).expect("file"), f);
            }
        }
    }

    #[test]
    fn a_pack_listed_by_several_files_has_each_distinct_entry_once() {
        let a = listing(1, 10, vec![entry(1, 0), entry(2, 10)]);
        let b = listing(3, 10, vec![entry(2, 10), entry(3, 20)]);
        let c = listing(2, 11, vec![entry(4, 0), entry(4, 0), entry(4, 10)]);
        let (held, spool) = held(&[a, b, c]);
        let refs: Vec<&HeldFile> = held.iter().collect();
        let packs = Packs::of(&refs, &spool);
        let merged = &packs.views[&id(10)];
        assert_eq!(merged.listed, 3);
        let expect = [entry(1, 0), entry(2, 10), entry(3, 20)];
        assert_eq!(packs.entries(merged).expect("entries"), expect);
        // One listing naming an entry twice keeps it once.
        let once = packs.entries(&packs.views[&id(11)]).expect("entries");
        assert_eq!(once, [entry(4, 0), entry(4, 10)]);
    }

    #[test]
    fn a_spool_whose_file_fails_goes_on_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spool = Spool::in_dir(tempfile::tempdir_in(dir.path()).expect("dir")).expect("s");
        let big: Vec<PackEntry> = (0..30_000u32).map(|i| entry(2, i)).collect();
        let first = spool.push(id(1), &big).expect("push");
        assert!(spool.written > 0, "flushed to the file");
        spool.move_to_memory(std::io::Error::other("disk full"));
        assert!(!spool.on_disk());
        let second = spool.push(id(2), &big[..5]).expect("push");
        spool.seal();
        assert_eq!(spool.entries(&first).expect("first"), big);
        assert_eq!(spool.entries(&second).expect("second"), &big[..5]);
    }
}
