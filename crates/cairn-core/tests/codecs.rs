//! Round-trip properties of every v1 codec, and the checks the tree codec
//! makes on names and order. Tampering lives in `tamper.rs`, hostile input in
//! `decoders.rs`, chunking in `chunker.rs`.

mod common;

use cairn_core::format::pack_v1::{self, PackBuilder};
use cairn_core::format::{
    Config, IndexFile, KdfParams, KeyFile, Node, NodeKind, Session, Snapshot, Tree,
};
use cairn_core::{Compression, Error, Id, Kind, MasterKey, SeededRandom, open, open_owned, seal};
use common::*;
use proptest::prelude::*;
use proptest::sample::Index;

proptest! {
    #[test]
    fn config_encoding_round_trips(c in config()) {
        prop_assert_eq!(Config::decode(&c.encode())?, c);
    }

    #[test]
    fn config_sealing_round_trips(c in config(), keys in keys(), seed in any::<u64>()) {
        let stored = c.seal(&keys, &SeededRandom::new(seed));
        Config::check_magic(&stored)?;
        prop_assert_eq!(Config::open(&keys, &stored)?, c);
    }

    #[test]
    fn config_opened_with_another_key_is_tampered(
        c in config(), master in master_key(), other in master_key(), seed in any::<u64>(),
    ) {
        prop_assume!(master != other);
        let (keys, other) = (master.derive(), other.derive());
        let stored = c.seal(&keys, &SeededRandom::new(seed));
        let r = Config::open(&other, &stored);
        prop_assert!(matches!(r, Err(Error::Tampered { .. })), "{:?}", r);
    }

    #[test]
    fn index_file_round_trips(f in index_file()) {
        prop_assert_eq!(IndexFile::decode(&f.encode())?, f);
    }

    #[test]
    fn session_round_trips_sealed(
        s in session(), keys in keys(), seed in any::<u64>(),
    ) {
        let plain = s.encode();
        prop_assert_eq!(Session::decode(&plain)?, s.clone());
        let rng = SeededRandom::new(seed);
        let sealed = seal(&keys, Kind::Session, &s.id, &plain, Compression::None, &rng);
        prop_assert_eq!(Session::decode(&open(&keys, Kind::Session, &s.id, &sealed)?)?, s.clone());
        // Sealed under its own id: another session's name does not open it.
        let mut other = *s.id.as_bytes();
        other[0] ^= 1;
        prop_assert!(open(&keys, Kind::Session, &Id::from_bytes(other), &sealed).is_err());
    }

    #[test]
    fn session_encoding_is_59_bytes_plus_the_host_and_the_snapshot(s in session()) {
        let done = if s.done.is_some() { 32 } else { 0 };
        prop_assert_eq!(s.encode().len(), 59 + s.host.len() + done);
    }

    #[test]
    fn session_rejects_refresh_before_start(s in session(), back in 1i64..1000) {
        let bad = Session { refreshed: s.started.saturating_sub(back), ..s.clone() };
        prop_assume!(bad.refreshed < bad.started);
        prop_assert!(Session::decode(&bad.encode()).is_err());
    }

    #[test]
    fn snapshot_round_trips(s in snapshot()) {
        prop_assert_eq!(Snapshot::decode(&s.encode())?, s);
    }

    #[test]
    fn tree_round_trips(t in tree(12)) {
        let encoded = t.encode()?;
        let decoded = Tree::decode(&encoded)?;
        for n in &t.nodes {
            prop_assert_eq!(decoded.find(&n.name), Some(n));
        }
        prop_assert_eq!(decoded, t);
    }

    #[test]
    fn a_tree_visited_node_by_node_is_the_tree_decoded(t in tree(12), stop in any::<Index>()) {
        let encoded = t.encode()?;
        let mut seen = Vec::new();
        let all = Tree::visit(&encoded, |n| {
            seen.push(n);
            Ok::<(), ()>(())
        })?;
        prop_assert_eq!(all, Ok(()));
        prop_assert_eq!(&seen, &t.nodes);
        // An error of the visitor stops the visit there, returned inside.
        if !t.nodes.is_empty() {
            let at = stop.index(t.nodes.len());
            let mut count = 0;
            let stopped = Tree::visit(&encoded, |_| {
                count += 1;
                if count > at { Err(count) } else { Ok(()) }
            })?;
            prop_assert_eq!(stopped, Err(at + 1));
            prop_assert_eq!(count, at + 1);
        }
    }

    #[test]
    fn sealed_trees_and_snapshots_round_trip(
        t in tree(6), s in snapshot(), keys in keys(), c in compression(), seed in any::<u64>(),
    ) {
        let rng = SeededRandom::new(seed);
        let plain = t.encode()?;
        let id = keys.blob_id(Kind::Tree, &plain);
        let sealed = seal(&keys, Kind::Tree, &id, &plain, c, &rng);
        prop_assert_eq!(Tree::decode(&open(&keys, Kind::Tree, &id, &sealed)?)?, t.clone());
        // Opened in place, the same plaintext; any flipped byte, or too
        // few, is tampering.
        prop_assert_eq!(&open_owned(&keys, Kind::Tree, &id, sealed.clone())?, &plain);
        let mut flipped = sealed.clone();
        let at = seed as usize % flipped.len();
        flipped[at] ^= 1;
        let tampered = |r: Result<Vec<u8>, Error>| matches!(r, Err(Error::Tampered { .. }));
        prop_assert!(tampered(open_owned(&keys, Kind::Tree, &id, flipped)));
        let short = sealed[..cairn_core::SEAL_OVERHEAD - 1].to_vec();
        prop_assert!(tampered(open_owned(&keys, Kind::Tree, &id, short)));
        let plain = s.encode();
        let id = keys.id_of(&plain);
        let sealed = seal(&keys, Kind::Snapshot, &id, &plain, c, &rng);
        let opened = open(&keys, Kind::Snapshot, &id, &sealed)?;
        prop_assert_eq!(Snapshot::decode(&opened)?, s);
    }

    #[test]
    fn pack_header_round_trips((entries, data_len) in pack_header_entries()) {
        let encoded = pack_v1::encode_header(&entries);
        prop_assert_eq!(pack_v1::decode_header(&encoded, data_len)?, entries);
    }

    #[test]
    fn pack_header_rejects_blobs_beyond_the_data(
        (entries, data_len) in pack_header_entries(), short in 1u64..64,
    ) {
        let end = entries.iter().map(|e| e.end()).max();
        prop_assume!(end.is_some());
        let end = end.unwrap_or_default();
        let encoded = pack_v1::encode_header(&entries);
        prop_assert!(pack_v1::decode_header(&encoded, end.saturating_sub(short)).is_err());
        prop_assert!(pack_v1::decode_header(&encoded, data_len.max(end)).is_ok());
    }

    #[test]
    fn pack_header_rejects_overlapping_blobs(
        (mut entries, data_len) in pack_header_entries(), pick in any::<(Index, Index)>(),
    ) {
        prop_assume!(entries.len() >= 2);
        let (a, b) = (pick.0.index(entries.len()), pick.1.index(entries.len()));
        prop_assume!(a != b);
        // Move blob b to start inside blob a.
        let inside = entries[a].offset + entries[a].length / 2;
        entries[b].offset = inside;
        let encoded = pack_v1::encode_header(&entries);
        prop_assert!(pack_v1::decode_header(&encoded, data_len.max(1 << 40)).is_err());
    }

    #[test]
    fn built_packs_list_and_hold_their_blobs(
        blobs in proptest::collection::vec((blob_kind(), payload(2048)), 0..16),
        keys in keys(),
        c in compression(),
        pack_id in id(),
        seed in any::<u64>(),
    ) {
        let rng = SeededRandom::new(seed);
        let mut builder = PackBuilder::default();
        prop_assert!(builder.is_empty());
        // What the pack would be with the last blob, as a writer asks
        // before adding it to keep packs within their target size.
        let mut predicted = None;
        for (i, (kind, plain)) in blobs.iter().enumerate() {
            let id = keys.blob_id(*kind, plain);
            let sealed = seal(&keys, *kind, &id, plain, c, &rng);
            if i + 1 == blobs.len() {
                predicted = Some(builder.size_with(sealed.len()));
            }
            builder.push(*kind, id, &sealed, plain.len() as u32);
        }
        prop_assert_eq!(builder.entries().len(), blobs.len());
        let size_now = builder.size();
        let (pack, entries) = builder.finish(&keys, &pack_id, &rng);
        if let Some(n) = predicted {
            prop_assert_eq!(pack.len(), n);
        }
        prop_assert_eq!(pack.len(), size_now);
        prop_assert_eq!(&pack_v1::read_header(&keys, &pack_id, &pack)?, &entries);
        for (e, (kind, plain)) in entries.iter().zip(&blobs) {
            let expected = (*kind, keys.blob_id(*kind, plain), plain.len() as u32);
            prop_assert_eq!((e.kind, e.id, e.raw_length), expected);
            let sealed = &pack[e.offset as usize..e.end() as usize];
            prop_assert_eq!(&open(&keys, e.kind, &e.id, sealed)?, plain);
        }
        // The header is bound to its pack's name.
        let mut other = *pack_id.as_bytes();
        other[0] ^= 1;
        let other = Id::from_bytes(other);
        prop_assert!(pack_v1::read_header(&keys, &other, &pack).is_err());
    }

    /// A spooled builder (whose caller writes the blobs out) lists the
    /// same entries, and its blobs followed by what `finish` returns are
    /// the pack an in-memory builder makes, byte for byte.
    #[test]
    fn a_spooled_pack_is_the_same_pack(
        blobs in proptest::collection::vec((blob_kind(), payload(2048)), 0..16),
        keys in keys(),
        pack_id in id(),
        seed in any::<u64>(),
    ) {
        let mut memory = PackBuilder::default();
        let mut spooled = PackBuilder::spooled();
        let mut written = Vec::new();
        for (kind, plain) in &blobs {
            let id = keys.blob_id(*kind, plain);
            let sealed = seal(&keys, *kind, &id, plain, Compression::None, &SeededRandom::new(seed));
            prop_assert_eq!(spooled.size_with(sealed.len()), memory.size_with(sealed.len()));
            memory.push(*kind, id, &sealed, plain.len() as u32);
            spooled.push(*kind, id, &sealed, plain.len() as u32);
            written.extend_from_slice(&sealed);
            prop_assert_eq!(spooled.len(), written.len());
        }
        prop_assert_eq!(spooled.size(), memory.size());
        let (pack, entries) = memory.finish(&keys, &pack_id, &SeededRandom::new(seed));
        let (tail, spooled_entries) = spooled.finish(&keys, &pack_id, &SeededRandom::new(seed));
        prop_assert_eq!(entries, spooled_entries);
        written.extend_from_slice(&tail);
        prop_assert_eq!(written, pack);
    }
}

