//! Sets of fixed-size records on local disk (ADR 0023, ADR 0024): sorted
//! runs while they are gathered, merged into one sorted file with one
//! record per key when gathering ends, with a directory of its blocks in
//! memory. Prune's referenced data blobs (8-byte prefixes) and its ripe
//! tombstones (id and time) go there past their budgets.
//!
//! The files are unnamed (`O_TMPFILE` where the file system has it) in
//! prune's own directory, so nothing is left behind when the process dies,
//! and no other process reads them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cairn_core::Id;

/// A record of a set on disk.
pub(crate) trait Record: Copy + Ord + std::fmt::Debug {
    /// Bytes of its encoding.
    const LEN: usize;
    /// Records per block of the sealed file: a lookup reads one block, the
    /// directory holds the first record of each.
    const PER_BLOCK: usize;
    /// Appends its encoding (`LEN` bytes) to `out`.
    fn put(&self, out: &mut Vec<u8>);
    /// Decodes `LEN` bytes.
    fn get(b: &[u8]) -> Self;
    /// Whether `self` and `other` have the same key: of records with one
    /// key the set keeps the greatest.
    fn same_key(&self, other: &Self) -> bool;
}

/// Referenced data-blob prefixes, big-endian so that bytes sort as
/// numbers.
impl Record for u64 {
    const LEN: usize = 8;
    /// 512 bytes (4 KiB took a third more time); the directory holds 1/64
    /// of the set: 1.2 MiB for ten million data blobs.
    const PER_BLOCK: usize = 64;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn get(b: &[u8]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        u64::from_be_bytes(a)
    }
    fn same_key(&self, other: &Self) -> bool {
        self == other
    }
}

/// Tree ids a walk visited (`visited.rs`).
impl Record for Id {
    const LEN: usize = 32;
    /// 2 KiB a block: the directory holds half a byte per id.
    const PER_BLOCK: usize = 64;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn get(b: &[u8]) -> Self {
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[..32]);
        Id::from_bytes(id)
    }
    fn same_key(&self, other: &Self) -> bool {
        self == other
    }
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup<R> {
    Found(R),
    Absent,
    /// The sealed file could not be read; the error is kept
    /// ([`Disk::failed`]).
    Unreadable,
}

/// Runs written before they are merged into one: a set gathered with many
/// repeats (a walk meeting the same blobs in many trees) takes about this
/// many times its size on disk at most, besides the set.
const MAX_RUNS: usize = 8;
/// Bytes read from each run at a time while merging.
const READ_AHEAD: usize = 64 << 10;
/// Bytes of a block a lookup reads into a buffer on the stack; larger
/// blocks go to the heap.
const STACK_BLOCK: usize = 4096;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Disk<R> {
    dir: PathBuf,
    runs: Vec<Run>,
    sealed: Option<Sealed<R>>,
    /// The first error reading the sealed file back: a lookup that meets
    /// one answers [`Lookup::Unreadable`], its caller the safe way, and
    /// prune stops before it changes anything.
    failed: OnceLock<String>,
    /// Runs written, merges included: for tests.
    pub(crate) written: usize,
    _records: std::marker::PhantomData<R>,
}

/// Sorted records, one per key.
#[derive(Debug)]
struct Run {
    file: File,
    len: usize,
}

#[derive(Debug)]
struct Sealed<R> {
    run: Run,
    /// The first record of each block.
    firsts: Vec<R>,
}

impl<R: Record> Disk<R> {
    /// Runs go to files in `dir`.
    pub(crate) fn new(dir: PathBuf) -> Disk<R> {
        Disk {
            dir,
            runs: Vec::new(),
            sealed: None,
            failed: OnceLock::new(),
            written: 0,
            _records: std::marker::PhantomData,
        }
    }

    /// Writes `sorted` (ascending, one record per key) as a run; merges
    /// the runs into one when there are more than [`MAX_RUNS`].
    pub(crate) fn write_run(&mut self, sorted: impl Iterator<Item = R>) -> std::io::Result<()> {
        let run = write(&self.dir, sorted, |_, _| {})?;
        self.runs.push(run);
        self.written += 1;
        if self.runs.len() > MAX_RUNS {
            let runs: Vec<&Run> = self.runs.iter().collect();
            let merged = merge(&self.dir, &runs, |_, _: R| {})?;
            self.runs = vec![merged];
            self.written += 1;
        }
        Ok(())
    }

    /// Whether anything went to disk.
    pub(crate) fn has_runs(&self) -> bool {
        !self.runs.is_empty()
    }

