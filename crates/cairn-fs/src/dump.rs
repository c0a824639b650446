//! Writing one file of a snapshot to a stream (`cairn dump`).

use std::io::Write;

use cairn_core::format::{Node, NodeKind};
use cairn_repo::Repository;
use futures::StreamExt;

use crate::{Error, Result};

/// Chunks fetched ahead of the one being written.
const AHEAD: usize = 4;

/// Writes the content of `node` (a file, or a block device backed up as a
/// stream) to `out`, in order, verifying every chunk; returns the bytes
/// written. Chunks are fetched and opened a few at a time ahead of the
/// writer, so memory stays bounded whatever the file's size.
pub async fn dump<W: Write + Send>(repo: &Repository, node: &Node, out: &mut W) -> Result<u64> {
    let name = String::from_utf8_lossy(&node.name).into_owned();
    match node.kind {
        NodeKind::File | NodeKind::BlockDevice => {}
        k => {
            return Err(Error::Invalid(format!(
                "{name}: a {k:?} has no content to dump"
            )));
        }
    }
    let mut chunks = futures::stream::iter(node.content.iter().copied())
        .map(|id| {
            let repo = repo.clone();
            async move {
                let plain = repo.read_blob_blocking(cairn_core::Kind::Data, &id).await?;
                Ok::<Vec<u8>, Error>(plain)
            }
        })
        .buffered(AHEAD);
    let mut total = 0u64;
    while let Some(plain) = chunks.next().await {
        let plain = plain?;
        out.write_all(&plain)
            .map_err(|e| Error::io("standard output", e))?;
        total += plain.len() as u64;
    }
    out.flush().map_err(|e| Error::io("standard output", e))?;
    if total != node.size {
        return Err(Error::Invalid(format!(
            "{name}: chunks add up to {total} bytes but the file was {} bytes",
            node.size
        )));
    }
    Ok(total)
}
