//! Prune's pure decisions (`prune_changes.rs`), as tables.

use super::*;
use crate::commands::prune_plan::live_files;
use crate::spool::{held, spooled};
use cairn_core::Kind;
use cairn_core::format::{IndexFile, IndexPack};

fn id(n: u8) -> Id {
    Id::from_bytes([n; 32])
}

fn entry(n: u8) -> PackEntry {
    PackEntry {
        kind: Kind::Data,
        id: id(n),
        offset: 0,
        length: 1,
        raw_length: 1,
    }
}

fn file(packs: &[u8], tombstones: &[u8]) -> IndexFile {
    IndexFile {
        session: id(0),
        created: 0,
        packs: packs
            .iter()
            .map(|p| IndexPack {
                pack: id(*p),
                blobs: vec![],
            })
            .collect(),
        tombstones: tombstones.iter().map(|t| id(*t)).collect(),
        supersedes: vec![],
    }
}

#[test]
fn superseded_index_files_do_not_count() {
    let mut newer = file(&[100], &[]);
    newer.supersedes = vec![id(51)];
    let all = vec![
        (id(50), file(&[100], &[])),
        (id(51), file(&[101], &[])),
        (id(52), newer),
    ];
    let (all, _spool) = held(&all);
    let (superseded, live) = live_files(&all);
    assert_eq!(superseded, HashSet::from([id(51)]));
    let live: Vec<Id> = live.iter().map(|f| f.id).collect();
    assert_eq!(live, vec![id(50), id(52)]);
}

#[test]
fn phase_one_marks_only_live_unreferenced_blobs_and_phase_two_resolves_what_it_finished() {
    let mut listing = [file(&[100], &[]), file(&[101], &[])];
    listing[0].packs[0].blobs = vec![entry(1), entry(2), entry(3)];
    listing[1].packs[0].blobs = vec![entry(4), entry(5)];
    let [a, b] = listing;
    let files_owned = [
        (id(50), a),
        (id(51), b),
        (id(60), file(&[], &[3])),
        (id(61), file(&[], &[4])),
    ];
    // One spool, as prune has: the tombstones wait there too.
    let (files_held, spool) = held(&files_owned);
    let files: Vec<&HeldFile> = files_held.iter().collect();
    let packs = Packs::of(&files, &spool);
    // 1 is referenced; 3 and 4 are tombstoned already (not live); 2 and
    // 5 are live and unreferenced.
    let referenced = Referenced::from_iter([id(1)]);
    let live = |b: &Id| ![id(3), id(4)].contains(b);
    let ripe: Vec<&HeldFile> = vec![&files_held[2], &files_held[3]];
    let plan = PackPlan {
        delete_packs: vec![],
        repack: vec![(id(100), vec![entry(1), entry(2)])],
        // 4's copy in pack 101 stays: its tombstone file is not done.
        left_dead: HashSet::from([id(4)]),
    };
    let c = index_changes(
        &files,
        &packs,
        &referenced,
        live,
        &ripe,
        plan,
        STABLE_ENTRIES,
    )
    .expect("changes");
    assert_eq!(
        c.new_tombstones,
        vec![id(2), id(5)],
        "sorted, live, unreferenced"
    );
    assert_eq!(c.removed, HashSet::from([id(100)]));
    assert_eq!(
        c.resolved,
        vec![id(60)],
        "61 still names a copy left in place"
    );
    assert_eq!(c.listing_files.len(), 2);
    assert!(c.compact);
}

#[test]
fn nothing_to_change_compacts_nothing() {
    let (files_held, _) = held(&[(id(50), file(&[100], &[]))]);
    let files: Vec<&HeldFile> = files_held.iter().collect();
    let (spool, views) = spooled(vec![(id(100), vec![entry(1)])]);
    let packs = Packs {
        views,
        spool: &spool,
    };
    let referenced = Referenced::from_iter([id(1)]);
    let plan = PackPlan {
        delete_packs: vec![],
        repack: vec![],
        left_dead: HashSet::new(),
    };
    let c = index_changes(
        &files,
        &packs,
        &referenced,
        |_| true,
        &[],
        plan,
        STABLE_ENTRIES,
    )
    .expect("changes");
    assert!(c.new_tombstones.is_empty() && c.removed.is_empty() && c.resolved.is_empty());
    assert!(!c.compact, "one listing file, nothing removed or resolved");
}

/// A file of `n` entries listing pack `p`.
fn big_file(p: u8, n: usize) -> IndexFile {
    let mut f = file(&[p], &[]);
    f.packs[0].blobs = vec![entry(p); n];
    f
}

#[test]
fn tiered_compaction_leaves_large_untouched_files_and_rewrites_the_rest() {
    let files_owned = [
        // Stable: large, and nothing in it is removed.
        (id(50), big_file(100, STABLE_ENTRIES)),
        // Large, but lists a pack the run deletes: rewritten.
        (id(51), big_file(101, STABLE_ENTRIES + 5)),
        // Small: merged.
        (id(52), file(&[102], &[])),
        (id(53), big_file(103, STABLE_ENTRIES - 1)),
    ];
    let (files_held, spool) = held(&files_owned);
    let files: Vec<&HeldFile> = files_held.iter().collect();
    let packs = Packs::of(&files, &spool);
    let plan = PackPlan {
        delete_packs: vec![id(101)],
        repack: vec![],
        left_dead: HashSet::new(),
    };
    let c = index_changes(
        &files,
        &packs,
        &Referenced::default(),
        |_| false,
        &[],
        plan,
        STABLE_ENTRIES,
    )
    .expect("changes");
    let rewritten: Vec<Id> = c.listing_files.iter().map(|f| f.id).collect();
    assert_eq!(rewritten, vec![id(51), id(52), id(53)]);
    assert_eq!(c.kept_packs, HashSet::from([id(100)]));
    assert!(c.compact);
    // The compaction lists again neither the removed pack nor the kept one.
    let listed = still_listed(&packs, &c.removed, &c.kept_packs);
    let mut listed: Vec<Id> = listed.into_keys().collect();
    listed.sort();
    assert_eq!(listed, vec![id(102), id(103)]);
}

#[test]
fn stable_files_alone_need_no_compaction() {
    let files_owned = [
        (id(50), big_file(100, STABLE_ENTRIES)),
        (id(51), big_file(101, STABLE_ENTRIES)),
        (id(52), file(&[102], &[])),
    ];
    let (files_held, spool) = held(&files_owned);
    let files: Vec<&HeldFile> = files_held.iter().collect();
    let packs = Packs::of(&files, &spool);
    let plan = PackPlan {
        delete_packs: vec![],
        repack: vec![],
        left_dead: HashSet::new(),
    };
    let c = index_changes(
        &files,
        &packs,
        &Referenced::default(),
        |_| false,
        &[],
        plan,
        STABLE_ENTRIES,
    )
    .expect("changes");
    assert_eq!(c.listing_files.len(), 1, "only the small file");
    assert!(
        !c.compact,
        "one small file and two stable ones: nothing to merge"
    );
    // A file with tombstones is never stable, however large.
    let mut f = big_file(100, STABLE_ENTRIES);
    f.tombstones = vec![id(9)];
    let (f, _) = held(&[(id(50), f)]);
    assert!(!stable(&f[0], STABLE_ENTRIES, &HashSet::new()));
}
