//! The merged index on local disk: a sorted table of fixed-size records,
//! binary-searched with one positional read per lookup, so the index of a
//! repository of any size costs the process its samples and a 12 KiB read
//! per lookup instead of its whole size in RAM (docs/FORMAT.md, appendix
//! B). Until 2026-12-01 the records were memory-mapped; a lookup by read
//! is about three times faster than by page fault, and nothing has to be
//! released to keep the table from becoming resident (ADR 0021).
//!
//! File layout, all integers little-endian:
//!
//! ```text
//! header   64 bytes: magic "CAIRNIX1", version u32 = 1, record size u32 = 96,
//!                    repository id [32], record count u64, count of
//!                    records with a location u64
//! records  count × 96 bytes, sorted by blob id, one per blob id
//! samples  ceil(count / 64) × 8 bytes: the first 8 bytes of the id of
//!          every 64th record (big-endian u64), loaded into RAM at open
//! covers   u64 count, then that many 32-byte ids of the index files merged
//! dropped  u64 count, then that many 32-byte ids of index files that were
//!          seen but ignored because another file supersedes them
//! trailer  32 bytes: BLAKE3 of everything before it
//! ```
//!
//! The table is a cache: it is rebuilt whenever it is missing, damaged,
//! belongs to another repository or no longer matches the index files.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_core::{Id, Kind};

use super::BlobLocation;
use super::spool::ThreadWriter;
use super::verify::{self, Verdict};

pub(super) const MAGIC: &[u8; 8] = b"CAIRNIX1";
const VERSION: u32 = 1;
pub(super) const RECORD: usize = 96;
const HEADER: usize = 64;
/// One sample every this many records: 1.25 MiB of RAM for ten million
/// blobs, and a lookup reads at most 64 records (two or three pages).
pub(super) const SAMPLE_EVERY: usize = 64;
/// The record carries a location (false for a tombstone-only record).
pub(super) const HAS_LOCATION: u8 = 1;

/// What the index knows about one blob id: its first location, the newest
/// creation time of the index files listing it and of those tombstoning it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) id: Id,
    pub(crate) location: Option<BlobLocation>,
    /// Newest `created` of the index files listing the blob (`i64::MIN`
    /// when none does).
    pub(crate) listed: i64,
    /// Newest `created` of the index files tombstoning it (`i64::MIN` when
    /// none does).
    pub(crate) tomb: i64,
}

impl Record {
    /// True if a writer may deduplicate against the blob.
    pub(crate) fn live(&self) -> bool {
        self.location.is_some() && self.listed > self.tomb
    }

    /// Combines what two sources know about the same id; `self` is the
    /// older source, whose location wins (every copy is equally valid).
    pub(crate) fn merge(&mut self, newer: &Record) {
        if self.location.is_none() {
            self.location = newer.location;
        }
        self.listed = self.listed.max(newer.listed);
        self.tomb = self.tomb.max(newer.tomb);
    }

    pub(super) fn encode(&self, out: &mut [u8; RECORD]) {
        out.fill(0);
        out[..32].copy_from_slice(self.id.as_bytes());
        if let Some(l) = &self.location {
            out[32..64].copy_from_slice(l.pack.as_bytes());
            out[64..68].copy_from_slice(&l.offset.to_le_bytes());
            out[68..72].copy_from_slice(&l.length.to_le_bytes());
            out[72..76].copy_from_slice(&l.raw_length.to_le_bytes());
            out[76] = l.kind as u8;
            out[77] = HAS_LOCATION;
        }
        out[80..88].copy_from_slice(&self.listed.to_le_bytes());
        out[88..96].copy_from_slice(&self.tomb.to_le_bytes());
    }

    /// Decodes a record; `None` if its bytes cannot be one (a damaged
    /// table is rebuilt, never trusted).
    pub(super) fn decode(b: &[u8]) -> Option<Record> {
        let b: &[u8; RECORD] = b.get(..RECORD)?.try_into().ok()?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let i64_at = |i: usize| i64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let location = match b[77] {
            0 => None,
            HAS_LOCATION => Some(BlobLocation {
                pack: Id::from_bytes(b[32..64].try_into().ok()?),
                kind: Kind::from_u8(b[76])?,
                offset: u32_at(64),
                length: u32_at(68),
                raw_length: u32_at(72),
            }),
            _ => return None,
        };
        Some(Record {
            id: Id::from_bytes(b[..32].try_into().ok()?),
            location,
            listed: i64_at(80),
            tomb: i64_at(88),
        })
    }
}

