//! The index answers the same with and without its table on disk, and
//! the table survives neither damage nor a mismatch unnoticed.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_core::format::{IndexFile, IndexPack, PackEntry};
use cairn_core::{Id, Kind};
use proptest::prelude::*;

use super::table::{Table, TableError};
use super::{Builder, Index, MemIndex};

fn entry(b: u8) -> PackEntry {
    PackEntry {
        kind: Kind::Data,
        id: Id::from_bytes([b; 32]),
        offset: 0,
        length: 41,
        raw_length: 0,
    }
}

fn listing(created: i64, pack: u8, blobs: &[u8]) -> IndexFile {
    IndexFile {
        created,
        packs: vec![IndexPack {
            pack: Id::from_bytes([pack; 32]),
            blobs: blobs.iter().map(|&b| entry(b)).collect(),
        }],
        ..IndexFile::default()
    }
}

fn tombstones(created: i64, blobs: &[u8]) -> IndexFile {
    IndexFile {
        created,
        tombstones: blobs.iter().map(|&b| Id::from_bytes([b; 32])).collect(),
        ..IndexFile::default()
    }
}

#[test]
fn tombstoned_blobs_are_not_deduplicated_until_listed_again_later() {
    let id = |b| Id::from_bytes([b; 32]);
    let files = [
        (id(100), listing(10, 50, &[1, 2, 3])),
        (id(101), tombstones(20, &[1, 2])),
        // A fresh copy of 2 stored after the tombstone; 3 listed at the
        // same second as a tombstone does not count as after it.
        (id(102), listing(30, 51, &[2])),
        (id(103), tombstones(30, &[3])),
        (id(104), listing(30, 52, &[3])),
    ];
    let index = Index::from_files(files.iter().map(|(i, f)| (*i, f)));
    assert!(!index.contains(&id(1)));
    assert!(index.is_tombstoned(&id(1)));
    assert!(index.get(&id(1)).is_some(), "still readable");
    assert!(index.contains(&id(2)));
    assert!(!index.contains(&id(3)));
    assert!(!index.contains(&id(4)));
    assert!(!index.is_tombstoned(&id(4)));
}

#[test]
fn superseded_files_are_ignored() {
    let id = |b| Id::from_bytes([b; 32]);
    let old = listing(10, 50, &[1]);
    let new = IndexFile {
        supersedes: vec![id(100)],
        ..listing(10, 51, &[1])
    };
    let files = [(id(100), old), (id(101), new)];
    let index = Index::from_files(files.iter().map(|(i, f)| (*i, f)));
    assert_eq!(index.get(&id(1)).map(|l| l.pack), Some(id(51)));
    assert_eq!(index.files(), vec![id(101)]);
}

fn table_of(dir: &std::path::Path, base: Option<&Table>, files: &[(Id, IndexFile)]) -> Table {
    let mut b = Builder::new(dir).expect("builder");
    // Many runs, so that merges of several are what the tests see.
    b.spill_every(7);
    for (id, f) in files {
        b.add_file(*id, f).expect("add");
    }
    let path = dir.join(format!("t{}", files.len()));
    b.finish(base, &path, &Id::from_bytes([7; 32]), 1)
        .expect("finish")
}

/// Everything the index says about a set of ids; `live_location` must
/// say what `contains` and `get` say together.
fn answers(index: &Index, ids: &[Id]) -> Vec<(Option<super::BlobLocation>, bool, bool)> {
    ids.iter()
        .map(|id| {
            let (at, live) = (index.get(id), index.contains(id));
            assert_eq!(index.live_location(id), at.filter(|_| live), "{id}");
            (at, live, index.is_tombstoned(id))
        })
        .collect()
}

fn sorted(m: HashMap<Id, Vec<PackEntry>>) -> Vec<(Id, Vec<(Id, u32)>)> {
    let mut v: Vec<_> = m
        .into_iter()
        .map(|(p, mut e)| {
            e.sort_by_key(|e| e.id);
            (p, e.iter().map(|e| (e.id, e.offset)).collect())
        })
        .collect();
    v.sort_by_key(|(p, _)| *p);
    v
}

