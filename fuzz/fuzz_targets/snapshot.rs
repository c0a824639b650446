//! `Snapshot::decode` on arbitrary bytes: never panics; whatever decodes
//! re-encodes to the same bytes and decodes to an equal snapshot.
#![no_main]

use cairn_core::format::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Snapshot::decode(data) else {
        return;
    };
    let again = s.encode();
    assert_eq!(again, data, "snapshot encoding is not canonical");
    assert_eq!(
        Snapshot::decode(&again).expect("re-encoded snapshot decodes"),
        s
    );
});
