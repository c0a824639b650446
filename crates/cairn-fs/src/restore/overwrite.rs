//! Restoring over an existing tree: what to do with a file already in
//! place, and checking a file on disk against its chunk list (for
//! `Overwrite::IfChanged` and for `verify`).

use std::os::unix::fs::FileExt;
use std::path::Path;

use cairn_core::format::Node;
use cairn_core::{Id, Kind};
use cairn_repo::Repository;

/// What to do with an entry that already exists in the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Replace it.
    #[default]
    Always,
    /// Replace a regular file only if its content differs from the
    /// snapshot's, chunk by chunk; a file that matches keeps its data and
    /// gets the snapshot's metadata. Other entries are replaced.
    IfChanged,
    /// Leave it as it is.
    Never,
}

/// Each chunk of `node` with its offset and length, from the index. The
/// lengths must add up to the recorded size, or the tree and the index
/// disagree.
pub(super) fn layout(repo: &Repository, node: &Node) -> Result<Vec<(Id, u64, u32)>, String> {
    let mut out = Vec::with_capacity(node.content.len());
    let mut end = 0u64;
    for id in &node.content {
        let loc = repo.locate(id).map_err(|e| e.to_string())?;
        out.push((*id, end, loc.raw_length));
        end += u64::from(loc.raw_length);
    }
    if end != node.size {
        return Err(format!(
            "chunks add up to {end} bytes but the file was {} bytes",
            node.size
        ));
    }
    Ok(out)
}

/// Which chunks of `layout` the regular file at `path` already holds at
/// their offsets: each stretch of the file is hashed with the repository's
/// keyed hash and compared with the chunk's id. `None` when there is no
/// regular file at `path`; chunks beyond its end do not match.
pub(super) fn matching_chunks(
    repo: &Repository,
    path: &Path,
    layout: &[(Id, u64, u32)],
) -> std::io::Result<Option<Vec<bool>>> {
    let m = match crate::longpath::lstat(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !m.is_file() {
        return Ok(None);
    }
    let file = std::fs::File::from(crate::backup::open_quietly(path, false)?);
    let keys = repo.keys();
    let mut buf = Vec::new();
    let mut out = Vec::with_capacity(layout.len());
    for &(id, offset, len) in layout {
        if offset + u64::from(len) > m.len() {
            out.push(false);
            continue;
        }
        buf.resize(len as usize, 0);
        match file.read_exact_at(&mut buf, offset) {
            Ok(()) => out.push(keys.blob_id(Kind::Data, &buf) == id),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => out.push(false),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(out))
}

/// Whether the regular file at `path` holds exactly the chunks of
/// `layout`: each stretch of the file is hashed with the repository's
/// keyed hash and compared with the chunk's id. Reads stop at the first
/// difference. Anything but a regular file of the right size is a
/// difference; a file that cannot be read is an error.
pub(super) fn matches(
    repo: &Repository,
    path: &Path,
    size: u64,
    layout: &[(Id, u64, u32)],
) -> std::io::Result<bool> {
    let m = match crate::longpath::lstat(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !m.is_file() || m.len() != size {
        return Ok(false);
    }
    let file = std::fs::File::from(crate::backup::open_quietly(path, false)?);
    let keys = repo.keys();
    let mut buf = Vec::new();
    for &(id, offset, len) in layout {
        buf.resize(len as usize, 0);
        match file.read_exact_at(&mut buf, offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        if keys.blob_id(Kind::Data, &buf) != id {
            return Ok(false);
        }
    }
    Ok(true)
}
