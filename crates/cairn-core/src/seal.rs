//! Sealing: optional zstd compression, then XChaCha20-Poly1305.
//!
//! Layout of a sealed object (see docs/FORMAT.md, "Sealed objects"):
//!
//! ```text
//! nonce (24) | ciphertext of [ compression (1) | payload ] | tag (16)
//! ```
//!
//! The associated data binds the object's kind and id, so an object cannot be
//! moved to another name or reinterpreted as another kind without detection.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};

use crate::{Error, Id, Keys, RandomSource, Result};

/// Bytes a sealed object adds to its (possibly compressed) payload.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + 1 + TAG_LEN;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD_MAGIC: &[u8; 8] = b"cairn-v1";
/// The largest plaintext any sealed object may hold; each kind has its own,
/// smaller limit ([`max_plaintext`]).
pub const MAX_PLAINTEXT: usize = 1 << 30;

/// The largest plaintext an object of `kind` may hold, so that a repository
/// (its storage, or whoever holds its key) cannot make a reader allocate
/// more than this per object. [`open`] refuses larger objects before
/// decrypting and before decompressing. The values are part of the format
/// (docs/FORMAT.md, "Limits"); writers never produce larger objects.
pub const fn max_plaintext(kind: Kind) -> usize {
    const MIB: usize = 1 << 20;
    match kind {
        // The chunker's largest maximum chunk size (FastCDC 2020: 16 MiB).
        Kind::Data => 16 * MIB,
        // Writers close a bundle at 1 MiB of blobs plus one more blob of at
        // most 128 KiB; the limit leaves room for other writers' choices.
        Kind::Bundle => 16 * MIB,
        // One directory: about 100 bytes per entry, so millions of entries.
        Kind::Tree => 256 * MIB,
        // 45 bytes per blob: over 1.4 million blobs in one pack.
        Kind::PackHeader => 64 * MIB,
        // Writers list at most 200,000 blobs (about 10 MiB) per file.
        Kind::Index => 64 * MIB,
        Kind::Snapshot => 16 * MIB,
        Kind::Config | Kind::Session | Kind::Settings => 64 * 1024,
    }
}

const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_ZSTD: u8 = 1;

/// What an object is. The numeric value is part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Kind {
    /// File content chunk.
    Data = 1,
    /// Directory listing.
    Tree = 2,
    /// The header at the end of a pack.
    PackHeader = 3,
    /// An index file.
    Index = 4,
    /// A snapshot manifest.
    Snapshot = 5,
    /// The repository config.
    Config = 6,
    /// A writer session.
    Session = 7,
    /// Settings that may change after init.
    Settings = 8,
    /// Small data blobs compressed together (docs/FORMAT.md §7.1). In a
    /// pack header or index entry, kind 9 marks a data blob stored inside
    /// the bundle at the entry's range.
    Bundle = 9,
}

impl Kind {
    /// Decodes the format byte.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Data,
            2 => Kind::Tree,
            3 => Kind::PackHeader,
            4 => Kind::Index,
            5 => Kind::Snapshot,
            6 => Kind::Config,
            7 => Kind::Session,
            8 => Kind::Settings,
            9 => Kind::Bundle,
            _ => return None,
        })
    }
    /// True for the kinds stored as blobs inside packs.
    pub fn is_blob(self) -> bool {
        matches!(self, Kind::Data | Kind::Tree)
    }
    /// The kind of the blob an index entry of this kind leads to: a blob
    /// inside a bundle is a data blob.
    pub fn content(self) -> Kind {
        match self {
            Kind::Bundle => Kind::Data,
            k => k,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Data => "data blob",
            Kind::Tree => "tree blob",
            Kind::PackHeader => "pack header",
            Kind::Index => "index",
            Kind::Snapshot => "snapshot",
            Kind::Config => "config",
            Kind::Session => "session",
            Kind::Settings => "settings",
            Kind::Bundle => "bundle",
        })
    }
}

/// How hard to compress. `None` stores payloads raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Never compress.
    None,
    /// zstd at this level; payloads it does not shrink are stored raw.
    Zstd(i32),
}

fn aad(kind: Kind, id: &Id) -> [u8; 41] {
    let mut a = [0u8; 41];
    a[..8].copy_from_slice(AAD_MAGIC);
    a[8] = kind as u8;
    a[9..].copy_from_slice(id.as_bytes());
    a
}

fn cipher(keys: &Keys, kind: Kind) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&Key::from(*keys.sealing_key(kind)))
}