proptest! {
    // Each case runs Argon2 a few times; keep the count modest.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn key_file_round_trips_and_unlocks(
        master in master_key(),
        password in bytes(32),
        created in any::<i64>(),
        host in string(16),
        user in string(16),
        seed in any::<u64>(),
    ) {
        let rng = SeededRandom::new(seed);
        let kdf = KdfParams::INSECURE_FAST;
        let kf = KeyFile::create(&master, &password, kdf, created, &host, &user, &rng)?;
        let encoded = kf.encode();
        let decoded = KeyFile::decode(&encoded)?;
        prop_assert_eq!(&decoded, &kf);
        prop_assert_eq!(decoded.encode(), encoded);
        prop_assert_eq!(decoded.id(), kf.id());
        prop_assert_eq!(decoded.created, created);
        prop_assert_eq!(&decoded.host, &host);
        prop_assert_eq!(&decoded.user, &user);
        prop_assert_eq!(decoded.kdf, KdfParams::INSECURE_FAST);
        prop_assert!(decoded.unlock(&password)? == master);
    }

    #[test]
    fn key_file_rejects_a_wrong_password(
        master in master_key(), password in bytes(32), wrong in bytes(32), seed in any::<u64>(),
    ) {
        prop_assume!(password != wrong);
        let rng = SeededRandom::new(seed);
        let kf = KeyFile::create(&master, &password, KdfParams::INSECURE_FAST, 0, "h", "u", &rng)?;
        let r = KeyFile::decode(&kf.encode())?.unlock(&wrong);
        prop_assert!(matches!(r, Err(Error::WrongPassword)), "{:?}", r);
    }
}

