//! Objects written into a local repository as they are made.
//!
//! A backup's data pack is 16 MiB; held in memory until it is stored, the
//! packs filling and uploading were the largest part of a backup's memory.
//! A local repository does not need them in memory: [`Store::spool`] opens
//! a temporary file in a directory of the repository (`spool#N`, named as
//! object_store's local backend names its own, so [`Store::staging_files`]
//! finds it and prune collects it if the process dies), the writer appends
//! to it as it goes, and [`Store::publish`] makes it durable and renames it
//! to the object's path, which the writer may choose last, as a `put` does
//! (file synced, renamed, its new directory synced).
//!
//! Remote stores get `None` from [`Store::spool`]; their writers stream
//! objects part by part instead ([`Store::stream`], `parts.rs`), which
//! gives a [`Spool`] too. Local stores opened with an upload limit (which
//! applies to the object store's requests) or built with
//! [`Store::from_object_store`] keep objects in memory.
//!
//! [`Store::get_range_now`] is the reading side: a range of a local
//! repository's object read with one `pread` on the calling thread.

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::direct_io::{Aligned, BLOCK, on_local_disk, refused, set_direct};
use crate::parts::PartSpool;
use crate::{ObjectClass, Store, StoreError, StoreResult};

/// Bytes gathered before a write to the file, in a buffer aligned for
/// direct I/O: on a local disk's file system a spool's file is written with
/// `O_DIRECT` a whole buffer at a time, and only its last partial block
/// through the page cache (ADR 0029): no copy into the page cache, and no
/// page cache of the node filled with packs nobody reads back.
const WRITE_BUFFER: usize = 1 << 20;

/// Numbers for temporary file names, unique within the process (and, as
/// they start from the process id, seldom tried by two processes).
static NEXT: AtomicU64 = AtomicU64::new(0);

fn next_number() -> u64 {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (u64::from(std::process::id()) << 32) + n
}

/// An object being written as it is made: into a temporary file of a
/// local repository, or as a multipart upload to a remote store (see the
/// module docs). Dropped without [`Store::publish`], its temporary file is
/// removed, or its upload aborted.
#[derive(Debug)]
pub struct Spool(Kind);

#[derive(Debug)]
enum Kind {
    File(FileSpool),
    Parts(PartSpool),
}

impl Spool {
    pub(crate) fn parts(p: PartSpool) -> Spool {
        Spool(Kind::Parts(p))
    }

    /// Appends `b` to the object. A streamed object may wait here for a
    /// part buffer while its pool's are all out.
    pub fn write(&mut self, b: &[u8]) -> StoreResult<()> {
        match &mut self.0 {
            Kind::File(f) => f.write(b),
            Kind::Parts(p) => p.write(b),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        match &self.0 {
            Kind::File(f) => f.len,
            Kind::Parts(p) => p.len(),
        }
    }

    /// True before the first byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// From now on, a streamed object takes part buffers past its pool's
    /// limit rather than wait for one: for a writer's last bytes, written
    /// on an async task that the uploads giving buffers back may need.
    pub fn never_wait(&mut self) {
        if let Kind::Parts(p) = &mut self.0 {
            p.never_wait();
        }
    }
}

/// An object being written into a local repository's temporary file.
#[derive(Debug)]
struct FileSpool {
    file: Option<File>,
    /// Bytes not yet written, and bytes in the file before them.
    buf: Aligned,
    filled: usize,
    written: u64,
    /// `O_DIRECT` is on for the file.
    direct: bool,
    /// The repository's directory, and the temporary file.
    root: PathBuf,
    tmp: PathBuf,
    len: u64,
    /// Renamed into place: nothing to remove when dropped.
    published: bool,
}

impl FileSpool {
    fn write(&mut self, mut b: &[u8]) -> StoreResult<()> {
        let tmp = self.tmp.display().to_string();
        if self.file.is_none() {
            return Err(io_error(
                &tmp,
                std::io::Error::other("written after it was closed"),
            ));
        }
        self.len += b.len() as u64;
        while !b.is_empty() {
            let n = b.len().min(WRITE_BUFFER - self.filled);
            self.buf.bytes_mut()[self.filled..self.filled + n].copy_from_slice(&b[..n]);
            self.filled += n;
            b = &b[n..];
            if self.filled == WRITE_BUFFER {
                self.write_out().map_err(|e| io_error(&tmp, e))?;
            }
        }
        Ok(())
    }

    /// Writes what the buffer holds at the end of the file: directly if
    /// it is whole blocks and direct I/O is on, else (and if the file
    /// system refuses it) through the page cache, direct I/O then off for
    /// the rest of the file.
    fn write_out(&mut self) -> std::io::Result<()> {
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("written after it was closed"))?;
        let bytes = &self.buf.bytes()[..self.filled];
        if self.direct && bytes.len() % BLOCK == 0 {
            match file.write_all_at(bytes, self.written) {
                Ok(()) => {
                    self.written += bytes.len() as u64;
                    self.filled = 0;
                    return Ok(());
                }
                Err(e) if refused(&e) => {
                    tracing::debug!("direct write refused ({e}), writing through the page cache");
                }
                Err(e) => return Err(e),
            }
        }
        if self.direct {
            self.direct = false;
            set_direct(file, false)?;
        }
        file.write_all_at(bytes, self.written)?;
        self.written += bytes.len() as u64;
        self.filled = 0;
        Ok(())
    }

