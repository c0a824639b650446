//! `Settings::decode` on arbitrary bytes: never panics; whatever decodes
//! re-encodes to exactly the same bytes and decodes to equal settings.
#![no_main]

use cairn_core::format::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Settings::decode(data) else {
        return;
    };
    let again = s.encode();
    assert_eq!(again, data, "settings encoding is not canonical");
    assert_eq!(
        Settings::decode(&again).expect("re-encoded settings decode"),
        s
    );
});
