//! Building an index table in bounded memory: index files are read one at
//! a time into sorted runs of at most [`RUN_RECORDS`] records spilled to
//! unnamed temporary files (nothing is left behind if the process dies),
//! then the runs (and the previous table, if any) are merged into a new
//! table in one streaming pass. Runs are sorted and written, and the table
//! written, on threads of their own ([`super::spool`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use cairn_core::Id;
use cairn_core::format::IndexFile;

use super::BlobLocation;
use super::spool::{RUN_RECORD, Run, Spiller};
use super::table::{RECORD, Record, Table, TableWriter};

/// Records filled in RAM before a run is handed to be sorted and spilled:
/// 12 MiB, twice (one run filled while the one before is written).
const RUN_RECORDS: usize = 1 << 17;

/// The local disk an index table build would need exceeds its limit.
#[derive(Debug)]
pub(crate) struct TooLarge {
    pub(crate) needed: u64,
    pub(crate) limit: u64,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the index table needs {} bytes, more than its {} byte limit",
            self.needed, self.limit
        )
    }
}

impl std::error::Error for TooLarge {}

/// Disk one record costs while a table is built: its sort-run copy and
/// its table copy.
pub(crate) const DISK_PER_RECORD: u64 = (RECORD + RUN_RECORD) as u64;

/// Accumulates index files into sorted runs.
pub(crate) struct Builder {
    /// Disk the build may use, and what it will use so far.
    limit: u64,
    used: u64,
    buf: Run,
    /// Records held before a run is spilled: [`RUN_RECORDS`].
    run_records: usize,
    spiller: Spiller,
    runs: Vec<File>,
    files: Vec<Id>,
    superseded: HashSet<Id>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("files", &self.files.len())
            .field("runs", &self.runs.len())
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Spills runs into unnamed files in `dir`, without a bound on the
    /// disk it takes.
    pub(crate) fn new(dir: &Path) -> std::io::Result<Builder> {
        Builder::bounded(dir, u64::MAX, 0)
    }

    /// [`new`](Self::new), but the runs and the table together may take at
    /// most `limit` bytes, `base` of them already taken by the table the
    /// new one extends.
    pub(crate) fn bounded(dir: &Path, limit: u64, base: u64) -> std::io::Result<Builder> {
        if base > limit {
            return Err(std::io::Error::other(TooLarge {
                needed: base,
                limit,
            }));
        }
        Ok(Builder {
            limit,
            used: base,
            buf: Vec::new(),
            run_records: RUN_RECORDS,
            spiller: Spiller::new(dir),
            runs: Vec::new(),
            files: Vec::new(),
            superseded: HashSet::new(),
        })
    }

    /// Adds the index file named `id`.
    pub(crate) fn add_file(&mut self, id: Id, file: &IndexFile) -> std::io::Result<()> {
        self.files.push(id);
        self.superseded.extend(file.supersedes.iter().copied());
        for p in &file.packs {
            for e in &p.blobs {
                let location = BlobLocation::in_pack(p.pack, e);
                self.push(Record {
                    id: e.id,
                    location: Some(location),
                    listed: file.created,
                    tomb: i64::MIN,
                })?;
            }
        }
        for t in &file.tombstones {
            self.push(Record {
                id: *t,
                location: None,
                listed: i64::MIN,
                tomb: file.created,
            })?;
        }
        Ok(())
    }

    fn push(&mut self, r: Record) -> std::io::Result<()> {
        self.used = self.used.saturating_add(DISK_PER_RECORD);
        if self.used > self.limit {
            return Err(std::io::Error::other(TooLarge {
                needed: self.used,
                limit: self.limit,
            }));
        }
        let ordinal = (self.files.len() - 1) as u32;
        self.buf.push((r, ordinal));
        if self.buf.len() >= self.run_records {
            self.spill()?;
        }
        Ok(())
    }

    /// Hands the records filled so far to the spiller.
    fn spill(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::take(&mut self.buf);
        let (done, spare) = self.spiller.spill(full)?;
        self.runs.extend(done);
        self.buf = spare;
        Ok(())
    }

