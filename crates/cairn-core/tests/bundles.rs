//! Bundles of small blobs (docs/FORMAT.md §7.1): their codec, and the
//! version-2 pack headers and index files that list them.

mod common;

use cairn_core::format::bundle_v1::BUNDLE_SEAL_ID;
use cairn_core::format::pack_v1::{self, PackBuilder, PackEntry};
use cairn_core::format::{Bundle, BundleBuilder, IndexFile, IndexPack};
use cairn_core::{Compression, Id, Kind, SeededRandom, open, seal};
use common::*;
use proptest::prelude::*;

fn entry(kind: Kind, b: u8, offset: u32, length: u32) -> PackEntry {
    PackEntry {
        kind,
        id: Id::from_bytes([b; 32]),
        offset,
        length,
        raw_length: 7,
    }
}

proptest! {
    #[test]
    fn bundles_round_trip_and_hold_exactly_their_blobs(
        blobs in proptest::collection::btree_map(id(), payload(512), 1..24),
        stranger in id(),
    ) {
        let mut b = BundleBuilder::default();
        for (id, plain) in &blobs {
            b.push(*id, plain);
        }
        let total: usize = blobs.values().map(Vec::len).sum();
        prop_assert_eq!(b.contents_len(), total);
        let (plain, members) = b.finish();
        prop_assert_eq!(members.len(), blobs.len());
        let bundle = Bundle::decode(plain)?;
        for (id, plain) in &blobs {
            prop_assert_eq!(bundle.get(id), Some(&plain[..]));
        }
        if !blobs.contains_key(&stranger) {
            prop_assert_eq!(bundle.get(&stranger), None);
        }
    }

    /// A builder given a used buffer (a sealed bundle's, handed back)
    /// builds the same plaintext as a new one, in that buffer when it has
    /// the room: nothing of what it held before shows.
    #[test]
    fn a_builder_on_a_used_buffer_builds_the_same_bundle_in_it(
        blobs in proptest::collection::btree_map(id(), payload(512), 1..24),
        old in payload(4096),
    ) {
        let (mut fresh, mut reused) = (BundleBuilder::default(), {
            let mut buf = old.clone();
            buf.reserve(64 * 1024);
            let at = buf.as_ptr();
            (BundleBuilder::with_buffer(buf), at)
        });
        for (id, plain) in &blobs {
            fresh.push(*id, plain);
            reused.0.push(*id, plain);
        }
        let (plain, members) = reused.0.finish();
        prop_assert_eq!(plain.as_ptr(), reused.1, "built in the buffer given");
        prop_assert_eq!((plain, members), fresh.finish());
    }

    #[test]
    fn built_packs_with_a_bundle_list_each_member_at_the_bundles_range(
        before in payload(256),
        members in proptest::collection::vec(payload(256), 1..8),
        keys in keys(),
        c in compression(),
        pack_id in id(),
        seed in any::<u64>(),
    ) {
        let rng = SeededRandom::new(seed);
        let mut builder = PackBuilder::default();
        let first = keys.blob_id(Kind::Data, &before);
        builder.push(Kind::Data, first, &seal(&keys, Kind::Data, &first, &before, c, &rng), before.len() as u32);
        let mut bundle = BundleBuilder::default();
        for m in &members {
            let id = keys.blob_id(Kind::Data, m);
            if !bundle.members().iter().any(|(x, _)| *x == id) {
                bundle.push(id, m);
            }
        }
        let (plain, listed) = bundle.finish();
        let sealed = seal(&keys, Kind::Bundle, &BUNDLE_SEAL_ID, &plain, c, &rng);
        let predicted = builder.size_with_entries(sealed.len(), listed.len());
        builder.push_bundle(&sealed, &listed);
        let (pack, entries) = builder.finish(&keys, &pack_id, &rng);
        prop_assert_eq!(pack.len(), predicted);
        prop_assert_eq!(&pack_v1::read_header(&keys, &pack_id, &pack)?, &entries);
        prop_assert_eq!(entries.len(), 1 + listed.len());
        for (e, (id, len)) in entries[1..].iter().zip(&listed) {
            prop_assert_eq!((e.kind, e.id, e.raw_length), (Kind::Bundle, *id, *len));
            prop_assert_eq!(e.range(), entries[1].range());
            let opened = open(&keys, Kind::Bundle, &BUNDLE_SEAL_ID, &pack[e.offset as usize..e.end() as usize])?;
            let got = Bundle::decode(opened)?.get(id).map(<[u8]>::to_vec);
            prop_assert_eq!(got.map(|p| keys.blob_id(Kind::Data, &p)), Some(*id));
        }
        // The bundle's members occupy its bytes once.
        prop_assert_eq!(
            pack_v1::occupied_bytes(&entries),
            u64::from(entries[0].length) + sealed.len() as u64
        );
    }

    #[test]
    fn index_files_listing_a_bundle_are_version_2_and_round_trip(
        f in index_file(),
    ) {
        let encoded = f.encode();
        let bundles = f.packs.iter().flat_map(|p| &p.blobs).any(|e| e.kind == Kind::Bundle);
        prop_assert_eq!(encoded[0], if bundles { 2 } else { 1 });
        prop_assert_eq!(IndexFile::decode(&encoded)?, f);
    }
}

