//! Sealing and key files under attack: every modification, truncation,
//! renaming or re-kinding of a sealed object, and every flipped bit of a key
//! file, must be an error — never a successful open with other bytes.

mod common;

use cairn_core::format::{Config, KdfParams, KeyFile};
use cairn_core::{Compression, Error, Id, Keys, Kind, MasterKey, SEAL_OVERHEAD, SeededRandom};
use cairn_core::{open, seal};
use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

fn is_tampered(r: &Result<Vec<u8>, Error>, kind: Kind, id: &Id) -> bool {
    matches!(r, Err(Error::Tampered { kind: k, id: i }) if *k == kind && i == id)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sealing_round_trips(
        keys in keys(),
        kind in kind(),
        id in id(),
        plain in payload(64 * 1024),
        c in compression(),
        seed in any::<u64>(),
    ) {
        let sealed = seal(&keys, kind, &id, &plain, c, &SeededRandom::new(seed));
        prop_assert!(sealed.len() <= plain.len() + SEAL_OVERHEAD);
        if c == Compression::None {
            prop_assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
        }
        prop_assert_eq!(open(&keys, kind, &id, &sealed)?, plain);
    }
}

#[test]
fn zstd_shrinks_compressible_payloads() -> Result<(), Error> {
    let keys = MasterKey::from_bytes([1; 32]).derive();
    let plain = b"cairn ".repeat(10_000);
    let sealed = seal(
        &keys,
        Kind::Data,
        &Id::ZERO,
        &plain,
        Compression::Zstd(3),
        &SeededRandom::new(1),
    );
    assert!(sealed.len() < plain.len() / 10, "{} bytes", sealed.len());
    assert_eq!(open(&keys, Kind::Data, &Id::ZERO, &sealed)?, plain);
    Ok(())
}

#[test]
fn the_probe_skips_compression_only_for_incompressible_payloads() -> Result<(), Error> {
    let keys = MasterKey::from_bytes([1; 32]).derive();
    let noise = cairn_testkit::noise(1, 1 << 20);
    assert!(cairn_core::looks_incompressible(&noise));
    // Stored raw: exactly the plaintext plus the fixed overhead.
    let sealed = seal(
        &keys,
        Kind::Data,
        &Id::ZERO,
        &noise,
        Compression::Zstd(3),
        &SeededRandom::new(1),
    );
    assert_eq!(sealed.len(), noise.len() + SEAL_OVERHEAD);
    assert_eq!(open(&keys, Kind::Data, &Id::ZERO, &sealed)?, noise);

    // Noise with a compressible end, or text, or anything small, is tried.
    let mut half = noise.clone();
    half[512 * 1024..].fill(0);
    assert!(!cairn_core::looks_incompressible(&half));
    let sealed = seal(
        &keys,
        Kind::Data,
        &Id::ZERO,
        &half,
        Compression::Zstd(3),
        &SeededRandom::new(1),
    );
    assert!(
        sealed.len() < noise.len() * 6 / 10,
        "{} bytes",
        sealed.len()
    );
    assert!(!cairn_core::looks_incompressible(
        &b"cairn ".repeat(100_000)
    ));
    assert!(!cairn_core::looks_incompressible(&noise[..16 * 1024]));
    Ok(())
}

#[test]
fn nonces_differ_between_seals() {
    let keys = MasterKey::from_bytes([2; 32]).derive();
    let rng = SeededRandom::new(2);
    let a = seal(
        &keys,
        Kind::Tree,
        &Id::ZERO,
        b"same",
        Compression::None,
        &rng,
    );
    let b = seal(
        &keys,
        Kind::Tree,
        &Id::ZERO,
        b"same",
        Compression::None,
        &rng,
    );
    assert_ne!(a[..24], b[..24]);
    assert_ne!(a, b);
}

/// A sealed object with its parameters, small enough that a random bit
/// position often lands in the nonce, the compression flag or the tag.
fn sealed_object() -> impl Strategy<Value = (Keys, Kind, Id, Vec<u8>, Vec<u8>)> {
    (
        keys(),
        kind(),
        id(),
        payload(2048),
        compression(),
        any::<u64>(),
    )
        .prop_map(|(keys, kind, id, plain, c, seed)| {
            let sealed = seal(&keys, kind, &id, &plain, c, &SeededRandom::new(seed));
            (keys, kind, id, plain, sealed)
        })
}

