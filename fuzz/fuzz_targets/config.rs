//! `Config::decode` on arbitrary bytes: never panics; whatever decodes is
//! valid, re-encodes to the same bytes and decodes to an equal config.
#![no_main]

use cairn_core::format::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Config::check_magic(data);
    let Ok(c) = Config::decode(data) else {
        return;
    };
    c.validate().expect("a decoded config is valid");
    let again = c.encode();
    assert_eq!(again, data, "config encoding is not canonical");
    assert_eq!(
        Config::decode(&again).expect("re-encoded config decodes"),
        c
    );
});
