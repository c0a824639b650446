//! `IndexFile::decode` on arbitrary bytes: never panics; whatever decodes
//! re-encodes to the same bytes and decodes to an equal index file.
#![no_main]

use cairn_core::format::IndexFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = IndexFile::decode(data) else {
        return;
    };
    let again = f.encode();
    assert_eq!(again, data, "index encoding is not canonical");
    assert_eq!(
        IndexFile::decode(&again).expect("re-encoded index decodes"),
        f
    );
});