fn prefix(id: &Id) -> u64 {
    let b = id.as_bytes();
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// When a table's checksum is verified.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Before the open returns.
    Now,
    /// On a thread of its own, while the table is used.
    Overlapped,
    /// Never: this process wrote and checksummed it.
    Written,
}

/// Why a table on disk cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TableError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a usable index table: {0}")]
    Invalid(&'static str),
}

/// An open table, verified or being verified ([`Verdict`]).
pub(crate) struct Table {
    verdict: Arc<Verdict>,
    count: usize,
    located: usize,
    samples: Vec<u64>,
    covers: Vec<Id>,
    dropped: Vec<Id>,
    file: File,
    path: PathBuf,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.path)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Table {
    /// Opens the table at `path` for repository `repo_id`, verifying its
    /// checksum and reading its samples into RAM.
    pub(crate) fn open(path: &Path, repo_id: &Id) -> Result<Table, TableError> {
        Table::open_checked(path, repo_id, Check::Now)
    }

    /// [`open`](Self::open) with the checksum verified on a thread of its
    /// own while the table is used: lookups may run before the verdict,
    /// which [`verified`](Self::verified) waits for; a full pass over the
    /// records waits for it first.
    pub(crate) fn open_overlapped(path: &Path, repo_id: &Id) -> Result<Table, TableError> {
        Table::open_checked(path, repo_id, Check::Overlapped)
    }

    /// [`open`](Self::open) for the table this process just wrote and
    /// checksummed: reading it all again to verify the checksum took a
    /// tenth of a 10 M-entry build.
    pub(crate) fn open_written(path: &Path, repo_id: &Id) -> Result<Table, TableError> {
        Table::open_checked(path, repo_id, Check::Written)
    }

    fn open_checked(path: &Path, repo_id: &Id, check: Check) -> Result<Table, TableError> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        if len < (HEADER + 8 + 32) as u64 {
            return Err(TableError::Invalid("too short"));
        }
        if check == Check::Now {
            verify::check(&file, len).map_err(|_| TableError::Invalid("checksum mismatch"))?;
        }
        file.seek(SeekFrom::Start(0))?;
        let mut header = [0u8; HEADER];
        file.read_exact(&mut header)?;
        if &header[..8] != MAGIC
            || header[8..12] != VERSION.to_le_bytes()
            || header[12..16] != (RECORD as u32).to_le_bytes()
        {
            return Err(TableError::Invalid("unknown magic, version or record size"));
        }
        if &header[16..48] != repo_id.as_bytes() {
            return Err(TableError::Invalid("made for another repository"));
        }
        let count = u64::from_le_bytes(header[48..56].try_into().unwrap_or([0; 8]));
        let count = usize::try_from(count).map_err(|_| TableError::Invalid("too many records"))?;
        let located = u64::from_le_bytes(header[56..64].try_into().unwrap_or([0; 8]));
        let located = usize::try_from(located)
            .ok()
            .filter(|&l| l <= count)
            .ok_or(TableError::Invalid("bad located count"))?;
        let n_samples = count.div_ceil(SAMPLE_EVERY);
        let records_end = count
            .checked_mul(RECORD)
            .and_then(|r| r.checked_add(HEADER))
            .ok_or(TableError::Invalid("too many records"))?;
        let samples_end = records_end + n_samples * 8;
        if (samples_end + 16 + 32) as u64 > len {
            return Err(TableError::Invalid("truncated"));
        }
        file.seek(SeekFrom::Start(records_end as u64))?;
        let mut reader = BufReader::new(&mut file);
        let mut b8 = [0u8; 8];
        let mut samples = Vec::with_capacity(n_samples);
        for _ in 0..n_samples {
            reader.read_exact(&mut b8)?;
            samples.push(u64::from_be_bytes(b8));
        }
        // Checked here too, before any verdict: out of order, they could
        // make a lookup read far more than one run of records.
        if samples.windows(2).any(|w| w[0] > w[1]) {
            return Err(TableError::Invalid("samples out of order"));
        }
        let mut left = len - samples_end as u64 - 32;
        let mut ids = || -> Result<Vec<Id>, TableError> {
            reader.read_exact(&mut b8)?;
            let n = u64::from_le_bytes(b8);
            let bytes = n
                .checked_mul(32)
                .and_then(|b| b.checked_add(8))
                .filter(|&b| b <= left)
                .ok_or(TableError::Invalid("wrong length"))?;
            left -= bytes;
            let mut v = Vec::with_capacity(n as usize);
            let mut b32 = [0u8; 32];
            for _ in 0..n {
                reader.read_exact(&mut b32)?;
                v.push(Id::from_bytes(b32));
            }
            Ok(v)
        };
        let covers = ids()?;
        let dropped = ids()?;
        if left != 0 {
            return Err(TableError::Invalid("wrong length"));
        }
        drop(reader);
        let verdict = match check {
            Check::Overlapped => Verdict::start(&file, len, path.to_owned()),
            Check::Now | Check::Written => Verdict::passed(),
        };
        Ok(Table {
            verdict,
            count,
            located,
            samples,
            covers,
            dropped,
            file,
            path: path.to_owned(),
        })
    }

    /// Waits for the verdict on the table's checksum.
    pub(crate) fn verified(&self) -> Result<(), String> {
        self.verdict.wait()
    }

    /// The verdict on the table's checksum, to wait for later.
    pub(crate) fn verdict(&self) -> Arc<Verdict> {
        self.verdict.clone()
    }

    /// Number of records (distinct ids, tombstone-only ones included).
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Number of records with a location (distinct readable blobs).
    pub(crate) fn located(&self) -> usize {
        self.located
    }

    /// The index files merged into this table.
    pub(crate) fn covers(&self) -> &[Id] {
        &self.covers
    }

    /// Index files seen but ignored, superseded by another file.
    pub(crate) fn dropped(&self) -> &[Id] {
        &self.dropped
    }

    /// Looks an id up: the samples in RAM narrow it to one run of at most
    /// `2 × SAMPLE_EVERY` records (12 KiB), read with one positional read
    /// and binary-searched (a read from the page cache costs about a third
    /// of the page faults a mapping took, and leaves nothing resident). A
    /// read that fails finds nothing (logged): the blob is stored again,
    /// or reported.
    pub(crate) fn find(&self, id: &Id) -> Option<Record> {
        use std::os::unix::fs::FileExt;
        let p = prefix(id);
        let first = self.samples.partition_point(|&s| s < p);
        let last = self.samples.partition_point(|&s| s <= p);
        let lo = first.saturating_sub(1) * SAMPLE_EVERY;
        let hi = (last * SAMPLE_EVERY).min(self.count);
        if lo >= hi {
            return None;
        }
        let mut small = [0u8; 2 * SAMPLE_EVERY * RECORD];
        let mut large = Vec::new();
        let len = (hi - lo) * RECORD;
        let run: &mut [u8] = match small.get_mut(..len) {
            Some(run) => run,
            None => {
                large.resize(len, 0);
                &mut large
            }
        };
        if let Err(e) = self.file.read_exact_at(run, (HEADER + lo * RECORD) as u64) {
            tracing::warn!("reading the index table {}: {e}", self.path.display());
            return None;
        }
        let key = id.as_bytes().as_slice();
        let (mut a, mut b) = (0, hi - lo);
        while a < b {
            let mid = a + (b - a) / 2;
            let r = &run[mid * RECORD..(mid + 1) * RECORD];
            match r[..32].cmp(key) {
                std::cmp::Ordering::Less => a = mid + 1,
                std::cmp::Ordering::Greater => b = mid,
                std::cmp::Ordering::Equal => return Record::decode(r),
            }
        }
        None
    }

    /// Every record in id order, read in blocks, once the table's
    /// checksum is verified: what a full pass makes of the records (a
    /// merged table, prune's or check's view) outlives the pass.
    pub(crate) fn records(&self) -> std::io::Result<Records> {
        self.verified().map_err(std::io::Error::other)?;
        // Positional reads on our own handle: the path may name a newer
        // table by now, and the handle's cursor is shared by clones.
        Ok(Records {
            file: self.file.try_clone()?,
            buf: Vec::new(),
            at: 0,
            next: 0,
            count: self.count,
        })
    }
}

