//! `Session::decode` on arbitrary bytes: never panics; whatever decodes
//! re-encodes to the same bytes and decodes to an equal session.
#![no_main]

use cairn_core::format::Session;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Session::decode(data) else {
        return;
    };
    let again = s.encode();
    assert_eq!(again, data, "session encoding is not canonical");
    assert_eq!(
        Session::decode(&again).expect("re-encoded session decodes"),
        s
    );
});