/// Seals `plaintext` as an object of `kind` named `id`.
pub fn seal(
    keys: &Keys,
    kind: Kind,
    id: &Id,
    plaintext: &[u8],
    compression: Compression,
    rng: &dyn RandomSource,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    seal_into(keys, kind, id, plaintext, compression, rng, &mut out);
    out
}

/// [`seal`] into `out` (cleared first), so a caller can reuse one buffer
/// for many objects instead of allocating one per object.
pub fn seal_into(
    keys: &Keys,
    kind: Kind,
    id: &Id,
    plaintext: &[u8],
    compression: Compression,
    rng: &dyn RandomSource,
    out: &mut Vec<u8>,
) {
    out.clear();
    // Room for the largest outcome, exactly: a kept buffer grown by
    // doubling would end up to twice the largest object it ever held.
    let body = match compression {
        Compression::Zstd(_) => zstd::zstd_safe::compress_bound(plaintext.len()),
        Compression::None => 0,
    };
    out.reserve_exact(SEAL_OVERHEAD + body.max(plaintext.len()));
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce);
    out.extend_from_slice(&nonce);
    out.push(COMPRESSION_NONE);
    let payload = NONCE_LEN + 1;
    let mut stored_raw = true;
    if let Compression::Zstd(level) = compression {
        // Compression only pays when it saves more than the flag costs; a
        // failure to compress is not an error, the payload is stored raw.
        if !looks_incompressible(plaintext) {
            match compress_into(plaintext, out, level) {
                Ok(n) if n < plaintext.len() => {
                    out[NONCE_LEN] = COMPRESSION_ZSTD;
                    stored_raw = false;
                }
                _ => out.truncate(payload),
            }
        }
    }
    if stored_raw {
        out.extend_from_slice(plaintext);
    }
    let tag = cipher(keys, kind)
        .encrypt_inout_detached(
            &XNonce::from(nonce),
            &aad(kind, id),
            (&mut out[NONCE_LEN..]).into(),
        )
        // Only fails for messages beyond 256 GiB, which callers never build.
        .unwrap_or_default();
    out.extend_from_slice(&tag);
}

thread_local! {
    /// Each thread keeps a zstd context per level: creating one per object
    /// cost 5% of a backup's CPU (docs/PERFORMANCE.md).
    static COMPRESSORS: std::cell::RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Decompression contexts kept between objects: creating one per object
/// (it allocates and clears its tables) cost about a fifth of a restore's
/// user CPU (docs/PERFORMANCE.md). Kept in one pool rather than per
/// thread, so that a restore's many blocking threads do not each hold one.
static DECOMPRESSORS: std::sync::Mutex<Vec<zstd::bulk::Decompressor<'static>>> =
    std::sync::Mutex::new(Vec::new());

/// At most this many contexts stay in the pool.
const KEPT_DECOMPRESSORS: usize = 8;

/// Decompresses the one frame `payload` of `size` bytes with a pooled
/// context. Every frame is decoded on its own: a context keeps nothing of
/// one frame for the next.
fn decompress_frame(payload: &[u8], size: usize) -> std::io::Result<Vec<u8>> {
    let pool = || DECOMPRESSORS.lock().unwrap_or_else(|p| p.into_inner());
    let taken = pool().pop();
    let mut context = match taken {
        Some(c) => c,
        None => zstd::bulk::Decompressor::new()?,
    };
    let out = context.decompress(payload, size);
    let mut kept = pool();
    if kept.len() < KEPT_DECOMPRESSORS {
        kept.push(context);
    }
    out
}

/// Compresses `src` at `level` with the thread's context, appending the
/// frame to `dst` (which must have room for the bound: zstd writes into
/// its spare capacity, so no bound's worth of zeros is written first);
/// returns the compressed length.
fn compress_into(src: &[u8], dst: &mut Vec<u8>, level: i32) -> std::io::Result<usize> {
    let mut dst = std::io::Cursor::new(dst);
    dst.set_position(dst.get_ref().len() as u64);
    COMPRESSORS.with_borrow_mut(|all| {
        let i = match all.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                all.push((level, zstd::bulk::Compressor::new(level)?));
                all.len() - 1
            }
        };
        all[i].1.compress_to_buffer(src, &mut dst)
    })
}

/// Size of each sample [`looks_incompressible`] compresses.
const PROBE_SAMPLE: usize = 4096;