/// Random index files over a small id space, so ids repeat across files,
/// packs and tombstones; a few files supersede earlier ones.
fn files_strategy() -> impl Strategy<Value = Vec<(Id, IndexFile)>> {
    let file = (
        -3i64..6,
        proptest::collection::vec((0u8..6, proptest::collection::vec(0u8..40, 0..6)), 0..3),
        proptest::collection::vec(0u8..40, 0..4),
        proptest::collection::vec(0usize..8, 0..2),
    );
    proptest::collection::vec(file, 1..8).prop_map(|files| {
        let file_id = |i: usize| Id::from_bytes([200 + i as u8; 32]);
        files
            .into_iter()
            .enumerate()
            .map(|(i, (created, packs, tombs, sup))| {
                let f = IndexFile {
                    created,
                    packs: packs
                        .into_iter()
                        .map(|(p, blobs)| IndexPack {
                            pack: Id::from_bytes([100 + p; 32]),
                            blobs: blobs
                                .into_iter()
                                .enumerate()
                                .map(|(k, b)| PackEntry {
                                    kind: if b % 5 == 0 { Kind::Tree } else { Kind::Data },
                                    id: Id::from_bytes([b; 32]),
                                    offset: k as u32 * 100,
                                    length: 50 + u32::from(b),
                                    raw_length: 10 + u32::from(b),
                                })
                                .collect(),
                        })
                        .collect(),
                    tombstones: tombs.into_iter().map(|b| Id::from_bytes([b; 32])).collect(),
                    supersedes: sup.into_iter().filter(|&s| s < i).map(file_id).collect(),
                    ..IndexFile::default()
                };
                (file_id(i), f)
            })
            .collect()
    })
}

fn all_ids() -> Vec<Id> {
    (0u8..42).map(|b| Id::from_bytes([b; 32])).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A table built from all files, and a table of the first files with the
    /// rest in memory, and a table of the first files extended by a merge of
    /// the rest: each answers every question as the in-memory index does.
    #[test]
    fn table_answers_like_memory(files in files_strategy(), split in 0usize..8) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ids = all_ids();
        let expect = Index::from_files(files.iter().map(|(i, f)| (*i, f)));

        let whole = Index::with_table(Some(Arc::new(table_of(dir.path(), None, &files))), MemIndex::default());
        prop_assert_eq!(answers(&whole, &ids), answers(&expect, &ids));
        prop_assert_eq!(whole.len(), expect.len());
        prop_assert_eq!(sorted(whole.entries_by_pack().expect("by pack")), sorted(expect.entries_by_pack().expect("by pack")));

        // A split is only used when no later file supersedes an earlier
        // one across it (the loader rebuilds in that case).
        let split = split.min(files.len());
        let (old, new) = files.split_at(split);
        let crosses = new.iter().any(|(_, f)| f.supersedes.iter().any(|s| old.iter().any(|(o, _)| o == s)));
        if !crosses && !old.is_empty() {
            let base = Arc::new(table_of(dir.path(), None, old));
            let mixed = Index::with_table(Some(base.clone()), MemIndex::from_files(new.iter().map(|(i, f)| (*i, f))));
            prop_assert_eq!(answers(&mixed, &ids), answers(&expect, &ids));
            prop_assert_eq!(mixed.len(), expect.len());
            prop_assert_eq!(sorted(mixed.entries_by_pack().expect("by pack")), sorted(expect.entries_by_pack().expect("by pack")));

            let merged = Index::with_table(Some(Arc::new(table_of(dir.path(), Some(&base), new))), MemIndex::default());
            prop_assert_eq!(answers(&merged, &ids), answers(&expect, &ids));
            prop_assert_eq!(merged.len(), expect.len());
        }
    }
}

#[test]
fn a_damaged_or_foreign_table_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = [(Id::from_bytes([200; 32]), listing(1, 50, &[1, 2, 3]))];
    let t = table_of(dir.path(), None, &files);
    let path = dir.path().join("t1");
    drop(t);
    let repo = Id::from_bytes([7; 32]);
    assert!(Table::open(&path, &repo).is_ok());
    assert!(matches!(
        Table::open(&path, &Id::from_bytes([8; 32])),
        Err(TableError::Invalid(_))
    ));
    let good = std::fs::read(&path).expect("read");
    for at in [0, 20, 70, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 1;
        std::fs::write(&path, &bad).expect("write");
        assert!(
            Table::open(&path, &repo).is_err(),
            "flipped byte {at} accepted"
        );
    }
    std::fs::write(&path, &good[..good.len() - 1]).expect("write");
    assert!(
        Table::open(&path, &repo).is_err(),
        "truncated table accepted"
    );
}

#[test]
fn a_table_checked_while_in_use_is_judged_and_removed_if_damaged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = [(Id::from_bytes([200; 32]), listing(1, 50, &[1, 2, 3]))];
    drop(table_of(dir.path(), None, &files));
    let path = dir.path().join("t1");
    let repo = Id::from_bytes([7; 32]);
    let t = Table::open_overlapped(&path, &repo).expect("open");
    assert_eq!(t.verified(), Ok(()));
    assert!(t.records().is_ok());
    drop(t);
    assert!(path.exists(), "a sound table was removed");
    let good = std::fs::read(&path).expect("read");
    // A flipped bit in a record, in the samples, in the trailer.
    for at in [64 + 40, good.len() - 50, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 1;
        std::fs::write(&path, &bad).expect("write");
        let t = Table::open_overlapped(&path, &repo).expect("opens before the verdict");
        // Lookups are answered before the verdict; it comes after.
        let _ = t.find(&Id::from_bytes([2; 32]));
        let verdict = t.verified();
        assert!(verdict.is_err(), "flipped byte {at} passed");
        assert!(t.records().is_err(), "a full pass read a damaged table");
        assert!(!path.exists(), "the damaged table is still there");
    }
}