proptest! {
    #[test]
    fn any_flipped_bit_is_tampering(
        (keys, kind, id, _, sealed) in sealed_object(), bit in any::<Index>(),
    ) {
        let bad = flip(&sealed, bit.index(sealed.len() * 8));
        let r = open(&keys, kind, &id, &bad);
        prop_assert!(is_tampered(&r, kind, &id), "{:?}", r);
    }

    #[test]
    fn any_truncation_is_tampering(
        (keys, kind, id, _, sealed) in sealed_object(), len in any::<Index>(),
    ) {
        let r = open(&keys, kind, &id, &sealed[..len.index(sealed.len())]);
        prop_assert!(is_tampered(&r, kind, &id), "{:?}", r);
    }

    #[test]
    fn appended_bytes_are_tampering(
        (keys, kind, id, _, sealed) in sealed_object(), extra in vec(any::<u8>(), 1..64),
    ) {
        let r = open(&keys, kind, &id, &[sealed, extra].concat());
        prop_assert!(is_tampered(&r, kind, &id), "{:?}", r);
    }

    #[test]
    fn another_key_is_tampering(
        (_, kind, id, _, sealed) in sealed_object(), other in master_key(),
    ) {
        let r = open(&other.derive(), kind, &id, &sealed);
        prop_assert!(is_tampered(&r, kind, &id), "{:?}", r);
    }

    #[test]
    fn another_kind_is_tampering((keys, kind, id, _, sealed) in sealed_object(), other in kind()) {
        prop_assume!(other != kind);
        let r = open(&keys, other, &id, &sealed);
        prop_assert!(is_tampered(&r, other, &id), "{:?}", r);
    }

    #[test]
    fn another_id_is_tampering((keys, kind, id, _, sealed) in sealed_object(), other in id()) {
        prop_assume!(other != id);
        let r = open(&keys, kind, &other, &sealed);
        prop_assert!(is_tampered(&r, kind, &other), "{:?}", r);
    }

    #[test]
    fn a_sealed_object_moved_into_another_is_tampering(
        (keys, kind, id, _, sealed) in sealed_object(), (_, _, _, _, donor) in sealed_object(),
        cut in any::<Index>(),
    ) {
        // Splice the donor's tail onto this object's head.
        let at = cut.index(sealed.len().min(donor.len()));
        let spliced = [&sealed[..at], &donor[at..]].concat();
        prop_assume!(spliced != sealed);
        let r = open(&keys, kind, &id, &spliced);
        prop_assert!(is_tampered(&r, kind, &id), "{:?}", r);
    }
}

