//! `open` on arbitrary bytes as every kind with a fixed key, and
//! `Config::open`: never panics, never succeeds (nothing can forge a tag).
//! Opening cannot succeed, so the round trip runs the other way: the input
//! sealed as every kind, raw and compressed, opens to itself and only as
//! what it was sealed as.
#![no_main]

use cairn_core::format::Config;
use cairn_core::{Compression, Id, Kind, MasterKey, SeededRandom, open, open_owned, seal};
use libfuzzer_sys::fuzz_target;

const KINDS: [Kind; 7] = [
    Kind::Bundle,
    Kind::Data,
    Kind::Tree,
    Kind::PackHeader,
    Kind::Index,
    Kind::Snapshot,
    Kind::Config,
];

fuzz_target!(|data: &[u8]| {
    let keys = MasterKey::from_bytes([0x42; 32]).derive();
    let id = keys.id_of(data);
    for kind in KINDS {
        assert!(open(&keys, kind, &Id::ZERO, data).is_err());
        assert!(open(&keys, kind, &id, data).is_err());
        assert!(open_owned(&keys, kind, &id, data.to_vec()).is_err());
    }
    assert!(Config::open(&keys, data).is_err());

    let rng = SeededRandom::new(data.len() as u64);
    for (i, kind) in KINDS.into_iter().enumerate() {
        let c = if i % 2 == 0 {
            Compression::Zstd(3)
        } else {
            Compression::None
        };
        let sealed = seal(&keys, kind, &id, data, c, &rng);
        let opened = open(&keys, kind, &id, &sealed).expect("a sealed input opens");
        assert_eq!(opened, data);
        let owned = open_owned(&keys, kind, &id, sealed.clone()).expect("opens in place");
        assert_eq!(owned, data);
        let other = KINDS[(i + 1) % KINDS.len()];
        assert!(open(&keys, other, &id, &sealed).is_err());
        assert!(open(&keys, kind, &Id::ZERO, &sealed).is_err() || id == Id::ZERO);
        assert!(open(&keys, kind, &id, &sealed[..sealed.len() - 1]).is_err());
    }
});
