//! Repository content cannot make a reader allocate or compute without
//! bound: per-kind plaintext limits, Argon2 bounds and key-file names are
//! checked before the work they guard.

use cairn_core::format::{KdfParams, KeyFile, MAX_KEY_FILE_LEN};
use cairn_core::{
    Compression, Error, Id, Kind, MasterKey, SeededRandom, max_plaintext, open, seal,
};

fn keys() -> cairn_core::Keys {
    MasterKey::from_bytes([7; 32]).derive()
}

fn refused_as_too_large(r: Result<Vec<u8>, Error>, kind: Kind) {
    match r {
        Err(Error::Corrupt { detail, .. }) => {
            assert!(detail.contains("limit"), "{kind}: {detail}")
        }
        other => panic!("{kind}: expected a limit error, got {other:?}"),
    }
}

#[test]
fn oversized_plaintext_is_refused_per_kind_compressed_or_not() {
    let rng = SeededRandom::new(1);
    let keys = keys();
    for kind in [Kind::Data, Kind::Config, Kind::Session] {
        let limit = max_plaintext(kind);
        assert!(limit < cairn_core::MAX_PLAINTEXT, "{kind}");
        let zeros = vec![0u8; limit + 1];
        let id = keys.id_of(&zeros);
        // Compressed: a tiny object that declares a large plaintext.
        let small = seal(&keys, kind, &id, &zeros, Compression::Zstd(3), &rng);
        assert!(small.len() < 4096, "{kind}: {} bytes", small.len());
        refused_as_too_large(open(&keys, kind, &id, &small), kind);
        // Stored raw: refused before decrypting.
        let raw = seal(&keys, kind, &id, &zeros, Compression::None, &rng);
        refused_as_too_large(open(&keys, kind, &id, &raw), kind);
        // At the limit, it opens.
        let fits = &zeros[..limit];
        let id = keys.id_of(fits);
        let ok = seal(&keys, kind, &id, fits, Compression::Zstd(3), &rng);
        assert_eq!(
            open(&keys, kind, &id, &ok).expect("at the limit").len(),
            limit
        );
    }
}

#[test]
fn argon2_parameters_beyond_the_bounds_are_refused_without_hashing() {
    let master = MasterKey::from_bytes([3; 32]);
    let rng = SeededRandom::new(2);
    let kf = KeyFile::create(&master, b"pw", KdfParams::INSECURE_FAST, 0, "h", "u", &rng)
        .expect("create");
    // Patch the authenticated parameters one at a time (m, t, p at 10, 14
    // and 18): cheap in memory but beyond the bounds.
    for (at, value) in [(10, (1 << 20) + 1), (14, 17u32), (18, 17)] {
        let mut bytes = kf.encode();
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        let forged = KeyFile::decode(&bytes).expect("decodes");
        match forged.unlock(b"pw") {
            Err(Error::InvalidParameter(m)) => assert!(m.contains("exceed"), "{m}"),
            other => panic!("parameter at {at} = {value}: expected refusal, got {other:?}"),
        }
        let name = Id::from_bytes(*blake3::hash(&bytes).as_bytes());
        let err = KeyFile::decode_named(&name, &bytes).expect_err("bounds checked on read");
        assert!(err.to_string().contains(&format!("keys/{name}")), "{err}");
    }
    assert!(
        KeyFile::create(
            &master,
            b"pw",
            KdfParams {
                t_cost: 17,
                ..KdfParams::INSECURE_FAST
            },
            0,
            "h",
            "u",
            &rng
        )
        .is_err(),
        "a key file the readers would refuse must not be written"
    );
}

#[test]
fn key_file_whose_name_is_not_its_hash_is_refused() {
    let master = MasterKey::from_bytes([4; 32]);
    let rng = SeededRandom::new(3);
    let kf = KeyFile::create(&master, b"pw", KdfParams::INSECURE_FAST, 0, "h", "u", &rng)
        .expect("create");
    let bytes = kf.encode();
    assert_eq!(
        KeyFile::decode_named(&kf.id(), &bytes).expect("named right"),
        kf
    );
    let err = KeyFile::decode_named(&Id::ZERO, &bytes).expect_err("wrong name");
    assert!(
        err.to_string().contains(&format!("keys/{}", Id::ZERO)),
        "{err}"
    );
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 1;
        assert!(
            KeyFile::decode_named(&kf.id(), &b).is_err(),
            "a flip at byte {i} goes unnoticed"
        );
    }
    let huge = vec![0u8; MAX_KEY_FILE_LEN + 1];
    let name = Id::from_bytes(*blake3::hash(&huge).as_bytes());
    assert!(KeyFile::decode_named(&name, &huge).is_err());
}

/// Compiles only if `MasterKey` is not `Clone`: with a `Clone` impl the
/// call below is ambiguous between the two blanket implementations.
#[test]
fn master_key_is_not_clone() {
    trait AmbiguousIfClone<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfClone<()> for T {}
    #[allow(dead_code)]
    struct IsClone;
    impl<T: Clone> AmbiguousIfClone<IsClone> for T {}
    <MasterKey as AmbiguousIfClone<_>>::check();
}
