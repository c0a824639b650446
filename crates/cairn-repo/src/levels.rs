//! Records keyed by id that outgrew memory (ADR 0025, ADR 0026): sorted
//! files on local disk, each with a Bloom filter of its ids in memory.
//! Files of about equal size are merged into one as they come, so `n`
//! records spilled `budget` at a time make about log2(n / budget) files and
//! each record is written that many times. The trees a walk visited
//! (`visited.rs`) and the blobs a writer indexed since the table was built
//! (`index/memory.rs`) go there.
//!
//! The files are unnamed in the given directory (see `sorted_disk.rs`):
//! nothing is left behind when the process dies, and no other process
//! reads them. A file that cannot be read answers as if it held nothing;
//! the caller decides what that means ([`Levels::failed`]).

use std::path::PathBuf;

use cairn_core::Id;

use crate::sorted_disk::{Disk, Filter, Lookup, Record};

/// A record of a set kept in levels: its key is an id, whose bytes feed
/// the filter (ids are keyed hashes).
pub(crate) trait Keyed: Record {
    fn key(&self) -> &Id;
}

impl Keyed for Id {
    fn key(&self) -> &Id {
        self
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Levels<R> {
    /// Where files go; `None` once the disk failed, or without one.
    dir: Option<PathBuf>,
    /// Sealed files, oldest (and largest) first. Their keys may repeat
    /// across files: a caller that adds a key again adds a newer record.
    files: Vec<Level<R>>,
}

#[derive(Debug)]
struct Level<R> {
    disk: Disk<R>,
    filter: Filter,
}

impl<R: Keyed> Levels<R> {
    /// Files go to `dir`; without one, nothing goes to disk.
    pub(crate) fn new(dir: Option<PathBuf>) -> Levels<R> {
        Levels {
            dir,
            files: Vec::new(),
        }
    }

    /// Whether [`push`](Self::push) can write a file.
    pub(crate) fn can_spill(&self) -> bool {
        self.dir.is_some()
    }

    /// Writes `sorted` (ascending, one record per key) as a new file, then
    /// merges files of about equal size (of records with one key a merge
    /// keeps the greatest). False if it could not be written: nothing
    /// goes to disk from then on, and the caller keeps its records.
    pub(crate) fn push(&mut self, sorted: Vec<R>, what: &str) -> bool {
        let Some(dir) = self.dir.clone() else {
            return false;
        };
        let mut filter = Filter::new(sorted.len());
        let mut disk = Disk::new(dir.clone());
        if let Err(e) = disk.seal(sorted.into_iter(), |r| filter.insert(r.key())) {
            tracing::warn!("{what} kept in memory: {e}");
            self.dir = None;
            return false;
        }
        self.files.push(Level { disk, filter });
        while let [.., older, newer] = &self.files[..] {
            if older.disk.len() > newer.disk.len() {
                break;
            }
            let mut filter = Filter::new(older.disk.len() + newer.disk.len());
            let parts = [&older.disk, &newer.disk];
            match Disk::merged(dir.clone(), &parts, |r| filter.insert(r.key())) {
                Ok(disk) => {
                    self.files.truncate(self.files.len() - 2);
                    self.files.push(Level { disk, filter });
                }
                Err(e) => {
                    // The two files still answer: only slower.
                    tracing::warn!("merging {what} on local disk: {e}");
                    break;
                }
            }
        }
        true
    }

    /// Calls `found` with each file's record for `id`, oldest file first;
    /// false if a file that may hold it could not be read.
    pub(crate) fn find(&self, id: &Id, mut found: impl FnMut(R)) -> bool {
        let mut readable = true;
        for f in self.files.iter().filter(|f| f.filter.may_hold(id)) {
            match f.disk.find(|r| r.key().cmp(id)) {
                Lookup::Found(r) => found(r),
                Lookup::Absent => {}
                Lookup::Unreadable => readable = false,
            }
        }
        readable
    }

    /// Calls `each` once for every key, with its newest file's record, in
    /// no particular order; an error reading a file is kept
    /// ([`failed`](Self::failed)) and leaves the rest of it out.
    pub(crate) fn each_newest(&self, mut each: impl FnMut(R)) {
        for (i, f) in self.files.iter().enumerate() {
            let newer = &self.files[i + 1..];
            f.disk.each_sealed(|r| {
                let id = r.key();
                let again = newer.iter().any(|n| {
                    n.filter.may_hold(id) && n.disk.find(|o| o.key().cmp(id)) != Lookup::Absent
                });
                if !again {
                    each(r);
                }
            });
        }
    }

    /// Records on disk, keys repeated across files counted each time.
    pub(crate) fn len(&self) -> usize {
        self.files.iter().map(|f| f.disk.len()).sum()
    }

    /// Files on disk.
    #[cfg(test)]
    pub(crate) fn files(&self) -> usize {
        self.files.len()
    }

    /// The first error reading a file back, if any.
    pub(crate) fn failed(&self) -> Option<&str> {
        self.files.iter().find_map(|f| f.disk.failed())
    }

    /// Makes every file unreadable: for tests.
    #[cfg(test)]
    pub(crate) fn break_reads(&mut self, dir: &std::path::Path) {
        for f in &mut self.files {
            f.disk.break_reads(dir);
        }
    }
}