    /// Writes `last` as a run and merges every run into the sealed file;
    /// `each` sees every record of it in order. On an error the runs are
    /// as they were.
    pub(crate) fn seal(
        &mut self,
        last: impl Iterator<Item = R>,
        each: impl FnMut(&R),
    ) -> std::io::Result<()> {
        let mut last = last.peekable();
        if last.peek().is_some() {
            let run = write(&self.dir, last, |_, _| {})?;
            self.runs.push(run);
            self.written += 1;
        }
        let runs: Vec<&Run> = self.runs.iter().collect();
        let sealed = seal_runs(&self.dir, &runs, each)?;
        self.runs.clear();
        self.sealed = Some(sealed);
        Ok(())
    }

    /// The sealed files of `parts` merged into the sealed file of a new
    /// set in `dir`; `each` sees every record of it in order. `parts` are
    /// left as they were, on an error too.
    pub(crate) fn merged(
        dir: PathBuf,
        parts: &[&Disk<R>],
        each: impl FnMut(&R),
    ) -> std::io::Result<Disk<R>> {
        let runs: Vec<&Run> = parts
            .iter()
            .filter_map(|d| d.sealed.as_ref().map(|s| &s.run))
            .collect();
        let sealed = seal_runs(&dir, &runs, each)?;
        let mut disk = Disk::new(dir);
        disk.written = 1;
        disk.sealed = Some(sealed);
        Ok(disk)
    }

    /// Whether [`Disk::seal`] succeeded: lookups go to the sealed file.
    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.is_some()
    }

    /// Records in the sealed file.
    pub(crate) fn len(&self) -> usize {
        self.sealed.as_ref().map_or(0, |s| s.run.len)
    }

    /// Every record of every run, in no particular order (to go on in
    /// memory when the disk fails).
    pub(crate) fn each(&self, mut f: impl FnMut(R)) -> std::io::Result<()> {
        for run in &self.runs {
            let mut r = Reader::<R>::new(run);
            while let Some(p) = r.next()? {
                f(p);
            }
        }
        Ok(())
    }

    /// Every record of the sealed file, in order; an error reading it is
    /// kept ([`Disk::failed`]) and ends the walk.
    pub(crate) fn each_sealed(&self, mut f: impl FnMut(R)) {
        let Some(s) = &self.sealed else {
            return;
        };
        let mut r = Reader::<R>::new(&s.run);
        loop {
            match r.next() {
                Ok(Some(p)) => f(p),
                Ok(None) => return,
                Err(e) => {
                    let _ = self.failed.set(e.to_string());
                    return;
                }
            }
        }
    }

    /// The record of the sealed file `probe` orders as equal: `probe`
    /// tells how a record orders against the key sought.
    pub(crate) fn find(&self, probe: impl Fn(&R) -> std::cmp::Ordering) -> Lookup<R> {
        use std::cmp::Ordering::{Equal, Greater};
        let Some(s) = &self.sealed else {
            return Lookup::Absent;
        };
        let first_after = s.firsts.partition_point(|f| probe(f) != Greater);
        let Some(block) = first_after.checked_sub(1) else {
            return Lookup::Absent;
        };
        let n = R::PER_BLOCK.min(s.run.len - block * R::PER_BLOCK);
        // On the stack: a lookup is made for each of millions of entries.
        let (mut stack, mut heap) = ([0u8; STACK_BLOCK], Vec::new());
        let buf: &mut [u8] = match n * R::LEN {
            len if len <= STACK_BLOCK => &mut stack[..len],
            len => {
                heap.resize(len, 0);
                &mut heap
            }
        };
        let at_byte = (block * R::PER_BLOCK * R::LEN) as u64;
        if let Err(e) = s.run.file.read_exact_at(buf, at_byte) {
            let _ = self.failed.set(e.to_string());
            return Lookup::Unreadable;
        }
        let records = buf.chunks_exact(R::LEN).map(R::get);
        match records
            .map(|r| (probe(&r), r))
            .find(|(o, _)| *o != std::cmp::Ordering::Less)
        {
            Some((Equal, r)) => Lookup::Found(r),
            _ => Lookup::Absent,
        }
    }

    /// Makes the sealed file unreadable: for tests.
    #[cfg(test)]
    pub(crate) fn break_reads(&mut self, dir: &Path) {
        let path = dir.join("write-only");
        let file = File::create(path).expect("create");
        if let Some(s) = &mut self.sealed {
            s.run.file = file;
        }
    }

    /// The first error a lookup met, if any.
    pub(crate) fn failed(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }
}

impl Disk<u64> {
    /// True if the sealed file holds `p`, or if it cannot be read (the
    /// safe answer for a referenced set: keep).
    pub(crate) fn contains(&self, p: u64) -> bool {
        !matches!(self.find(|r| r.cmp(&p)), Lookup::Absent)
    }
}

