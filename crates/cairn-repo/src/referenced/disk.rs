//! Referenced data-blob prefixes on local disk (ADR 0023): sorted runs
//! while the walk goes on, merged into one sorted, distinct file when it
//! ends, with a directory of its blocks in memory.
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

/// Prefixes per block of the sealed file: a lookup reads one block (512
/// bytes; 4 KiB took a third more time) and the directory holds one prefix
/// per block (1/64 of the set: 1.2 MiB for ten million data blobs).
const BLOCK: usize = 64;
/// Runs written before they are merged into one: a walk that meets the
/// same blobs in many trees takes about this many times the set's size on
/// disk at most, besides the set.
const MAX_RUNS: usize = 8;
/// Bytes read from each run at a time while merging.
const READ_AHEAD: usize = 64 << 10;

/// See the module docs.
#[derive(Debug)]
pub(super) struct Disk {
    dir: PathBuf,
    runs: Vec<Run>,
    sealed: Option<Sealed>,
    /// The first error reading the sealed file back: a lookup that meets
    /// one answers "referenced" (the safe way) and prune stops before it
    /// changes anything ([`super::Referenced::verify`]).
    failed: OnceLock<String>,
    /// Runs written, merges included: for tests.
    pub(super) written: usize,
}

/// Sorted, distinct prefixes, 8 bytes each, big-endian.
#[derive(Debug)]
struct Run {
    file: File,
    len: usize,
}

#[derive(Debug)]
struct Sealed {
    run: Run,
    /// The first prefix of each block.
    firsts: Vec<u64>,
}

impl Disk {
    /// Runs go to files in `dir`.
    pub(super) fn new(dir: PathBuf) -> Disk {
        Disk {
            dir,
            runs: Vec::new(),
            sealed: None,
            failed: OnceLock::new(),
            written: 0,
        }
    }

    /// Writes `sorted` (ascending, distinct) as a run; merges the runs
    /// into one when there are more than [`MAX_RUNS`].
    pub(super) fn write_run(&mut self, sorted: impl Iterator<Item = u64>) -> std::io::Result<()> {
        let run = write(&self.dir, sorted, |_, _| {})?;
        self.runs.push(run);
        self.written += 1;
        if self.runs.len() > MAX_RUNS {
            let merged = merge(&self.dir, &self.runs, |_, _| {})?;
            self.runs = vec![merged];
            self.written += 1;
        }
        Ok(())
    }

    /// Whether anything went to disk.
    pub(super) fn has_runs(&self) -> bool {
        !self.runs.is_empty()
    }

    /// Writes `last` as a run and merges every run into the sealed file.
    /// On an error the runs are as they were.
    pub(super) fn seal(&mut self, last: impl Iterator<Item = u64>) -> std::io::Result<()> {
        let mut last = last.peekable();
        if last.peek().is_some() {
            let run = write(&self.dir, last, |_, _| {})?;
            self.runs.push(run);
            self.written += 1;
        }
        let mut firsts = Vec::new();
        let run = merge(&self.dir, &self.runs, |i, p| {
            if i % BLOCK == 0 {
                firsts.push(p);
            }
        })?;
        firsts.shrink_to_fit();
        self.runs.clear();
        self.sealed = Some(Sealed { run, firsts });
        Ok(())
    }

    /// Whether [`Disk::seal`] succeeded: lookups go to the sealed file.
    pub(super) fn is_sealed(&self) -> bool {
        self.sealed.is_some()
    }

    /// Distinct prefixes in the sealed file.
    pub(super) fn len(&self) -> usize {
        self.sealed.as_ref().map_or(0, |s| s.run.len)
    }

    /// Every prefix of every run, in no particular order (to go on in
    /// memory when the disk fails).
    pub(super) fn each(&self, mut f: impl FnMut(u64)) -> std::io::Result<()> {
        for run in &self.runs {
            let mut r = Reader::new(run);
            while let Some(p) = r.next()? {
                f(p);
            }
        }
        Ok(())
    }

    /// True if the sealed file holds `p`, or if it cannot be read.
    pub(super) fn contains(&self, p: u64) -> bool {
        let Some(s) = &self.sealed else {
            return false;
        };
        let Some(block) = s.firsts.partition_point(|&f| f <= p).checked_sub(1) else {
            return false;
        };
        let n = BLOCK.min(s.run.len - block * BLOCK);
        let mut buf = [0u8; BLOCK * 8];
        let buf = &mut buf[..n * 8];
        if let Err(e) = s.run.file.read_exact_at(buf, (block * BLOCK * 8) as u64) {
            let _ = self.failed.set(e.to_string());
            return true;
        }
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match at(buf, mid).cmp(&p) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    /// Makes the sealed file unreadable: for tests.
    #[cfg(test)]
    pub(super) fn break_reads(&mut self, dir: &Path) {
        let path = dir.join("write-only");
        let file = File::create(path).expect("create");
        if let Some(s) = &mut self.sealed {
            s.run.file = file;
        }
    }

    /// The first error a lookup met, if any.
    pub(super) fn failed(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }
}

/// Writes `sorted` to a new file; `each` sees each prefix with its
/// position.
fn write(
    dir: &Path,
    sorted: impl Iterator<Item = u64>,
    mut each: impl FnMut(usize, u64),
) -> std::io::Result<Run> {
    let mut out = BufWriter::with_capacity(READ_AHEAD, tempfile::tempfile_in(dir)?);
    let mut len = 0;
    for p in sorted {
        each(len, p);
        out.write_all(&p.to_be_bytes())?;
        len += 1;
    }
    let file = out
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    Ok(Run { file, len })
}

/// Every run merged into a new one, each prefix once.
fn merge(dir: &Path, runs: &[Run], each: impl FnMut(usize, u64)) -> std::io::Result<Run> {
    let mut readers: Vec<Reader<'_>> = runs.iter().map(Reader::new).collect();
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(p) = r.next()? {
            heap.push(Reverse((p, i)));
        }
    }
    let mut error = None;
    let mut last = None;
    let merged = std::iter::from_fn(|| {
        loop {
            let Reverse((p, i)) = heap.pop()?;
            match readers[i].next() {
                Ok(Some(n)) => heap.push(Reverse((n, i))),
                Ok(None) => {}
                Err(e) => {
                    error = Some(e);
                    return None;
                }
            }
            if last != Some(p) {
                last = Some(p);
                return Some(p);
            }
        }
    });
    let run = write(dir, merged, each)?;
    match error {
        Some(e) => Err(e),
        None => Ok(run),
    }
}

/// A run read from its start, [`READ_AHEAD`] bytes at a time.
struct Reader<'a> {
    run: &'a Run,
    /// Prefixes read from the file so far.
    read: usize,
    buf: Vec<u8>,
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(run: &'a Run) -> Reader<'a> {
        Reader {
            run,
            read: 0,
            buf: Vec::new(),
            at: 0,
        }
    }

    fn next(&mut self) -> std::io::Result<Option<u64>> {
        if self.at * 8 == self.buf.len() {
            let n = (READ_AHEAD / 8).min(self.run.len - self.read);
            if n == 0 {
                return Ok(None);
            }
            self.buf.resize(n * 8, 0);
            self.run
                .file
                .read_exact_at(&mut self.buf, (self.read * 8) as u64)?;
            self.read += n;
            self.at = 0;
        }
        self.at += 1;
        Ok(Some(at(&self.buf, self.at - 1)))
    }
}

/// The `i`th prefix of `buf`.
fn at(buf: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[i * 8..i * 8 + 8]);
    u64::from_be_bytes(b)
}
