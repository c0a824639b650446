//! `KeyFile::decode` on arbitrary bytes: never panics; whatever decodes
//! re-encodes to the same bytes and decodes to an equal key file.
#![no_main]

use cairn_core::format::KeyFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(kf) = KeyFile::decode(data) else {
        return;
    };
    let again = kf.encode();
    assert_eq!(again, data, "key file encoding is not canonical");
    assert_eq!(
        KeyFile::decode(&again).expect("re-encoded key file decodes"),
        kf
    );
    // A forged file may ask Argon2 for up to 4 GiB; that is allowed, but it
    // would stall the fuzzer, so only cheap ones are unlocked. No input can
    // carry a valid tag for this password, so unlocking must fail.
    if kf.kdf.m_cost_kib <= 1024 && kf.kdf.t_cost <= 4 {
        assert!(
            kf.unlock(b"fuzz password").is_err(),
            "a forged key file unlocked"
        );
    }
});