#[test]
fn headers_are_version_1_without_a_bundle_and_2_with_one() {
    let plain = [entry(Kind::Data, 1, 0, 50), entry(Kind::Tree, 2, 50, 50)];
    assert_eq!(pack_v1::encode_header(&plain)[0], 1);
    let bundled = [
        entry(Kind::Data, 1, 0, 50),
        entry(Kind::Bundle, 2, 50, 60),
        entry(Kind::Bundle, 3, 50, 60),
    ];
    let encoded = pack_v1::encode_header(&bundled);
    assert_eq!(encoded[0], 2);
    assert_eq!(
        pack_v1::decode_header(&encoded, 110).expect("decode"),
        bundled
    );
    // A version-1 header may not list a bundle: older readers never saw one.
    let mut as_v1 = encoded.clone();
    as_v1[0] = 1;
    assert!(pack_v1::decode_header(&as_v1, 110).is_err());
    let mut v3 = encoded;
    v3[0] = 3;
    assert!(pack_v1::decode_header(&v3, 110).is_err());
    // A version-2 header without a bundle is never written (version 1
    // is): refused, so every header has one encoding.
    let mut plain_v2 = pack_v1::encode_header(&plain);
    plain_v2[0] = 2;
    assert!(pack_v1::decode_header(&plain_v2, 110).is_err());
    let mut empty_index = IndexFile::default().encode();
    empty_index[0] = 2;
    assert!(IndexFile::decode(&empty_index).is_err());
}

#[test]
fn bundle_entries_share_one_range_exactly_and_overlap_nothing_else() {
    let ok = |entries: &[PackEntry]| {
        pack_v1::decode_header(&pack_v1::encode_header(entries), 1000).is_ok()
    };
    let b = |n, offset, length| entry(Kind::Bundle, n, offset, length);
    assert!(ok(&[b(1, 0, 100), b(2, 0, 100), b(3, 100, 50)]));
    // Two bundles that start together but differ in length overlap.
    assert!(!ok(&[b(1, 0, 100), b(2, 0, 90)]));
    // A blob inside a bundle's range, or starting with it.
    assert!(!ok(&[b(1, 0, 100), entry(Kind::Data, 2, 50, 60)]));
    assert!(!ok(&[b(1, 0, 100), entry(Kind::Data, 2, 0, 100)]));
    // Two blobs of a bundle beyond the pack.
    assert!(!ok(&[b(1, 950, 100), b(2, 950, 100)]));
}

#[test]
fn an_index_file_of_version_1_may_not_list_a_bundle() {
    let f = IndexFile {
        packs: vec![IndexPack {
            pack: Id::from_bytes([5; 32]),
            blobs: vec![entry(Kind::Bundle, 1, 0, 60)],
        }],
        ..IndexFile::default()
    };
    let mut encoded = f.encode();
    assert_eq!(encoded[0], 2);
    encoded[0] = 1;
    assert!(IndexFile::decode(&encoded).is_err());
}

#[test]
fn a_bundle_opens_only_as_a_bundle_with_the_zero_id() {
    let keys = cairn_core::MasterKey::from_bytes([4; 32]).derive();
    let rng = SeededRandom::new(4);
    let mut b = BundleBuilder::default();
    b.push(keys.id_of(b"small"), b"small");
    let plain = b.finish().0;
    let sealed = seal(
        &keys,
        Kind::Bundle,
        &BUNDLE_SEAL_ID,
        &plain,
        Compression::Zstd(3),
        &rng,
    );
    assert_eq!(
        open(&keys, Kind::Bundle, &BUNDLE_SEAL_ID, &sealed).expect("open"),
        plain
    );
    assert!(open(&keys, Kind::Data, &BUNDLE_SEAL_ID, &sealed).is_err());
    assert!(open(&keys, Kind::Bundle, &keys.id_of(b"small"), &sealed).is_err());
}