    /// Spills a run every `n` records: for tests.
    #[cfg(test)]
    pub(crate) fn spill_every(&mut self, n: usize) {
        self.run_records = n.max(1);
    }

    /// Ids of the files added so far.
    pub(crate) fn files(&self) -> &[Id] {
        &self.files
    }

    /// Merges the runs, on top of `base` when given, into a new table at
    /// `out`. Files superseded by another file of the set contribute
    /// nothing; the new table covers `base`'s files and the new ones.
    pub(crate) fn finish(
        mut self,
        base: Option<&Table>,
        out: &Path,
        repo_id: &Id,
        unique: u64,
    ) -> std::io::Result<Table> {
        self.spill()?;
        self.buf = Vec::new();
        if let Some((file, _)) = self.spiller.take()? {
            self.runs.push(file);
        }
        let dead: Vec<bool> = self
            .files
            .iter()
            .map(|f| self.superseded.contains(f))
            .collect();
        let mut sources: Vec<Source> = Vec::new();
        if let Some(t) = base {
            sources.push(Source::Table(t.records()?));
        }
        for run in std::mem::take(&mut self.runs) {
            sources.push(Source::Run(BufReader::with_capacity(64 * 1024, run)));
        }
        // Heap entries: (id, rank, source). The base table ranks before
        // every file; files rank in the order they were added, so the
        // first listed location wins as in the in-memory index.
        let mut heads: Vec<Option<Record>> = Vec::with_capacity(sources.len());
        let mut heap = BinaryHeap::new();
        for (i, s) in sources.iter_mut().enumerate() {
            let head = s.next()?;
            if let Some((r, rank)) = head {
                heap.push(Reverse((r.id, rank, i)));
                heads.push(Some(r));
            } else {
                heads.push(None);
            }
        }
        let mut writer = TableWriter::create(out, unique)?;
        let mut acc: Option<Record> = None;
        while let Some(Reverse((id, rank, i))) = heap.pop() {
            let Some(r) = heads[i].take() else {
                return Err(std::io::Error::other("index merge lost a record"));
            };
            if let Some((next, next_rank)) = sources[i].next()? {
                heap.push(Reverse((next.id, next_rank, i)));
                heads[i] = Some(next);
            }
            let is_dead = rank > 0 && dead[(rank - 1) as usize];
            if is_dead {
                continue;
            }
            match &mut acc {
                Some(a) if a.id == id => a.merge(&r),
                _ => {
                    if let Some(done) = acc.take() {
                        writer.push(&done)?;
                    }
                    acc = Some(r);
                }
            }
        }
        if let Some(done) = acc {
            writer.push(&done)?;
        }
        let mut covers: Vec<Id> = base.map(|t| t.covers().to_vec()).unwrap_or_default();
        let mut dropped: Vec<Id> = base.map(|t| t.dropped().to_vec()).unwrap_or_default();
        for (f, d) in self.files.iter().zip(&dead) {
            if *d {
                dropped.push(*f);
            } else {
                covers.push(*f);
            }
        }
        let path = writer.finish(repo_id, &covers, &dropped)?;
        Table::open_written(&path, repo_id).map_err(|e| match e {
            super::table::TableError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        })
    }
}

enum Source {
    Table(super::table::Records),
    Run(BufReader<File>),
}

impl Source {
    /// The next record and its rank: 0 for the base table, the file's
    /// ordinal plus one for runs.
    fn next(&mut self) -> std::io::Result<Option<(Record, u32)>> {
        match self {
            Source::Table(records) => Ok(records.next().transpose()?.map(|r| (r, 0))),
            Source::Run(reader) => {
                let mut b = [0u8; RUN_RECORD];
                match reader.read_exact(&mut b) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                    Err(e) => return Err(e),
                }
                let r = Record::decode(&b[..RECORD])
                    .ok_or_else(|| std::io::Error::other("damaged index run record"))?;
                let ordinal =
                    u32::from_le_bytes([b[RECORD], b[RECORD + 1], b[RECORD + 2], b[RECORD + 3]]);
                Ok(Some((r, ordinal + 1)))
            }
        }
    }
}
