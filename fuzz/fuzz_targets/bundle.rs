//! `Bundle::decode` on arbitrary bytes: never panics; whatever decodes
//! holds each of its blobs once, finds each by id, and encodes again, in
//! directory order, to exactly the input.
#![no_main]

use cairn_core::format::{Bundle, BundleBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::decode(data.to_vec()) else {
        return;
    };
    let mut again = BundleBuilder::default();
    for (id, plain) in bundle.members() {
        assert_eq!(bundle.get(id), Some(plain), "a blob is not found by its id");
        again.push(*id, plain);
    }
    assert!(!again.is_empty(), "a bundle without blobs decoded");
    assert_eq!(again.finish().0, data, "bundle encoding is not canonical");
});
