//! The rules of `repair index` as a table, with no store.

use super::*;
use cairn_core::Kind;

fn id(n: u8) -> Id {
    Id::from_bytes([n; 32])
}

fn entry(n: u8, offset: u32) -> PackEntry {
    PackEntry {
        kind: Kind::Data,
        id: id(n),
        offset,
        length: 10,
        raw_length: 8,
    }
}

fn read(lists_packs: bool, tombstones: bool) -> FileSeen {
    FileSeen::Read {
        lists_packs,
        tombstones,
    }
}

#[test]
fn which_index_files_a_rebuilt_index_replaces() {
    // (what was seen, replaced?, reported unreadable?)
    let table = [
        (read(true, false), true, false),
        (read(true, true), true, false),
        (read(false, true), false, false), // tombstone-only: stays
        (read(false, false), true, false), // empty: nothing to keep
        (FileSeen::Damaged("corrupt".into()), true, true),
        (FileSeen::Gone, false, false), // someone else deleted it
    ];
    for (n, (seen, replaced, unreadable)) in table.into_iter().enumerate() {
        let mut report = RepairReport::default();
        let p = plan(vec![(id(n as u8), seen.clone())], Vec::new(), &mut report);
        assert_eq!(p.replace.contains(&id(n as u8)), replaced, "{seen:?}");
        assert_eq!(
            report.unreadable_index_files.len(),
            usize::from(unreadable),
            "{seen:?}"
        );
        assert_eq!(
            report.index_files_replaced,
            usize::from(replaced),
            "{seen:?}"
        );
    }
}

#[test]
fn readable_packs_are_listed_in_order_and_damaged_ones_reported_not_listed() {
    let mut report = RepairReport::default();
    let p = plan(
        Vec::new(),
        vec![
            (
                id(9),
                PackSeen::Read(vec![entry(2, 300), entry(1, 0), entry(3, 100)]),
            ),
            (id(4), PackSeen::Damaged("tampered header".into())),
            (id(5), PackSeen::Gone),
            (id(2), PackSeen::Read(vec![entry(7, 0)])),
        ],
        &mut report,
    );
    let packs: Vec<Id> = p.listed.iter().map(|l| l.pack).collect();
    assert_eq!(
        packs,
        vec![id(2), id(9)],
        "damaged and vanished packs are not listed"
    );
    let offsets: Vec<u32> = p.listed[1].blobs.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, vec![0, 100, 300], "blobs in offset order");
    assert_eq!((report.packs, report.blobs), (2, 4));
    assert_eq!(report.unreadable_packs.len(), 1);
    assert!(report.unreadable_packs[0].0.contains(&id(4).to_hex()));
}