/// An iterator over a table's records, from [`Table::records`].
pub(crate) struct Records {
    file: File,
    buf: Vec<u8>,
    at: usize,
    next: usize,
    count: usize,
}

impl Records {
    const BATCH: usize = 2048;

    fn refill(&mut self) -> std::io::Result<()> {
        let n = Self::BATCH.min(self.count - self.next);
        self.buf.resize(n * RECORD, 0);
        let offset = (HEADER + self.next * RECORD) as u64;
        std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut self.buf, offset)?;
        self.at = 0;
        Ok(())
    }
}

impl Records {
    /// The next record's bytes, not decoded.
    fn next_raw(&mut self) -> Option<std::io::Result<&[u8]>> {
        if self.next >= self.count {
            return None;
        }
        if self.at >= self.buf.len() {
            if let Err(e) = self.refill() {
                self.next = self.count;
                return Some(Err(e));
            }
        }
        let at = self.at;
        self.at += RECORD;
        self.next += 1;
        Some(Ok(&self.buf[at..at + RECORD]))
    }
}

fn damaged_record() -> std::io::Error {
    std::io::Error::other("damaged index table record")
}

impl Iterator for Records {
    type Item = std::io::Result<Record>;
    fn next(&mut self) -> Option<Self::Item> {
        Some(
            self.next_raw()?
                .and_then(|b| Record::decode(b).ok_or_else(damaged_record)),
        )
    }
}

