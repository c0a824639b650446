//! Reading data: a pack is downloaded whole, its header opened from those
//! bytes, and every blob the header lists opened and re-hashed. The blobs
//! and the header must cover the pack exactly, so no byte of a pack goes
//! unauthenticated.

use std::collections::HashSet;

use bytes::Bytes;
use cairn_core::format::{PackEntry, Tree, pack_v1};
use cairn_core::{Id, Kind};
use cairn_store::Store;

use crate::{BlobLocation, Repository, paths};

/// (blob, object, problem) found while verifying a pack.
pub(super) type Found = Vec<(Option<Id>, String, String)>;

/// Downloads one pack and verifies it: its header, the layout, and
/// every blob the header or the index places in it. Returns the number
/// of blobs verified and the problems.
pub(super) async fn verify_pack(
    repo: &Repository,
    store: &Store,
    pack: Id,
    indexed: &[PackEntry],
) -> (u64, Found) {
    let obj = paths::pack(&pack);
    let bytes = match store.get(&obj).await {
        Ok(b) => b,
        Err(e) => {
            let m = format!("cannot read: {e}");
            return (
                0,
                indexed
                    .iter()
                    .map(|x| (Some(x.id), obj.clone(), m.clone()))
                    .collect(),
            );
        }
    };
    let repo = repo.clone();
    let indexed = indexed.to_vec();
    let r =
        tokio::task::spawn_blocking(move || verify_pack_bytes(&repo, pack, &bytes, &indexed)).await;
    match r {
        Ok(x) => x,
        Err(e) => (
            0,
            vec![(None, obj, format!("verification task failed: {e}"))],
        ),
    }
}

fn verify_pack_bytes(
    repo: &Repository,
    pack: Id,
    bytes: &Bytes,
    indexed: &[PackEntry],
) -> (u64, Found) {
    let o = paths::pack(&pack);
    let mut problems: Found = Vec::new();
    let mut entries: Vec<PackEntry> = match header_from_bytes(repo, &pack, bytes) {
        Ok(header) => {
            problems.extend(layout_gaps(&header.0, header.1, &o));
            header.0
        }
        Err(e) => {
            problems.push((None, o.clone(), format!("header: {e}")));
            Vec::new()
        }
    };
    let known: HashSet<(Id, u32)> = entries.iter().map(|e| (e.id, e.offset)).collect();
    entries.extend(
        indexed
            .iter()
            .filter(|e| !known.contains(&(e.id, e.offset)))
            .cloned(),
    );
    let mut verified = 0;
    // A bundle is opened once for all of its blobs.
    let mut opener = repo.range_opener();
    for e in &entries {
        let Some(sealed) = bytes.get(e.offset as usize..e.end() as usize) else {
            problems.push((
                Some(e.id),
                o.clone(),
                "blob lies beyond the end of the pack".into(),
            ));
            continue;
        };
        let loc = BlobLocation::in_pack(pack, e);
        match opener.open(&loc, &e.id, sealed) {
            Ok(plain) => {
                verified += 1;
                if e.kind == Kind::Tree {
                    if let Err(err) = Tree::decode(&plain) {
                        problems.push((
                            Some(e.id),
                            o.clone(),
                            format!("tree blob {}: {err}", e.id),
                        ));
                    }
                }
            }
            Err(err) => problems.push((Some(e.id), o.clone(), err.to_string())),
        }
    }
    (verified, problems)
}

/// Opens the header of a downloaded pack; returns its entries and where
/// the sealed header starts.
fn header_from_bytes(
    repo: &Repository,
    pack: &Id,
    bytes: &[u8],
) -> crate::Result<(Vec<PackEntry>, u64)> {
    let corrupt = |detail: String| {
        crate::Error::Format(cairn_core::Error::Corrupt {
            what: "pack",
            detail: format!("{}: {detail}", paths::pack(pack)),
        })
    };
    let size = bytes.len();
    let Some(trailer_at) = size.checked_sub(pack_v1::TRAILER_LEN) else {
        return Err(corrupt(format!("only {size} bytes")));
    };
    let mut t = [0u8; pack_v1::TRAILER_LEN];
    t.copy_from_slice(&bytes[trailer_at..]);
    let hlen = pack_v1::header_length(t) as usize;
    let Some(start) = trailer_at.checked_sub(hlen) else {
        return Err(corrupt(format!("header length {hlen} exceeds the pack")));
    };
    let plain = cairn_core::open(
        repo.keys(),
        Kind::PackHeader,
        pack,
        &bytes[start..trailer_at],
    )?;
    let entries =
        pack_v1::decode_header(&plain, start as u64).map_err(|e| corrupt(e.to_string()))?;
    Ok((entries, start as u64))
}

/// Bytes before the header that no blob covers: every byte of a pack must
/// belong to an authenticated blob, the sealed header or the trailer.
fn layout_gaps(entries: &[PackEntry], header_start: u64, object: &str) -> Found {
    let mut sorted: Vec<&PackEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.offset);
    let mut found = Vec::new();
    let mut next = 0u64;
    for e in sorted {
        if u64::from(e.offset) > next {
            found.push((
                None,
                object.to_owned(),
                format!("bytes {next}..{} belong to no blob in the header", e.offset),
            ));
        }
        next = next.max(e.end());
    }
    if next != header_start {
        found.push((
            None,
            object.to_owned(),
            format!("bytes {next}..{header_start} belong to no blob in the header"),
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u32, length: u32) -> PackEntry {
        PackEntry {
            kind: Kind::Data,
            id: Id::from_bytes([offset as u8; 32]),
            offset,
            length,
            raw_length: length,
        }
    }

    #[test]
    fn bytes_outside_every_blob_are_reported() {
        let tiled = [entry(50, 50), entry(0, 50)];
        assert!(layout_gaps(&tiled, 100, "p").is_empty());
        let gaps: Vec<String> = layout_gaps(&[entry(0, 40), entry(60, 20)], 100, "p")
            .into_iter()
            .map(|(_, _, m)| m)
            .collect();
        assert_eq!(
            gaps,
            [
                "bytes 40..60 belong to no blob in the header",
                "bytes 80..100 belong to no blob in the header"
            ]
        );
        assert_eq!(layout_gaps(&[], 10, "p").len(), 1);
    }
}
