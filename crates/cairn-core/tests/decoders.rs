//! Decoders on hostile input: arbitrary bytes, and valid encodings with bytes
//! flipped, cut, inserted or removed. None may panic, and whatever decodes
//! must re-encode to exactly the bytes it came from (every v1 encoding is
//! canonical), so a decoder cannot accept two spellings of one value.

mod common;

use cairn_core::format::pack_v1;
use cairn_core::format::{Config, IndexFile, KeyFile, Session, Snapshot, Tree};
use cairn_core::{Error, Id, MasterKey, open};
use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Remove(Index, Index),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<Index>(), 1u8..).prop_map(|(i, m)| Edit::Flip(i, m)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Edit::Set(i, v)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, n)| Edit::Remove(i, n)),
    ];
    vec(edit, 1..4)
}

fn apply(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        if b.is_empty() {
            break;
        }
        let n = b.len();
        match e {
            Edit::Flip(i, m) => b[i.index(n)] ^= m,
            Edit::Set(i, v) => b[i.index(n)] = *v,
            Edit::Truncate(i) => b.truncate(i.index(n)),
            Edit::Insert(i, x) => {
                let at = i.index(n + 1);
                b.splice(at..at, x.iter().copied());
            }
            Edit::Remove(i, len) => {
                let at = i.index(n);
                let end = at + 1 + len.index((n - at).min(16));
                b.drain(at..end.min(n));
            }
        }
    }
    b
}

// Each check decodes, and if that succeeds, re-encodes and decodes again.

fn check_config(b: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(c) = Config::decode(b) {
        prop_assert_eq!(c.encode(), b);
        prop_assert_eq!(Config::decode(&c.encode())?, c);
    }
    Ok(())
}

fn check_key_file(b: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(k) = KeyFile::decode(b) {
        prop_assert_eq!(k.encode(), b);
        prop_assert_eq!(KeyFile::decode(&k.encode())?, k);
    }
    Ok(())
}

fn check_index(b: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(f) = IndexFile::decode(b) {
        prop_assert_eq!(f.encode(), b);
        prop_assert_eq!(IndexFile::decode(&f.encode())?, f);
    }
    Ok(())
}

/// A session's bytes as version 2 writes them: a version 1 session is a
/// running one (state byte 0).
fn session_as_v2(b: &[u8]) -> Vec<u8> {
    match b.split_first() {
        Some((1, rest)) => [&[2u8][..], rest, &[0u8][..]].concat(),
        _ => b.to_vec(),
    }
}

fn check_session(b: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(s) = Session::decode(b) {
        prop_assert_eq!(s.encode(), session_as_v2(b));
        prop_assert_eq!(Session::decode(&s.encode())?, s);
    }
    Ok(())
}

fn check_tree(b: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(t) = Tree::decode(b) {
        let again = t.encode()?;
        prop_assert_eq!(&again, b);
        prop_assert_eq!(Tree::decode(&again)?, t);
    }
    Ok(())
}

fn check_snapshot(b: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(s) = Snapshot::decode(b) {
        prop_assert_eq!(s.encode(), b);
        prop_assert_eq!(Snapshot::decode(&s.encode())?, s);
    }
    Ok(())
}

fn check_pack_header(b: &[u8], data_len: u64) -> Result<(), TestCaseError> {
    if let Ok(entries) = pack_v1::decode_header(b, data_len) {
        prop_assert_eq!(pack_v1::encode_header(&entries), b);
        let end = entries.iter().map(|e| e.end()).max().unwrap_or(0);
        prop_assert!(end <= data_len);
        prop_assert_eq!(pack_v1::decode_header(b, end)?, entries);
    }
    Ok(())
}

/// Arbitrary bytes, often starting with the version byte (1) so that
/// decoders get past it.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..600),
        vec(any::<u8>(), 0..600).prop_map(|b| [&[1u8][..], &b].concat()),
        vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..600),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoders_survive_arbitrary_bytes(b in hostile(), data_len in any::<u64>()) {
        check_config(&b)?;
        check_key_file(&b)?;
        check_key_file(&[&b"CAIRNKEY"[..], &b].concat())?;
        check_index(&b)?;
        check_session(&b)?;
        check_tree(&b)?;
        check_snapshot(&b)?;
        check_pack_header(&b, data_len)?;
        let keys = MasterKey::from_bytes([9; 32]).derive();
        for kind in ALL_KINDS {
            prop_assert!(open(&keys, kind, &Id::ZERO, &b).is_err());
        }
        prop_assert!(Config::open(&keys, &b).is_err());
        prop_assert!(Config::open(&keys, &[&b"CAIRNCFG\x01"[..], &b].concat()).is_err());
        prop_assert!(pack_v1::read_header(&keys, &Id::ZERO, &b).is_err());
    }

    #[test]
    fn config_decoder_survives_edits(c in config(), e in edits()) {
        check_config(&apply(c.encode(), &e))?;
    }

    #[test]
    fn index_decoder_survives_edits(f in index_file(), e in edits()) {
        check_index(&apply(f.encode(), &e))?;
    }

    #[test]
    fn session_decoder_survives_edits(s in session(), e in edits()) {
        check_session(&apply(s.encode(), &e))?;
    }

    #[test]
    fn tree_decoder_survives_edits(t in tree(6), e in edits()) {
        check_tree(&apply(t.encode()?, &e))?;
    }

    #[test]
    fn snapshot_decoder_survives_edits(s in snapshot(), e in edits()) {
        check_snapshot(&apply(s.encode(), &e))?;
    }

    #[test]
    fn pack_header_decoder_survives_edits(
        (entries, data_len) in pack_header_entries(), e in edits(), slack in 0u64..4,
    ) {
        check_pack_header(&apply(pack_v1::encode_header(&entries), &e), data_len + slack)?;
    }
}

proptest! {
    // Key file creation runs Argon2 (cheaply).
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn key_file_decoder_survives_edits(
        master in master_key(),
        host in string(8),
        user in string(8),
        seed in any::<u64>(),
        e in edits(),
    ) {
        let rng = cairn_core::SeededRandom::new(seed);
        let kf = KeyFile::create(
            &master, b"pw", cairn_core::format::KdfParams::INSECURE_FAST, 0, &host, &user, &rng,
        )?;
        check_key_file(&apply(kf.encode(), &e))?;
    }
}

#[test]
fn decoders_reject_unknown_versions() {
    // Pack headers and index files have a version 2 (bundles, §7.1).
    for (versions, supported) in [([0u8, 2, 255], 1u32), ([0, 3, 255], 2)] {
        for v in versions {
            let b = [v, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            let unsupported = |r: Result<(), Error>| match r {
                Err(Error::UnsupportedVersion {
                    version,
                    supported: s,
                    ..
                }) if s == supported => assert_eq!(version, u32::from(v)),
                other => panic!("version {v}: {other:?}"),
            };
            if supported == 1 {
                unsupported(Tree::decode(&b).map(drop));
                unsupported(Snapshot::decode(&b).map(drop));
                unsupported(Config::decode(&b).map(drop));
                unsupported(KeyFile::decode(&[&b"CAIRNKEY"[..], &b].concat()).map(drop));
            } else {
                unsupported(IndexFile::decode(&b).map(drop));
                unsupported(pack_v1::decode_header(&b, 0).map(drop));
            }
        }
    }
    let stored = [&b"CAIRNCFG"[..], &[2]].concat();
    let r = Config::check_magic(&stored);
    assert!(
        matches!(r, Err(Error::UnsupportedVersion { version: 2, .. })),
        "{r:?}"
    );
}
