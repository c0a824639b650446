//! Packs (`data/<2 hex>/<pack id>`): sealed blobs back to back, then a sealed
//! header listing them, then the header's sealed length.
//!
//! ```text
//! blob 0 | blob 1 | … | sealed header | header length u32
//! header plaintext: version u8 = 1 or 2 | count u32 | count × entry
//! entry: kind u8 | id [32] | offset u32 | length u32 | raw length u32
//! ```
//! The header is sealed as kind `PackHeader` with the pack id, so a pack
//! alone (with the key) is enough to rebuild its index entries.
//!
//! Version 2 differs from version 1 only in the entries it allows: also
//! kind `Bundle`, a data blob inside the bundle at the entry's range, whose
//! entries share that range (docs/adr/0016-bundles-of-small-blobs.md says
//! why one codec reads both). Writers use version 1 for headers without a
//! bundle, so a pack without one stays readable by older releases.

use crate::codec::{Reader, Writer};
use crate::seal::{Compression, SEAL_OVERHEAD, open, seal};
use crate::{Error, Id, Keys, Kind, RandomSource, Result};

const WHAT: &str = "pack header";
/// The version of headers without bundle entries.
const VERSION: u8 = 1;
/// The version of headers with bundle entries.
const VERSION_BUNDLES: u8 = 2;
/// Encoded size of one header entry.
pub const ENTRY_LEN: usize = 1 + 32 + 4 + 4 + 4;
/// Length of the trailer that holds the header length.
pub const TRAILER_LEN: usize = 4;
/// Packs may not reach 4 GiB: offsets are 32-bit.
pub const MAX_PACK_LEN: u64 = u32::MAX as u64;

/// Where one blob lives inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PackEntry {
    /// Data or tree.
    pub kind: Kind,
    /// The blob id.
    pub id: Id,
    /// Byte offset of the sealed blob in the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_length: u32,
}

impl PackEntry {
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(self.kind as u8);
        w.id(&self.id);
        w.u32(self.offset);
        w.u32(self.length);
        w.u32(self.raw_length);
    }
    /// Reads one entry of a header or index file of `version` (1 or 2).
    pub(crate) fn read(r: &mut Reader<'_>, version: u8) -> Result<PackEntry> {
        let k = r.u8()?;
        let kind = Kind::from_u8(k)
            .filter(|k| k.is_blob() || (version >= VERSION_BUNDLES && *k == Kind::Bundle))
            .ok_or_else(|| r.err(format!("entry kind {k} is not a blob kind")))?;
        let e = PackEntry {
            kind,
            id: r.id()?,
            offset: r.u32()?,
            length: r.u32()?,
            raw_length: r.u32()?,
        };
        if (e.length as usize) < SEAL_OVERHEAD {
            return Err(r.err(format!("blob {} shorter than a sealed empty blob", e.id)));
        }
        Ok(e)
    }
    /// End offset of the sealed blob.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.length)
    }
    /// The range of the pack it lies in (a bundle's, for a blob inside one).
    pub fn range(&self) -> (u32, u32) {
        (self.offset, self.length)
    }
}

/// The version of header or index file that can list `entries`.
pub(crate) fn version_for<'a>(entries: impl IntoIterator<Item = &'a PackEntry>) -> u8 {
    if entries.into_iter().any(|e| e.kind == Kind::Bundle) {
        VERSION_BUNDLES
    } else {
        VERSION
    }
}

/// Reads the version byte of a header or index file: 1 or 2.
pub(crate) fn read_version(r: &mut Reader<'_>, what: &'static str) -> Result<u8> {
    let v = r.u8()?;
    if v == VERSION || v == VERSION_BUNDLES {
        Ok(v)
    } else {
        Err(Error::UnsupportedVersion {
            what,
            version: u32::from(v),
            supported: u32::from(VERSION_BUNDLES),
        })
    }
}

/// Rejects a version-2 header or index file that lists no bundle: writers
/// use version 1 for those, so each has exactly one encoding.
pub(crate) fn check_version_used<'a>(
    version: u8,
    entries: impl IntoIterator<Item = &'a PackEntry>,
    what: &'static str,
) -> Result<()> {
    if version_for(entries) == version {
        Ok(())
    } else {
        Err(Error::corrupt(
            what,
            format!("version {version} without a bundle entry"),
        ))
    }
}

/// Bytes of the pack that `entries` occupy, each range counted once (the
/// blobs of one bundle share theirs).
pub fn occupied_bytes<'a>(entries: impl IntoIterator<Item = &'a PackEntry>) -> u64 {
    let ranges: std::collections::HashSet<(u32, u32)> =
        entries.into_iter().map(PackEntry::range).collect();
    ranges.into_iter().map(|(_, l)| u64::from(l)).sum()
}