/// A Bloom filter of ids, for the sets on disk: a byte per id and three
/// probes, so about 3% of the ids never added still take a read. Ids are
/// keyed hashes, so their bytes serve as the probes.
#[derive(Debug)]
pub(crate) struct Filter {
    bits: Vec<u64>,
    mask: u64,
}

impl Filter {
    pub(crate) fn new(n: usize) -> Filter {
        let len = (n.max(1) * 8).next_power_of_two().max(64);
        Filter {
            bits: vec![0; len / 64],
            mask: len as u64 - 1,
        }
    }

    fn probes(&self, id: &Id) -> [u64; 3] {
        let b = id.as_bytes();
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w) & self.mask
        };
        [word(0), word(1), word(2)]
    }

    pub(crate) fn insert(&mut self, id: &Id) {
        for p in self.probes(id) {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
    }

    pub(crate) fn may_hold(&self, id: &Id) -> bool {
        self.probes(id)
            .iter()
            .all(|&p| self.bits[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }
}

/// Writes `sorted` to a new file; `each` sees each record with its
/// position.
fn write<R: Record>(
    dir: &Path,
    sorted: impl Iterator<Item = R>,
    mut each: impl FnMut(usize, R),
) -> std::io::Result<Run> {
    let mut out = BufWriter::with_capacity(READ_AHEAD, tempfile::tempfile_in(dir)?);
    let mut len = 0;
    let mut b = Vec::with_capacity(R::LEN);
    for r in sorted {
        each(len, r);
        b.clear();
        r.put(&mut b);
        out.write_all(&b)?;
        len += 1;
    }
    let file = out
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    Ok(Run { file, len })
}

/// Every run merged into a sealed file, with its directory.
fn seal_runs<R: Record>(
    dir: &Path,
    runs: &[&Run],
    mut each: impl FnMut(&R),
) -> std::io::Result<Sealed<R>> {
    let mut firsts = Vec::new();
    let run = merge(dir, runs, |i, r| {
        if i % R::PER_BLOCK == 0 {
            firsts.push(r);
        }
        each(&r);
    })?;
    firsts.shrink_to_fit();
    Ok(Sealed { run, firsts })
}

/// Every run merged into a new one, each key once (its greatest record).
fn merge<R: Record>(dir: &Path, runs: &[&Run], each: impl FnMut(usize, R)) -> std::io::Result<Run> {
    let mut readers: Vec<Reader<'_, R>> = runs.iter().map(|r| Reader::new(r)).collect();
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(p) = r.next()? {
            heap.push(Reverse((p, i)));
        }
    }
    let mut error = None;
    let mut ordered = std::iter::from_fn(|| {
        let Reverse((p, i)) = heap.pop()?;
        match readers[i].next() {
            Ok(Some(n)) => heap.push(Reverse((n, i))),
            Ok(None) => {}
            Err(e) => {
                error = Some(e);
                return None;
            }
        }
        Some(p)
    })
    .peekable();
    // Of records with one key, in ascending order, the last.
    let merged = std::iter::from_fn(|| {
        let mut r = ordered.next()?;
        while let Some(n) = ordered.next_if(|n| r.same_key(n)) {
            r = n;
        }
        Some(r)
    });
    let run = write(dir, merged, each)?;
    drop(ordered);
    match error {
        Some(e) => Err(e),
        None => Ok(run),
    }
}

/// A run read from its start, [`READ_AHEAD`] bytes at a time.
struct Reader<'a, R> {
    run: &'a Run,
    /// Records read from the file so far.
    read: usize,
    buf: Vec<u8>,
    at: usize,
    _records: std::marker::PhantomData<R>,
}

impl<'a, R: Record> Reader<'a, R> {
    fn new(run: &'a Run) -> Reader<'a, R> {
        Reader {
            run,
            read: 0,
            buf: Vec::new(),
            at: 0,
            _records: std::marker::PhantomData,
        }
    }

    fn next(&mut self) -> std::io::Result<Option<R>> {
        if self.at * R::LEN == self.buf.len() {
            let n = (READ_AHEAD / R::LEN).min(self.run.len - self.read);
            if n == 0 {
                return Ok(None);
            }
            self.buf.resize(n * R::LEN, 0);
            self.run
                .file
                .read_exact_at(&mut self.buf, (self.read * R::LEN) as u64)?;
            self.read += n;
            self.at = 0;
        }
        self.at += 1;
        let i = self.at - 1;
        Ok(Some(R::get(&self.buf[i * R::LEN..(i + 1) * R::LEN])))
    }
}
