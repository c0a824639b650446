//! Bundles: small data blobs compressed together, so that a repository of
//! many small files compresses about as well as a tool that compresses
//! across file boundaries, while every blob keeps its own id (and so its
//! own deduplication).
//!
//! ```text
//! version u8 = 1 | count u32 | count × (blob id [32] | length u32) | contents
//! ```
//! The contents are the blobs' plaintexts back to back, in directory order.
//! A bundle is sealed as kind `Bundle` under the data key with the all-zero
//! id, and compressed as one zstd frame. Pack headers and index files list
//! each of its blobs as an entry of kind `Bundle` whose range is the whole
//! sealed bundle. A reader opens the bundle, finds the blob in the
//! directory, and checks its plaintext against its id as for any blob.

use crate::codec::{Reader, Writer, expect_version};
use crate::{Error, Id, Result};

const WHAT: &str = "bundle";
const VERSION: u8 = 1;
/// Encoded size of one directory entry.
pub const DIR_ENTRY_LEN: usize = 32 + 4;
/// Bytes before the directory.
const HEAD_LEN: usize = 1 + 4;
/// The id every bundle is sealed with: a bundle has no id of its own, and
/// each blob taken from it is checked against its own id.
pub const BUNDLE_SEAL_ID: Id = Id::ZERO;

/// Collects blobs into a bundle's plaintext.
#[derive(Debug, Default)]
pub struct BundleBuilder {
    members: Vec<(Id, u32)>,
    contents: Vec<u8>,
}

impl BundleBuilder {
    /// A builder that keeps its contents in `buf` (emptied first): a
    /// writer hands back the buffer of the bundle it sealed last, so a
    /// bundle's megabyte is not allocated, faulted in and grown again for
    /// every bundle.
    pub fn with_buffer(mut buf: Vec<u8>) -> BundleBuilder {
        buf.clear();
        BundleBuilder {
            members: Vec::new(),
            contents: buf,
        }
    }
    /// Adds a blob (at most 4 GiB; writers add small ones only).
    pub fn push(&mut self, id: Id, plain: &[u8]) {
        self.members
            .push((id, u32::try_from(plain.len()).unwrap_or(u32::MAX)));
        self.contents.extend_from_slice(plain);
    }
    /// Bytes of blob plaintext so far.
    pub fn contents_len(&self) -> usize {
        self.contents.len()
    }
    /// Bytes of the bundle's plaintext so far: the contents and the
    /// directory (36 bytes a blob, more than a blob of a few bytes).
    pub fn plain_len(&self) -> usize {
        HEAD_LEN + self.members.len() * DIR_ENTRY_LEN + self.contents.len()
    }
    /// True before the first blob.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    /// The blobs so far: id and plaintext length, in order.
    pub fn members(&self) -> &[(Id, u32)] {
        &self.members
    }
    /// The bundle's plaintext, and its blobs. The plaintext is the
    /// contents' buffer with the directory moved in before them, so a
    /// buffer given to [`with_buffer`](Self::with_buffer) comes back here.
    pub fn finish(mut self) -> (Vec<u8>, Vec<(Id, u32)>) {
        let mut w = Writer::with_capacity(HEAD_LEN + self.members.len() * DIR_ENTRY_LEN);
        w.u8(VERSION);
        w.count(self.members.len());
        for (id, len) in &self.members {
            w.id(id);
            w.u32(*len);
        }
        self.contents.splice(0..0, w.finish());
        (self.contents, self.members)
    }
}

/// A decoded bundle: its plaintext and where each blob lies in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    plain: Vec<u8>,
    /// Blob id, start in `plain`, length; in directory order.
    dir: Vec<(Id, usize, usize)>,
    /// Indices into `dir`, sorted by id.
    by_id: Vec<u32>,
}