/// Accumulates sealed blobs into a pack.
///
/// A [`spooled`](PackBuilder::spooled) builder keeps only the entries: its
/// caller writes each sealed blob out itself, in the order pushed, and
/// [`finish`](PackBuilder::finish) returns the rest of the pack (the
/// sealed header and its length) to write after them.
#[derive(Debug, Default)]
pub struct PackBuilder {
    data: Vec<u8>,
    /// Bytes of blob data so far (in `data` unless spooled).
    len: usize,
    spooled: bool,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// An empty pack with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        PackBuilder {
            data: Vec::with_capacity(capacity),
            ..Default::default()
        }
    }
    /// An empty pack whose blobs its caller writes out (see the type's
    /// docs).
    pub fn spooled() -> Self {
        PackBuilder {
            spooled: true,
            ..Default::default()
        }
    }
    /// An empty pack writing into `buf` (cleared; its capacity is kept),
    /// so a writer can reuse the buffers of packs already uploaded.
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        PackBuilder {
            data: buf,
            ..Default::default()
        }
    }
    /// Appends a sealed bundle (kind `Bundle`, see `bundle_v1`) holding
    /// `members` (id and plaintext length each): one entry per member, all
    /// with the bundle's range.
    pub fn push_bundle(&mut self, sealed: &[u8], members: &[(Id, u32)]) {
        let offset = u32::try_from(self.len).unwrap_or(u32::MAX);
        let length = u32::try_from(sealed.len()).unwrap_or(u32::MAX);
        self.append(sealed);
        self.entries
            .extend(members.iter().map(|&(id, raw_length)| PackEntry {
                kind: Kind::Bundle,
                id,
                offset,
                length,
                raw_length,
            }));
    }
    /// Appends a sealed blob.
    pub fn push(&mut self, kind: Kind, id: Id, sealed: &[u8], raw_length: u32) {
        let offset = u32::try_from(self.len).unwrap_or(u32::MAX);
        self.append(sealed);
        self.entries.push(PackEntry {
            kind,
            id,
            offset,
            length: u32::try_from(sealed.len()).unwrap_or(u32::MAX),
            raw_length,
        });
    }
    fn append(&mut self, sealed: &[u8]) {
        if !self.spooled {
            self.data.extend_from_slice(sealed);
        }
        self.len += sealed.len();
    }
    /// Bytes of blob data so far.
    pub fn len(&self) -> usize {
        self.len
    }
    /// The length the finished pack (header and trailer included) would
    /// have with one more sealed blob of `sealed_len` bytes.
    pub fn size_with(&self, sealed_len: usize) -> usize {
        self.size_with_entries(sealed_len, 1)
    }
    /// [`size_with`](Self::size_with) for an object listed by `entries`
    /// entries (a bundle's members).
    pub fn size_with_entries(&self, sealed_len: usize, entries: usize) -> usize {
        let header = 5 + (self.entries.len() + entries) * ENTRY_LEN + SEAL_OVERHEAD;
        self.len + sealed_len + header + 4
    }
    /// The length the finished pack would have now.
    pub fn size(&self) -> usize {
        self.len + 5 + self.entries.len() * ENTRY_LEN + SEAL_OVERHEAD + 4
    }
    /// True before the first blob.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The entries so far.
    pub fn entries(&self) -> &[PackEntry] {
        &self.entries
    }
    /// Seals the header and returns the pack bytes (for a spooled
    /// builder, the bytes after its blobs) and its entries.
    pub fn finish(
        mut self,
        keys: &Keys,
        pack_id: &Id,
        rng: &dyn RandomSource,
    ) -> (Vec<u8>, Vec<PackEntry>) {
        let header = encode_header(&self.entries);
        let sealed = seal(
            keys,
            Kind::PackHeader,
            pack_id,
            &header,
            Compression::None,
            rng,
        );
        self.data.extend_from_slice(&sealed);
        self.data
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        (self.data, self.entries)
    }
}

/// Encodes a header plaintext.
pub fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut w = Writer::with_capacity(5 + entries.len() * ENTRY_LEN);
    w.u8(version_for(entries));
    w.count(entries.len());
    for e in entries {
        e.write(&mut w);
    }
    w.finish()
}

/// Decodes a header plaintext, checking every blob lies inside the first
/// `data_len` bytes of the pack and that blobs do not overlap (the entries
/// of one bundle share its range exactly).
pub fn decode_header(b: &[u8], data_len: u64) -> Result<Vec<PackEntry>> {
    let mut r = Reader::new(b, WHAT);
    let version = read_version(&mut r, WHAT)?;
    let n = r.count(ENTRY_LEN)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        entries.push(PackEntry::read(&mut r, version)?);
    }
    r.end()?;
    check_version_used(version, &entries, WHAT)?;
    let mut sorted: Vec<&PackEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| (e.offset, e.kind != Kind::Bundle));
    let mut next = 0u64;
    let mut bundle: Option<(u32, u32)> = None;
    for e in sorted {
        if e.kind == Kind::Bundle && bundle == Some(e.range()) {
            continue; // another blob of the bundle just checked
        }
        bundle = (e.kind == Kind::Bundle).then(|| e.range());
        if u64::from(e.offset) < next || e.end() > data_len {
            return Err(Error::corrupt(
                WHAT,
                format!(
                    "blob {} at {}+{} overlaps or lies outside the pack",
                    e.id, e.offset, e.length
                ),
            ));
        }
        next = e.end();
    }
    Ok(entries)
}

/// Reads the header length from a pack's last four bytes.
pub fn header_length(trailer: [u8; TRAILER_LEN]) -> u32 {
    u32::from_le_bytes(trailer)
}

/// Opens and decodes the header of a complete pack.
pub fn read_header(keys: &Keys, pack_id: &Id, pack: &[u8]) -> Result<Vec<PackEntry>> {
    let n = pack.len();
    if n < TRAILER_LEN {
        return Err(Error::corrupt(
            WHAT,
            format!("pack {pack_id} is only {n} bytes"),
        ));
    }
    let mut t = [0u8; TRAILER_LEN];
    t.copy_from_slice(&pack[n - TRAILER_LEN..]);
    let hlen = header_length(t) as usize;
    if hlen + TRAILER_LEN > n {
        return Err(Error::corrupt(
            WHAT,
            format!("pack {pack_id}: header length {hlen} exceeds pack"),
        ));
    }
    let start = n - TRAILER_LEN - hlen;
    let plain = open(
        keys,
        Kind::PackHeader,
        pack_id,
        &pack[start..n - TRAILER_LEN],
    )?;
    decode_header(&plain, start as u64)
}