/// A cheap guess that zstd would save (almost) nothing: three samples of
/// 4 KiB (start, middle, end) compressed at the fastest level shrink by
/// less than 3%. Costs about 2% of compressing 1 MiB, and saves the whole
/// compression of incompressible data (media, archives, encrypted files),
/// the most expensive stage of a backup. Small payloads are always tried.
pub fn looks_incompressible(p: &[u8]) -> bool {
    const S: usize = PROBE_SAMPLE;
    if p.len() < 8 * S {
        return false;
    }
    let mut sample = Vec::with_capacity(3 * S);
    for start in [0, p.len() / 2 - S / 2, p.len() - S] {
        sample.extend_from_slice(&p[start..start + S]);
    }
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(sample.len()));
    compress_into(&sample, &mut out, 1).is_ok_and(|n| n * 100 >= sample.len() * 97)
}

/// Opens an object sealed as `kind` named `id`, returning its plaintext.
///
/// Any modification, truncation, a different kind or id, or another key is
/// reported as [`Error::Tampered`]. An object whose stored or declared
/// plaintext exceeds [`max_plaintext`] for its kind is refused as corrupt
/// before any buffer of that size is allocated.
pub fn open(keys: &Keys, kind: Kind, id: &Id, sealed: &[u8]) -> Result<Vec<u8>> {
    check_sealed_len(kind, id, sealed.len())?;
    open_owned(keys, kind, id, sealed.to_vec())
}