// --- What the tree codec refuses -------------------------------------------

proptest! {
    #[test]
    fn tree_encode_rejects_unsorted_entries(t in tree(8), pick in any::<(Index, Index)>()) {
        prop_assume!(t.nodes.len() >= 2);
        let (a, b) = (pick.0.index(t.nodes.len()), pick.1.index(t.nodes.len()));
        prop_assume!(a != b);
        let mut swapped = t.clone();
        swapped.nodes.swap(a, b);
        prop_assert!(matches!(swapped.encode(), Err(Error::InvalidParameter(_))));
        // Sorting repairs it.
        swapped.sort();
        prop_assert_eq!(swapped.encode()?, t.encode()?);
    }

    #[test]
    fn tree_encode_rejects_duplicate_names(t in tree(8), pick in any::<Index>()) {
        prop_assume!(!t.nodes.is_empty());
        let i = pick.index(t.nodes.len());
        let mut dup = t.clone();
        dup.nodes.insert(i, t.nodes[i].clone());
        prop_assert!(matches!(dup.encode(), Err(Error::InvalidParameter(_))));
    }

    #[test]
    fn tree_encode_rejects_invalid_names(
        t in tree(8),
        body in node_body(),
        name in prop_oneof![
            Just(Vec::new()),
            Just(b".".to_vec()),
            Just(b"..".to_vec()),
            (node_name(), node_name()).prop_map(|(a, b)| [a, b"/".to_vec(), b].concat()),
            (node_name(), node_name()).prop_map(|(a, b)| [a, vec![0], b].concat()),
        ],
    ) {
        prop_assert!(!Node::valid_name(&name));
        let mut bad = t;
        let mut n = body;
        n.name = name;
        bad.nodes.push(n);
        bad.sort();
        prop_assert!(matches!(bad.encode(), Err(Error::InvalidParameter(_))));
    }

    #[test]
    fn tree_decode_rejects_unsorted_or_duplicate_entries(
        a in node_name(), b in node_name(), x in node_body(), y in node_body(),
    ) {
        prop_assume!(a != b);
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let mut first = x;
        first.name = hi;
        let mut second = y;
        second.name = lo;
        let unsorted = splice_tree(&[&first, &second])?;
        prop_assert!(Tree::decode(&unsorted).is_err());
        let duplicate = splice_tree(&[&first, &first])?;
        prop_assert!(Tree::decode(&duplicate).is_err());
        // In order, the same bytes decode.
        let sorted = splice_tree(&[&second, &first])?;
        prop_assert_eq!(Tree::decode(&sorted)?.nodes, vec![second, first]);
    }

    #[test]
    fn tree_decode_rejects_invalid_names(body in node_body(), bad in prop_oneof![
        Just(b"/".to_vec()), Just(vec![0u8]), Just(b".".to_vec()), Just(b"..".to_vec()),
    ]) {
        // Encode under a valid name of the same length, then patch it.
        let mut n = body;
        n.name = vec![b'a'; bad.len()];
        let mut encoded = Tree { nodes: vec![n] }.encode()?;
        // version (1) | count (4) | name length (4) | name
        encoded[9..9 + bad.len()].copy_from_slice(&bad);
        prop_assert!(Tree::decode(&encoded).is_err());
    }
}

