//! `Session::decode` on arbitrary bytes: never panics; whatever decodes
//! re-encodes to the same bytes (a version 1 session as version 2, state
//! running) and decodes to an equal session.
#![no_main]

use cairn_core::format::Session;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Session::decode(data) else {
        return;
    };
    let again = s.encode();
    let want = match data.split_first() {
        Some((1, rest)) => [&[2u8][..], rest, &[0u8][..]].concat(),
        _ => data.to_vec(),
    };
    assert_eq!(again, want, "session encoding is not canonical");
    assert_eq!(
        Session::decode(&again).expect("re-encoded session decodes"),
        s
    );
});
