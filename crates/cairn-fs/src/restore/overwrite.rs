//! Restoring over an existing tree: what to do with a file already in
//! place, and checking a file on disk against its chunk list (for
//! `Overwrite::IfChanged` and for `verify`).

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;

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

/// The regular file `name` of `dir`, opened for reading without following
/// a symlink, and its metadata; `None` when there is no regular file.
pub(super) fn open_existing(
    dir: BorrowedFd<'_>,
    name: &OsStr,
) -> std::io::Result<Option<(File, Metadata)>> {
    let file = match crate::at::open_read(dir, name, false) {
        Ok(fd) => File::from(fd),
        // Missing, or a symlink (which O_NOFOLLOW refuses).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let m = file.metadata()?;
    Ok(m.is_file().then_some((file, m)))
}

/// Which chunks of `layout` the regular file `file` (of metadata `m`)
/// already holds at their offsets: each stretch of the file is hashed with
/// the repository's keyed hash and compared with the chunk's id. Chunks
/// beyond its end do not match.
pub(super) fn matching_chunks(
    repo: &Repository,
    file: &File,
    m: &Metadata,
    layout: &[(Id, u64, u32)],
) -> std::io::Result<Vec<bool>> {
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
    Ok(out)
}

/// Whether the regular file `name` of `dir` holds exactly the chunks of
/// `layout`: each stretch of the file is hashed with the repository's
/// keyed hash and compared with the chunk's id. Reads stop at the first
/// difference. Anything but a regular file of the right size is a
/// difference; a file that cannot be read is an error.
pub(super) fn matches(
    repo: &Repository,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    size: u64,
    layout: &[(Id, u64, u32)],
) -> std::io::Result<bool> {
    let Some((file, m)) = open_existing(dir, name)? else {
        return Ok(false);
    };
    if m.len() != size {
        return Ok(false);
    }
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