/// The encoding of a tree holding `nodes` in the given order, bypassing the
/// encoder's order check by concatenating one-node encodings.
fn splice_tree(nodes: &[&Node]) -> Result<Vec<u8>, Error> {
    let mut out = vec![1u8];
    out.extend_from_slice(&(nodes.len() as u32).to_le_bytes());
    for n in nodes {
        let one = Tree {
            nodes: vec![(*n).clone()],
        }
        .encode()?;
        out.extend_from_slice(&one[5..]);
    }
    Ok(out)
}

// Regression tests: `Tree::encode` accepted nodes that the decoder rejects or
// that the encoding cannot carry, producing unreadable or altered trees.

fn one_node_tree(edit: impl FnOnce(&mut Node), kind: NodeKind) -> Result<Vec<u8>, Error> {
    let mut n = Node::new(b"entry".to_vec(), kind);
    if kind == NodeKind::Dir {
        n.subtree = Some(Id::ZERO);
    }
    edit(&mut n);
    Tree { nodes: vec![n] }.encode()
}

#[test]
fn tree_encode_rejects_file_type_bits_in_mode() {
    // A raw `st_mode` (0o100644) used to encode fine and then fail to decode.
    let r = one_node_tree(|n| n.mode = 0o100_644, NodeKind::File);
    assert!(matches!(r, Err(Error::InvalidParameter(_))), "{r:?}");
    assert!(one_node_tree(|n| n.mode = 0o7777, NodeKind::File).is_ok());
}

