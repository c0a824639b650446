//! `pack_v1::decode_header` on arbitrary bytes (the first 8 are the pack's
//! data length): never panics; whatever decodes lies inside the data without
//! overlaps (a bundle's blobs share its span), re-encodes to the same bytes and decodes to equal entries.
//! `read_header` on the whole input must fail: nothing can forge the seal.
#![no_main]

use cairn_core::format::pack_v1;
use cairn_core::{Id, Kind, MasterKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = MasterKey::from_bytes([0x42; 32]).derive();
    assert!(pack_v1::read_header(&keys, &Id::ZERO, data).is_err());
    let Some((len, header)) = data.split_first_chunk::<8>() else {
        return;
    };
    let data_len = u64::from_le_bytes(*len);
    let Ok(entries) = pack_v1::decode_header(header, data_len) else {
        return;
    };
    // The blobs of one bundle share its span (format version 2): one span.
    let mut spans: Vec<(u64, u64, bool)> = entries
        .iter()
        .map(|e| (u64::from(e.offset), e.end(), e.kind == Kind::Bundle))
        .collect();
    spans.sort_unstable();
    spans.dedup_by(|a, b| a == b && a.2);
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "decoded blobs overlap: {w:?}");
    }
    assert!(
        spans.last().is_none_or(|s| s.1 <= data_len),
        "a blob lies beyond the data"
    );
    let again = pack_v1::encode_header(&entries);
    assert_eq!(again, header, "pack header encoding is not canonical");
    assert_eq!(
        pack_v1::decode_header(&again, data_len).expect("re-encoded header decodes"),
        entries
    );
});