    /// Flushes and syncs the file, renames it to the object `path` and
    /// syncs the directory that holds it now (and its parent, if it was
    /// created). Blocking.
    fn finish(&mut self, path: &str) -> StoreResult<()> {
        let io = |e| io_error(path, e);
        if !plain_path(path) {
            return Err(io(std::io::Error::other("not a plain object path")));
        }
        if self.file.is_none() {
            return Err(io(std::io::Error::other("published twice")));
        }
        self.write_out().map_err(io)?;
        let file = self
            .file
            .take()
            .ok_or_else(|| io(std::io::Error::other("published twice")))?;
        file.sync_all().map_err(io)?;
        drop(file);
        let dest = self.root.join(path);
        let dir = dest.parent().unwrap_or(&self.root);
        let created_dir = !dir.is_dir();
        if created_dir {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::rename(&self.tmp, &dest).map_err(io)?;
        self.published = true;
        // The new name made durable, as object_store's own `put` does: the
        // old name, if a crash brought it back, is a temporary file that
        // prune collects.
        sync_dir(dir).map_err(io)?;
        if created_dir {
            sync_dir(dir.parent().unwrap_or(&self.root)).map_err(io)?;
        }
        Ok(())
    }
}

impl Drop for FileSpool {
    fn drop(&mut self) {
        if !self.published {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn io_error(path: &str, e: std::io::Error) -> StoreError {
    StoreError::Backend {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// True for an object path made of plain names (no empty, `.` or `..`
/// part): the only paths a spool is opened for.
fn plain_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('#'))
}

impl Store {
    /// Sets the directory of a local repository, and which of the direct
    /// paths may use it: not writes under an upload limit, nor reads under
    /// a download limit, which apply to the object store's requests.
    pub(crate) fn set_local_root(&mut self, root: Option<PathBuf>, opts: &crate::StoreOptions) {
        if opts.limit_upload_kib.is_none() {
            self.spool_root = root.clone();
        }
        if opts.limit_download_kib.is_none() {
            self.direct_root = root.clone();
        }
        self.local_root = root;
    }

    /// Reads `range` of the object `path` on the calling thread, for a
    /// plain local repository (one `pread`, no hand-off to a thread that
    /// may block); `None` for any other store, which callers then read
    /// with [`get_range`](Store::get_range). For the backup's walk, which
    /// reads every tree of the parent snapshot from rayon threads that may
    /// block: through the async path, each small read was two thread
    /// hand-offs.
    pub fn get_range_now(&self, path: &str, range: Range<u64>) -> Option<StoreResult<Bytes>> {
        let root = self.direct_root.as_ref()?;
        Some(read_range(root, path, range).inspect(|b| {
            self.metrics.count_range_get(b.len() as u64);
        }))
    }

    /// Starts an object in a temporary file in the directory `dir` of a
    /// plain local repository; `None` for any other store. See the module
    /// docs.
    pub fn spool(&self, dir: &str) -> Option<StoreResult<Spool>> {
        let root = self.spool_root.as_ref()?;
        Some(open_spool(root, dir))
    }

    /// Makes `spool`'s object durable and puts it in place at `path`, with
    /// the retention of its `class` (none on a local repository). A
    /// streamed object's `path` is the one it was started for.
    pub async fn publish(&self, spool: Spool, path: &str, class: ObjectClass) -> StoreResult<()> {
        match spool.0 {
            Kind::File(mut spool) => {
                let len = spool.len;
                let to = path.to_owned();
                let done = tokio::task::spawn_blocking(move || spool.finish(&to)).await;
                done.map_err(|e| StoreError::Backend {
                    path: path.to_owned(),
                    message: format!("write task failed: {e}"),
                })??;
                self.metrics.count_put(len);
            }
            Kind::Parts(mut parts) => {
                if parts.path() != path {
                    return Err(StoreError::Backend {
                        path: path.to_owned(),
                        message: format!("streamed as {}", parts.path()),
                    });
                }
                // The metrics store below counts the upload and its bytes.
                parts.finish().await?;
            }
        }
        self.lock_new(path, class).await
    }
}

fn read_range(root: &Path, path: &str, range: Range<u64>) -> StoreResult<Bytes> {
    use std::os::unix::fs::FileExt;
    if !plain_path(path) {
        return Err(io_error(
            path,
            std::io::Error::other("not a plain object path"),
        ));
    }
    let len = usize::try_from(range.end.saturating_sub(range.start))
        .map_err(|_| io_error(path, std::io::Error::other("range too large")))?;
    let file = File::open(root.join(path)).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotFound {
            path: path.to_owned(),
        },
        _ => io_error(path, e),
    })?;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], range.start + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path, e)),
        }
    }
    if got < len {
        return Err(StoreError::ShortRead {
            path: path.to_owned(),
            expected: len as u64,
            got: got as u64,
        });
    }
    Ok(Bytes::from(buf))
}

fn open_spool(root: &Path, dir: &str) -> StoreResult<Spool> {
    if !plain_path(dir) {
        return Err(io_error(
            dir,
            std::io::Error::other("not a plain directory path"),
        ));
    }
    let at = root.join(dir);
    std::fs::create_dir_all(&at).map_err(|e| io_error(dir, e))?;
    loop {
        let n = next_number();
        let tmp = at.join(format!("spool#{n}"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => {
                let direct = on_local_disk(&f) && set_direct(&f, true).is_ok();
                return Ok(Spool(Kind::File(FileSpool {
                    file: Some(f),
                    buf: Aligned::new(WRITE_BUFFER),
                    filled: 0,
                    written: 0,
                    direct,
                    root: root.to_owned(),
                    tmp,
                    len: 0,
                    published: false,
                })));
            }
            // Another process's file: the next number.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(dir, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_are_spooled() {
        assert!(plain_path("data/ab/abcd"));
        for bad in [
            "",
            "/data",
            "data//x",
            "data/../x",
            "./x",
            "data/x#1",
            "data/",
        ] {
            assert!(!plain_path(bad), "{bad}");
        }
    }
}