/// Every bit of a few small objects, exhaustively: empty, short, and
/// compressed payloads of every kind.
#[test]
fn every_flipped_bit_of_small_objects_is_tampering() {
    let keys = MasterKey::from_bytes([3; 32]).derive();
    let rng = SeededRandom::new(3);
    let payloads: [&[u8]; 3] = [b"", b"x", &[b'z'; 300]];
    for kind in ALL_KINDS {
        for plain in payloads {
            for c in [Compression::None, Compression::Zstd(3)] {
                let id = keys.id_of(plain);
                let sealed = seal(&keys, kind, &id, plain, c, &rng);
                for bit in 0..sealed.len() * 8 {
                    let r = open(&keys, kind, &id, &flip(&sealed, bit));
                    assert!(is_tampered(&r, kind, &id), "{kind} bit {bit}: {r:?}");
                }
                for len in 0..sealed.len() {
                    let r = open(&keys, kind, &id, &sealed[..len]);
                    assert!(is_tampered(&r, kind, &id), "{kind} length {len}: {r:?}");
                }
                for other in ALL_KINDS.into_iter().filter(|k| *k != kind) {
                    let r = open(&keys, other, &id, &sealed);
                    assert!(is_tampered(&r, other, &id), "{kind} as {other}: {r:?}");
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn a_config_with_any_flipped_bit_does_not_open(
        c in config(), keys in keys(), seed in any::<u64>(), bit in any::<Index>(),
    ) {
        let stored = c.seal(&keys, &SeededRandom::new(seed));
        let bad = flip(&stored, bit.index(stored.len() * 8));
        prop_assert!(Config::open(&keys, &bad).is_err());
    }

    #[test]
    fn a_truncated_config_does_not_open(
        c in config(), keys in keys(), seed in any::<u64>(), len in any::<Index>(),
    ) {
        let stored = c.seal(&keys, &SeededRandom::new(seed));
        prop_assert!(Config::open(&keys, &stored[..len.index(stored.len())]).is_err());
    }
}

// --- Key files --------------------------------------------------------------

/// Memory cost above which these tests do not run Argon2. A flipped bit in
/// the memory cost can ask for up to 2 GiB (the decoder allows 4 GiB); such a
/// file fails to unlock for the same reason as the flips below the limit,
/// which do run it: the costs change the derived key and are authenticated.
const UNLOCK_MEMORY_LIMIT_KIB: u32 = 16 * 1024;

/// Checks that `bytes`, `original` with a modification, cannot be unlocked
/// with `password`: either it does not decode, or unlocking fails.
fn assert_does_not_unlock(bytes: &[u8], original: &KeyFile, password: &[u8], what: &str) {
    let Ok(kf) = KeyFile::decode(bytes) else {
        return;
    };
    assert_ne!(
        &kf, original,
        "{what}: a modified key file decoded as the original"
    );
    if kf.kdf.m_cost_kib > UNLOCK_MEMORY_LIMIT_KIB {
        assert_ne!(kf.kdf, original.kdf, "{what}");
        return;
    }
    match kf.unlock(password) {
        // Another key would be worse than no key: refuse both.
        Ok(_) => panic!("{what}: a modified key file unlocked"),
        // A flipped bit in the cost parameters can make them invalid.
        Err(Error::WrongPassword | Error::InvalidParameter(_)) => {}
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_key_file_with_any_flipped_bit_does_not_unlock(
        master in master_key(),
        password in bytes(16),
        host in string(8),
        user in string(8),
        seed in any::<u64>(),
        bit in any::<Index>(),
    ) {
        let rng = SeededRandom::new(seed);
        let kdf = KdfParams::INSECURE_FAST;
        let kf = KeyFile::create(&master, &password, kdf, 1, &host, &user, &rng)?;
        let encoded = kf.encode();
        let bit = bit.index(encoded.len() * 8);
        assert_does_not_unlock(&flip(&encoded, bit), &kf, &password, &format!("bit {bit}"));
    }

    #[test]
    fn a_truncated_or_extended_key_file_does_not_decode(
        master in master_key(), seed in any::<u64>(), len in any::<Index>(), extra in bytes(8),
    ) {
        let rng = SeededRandom::new(seed);
        let kdf = KdfParams::INSECURE_FAST;
        let kf = KeyFile::create(&master, b"pw", kdf, 1, "host", "user", &rng)?;
        let encoded = kf.encode();
        prop_assert!(KeyFile::decode(&encoded[..len.index(encoded.len())]).is_err());
        if !extra.is_empty() {
            prop_assert!(KeyFile::decode(&[encoded, extra].concat()).is_err());
        }
    }
}

/// Every bit of one key file, exhaustively.
#[test]
fn every_flipped_bit_of_a_key_file_fails_to_unlock() -> Result<(), Error> {
    let rng = SeededRandom::new(4);
    let master = MasterKey::generate(&rng);
    let kf = KeyFile::create(
        &master,
        b"secret",
        KdfParams::INSECURE_FAST,
        1,
        "h\u{e9}",
        "u",
        &rng,
    )?;
    let encoded = kf.encode();
    assert!(KeyFile::decode(&encoded)?.unlock(b"secret")? == master);
    for bit in 0..encoded.len() * 8 {
        assert_does_not_unlock(&flip(&encoded, bit), &kf, b"secret", &format!("bit {bit}"));
    }
    Ok(())
}

#[test]
fn a_key_file_with_excessive_costs_is_refused_before_hashing() -> Result<(), Error> {
    let rng = SeededRandom::new(5);
    let master = MasterKey::generate(&rng);
    for kdf in [
        KdfParams {
            m_cost_kib: u32::MAX,
            ..KdfParams::INSECURE_FAST
        },
        KdfParams {
            t_cost: u32::MAX,
            ..KdfParams::INSECURE_FAST
        },
        KdfParams {
            p_cost: u32::MAX,
            ..KdfParams::INSECURE_FAST
        },
    ] {
        let r = KeyFile::create(&master, b"pw", kdf, 0, "", "", &rng);
        assert!(
            matches!(r, Err(Error::InvalidParameter(_))),
            "{kdf:?}: {r:?}"
        );
    }
    Ok(())
}