/// [`open`] of a buffer the caller gives up: decrypted in place, and
/// returned as the plaintext when stored uncompressed, so a large tree
/// takes its size once instead of twice.
pub fn open_owned(keys: &Keys, kind: Kind, id: &Id, mut sealed: Vec<u8>) -> Result<Vec<u8>> {
    check_sealed_len(kind, id, sealed.len())?;
    let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
    let nonce = XNonce::try_from(&*nonce).map_err(|_| Error::Tampered { kind, id: *id })?;
    let (ct, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
    let tag = Tag::try_from(&*tag).map_err(|_| Error::Tampered { kind, id: *id })?;
    cipher(keys, kind)
        .decrypt_inout_detached(&nonce, &aad(kind, id), ct.into(), &tag)
        .map_err(|_| Error::Tampered { kind, id: *id })?;
    let end = sealed.len() - TAG_LEN;
    match sealed[NONCE_LEN] {
        COMPRESSION_NONE => {
            sealed.truncate(end);
            sealed.drain(..=NONCE_LEN);
            Ok(sealed)
        }
        COMPRESSION_ZSTD => decompress(&sealed[NONCE_LEN + 1..end], kind, id),
        other => Err(Error::corrupt(
            "sealed object",
            format!("unknown compression {other} in {kind} {id}"),
        )),
    }
}

/// Refuses a sealed object too short to be one, or longer than its kind's
/// plaintext limit allows, before any buffer of its size is made.
fn check_sealed_len(kind: Kind, id: &Id, len: usize) -> Result<()> {
    if len < SEAL_OVERHEAD {
        return Err(Error::Tampered { kind, id: *id });
    }
    let limit = max_plaintext(kind);
    if len - SEAL_OVERHEAD > limit {
        return Err(Error::corrupt(
            "sealed object",
            format!("{kind} {id} is {len} bytes, more than the {limit} byte limit for its kind"),
        ));
    }
    Ok(())
}

fn decompress(payload: &[u8], kind: Kind, id: &Id) -> Result<Vec<u8>> {
    // Exactly one frame, filling the payload: no skippable or extra frames.
    let frame_len = zstd::zstd_safe::find_frame_compressed_size(payload).ok();
    if frame_len != Some(payload.len()) {
        return Err(Error::corrupt(
            "sealed object",
            format!("{kind}: payload is not exactly one zstd frame"),
        ));
    }
    let size = zstd::zstd_safe::get_frame_content_size(payload)
        .ok()
        .flatten()
        .ok_or_else(|| {
            Error::corrupt("sealed object", format!("{kind}: zstd frame without size"))
        })?;
    let limit = max_plaintext(kind);
    if size > limit as u64 {
        return Err(Error::corrupt(
            "sealed object",
            format!(
                "{kind} {id}: declared size {size} exceeds the {limit} byte limit for its kind"
            ),
        ));
    }
    let out = decompress_frame(payload, size as usize)
        .map_err(|e| Error::corrupt("sealed object", format!("{kind}: zstd: {e}")))?;
    if out.len() as u64 != size {
        return Err(Error::corrupt(
            "sealed object",
            format!("{kind}: zstd frame shorter than declared"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    /// A pooled decompression context decodes every frame on its own: a
    /// frame that fails, or a larger one, changes nothing for the next.
    #[test]
    fn a_pooled_decompression_context_keeps_nothing_between_frames() {
        let id = Id::from_bytes([1; 32]);
        let text = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|i| b"abcdefgh"[i % 7] ^ (i / 97) as u8)
                .collect()
        };
        let frame = |p: &[u8]| zstd::bulk::compress(p, 3).expect("compress");
        let (small, large) = (text(1000), text(300_000));
        let (f_small, f_large) = (frame(&small), frame(&large));
        let mut broken = f_large.clone();
        let mid = broken.len() / 2;
        broken[mid] ^= 0xff;
        for _ in 0..2 {
            assert_eq!(decompress(&f_large, Kind::Data, &id).expect("large"), large);
            assert!(
                decompress(&broken, Kind::Data, &id).is_err(),
                "a damaged frame fails"
            );
            assert_eq!(decompress(&f_small, Kind::Data, &id).expect("small"), small);
        }
    }

    /// zstd writes its frame straight after the nonce and flag, into the
    /// buffer's spare room: the object is the nonce, the flag, exactly the
    /// frame zstd makes of the plaintext alone, and the tag, whatever the
    /// buffer held before (a larger object, or a raw one).
    #[test]
    fn a_compressed_object_is_nonce_flag_frame_and_tag_in_any_buffer() {
        let keys = crate::keys::MasterKey::from_bytes([5; 32]).derive();
        let text = |n: usize, k: usize| -> Vec<u8> {
            (0..n)
                .map(|i| b"pack it tight"[(i + k) % 13] ^ (i / 4099) as u8)
                .collect()
        };
        // Seals into the buffer kept across objects, and checks that a new
        // buffer gets the same bytes (the same nonce, from the same seed).
        let mut out = Vec::new();
        let mut seal_both = |id: &Id, plain: &[u8], c: Compression, seed: u64| {
            let fresh = seal(&keys, Kind::Data, id, plain, c, &SeededRandom::new(seed));
            let rng = SeededRandom::new(seed);
            seal_into(&keys, Kind::Data, id, plain, c, &rng, &mut out);
            assert_eq!(out, fresh, "{} bytes after a larger object", plain.len());
            out.clone()
        };
        for (n, k) in [(600_000, 1), (70_000, 2), (300_000, 3), (9_000, 4)] {
            let plain = text(n, k);
            let id = keys.blob_id(Kind::Data, &plain);
            let sealed = seal_both(&id, &plain, Compression::Zstd(3), k as u64);
            let frame = zstd::bulk::compress(&plain, 3).expect("compress");
            assert_eq!(sealed.len(), SEAL_OVERHEAD + frame.len());
            assert_eq!(open(&keys, Kind::Data, &id, &sealed).expect("open"), plain);
            let mut payload = sealed[NONCE_LEN..sealed.len() - TAG_LEN].to_vec();
            let nonce = XNonce::try_from(&sealed[..NONCE_LEN]).expect("nonce");
            let tag = Tag::try_from(&sealed[sealed.len() - TAG_LEN..]).expect("tag");
            cipher(&keys, Kind::Data)
                .decrypt_inout_detached(
                    &nonce,
                    &aad(Kind::Data, &id),
                    (&mut payload[..]).into(),
                    &tag,
                )
                .expect("decrypt");
            assert_eq!(payload[0], COMPRESSION_ZSTD);
            assert_eq!(&payload[1..], &frame[..], "the frame follows the flag");
            // A raw object in the same buffer next leaves nothing behind.
            let raw = seal_both(&id, &plain, Compression::None, 9);
            assert_eq!(raw.len(), SEAL_OVERHEAD + plain.len(), "stored raw");
        }
    }

    /// A buffer reused for objects of growing size is allocated for the
    /// largest outcome of each, never doubled past it.
    #[test]
    fn a_reused_sealing_buffer_is_sized_for_its_largest_object() {
        let keys = crate::keys::MasterKey::from_bytes([3; 32]).derive();
        let rng = crate::random::OsRandom;
        let mut out = Vec::new();
        for len in [5 << 20, 8 << 20] {
            let plain: Vec<u8> = (0..len).map(|i: usize| (i % 251) as u8).collect();
            let id = keys.blob_id(Kind::Data, &plain);
            for c in [Compression::None, Compression::Zstd(3)] {
                seal_into(&keys, Kind::Data, &id, &plain, c, &rng, &mut out);
                assert_eq!(open(&keys, Kind::Data, &id, &out).expect("open"), plain);
            }
            let most = SEAL_OVERHEAD + zstd::zstd_safe::compress_bound(len);
            assert!(out.capacity() <= most, "{} bytes for {len}", out.capacity());
        }
    }
}
