//! The blobs snapshots reference, as prune asks about them (ADR 0021,
//! ADR 0022): trees exactly (the walk visits each once by that set), data
//! blobs by the first 8 bytes of their id, held sorted.
//!
//! Ids are keyed hashes that no one without the keys can steer, and a data
//! blob taken for referenced because a referenced one shares those 8 bytes
//! (about one in 2^64 divided by the blobs referenced) is only kept, never
//! deleted.
//!
//! Past a budget of prefixes in memory, the data set goes to local disk in
//! sorted runs, merged into one file when the walk ends (ADR 0023); past
//! theirs, the trees go to sorted files too (`visited.rs`, ADR 0025).

use std::path::PathBuf;

use cairn_core::Id;

use crate::sorted_disk as disk;
use crate::visited::{self, Visited};
use crate::{Error, Result};

/// Data blobs the referenced set holds in memory by default before it goes
/// to disk: two million (16 MiB of prefixes; about 2 TiB of 1 MiB chunks).
pub(crate) const IN_MEMORY: usize = 1 << 21;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Referenced {
    pub(crate) trees: Visited,
    pub(crate) data: DataRefs,
}

impl Referenced {
    /// True if a snapshot references the blob (or, for a data blob, one
    /// with the same first 8 bytes of id).
    pub(crate) fn contains(&self, id: &Id) -> bool {
        // Trees first: fewer, and mostly in memory or behind a filter.
        self.trees.contains(id) || self.data.contains(prefix(id))
    }

    /// Distinct trees and data blobs referenced.
    pub(crate) fn len(&self) -> usize {
        self.trees.len() + self.data.len()
    }

    /// Sorts what is gathered, so that [`Referenced::contains`] sees it.
    pub(crate) fn seal(&mut self) -> Result<()> {
        self.data.seal()
    }

    /// A set whose data blobs go to files in `dir` past `budget` of them
    /// in memory, and its trees past `budget` or [`visited::IN_MEMORY`],
    /// whichever is less; in memory throughout without a directory.
    pub(crate) fn spilling(dir: Option<PathBuf>, budget: usize) -> Referenced {
        Referenced {
            trees: Visited::spilling(dir.clone(), budget.min(visited::IN_MEMORY)),
            data: DataRefs {
                budget: budget.max(1),
                check_at: budget.max(1),
                disk: dir.map(disk::Disk::<u64>::new),
                ..DataRefs::default()
            },
        }
    }

