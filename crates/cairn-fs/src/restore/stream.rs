//! Restoring one file's content into an existing file or block device
//! (`cairn restore SNAPSHOT:FILE --target /dev/sdX`), with positional
//! writes of several chunks at once.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;

use cairn_core::format::Node;
use cairn_repo::Repository;
use futures::StreamExt;

use super::direct::{self, Stager};
use super::overwrite::layout;
use super::{CHUNK_CONCURRENCY, RestoreOutcome};
use crate::{Error, Progress, Result};

/// Writes the content of `node` into `target`, an existing regular file
/// (truncated first, so holes stay holes) or block device (at least as
/// large as the content; every chunk is written, zeros included, since the
/// device's old bytes are not known). Ownership, mode and times of the
/// target are left alone: it belongs to whoever chose it.
pub(super) async fn restore_into(
    repo: &Repository,
    node: &Node,
    target: &Path,
    progress: Arc<Progress>,
) -> Result<RestoreOutcome> {
    let chunks = layout(repo, node).map_err(Error::Invalid)?;
    let m = std::fs::metadata(target).map_err(|e| Error::io(target, e))?;
    let device = m.file_type().is_block_device();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(target)
        .map_err(|e| Error::io(target, e))?;
    if device {
        let size = rustix::fs::seek(&file, rustix::fs::SeekFrom::End(0))
            .map_err(|e| Error::io(target, e.into()))?;
        if size < node.size {
            return Err(Error::Invalid(format!(
                "{}: the device holds {size} bytes, the content is {} bytes",
                target.display(),
                node.size
            )));
        }
    } else {
        file.set_len(0).map_err(|e| Error::io(target, e))?;
        file.set_len(node.size).map_err(|e| Error::io(target, e))?;
    }
    progress
        .total_bytes
        .store(node.size, std::sync::atomic::Ordering::Relaxed);
    progress
        .total_files
        .store(1, std::sync::atomic::Ordering::Relaxed);
    let file = Arc::new(file);
    // Written in order through an aligned stage, directly where the device
    // or file system allows it (ADR 0027).
    let mut stager = Some(if device {
        Stager::for_device(&file)
    } else {
        Stager::new(&file)
    });
    let mut written = 0u64;
    let mut results = futures::stream::iter(chunks)
        .map(|(id, offset, _)| {
            let repo = repo.clone();
            async move {
                let plain = repo
                    .read_blob_blocking(cairn_core::Kind::Data, &id)
                    .await
                    .map_err(Error::from)?;
                Ok::<_, Error>((offset, plain))
            }
        })
        .buffered(CHUNK_CONCURRENCY);
    while let Some(r) = results.next().await {
        let (offset, plain) = r?;
        let n = plain.len() as u64;
        let zero = direct::add_blocking(&mut stager, &file, offset, Some(plain), n)
            .await
            .map_err(|e| Error::Invalid(format!("write failed: {e}")))?;
        written += if device || !zero { n } else { 0 };
        progress.add(0, n);
    }
    direct::finish_blocking(stager, &file)
        .await
        .map_err(|e| Error::Invalid(format!("write failed: {e}")))?;
    file.sync_all().map_err(|e| Error::io(target, e))?;
    progress.add(1, 0);
    Ok(RestoreOutcome {
        files: 1,
        bytes: node.size,
        bytes_written: written,
        ..Default::default()
    })
}
