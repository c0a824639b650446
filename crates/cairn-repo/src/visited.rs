//! The trees a walk has visited (ADR 0025): an exact set of ids, in memory
//! up to a budget, past it in sorted files on local disk with a filter in
//! memory for each, so that a walk of millions of directories holds a few
//! MiB whatever their number.
//!
//! Exact, because a tree taken for visited is not walked: prune would miss
//! what it references. A file that cannot be read answers "not visited" to
//! [`Visited::insert`] (the walk loads the tree again) and "visited" to
//! [`Visited::contains`] (prune keeps the tree); either way
//! [`Visited::verify`] fails the run before it acts on them.
//!
//! The files are unnamed in the run's own directory (`levels.rs`), merged
//! as they come: about log2(trees / budget) of them.

use std::collections::HashSet;
use std::path::PathBuf;

use cairn_core::Id;

use crate::levels::Levels;
use crate::{Error, Result};

/// Trees held in memory before they go to disk: 2^17, about 8 MiB of hash
/// set (a tree is a directory: a million directories take eight files).
pub(crate) const IN_MEMORY: usize = 1 << 17;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Visited {
    memory: HashSet<Id>,
    budget: usize,
    /// Disjoint files: an id goes to disk once.
    files: Levels<Id>,
}

impl Default for Visited {
    /// In memory throughout.
    fn default() -> Self {
        Visited::spilling(None, IN_MEMORY)
    }
}

impl Visited {
    /// A set that goes to files in `dir` past `budget` trees in memory; in
    /// memory throughout without a directory.
    pub(crate) fn spilling(dir: Option<PathBuf>, budget: usize) -> Visited {
        Visited {
            memory: HashSet::new(),
            budget: budget.max(1),
            files: Levels::new(dir),
        }
    }

    /// Adds `id`; true if it was not there (or a file could not be read).
    pub(crate) fn insert(&mut self, id: Id) -> bool {
        if self.memory.contains(&id) || self.on_disk(&id) == Some(true) {
            return false;
        }
        self.memory.insert(id);
        if self.memory.len() >= self.budget && self.files.can_spill() {
            self.spill();
        }
        true
    }

    /// True if `id` was added, or if a file could not be read (the safe
    /// answer for a referenced set: keep).
    pub(crate) fn contains(&self, id: &Id) -> bool {
        self.memory.contains(id) || self.on_disk(id) != Some(false)
    }

    /// Whether a file holds `id`: `None` if one could not be read.
    fn on_disk(&self, id: &Id) -> Option<bool> {
        let mut found = false;
        let readable = self.files.find(id, |_| found = true);
        if found {
            return Some(true);
        }
        readable.then_some(false)
    }

    /// Distinct trees added.
    pub(crate) fn len(&self) -> usize {
        self.memory.len() + self.files.len()
    }

    /// An error if a lookup could not read a file back: neither a walk nor
    /// prune may act on its answers.
    pub(crate) fn verify(&self) -> Result<()> {
        match self.files.failed() {
            Some(e) => Err(Error::Internal(format!(
                "reading the trees visited back from local disk: {e}"
            ))),
            None => Ok(()),
        }
    }

    /// Writes the set in memory as a file and empties it (its room is kept
    /// for what comes next). On an error the set goes on in memory.
    fn spill(&mut self) {
        let mut ids: Vec<Id> = self.memory.iter().copied().collect();
        ids.sort_unstable();
        if self.files.push(ids, "the trees visited") {
            self.memory.clear();
        }
    }

    /// Files on disk: for tests.
    #[cfg(test)]
    pub(crate) fn files(&self) -> usize {
        self.files.files()
    }

    /// Makes every file unreadable: for tests.
    #[cfg(test)]
    pub(crate) fn break_reads(&mut self, dir: &std::path::Path) {
        self.files.break_reads(dir);
    }
}

/// The trees a walk outside this crate has visited (a warm-up's), exact:
/// in memory up to 2^17 trees, past that in unnamed files in the index
/// table's directory (ADR 0025). A file that cannot be read answers "not
/// visited": the tree is walked again.
#[derive(Debug)]
pub struct TreesVisited(Visited);

impl TreesVisited {
    /// Adds `id`; true if it was not visited yet.
    pub fn insert(&mut self, id: Id) -> bool {
        self.0.insert(id)
    }
}

impl crate::Repository {
    /// An empty [`TreesVisited`].
    pub fn trees_visited(&self) -> TreesVisited {
        let dir = self.index_dir().map(std::path::Path::to_path_buf);
        TreesVisited(Visited::spilling(dir, IN_MEMORY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(range: std::ops::Range<u32>) -> Vec<Id> {
        range
            .map(|i| Id::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .collect()
    }

    /// Every id twice, in two orders, the second time none is new.
    fn insert_all_twice(v: &mut Visited, all: &[Id]) {
        for id in all {
            assert!(v.insert(*id), "{id} first time");
        }
        for id in all.iter().rev() {
            assert!(!v.insert(*id), "{id} again");
        }
    }

    #[test]
    fn the_set_on_disk_answers_exactly_as_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut v = Visited::spilling(Some(dir.path().to_path_buf()), 100);
        let all = ids(0..10_050);
        insert_all_twice(&mut v, &all);
        // 100 files of 100 merged as they came: as many as bits of 100.
        assert_eq!(v.files(), 3, "files");
        assert_eq!(v.memory.len(), 50);
        assert_eq!(v.len(), all.len());
        for id in &all {
            assert!(v.contains(id));
        }
        for id in ids(20_000..30_000) {
            assert!(!v.contains(&id), "{id} never added");
        }
        assert_eq!(v.len(), all.len());
        v.verify().expect("every read succeeded");
        // No name left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn without_a_directory_or_within_its_budget_it_stays_in_memory() {
        let mut v = Visited::spilling(None, 10);
        insert_all_twice(&mut v, &ids(0..1000));
        assert_eq!((v.files(), v.len()), (0, 1000));
        let dir = tempfile::tempdir().expect("tempdir");
        let mut v = Visited::spilling(Some(dir.path().to_path_buf()), 1001);
        insert_all_twice(&mut v, &ids(0..1000));
        assert_eq!((v.files(), v.len()), (0, 1000));
    }

    #[test]
    fn a_directory_that_cannot_take_the_files_leaves_the_set_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("gone");
        let mut v = Visited::spilling(Some(gone), 10);
        let all = ids(0..1000);
        insert_all_twice(&mut v, &all);
        assert_eq!((v.files(), v.len()), (0, 1000));
        v.verify().expect("nothing read from disk");
    }

    #[test]
    fn a_file_that_cannot_be_read_answers_the_safe_way_and_fails_the_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut v = Visited::spilling(Some(dir.path().to_path_buf()), 10);
        let all = ids(0..100);
        for id in &all {
            v.insert(*id);
        }
        assert!(v.files() > 0);
        v.break_reads(dir.path());
        let on_disk = all
            .iter()
            .find(|id| !v.memory.contains(*id))
            .copied()
            .expect("one went to disk");
        // Referenced: kept.
        assert!(v.contains(&on_disk));
        // Not visited: walked again.
        assert!(v.insert(on_disk));
        let e = v.verify().expect_err("a read failed");
        assert!(e.to_string().contains("trees visited"), "{e}");
    }
}