impl Table {
    /// Calls `each` with every record that has a location in a pack
    /// `keep` accepts, in id order, read as [`Table::records`] reads them;
    /// the others are skipped before they are decoded (a pass that wants a
    /// few packs costs little more than reading the table).
    pub(crate) fn each_located_in(
        &self,
        keep: impl Fn(&Id) -> bool,
        mut each: impl FnMut(Record),
    ) -> std::io::Result<()> {
        let mut records = self.records()?;
        while let Some(b) = records.next_raw() {
            let b = b?;
            let pack = b[32..64].try_into().map(Id::from_bytes);
            if b[77] != HAS_LOCATION || !pack.is_ok_and(|p| keep(&p)) {
                continue;
            }
            each(Record::decode(b).ok_or_else(damaged_record)?);
        }
        Ok(())
    }
}

/// Writes a table from records given in strictly increasing id order,
/// into a temporary file renamed over `path` by [`TableWriter::finish`].
pub(crate) struct TableWriter {
    out: Option<ThreadWriter>,
    tmp: PathBuf,
    path: PathBuf,
    count: u64,
    located: u64,
    samples: Vec<u64>,
    last: Option<Id>,
}

impl TableWriter {
    pub(crate) fn create(path: &Path, unique: u64) -> std::io::Result<TableWriter> {
        let tmp = path.with_extension(format!("tmp-{}-{unique:016x}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let mut out = ThreadWriter::new(file)?;
        // The header is written with the count at the end.
        out.write_all(&[0u8; HEADER])?;
        Ok(TableWriter {
            out: Some(out),
            tmp,
            path: path.to_owned(),
            count: 0,
            located: 0,
            samples: Vec::new(),
            last: None,
        })
    }

    fn out(&mut self) -> std::io::Result<&mut ThreadWriter> {
        self.out
            .as_mut()
            .ok_or_else(|| std::io::Error::other("index table already finished"))
    }

    pub(crate) fn push(&mut self, r: &Record) -> std::io::Result<()> {
        if self.last.is_some_and(|l| l >= r.id) {
            return Err(std::io::Error::other("index table records out of order"));
        }
        self.last = Some(r.id);
        if self.count % SAMPLE_EVERY as u64 == 0 {
            self.samples.push(prefix(&r.id));
        }
        let mut b = [0u8; RECORD];
        r.encode(&mut b);
        self.out()?.write_all(&b)?;
        self.count += 1;
        self.located += u64::from(r.location.is_some());
        Ok(())
    }

    /// Appends samples and covers, writes the header, appends the checksum
    /// of it all and renames the table into place.
    pub(crate) fn finish(
        mut self,
        repo_id: &Id,
        covers: &[Id],
        dropped: &[Id],
    ) -> std::io::Result<PathBuf> {
        let samples = std::mem::take(&mut self.samples);
        let out = self.out()?;
        for s in &samples {
            out.write_all(&s.to_be_bytes())?;
        }
        for list in [covers, dropped] {
            out.write_all(&(list.len() as u64).to_le_bytes())?;
            for c in list {
                out.write_all(c.as_bytes())?;
            }
        }
        let mut file = match self.out.take() {
            Some(out) => out.into_inner()?,
            None => return Err(std::io::Error::other("index table already finished")),
        };
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(RECORD as u32).to_le_bytes());
        header[16..48].copy_from_slice(repo_id.as_bytes());
        header[48..56].copy_from_slice(&self.count.to_le_bytes());
        header[56..64].copy_from_slice(&self.located.to_le_bytes());
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header)?;
        // Hashing what was just written reads it back from the page cache,
        // cheap next to building it.
        let len = file.seek(SeekFrom::End(0))?;
        let hash = verify::hash_of(&file, len)?;
        file.write_all(hash.as_bytes())?;
        std::fs::rename(&self.tmp, &self.path)?;
        Ok(self.path.clone())
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        // After a rename this finds nothing; an abandoned build leaves no
        // temporary file behind.
        let _ = std::fs::remove_file(&self.tmp);
    }
}