    /// An error if a lookup could not read the set back from disk (it
    /// then answered "referenced"): prune must not act on such answers.
    pub(crate) fn verify(&self) -> Result<()> {
        self.trees.verify()?;
        match self.data.disk.as_ref().and_then(disk::Disk::failed) {
            Some(e) => Err(Error::Internal(format!(
                "reading the referenced set back from local disk: {e}"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
impl FromIterator<Id> for Referenced {
    /// Every id as a data blob.
    fn from_iter<I: IntoIterator<Item = Id>>(ids: I) -> Self {
        let mut data = DataRefs::default();
        for id in ids {
            data.insert(&id).expect("in memory");
        }
        data.seal().expect("in memory");
        Referenced {
            trees: Visited::default(),
            data,
        }
    }
}

/// Buckets by the first byte of the prefix: each sorts and merges on its
/// own, so the memory a merge takes besides the set is a bucket's.
const BUCKETS: usize = 256;
/// A bucket merges what it gathered once that is a quarter of what it
/// holds sorted (or this many): the set takes about 8 bytes per distinct
/// prefix, a quarter more while it gathers, instead of the 16 to 24 a
/// hash set takes (ten million blobs referenced: 226 MiB at its peak).
const MIN_GATHERED: usize = 1024;

/// Data blobs referenced, by the first 8 bytes of their id: a sorted,
/// distinct vector per bucket, and what was gathered since it was merged;
/// past the budget, runs on disk.
#[derive(Debug)]
pub(crate) struct DataRefs {
    buckets: Vec<Bucket>,
    /// Prefixes in the buckets (distinct once merged).
    held: usize,
    /// Distinct prefixes held in memory before they go to `disk`.
    budget: usize,
    /// `held` at which the buckets are merged to count them exactly.
    check_at: usize,
    disk: Option<disk::Disk<u64>>,
}

#[derive(Debug, Default)]
struct Bucket {
    sorted: Vec<u64>,
    gathered: Vec<u64>,
    /// Once sealed: where the prefixes of each value of the `bits` bits
    /// after the first byte start in `sorted`, so a lookup searches a
    /// few neighbours instead of the whole bucket (each step of a binary
    /// search over tens of MiB is a miss in every cache).
    dir: Vec<u32>,
    bits: u32,
}

impl Default for DataRefs {
    fn default() -> Self {
        DataRefs {
            buckets: (0..BUCKETS).map(|_| Bucket::default()).collect(),
            held: 0,
            budget: IN_MEMORY,
            check_at: IN_MEMORY,
            disk: None,
        }
    }
}

impl DataRefs {
    /// Adds the data blob `id`.
    pub(crate) fn insert(&mut self, id: &Id) -> Result<()> {
        self.gather(prefix(id));
        if self.held > self.check_at && self.disk.is_some() {
            self.spill()?;
        }
        Ok(())
    }

    fn gather(&mut self, p: u64) {
        let b = &mut self.buckets[(p >> 56) as usize];
        if b.gathered.capacity() == 0 {
            b.gathered
                .reserve_exact(MIN_GATHERED.max(b.sorted.len() / 4));
        }
        b.gathered.push(p);
        self.held += 1;
        if b.gathered.len() >= MIN_GATHERED.max(b.sorted.len() / 4) {
            self.held -= b.merge();
        }
    }

    /// Merges every bucket and, if they hold more than the budget, writes
    /// them as a run and empties them. Else (what was gathered repeated
    /// what was merged) counts again a quarter of the budget later, so
    /// that repeats cost no merge each.
    fn spill(&mut self) -> Result<()> {
        for b in &mut self.buckets {
            self.held -= b.merge();
        }
        if self.held <= self.budget {
            self.check_at = self.held + (self.budget / 4).max(1);
            return Ok(());
        }
        self.check_at = self.budget;
        let Some(disk) = &mut self.disk else {
            return Ok(());
        };
        let sorted = self.buckets.iter().flat_map(|b| b.sorted.iter().copied());
        match disk.write_run(sorted) {
            Ok(()) => {
                self.buckets.iter_mut().for_each(|b| *b = Bucket::default());
                self.held = 0;
                Ok(())
            }
            Err(e) => self.back_to_memory(&e),
        }
    }

    /// Reads what went to disk back into the buckets and goes on in
    /// memory, as before ADR 0023.
    fn back_to_memory(&mut self, why: &std::io::Error) -> Result<()> {
        tracing::warn!("prune's referenced set kept in memory: {why}");
        let Some(disk) = self.disk.take() else {
            return Ok(());
        };
        disk.each(|p| self.gather(p)).map_err(|e| {
            Error::Internal(format!(
                "reading the referenced set back from local disk: {e}"
            ))
        })
    }

    /// Merges every bucket's gathered prefixes, and indexes them; with
    /// runs on disk, merges them and the buckets into one sorted file.
    pub(crate) fn seal(&mut self) -> Result<()> {
        for b in &mut self.buckets {
            self.held -= b.merge();
        }
        if let Some(disk) = self.disk.as_mut().filter(|d| d.has_runs()) {
            let sorted = self.buckets.iter().flat_map(|b| b.sorted.iter().copied());
            match disk.seal(sorted, |_| {}) {
                Ok(()) => {
                    self.buckets.iter_mut().for_each(|b| *b = Bucket::default());
                    self.held = 0;
                    return Ok(());
                }
                Err(e) => {
                    self.back_to_memory(&e)?;
                    for b in &mut self.buckets {
                        self.held -= b.merge();
                    }
                }
            }
        }
        self.buckets.iter_mut().for_each(Bucket::index);
        Ok(())
    }

    /// True if `p` was inserted and merged since ([`DataRefs::seal`]).
    fn contains(&self, p: u64) -> bool {
        if let Some(d) = self.disk.as_ref().filter(|d| d.is_sealed()) {
            return d.contains(p);
        }
        let b = &self.buckets[(p >> 56) as usize];
        let range = match b.dir.get(b.sub(p)..b.sub(p) + 2) {
            Some(&[lo, hi]) => &b.sorted[lo as usize..hi as usize],
            _ => &b.sorted[..],
        };
        range.binary_search(&p).is_ok()
    }

    /// Distinct prefixes merged.
    fn len(&self) -> usize {
        let on_disk = self.disk.as_ref().map_or(0, disk::Disk::len);
        on_disk + self.buckets.iter().map(|b| b.sorted.len()).sum::<usize>()
    }
}

impl Bucket {
    /// Which of the directory's slots `p` falls in.
    fn sub(&self, p: u64) -> usize {
        ((p >> (56 - self.bits)) & ((1 << self.bits) - 1)) as usize
    }

    /// Builds the directory: about one slot per four prefixes (at most
    /// 2^16 slots), a byte per prefix.
    fn index(&mut self) {
        let bits = usize::BITS - (self.sorted.len() / 4).leading_zeros();
        self.bits = bits.min(16);
        let slots = 1usize << self.bits;
        let mut dir = Vec::with_capacity(slots + 1);
        let mut at = 0;
        for slot in 0..slots {
            while at < self.sorted.len() && self.sub(self.sorted[at]) < slot {
                at += 1;
            }
            dir.push(at as u32);
        }
        dir.push(self.sorted.len() as u32);
        self.dir = dir;
    }

    /// Merges what was gathered into the sorted prefixes; returns how
    /// many of the gathered ones were already there or repeated.
    fn merge(&mut self) -> usize {
        if self.gathered.is_empty() {
            return 0;
        }
        let gathered = self.gathered.len();
        let before = self.sorted.len();
        self.dir = Vec::new();
        let mut fresh = std::mem::take(&mut self.gathered);
        fresh.sort_unstable();
        fresh.dedup();
        let old = std::mem::take(&mut self.sorted);
        let mut merged = Vec::with_capacity(old.len() + fresh.len());
        let (mut i, mut j) = (0, 0);
        while i < old.len() && j < fresh.len() {
            match old[i].cmp(&fresh[j]) {
                std::cmp::Ordering::Less => {
                    merged.push(old[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    merged.push(fresh[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    merged.push(old[i]);
                    i += 1;
                    j += 1;
                }
            }
        }
        merged.extend_from_slice(&old[i..]);
        merged.extend_from_slice(&fresh[j..]);
        merged.shrink_to_fit();
        self.sorted = merged;
        before + gathered - self.sorted.len()
    }
}

/// The first 8 bytes of an id, big-endian.
pub(crate) fn prefix(id: &Id) -> u64 {
    let b = id.as_bytes();
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8, last: u8) -> Id {
        let mut b = [first; 32];
        b[31] = last;
        Id::from_bytes(b)
    }

    #[test]
    fn trees_are_told_apart_exactly_and_data_blobs_by_their_first_eight_bytes() {
        let mut r = Referenced::default();
        assert!(r.trees.insert(id(1, 0)));
        // A tree that differs from a visited one only late in its id is
        // still walked: the walk's set of trees is exact.
        assert!(r.trees.insert(id(1, 1)));
        r.data.insert(&id(2, 0)).expect("insert");
        r.seal().expect("seal");
        assert!(r.contains(&id(1, 0)) && r.contains(&id(2, 0)));
        // Data blobs sharing the first 8 bytes are kept together (the
        // safe way), the rest are not referenced.
        assert!(r.contains(&id(2, 9)));
        assert!(!r.contains(&id(3, 0)) && !r.contains(&id(1, 2)));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn the_sorted_set_holds_exactly_what_was_inserted_however_often_and_in_any_order() {
        let ids: Vec<Id> = (0..400_000u32)
            .map(|i| Id::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .collect();
        let mut r = DataRefs::default();
        // Every id once, then the even ones again (as trees that list the
        // same content do), in another order.
        ids.iter().for_each(|id| r.insert(id).expect("insert"));
        let merged = r.len();
        assert!(
            merged > 0 && merged < ids.len(),
            "merged on the way: {merged}"
        );
        ids.iter()
            .rev()
            .step_by(2)
            .for_each(|id| r.insert(id).expect("insert"));
        r.seal().expect("seal");
        assert_eq!(r.len(), ids.len());
        assert!(ids.iter().all(|id| r.contains(prefix(id))));
        let absent = (400_000..410_000u32)
            .map(|i| Id::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes()));
        assert!(absent.into_iter().all(|id| !r.contains(prefix(&id))));
        for b in &r.buckets {
            assert!(b.sorted.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
        }
    }

    fn hashed(range: std::ops::Range<u32>) -> Vec<Id> {
        range
            .map(|i| Id::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .collect()
    }

    /// Every id once, then every other one again in another order (as
    /// trees that list the same content do).
    fn insert_twice(r: &mut Referenced, ids: &[Id]) {
        ids.iter().for_each(|id| r.data.insert(id).expect("insert"));
        ids.iter()
            .rev()
            .step_by(2)
            .for_each(|id| r.data.insert(id).expect("insert"));
    }

    fn disk(r: &Referenced) -> Option<&disk::Disk<u64>> {
        r.data.disk.as_ref()
    }

    #[test]
    fn the_set_on_disk_holds_exactly_what_was_inserted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = hashed(0..400_000);
        let mut r = Referenced::spilling(Some(dir.path().to_path_buf()), 1000);
        insert_twice(&mut r, &ids);
        // Runs were merged on the way (more than MAX_RUNS written), and
        // the repeated half found its first copies in other runs.
        assert!(
            disk(&r).is_some_and(|d| d.written > 100),
            "{:?}",
            r.data.held
        );
        r.seal().expect("seal");
        assert!(disk(&r).is_some_and(disk::Disk::is_sealed));
        assert!(r.data.buckets.iter().all(|b| b.sorted.capacity() == 0));
        assert_eq!(r.len(), ids.len());
        assert!(ids.iter().all(|id| r.contains(id)));
        assert!(hashed(400_000..410_000).iter().all(|id| !r.contains(id)));
        // The lowest and highest prefixes, and ones beyond them.
        let mut sorted: Vec<u64> = ids.iter().map(prefix).collect();
        sorted.sort_unstable();
        let d = disk(&r).expect("on disk");
        assert!(d.contains(sorted[0]) && d.contains(sorted[sorted.len() - 1]));
        assert!(!d.contains(sorted[0] - 1) && !d.contains(sorted[sorted.len() - 1] + 1));
        r.verify().expect("every lookup read the set");
    }

    #[test]
    fn a_set_within_its_budget_stays_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = hashed(0..5_000);
        let mut r = Referenced::spilling(Some(dir.path().to_path_buf()), 5_000);
        insert_twice(&mut r, &ids);
        r.seal().expect("seal");
        assert!(disk(&r).is_some_and(|d| d.written == 0 && !d.is_sealed()));
        assert_eq!(r.len(), ids.len());
        assert!(ids.iter().all(|id| r.contains(id)));
    }

    #[test]
    fn a_set_whose_disk_fails_goes_on_in_memory_with_what_it_wrote() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runs = dir.path().join("runs");
        std::fs::create_dir(&runs).expect("mkdir");
        let ids = hashed(0..100_000);
        let mut r = Referenced::spilling(Some(runs.clone()), 1000);
        ids[..50_000]
            .iter()
            .for_each(|id| r.data.insert(id).expect("insert"));
        assert!(disk(&r).is_some_and(|d| d.written > 0));
        // The runs' files have no name: the directory goes, they stay.
        std::fs::remove_dir(&runs).expect("rmdir");
        ids[50_000..]
            .iter()
            .for_each(|id| r.data.insert(id).expect("insert"));
        r.seal().expect("seal");
        assert!(disk(&r).is_none(), "in memory now");
        assert_eq!(r.len(), ids.len());
        assert!(ids.iter().all(|id| r.contains(id)));
        assert!(hashed(100_000..101_000).iter().all(|id| !r.contains(id)));
    }

    #[test]
    fn a_lookup_that_cannot_read_the_set_answers_referenced_and_fails_the_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Referenced::spilling(Some(dir.path().to_path_buf()), 100);
        insert_twice(&mut r, &hashed(0..10_000));
        r.seal().expect("seal");
        let absent = hashed(20_000..20_001)[0];
        assert!(!r.contains(&absent));
        r.verify().expect("nothing failed yet");
        r.data
            .disk
            .as_mut()
            .expect("on disk")
            .break_reads(dir.path());
        assert!(r.contains(&absent), "kept, the safe way");
        let e = r.verify().expect_err("the run stops");
        assert!(e.to_string().contains("referenced set"), "{e}");
    }
}