#[test]
fn samples_out_of_order_are_refused_before_any_verdict() {
    // Out of order, samples could make one lookup read much of the table;
    // a table checked while in use must refuse them at open.
    let dir = tempfile::tempdir().expect("tempdir");
    drop(table_of(
        dir.path(),
        None,
        &[(id(1_000_000), numbered(300))],
    ));
    let path = dir.path().join("t1");
    let repo = Id::from_bytes([7; 32]);
    assert!(Table::open_overlapped(&path, &repo).is_ok());
    let mut bytes = std::fs::read(&path).expect("read");
    // Header, 300 records, then the samples: make the second the largest.
    let second = 64 + 300 * 96 + 8;
    bytes[second..second + 8].fill(0xff);
    std::fs::write(&path, &bytes).expect("write");
    assert!(matches!(
        Table::open_overlapped(&path, &repo),
        Err(TableError::Invalid("samples out of order"))
    ));
}

fn id(i: u32) -> Id {
    Id::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

/// One pack of `n` blobs, blob `i` (id `id(i)`) at offset `i`.
fn numbered(n: u32) -> IndexFile {
    IndexFile {
        created: 5,
        packs: vec![IndexPack {
            pack: Id::from_bytes([9; 32]),
            blobs: (0..n)
                .map(|i| PackEntry {
                    kind: Kind::Data,
                    id: id(i),
                    offset: i,
                    length: 1,
                    raw_length: 1,
                })
                .collect(),
        }],
        ..IndexFile::default()
    }
}

#[test]
fn lookups_find_every_record_of_a_large_table() {
    // Ten thousand ids spread over many sample blocks, plus ids that are
    // absent but fall between present ones.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = numbered(10_000);
    let table = table_of(dir.path(), None, &[(Id::from_bytes([1; 32]), file)]);
    assert_eq!(table.len(), 10_000);
    for i in 0..10_000u32 {
        let r = table.find(&id(i)).expect("present id not found");
        assert_eq!(r.location.map(|l| l.offset), Some(i));
    }
    for i in 10_000..20_000u32 {
        assert!(table.find(&id(i)).is_none());
    }
}

#[test]
fn the_runs_of_a_build_leave_no_name_behind() {
    // A process killed while it builds a table (out of memory, say) must
    // not leave its runs in the cache directory for good.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = numbered(5_000);
    let mut b = Builder::new(dir.path()).expect("builder");
    b.spill_every(100);
    b.add_file(Id::from_bytes([1; 32]), &file).expect("add");
    let names = || std::fs::read_dir(dir.path()).expect("read").count();
    assert_eq!(names(), 0, "fifty runs written, none named");
    let table = b
        .finish(None, &dir.path().join("t"), &Id::from_bytes([7; 32]), 1)
        .expect("finish");
    assert_eq!(names(), 1, "the table only");
    assert_eq!(table.len(), 5_000);
    assert!((0..5_000).all(|i| {
        table
            .find(&id(i))
            .is_some_and(|r| r.location.map(|l| l.offset) == Some(i))
    }));
}

#[test]
fn a_blob_listed_many_times_keeps_its_first_location_through_large_runs() {
    // Three files each list 200 blobs in ten packs: the first location of
    // every blob is in the first file's first pack, whatever order the
    // runs (700 records each, so their sort meets many equal ids) hold
    // the copies in.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |f: u32| IndexFile {
        created: 30 - i64::from(f),
        packs: (0..10u32)
            .map(|p| IndexPack {
                pack: id(1_000_000 + 10 * f + p),
                blobs: (0..200)
                    .map(|i| PackEntry {
                        kind: Kind::Data,
                        id: id(i),
                        offset: 1_000 * (10 * f + p) + i,
                        length: 1,
                        raw_length: 1,
                    })
                    .collect(),
            })
            .collect(),
        ..IndexFile::default()
    };
    let mut b = Builder::new(dir.path()).expect("builder");
    b.spill_every(700);
    for f in 0..3 {
        b.add_file(id(2_000_000 + f), &file(f)).expect("add");
    }
    let table = b
        .finish(None, &dir.path().join("t"), &Id::from_bytes([7; 32]), 1)
        .expect("finish");
    assert_eq!(table.len(), 200);
    for i in 0..200 {
        let r = table.find(&id(i)).expect("listed");
        let at = r.location.map(|l| (l.pack, l.offset));
        assert_eq!(at, Some((id(1_000_000), i)), "blob {i}");
        assert_eq!(r.listed, 30, "the newest file listing it");
    }
}