#[test]
fn tree_encode_rejects_out_of_range_nanoseconds() {
    for edit in [
        (|n: &mut Node| n.mtime.nanos = 1_000_000_000) as fn(&mut Node),
        |n| n.atime.nanos = u32::MAX,
        |n| n.ctime.nanos = 1_000_000_000,
    ] {
        let r = one_node_tree(edit, NodeKind::Symlink);
        assert!(matches!(r, Err(Error::InvalidParameter(_))), "{r:?}");
    }
    assert!(one_node_tree(|n| n.mtime.nanos = 999_999_999, NodeKind::Symlink).is_ok());
}

#[test]
fn tree_encode_rejects_a_directory_without_subtree() {
    // Used to be written as subtree 0000… and read back as Some(Id::ZERO).
    let r = one_node_tree(|n| n.subtree = None, NodeKind::Dir);
    assert!(matches!(r, Err(Error::InvalidParameter(_))), "{r:?}");
}

#[test]
fn tree_encode_rejects_content_or_subtree_on_the_wrong_kind() {
    // Used to be dropped silently: the encoding has no room for them.
    let content = |n: &mut Node| n.content = vec![Id::ZERO];
    let subtree = |n: &mut Node| n.subtree = Some(Id::ZERO);
    let mut cases = vec![one_node_tree(subtree, NodeKind::File)];
    for kind in ALL_NODE_KINDS {
        if !matches!(kind, NodeKind::File | NodeKind::BlockDevice) {
            cases.push(one_node_tree(content, kind));
        }
        if kind != NodeKind::Dir {
            cases.push(one_node_tree(subtree, kind));
        }
    }
    for r in cases {
        assert!(matches!(r, Err(Error::InvalidParameter(_))), "{r:?}");
    }
    assert!(one_node_tree(content, NodeKind::File).is_ok());
    assert!(one_node_tree(content, NodeKind::BlockDevice).is_ok());
}

#[test]
fn tree_encode_rejects_unsorted_or_duplicate_xattrs() {
    // The decoder requires strictly increasing xattr names; the encoder
    // wrote any order.
    let xattr = |name: &[u8]| cairn_core::format::Xattr {
        name: name.to_vec(),
        value: b"v".to_vec(),
    };
    for names in [[&b"user.b"[..], b"user.a"], [b"user.a", b"user.a"]] {
        let r = one_node_tree(
            |n| n.xattrs = names.iter().map(|x| xattr(x)).collect(),
            NodeKind::File,
        );
        assert!(matches!(r, Err(Error::InvalidParameter(_))), "{r:?}");
    }
    let sorted = one_node_tree(
        |n| n.xattrs = vec![xattr(b"user.a"), xattr(b"user.b")],
        NodeKind::File,
    );
    assert!(sorted.is_ok());
}

#[test]
fn empty_codecs_round_trip() -> Result<(), Error> {
    assert_eq!(Tree::decode(&Tree::default().encode()?)?, Tree::default());
    assert_eq!(
        IndexFile::decode(&IndexFile::default().encode())?,
        IndexFile::default()
    );
    assert!(pack_v1::decode_header(&pack_v1::encode_header(&[]), 0)?.is_empty());
    let rng = SeededRandom::new(7);
    let keys = MasterKey::generate(&rng).derive();
    let (pack, entries) = PackBuilder::default().finish(&keys, &Id::ZERO, &rng);
    assert!(entries.is_empty());
    assert!(pack_v1::read_header(&keys, &Id::ZERO, &pack)?.is_empty());
    let sealed = seal(
        &keys,
        Kind::Data,
        &Id::ZERO,
        b"",
        Compression::Zstd(3),
        &rng,
    );
    assert_eq!(open(&keys, Kind::Data, &Id::ZERO, &sealed)?, b"");
    Ok(())
}