impl Bundle {
    /// Decodes a bundle's plaintext. Rejects a bundle without blobs, with
    /// the same id twice, or whose lengths do not add up to its contents.
    pub fn decode(plain: Vec<u8>) -> Result<Bundle> {
        let mut r = Reader::new(&plain, WHAT);
        expect_version(&mut r, WHAT, VERSION)?;
        let n = r.count(DIR_ENTRY_LEN)?;
        if n == 0 {
            return Err(Error::corrupt(WHAT, "a bundle without blobs"));
        }
        let mut dir = Vec::with_capacity(n);
        let mut at = HEAD_LEN + n * DIR_ENTRY_LEN;
        for _ in 0..n {
            let id = r.id()?;
            let len = r.u32()? as usize;
            dir.push((id, at, len));
            at = at.saturating_add(len);
        }
        let contents = r.remaining();
        r.take(contents)?;
        r.end()?;
        if at != plain.len() {
            return Err(Error::corrupt(
                WHAT,
                format!(
                    "its blobs' lengths add up to {} bytes, its contents are {contents}",
                    at - (HEAD_LEN + n * DIR_ENTRY_LEN),
                ),
            ));
        }
        // n fits in u32: it was read as one.
        let mut by_id: Vec<u32> = (0..n as u32).collect();
        by_id.sort_unstable_by_key(|&i| dir[i as usize].0);
        if let Some(w) = by_id
            .windows(2)
            .find(|w| dir[w[0] as usize].0 == dir[w[1] as usize].0)
        {
            let id = dir[w[0] as usize].0;
            return Err(Error::corrupt(WHAT, format!("blob {id} listed twice")));
        }
        Ok(Bundle { plain, dir, by_id })
    }

    /// The plaintext of blob `id`, if the bundle holds it.
    pub fn get(&self, id: &Id) -> Option<&[u8]> {
        let i = self
            .by_id
            .binary_search_by_key(id, |&i| self.dir[i as usize].0)
            .ok()?;
        let (_, start, len) = self.dir[self.by_id[i] as usize];
        self.plain.get(start..start + len)
    }

    /// The blobs it holds, in directory order, with their plaintexts.
    pub fn members(&self) -> impl Iterator<Item = (&Id, &[u8])> {
        self.dir
            .iter()
            .map(|(id, start, len)| (id, &self.plain[*start..*start + *len]))
    }

    /// The blobs it holds.
    pub fn ids(&self) -> impl Iterator<Item = &Id> {
        self.dir.iter().map(|d| &d.0)
    }

    /// Bytes of plaintext it holds in memory.
    pub fn plain_len(&self) -> usize {
        self.plain.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> Id {
        Id::from_bytes([b; 32])
    }

    fn sample() -> Vec<u8> {
        let mut b = BundleBuilder::default();
        b.push(id(3), b"three");
        b.push(id(1), b"");
        b.push(id(2), b"two!");
        b.finish().0
    }

    #[test]
    fn round_trip_finds_every_blob_and_nothing_else() {
        let plain = sample();
        assert_eq!(plain.len(), 5 + 3 * 36 + 9);
        let b = Bundle::decode(plain).expect("decode");
        assert_eq!(b.get(&id(3)), Some(&b"three"[..]));
        assert_eq!(b.get(&id(1)), Some(&b""[..]));
        assert_eq!(b.get(&id(2)), Some(&b"two!"[..]));
        assert_eq!(b.get(&id(4)), None);
        assert_eq!(b.ids().count(), 3);
        // Directory order, so the bundle encodes again to the same bytes.
        let mut again = BundleBuilder::default();
        for (id, plain) in b.members() {
            again.push(*id, plain);
        }
        assert_eq!(again.finish().0, sample());
    }

    #[test]
    fn layout_is_version_count_directory_contents() {
        let plain = sample();
        assert_eq!(plain[0], 1);
        assert_eq!(&plain[1..5], &3u32.to_le_bytes());
        assert_eq!(&plain[5..37], id(3).as_bytes());
        assert_eq!(&plain[37..41], &5u32.to_le_bytes());
        assert_eq!(&plain[5 + 3 * 36..], b"threetwo!");
    }

    #[test]
    fn malformed_bundles_are_rejected() {
        let good = sample();
        // Every truncation, and one byte too many.
        for n in 0..good.len() {
            assert!(Bundle::decode(good[..n].to_vec()).is_err(), "cut at {n}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(Bundle::decode(long).is_err());
        // A length that points past the contents, or short of them.
        for delta in [1u32, u32::MAX] {
            let mut bad = good.clone();
            let len = u32::from_le_bytes(bad[37..41].try_into().expect("4 bytes"));
            bad[37..41].copy_from_slice(&len.wrapping_add(delta).to_le_bytes());
            assert!(Bundle::decode(bad).is_err(), "delta {delta}");
        }
        // The same id twice.
        let mut twice = BundleBuilder::default();
        twice.push(id(1), b"a");
        twice.push(id(1), b"a");
        assert!(Bundle::decode(twice.finish().0).is_err());
        // No blobs at all, and an unknown version.
        assert!(Bundle::decode(BundleBuilder::default().finish().0).is_err());
        let mut v2 = good;
        v2[0] = 2;
        assert!(Bundle::decode(v2).is_err());
    }
}
