//! JSON rendering of byte strings that are usually, but not always, UTF-8
//! (file names, symlink targets, paths): a string when valid UTF-8, otherwise
//! `{"hex": "…"}` so nothing is lost or mangled.

use serde::Serializer;

pub(crate) fn bytes<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(v) {
        Ok(t) => s.serialize_str(t),
        Err(_) => {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry("hex", &hex::encode(v))?;
            m.end()
        }
    }
}

pub(crate) fn bytes_list<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    struct B<'a>(&'a [u8]);
    impl serde::Serialize for B<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            bytes(self.0, s)
        }
    }
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for b in v {
        seq.serialize_element(&B(b))?;
    }
    seq.end()
}
