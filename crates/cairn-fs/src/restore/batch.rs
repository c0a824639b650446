//! Small files restored by pack. Files of at most one chunk (most files of
//! a source tree) are grouped by the pack holding their chunk; chunks lying
//! close together in a pack are fetched with one ranged read, each opened
//! once, and all their files written on one blocking thread. Restoring them
//! one by one cost a request, two thread hand-offs and a dozen wake-ups per
//! file.
//!
//! Each file is written whole under a temporary name, and renamed over its
//! final name only once a sync of its file system has made it durable: one
//! `syncfs` for every [`PUBLISH_EVERY`] files, rather than an `fsync` each
//! (which forced a journal commit per file). A name never holds partial
//! content, after a power cut either, as with larger files.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_core::format::Node;
use cairn_core::{Id, Kind};
use cairn_repo::{BlobLocation, Repository};
use futures::StreamExt;

use super::FILE_CONCURRENCY;
use super::cold::Halt;
use super::files::{Devices, FileDone, Place, Shared, into_place, stage_whole};
use crate::Progress;
use crate::at::Root;

/// Bytes between two chunks of a pack worth downloading to save a request.
const GAP: u64 = 64 * 1024;
/// The longest range read in one request.
const MAX_RANGE: u64 = 2 * 1024 * 1024;
/// Files without content (empty files) written per blocking task.
const EMPTY_BATCH: usize = 512;
/// Files staged under temporary names between two syncs: the most a
/// restore killed outright leaves behind.
const PUBLISH_EVERY: usize = 4096;

/// One file's outcome: its path, its size and what restoring it did.
pub(super) type Done = (PathBuf, u64, Result<FileDone, String>);
/// A file written under the temporary name it carries, not yet renamed.
type Staged = (PathBuf, u64, Result<(FileDone, OsString), String>);

/// A chunk, where it is, and the indices of the files made of it.
type Chunk = (Id, BlobLocation, Vec<usize>);
/// Chunks by pack, then by offset in the pack (and id: the chunks of one
/// bundle share its offset).
type ByPack = BTreeMap<Id, BTreeMap<(u32, Id), Chunk>>;

/// A ranged read of one pack and the chunks it covers.
struct Range {
    pack: Id,
    start: u64,
    end: u64,
    chunks: Vec<Chunk>,
}

/// True for a file this module restores: at most one chunk, written anew.
pub(super) fn is_small(node: &Node) -> bool {
    node.content.len() <= 1
}

/// Restores `files` (each [`is_small`]); returns one outcome per file.
pub(super) async fn restore_small(
    repo: &Repository,
    root: &Arc<Root>,
    files: Vec<(PathBuf, Node)>,
    owners: bool,
    progress: &Progress,
    shared: &Shared,
) -> Vec<Done> {
    let halt = &shared.halt;
    let files = Arc::new(files);
    let devices = Arc::new(Devices::default());
    let mut done: Vec<Done> = Vec::with_capacity(files.len());
    let mut by_pack = ByPack::new();
    let mut empty = Vec::new();
    for (i, (path, node)) in files.iter().enumerate() {
        let Some(id) = node.content.first() else {
            empty.push(i);
            continue;
        };
        match repo.locate(id) {
            Ok(loc) => {
                by_pack
                    .entry(loc.pack)
                    .or_default()
                    .entry((loc.offset, *id))
                    .or_insert_with(|| (*id, loc, Vec::new()))
                    .2
                    .push(i);
            }
            Err(e) => done.push((path.clone(), node.size, Err(e.to_string()))),
        }
    }
    let mut jobs: Vec<Job> = empty
        .chunks(EMPTY_BATCH)
        .map(|c| Job::Empty(c.to_vec()))
        .collect();
    jobs.extend(ranges(by_pack).into_iter().map(Job::Range));
    let mut results = futures::stream::iter(jobs)
        .map(|job| {
            let (repo, files, root) = (repo.clone(), files.clone(), root.clone());
            let devices = devices.clone();
            async move {
                if progress.is_cancelled() || halt.is_set() {
                    return Vec::new();
                }
                let to = Target {
                    root,
                    devices,
                    owners,
                };
                run(repo, to, files, job, progress, shared).await
            }
        })
        .buffer_unordered(FILE_CONCURRENCY);
    let mut staged = Vec::new();
    while let Some(batch) = results.next().await {
        staged.extend(batch);
        if staged.len() >= PUBLISH_EVERY {
            let stop = progress.is_cancelled() || halt.is_set();
            done.extend(publish(root, &devices, std::mem::take(&mut staged), stop).await);
        }
    }
    let stop = progress.is_cancelled() || halt.is_set();
    done.extend(publish(root, &devices, staged, stop).await);
    done
}

/// Where and how staged files are written.
#[derive(Clone)]
struct Target {
    root: Arc<Root>,
    devices: Arc<Devices>,
    owners: bool,
}

/// Syncs the file systems the `staged` files were written to, then renames
/// each into place; with `stop` (the restore was cancelled or halted), or
/// when the sync fails, removes them instead. On a blocking thread.
async fn publish(
    root: &Arc<Root>,
    devices: &Arc<Devices>,
    staged: Vec<Staged>,
    stop: bool,
) -> Vec<Done> {
    if staged.is_empty() {
        return Vec::new();
    }
    let (root, devices) = (root.clone(), devices.clone());
    let sizes: Vec<(PathBuf, u64)> = staged.iter().map(|(p, n, _)| (p.clone(), *n)).collect();
    let task = tokio::task::spawn_blocking(move || {
        let synced = if stop {
            Err("cancelled".to_owned())
        } else {
            devices.sync()
        };
        staged
            .into_iter()
            .map(|(path, size, r)| {
                let r = r.and_then(|(done, tmp)| {
                    let place = Place::of(&root, &path)?;
                    let moved = synced.clone().and_then(|()| into_place(&place, &tmp));
                    if moved.is_err() {
                        let _ =
                            rustix::fs::unlinkat(&place.dir, &tmp, rustix::fs::AtFlags::empty());
                    }
                    moved.map(|()| done)
                });
                (path, size, r)
            })
            .collect()
    });
    match task.await {
        Ok(done) => done,
        Err(e) => sizes
            .into_iter()
            .map(|(p, n)| (p, n, Err(format!("restore task failed: {e}"))))
            .collect(),
    }
}

enum Job {
    Empty(Vec<usize>),
    Range(Range),
}

/// Cuts each pack's chunks, in offset order, into ranges whose gaps are
/// at most [`GAP`] and whose length is at most [`MAX_RANGE`] (or one chunk,
/// with the chunks inside it: a bundle's blobs).
fn ranges(by_pack: ByPack) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for (pack, chunks) in by_pack {
        let mut current: Option<Range> = None;
        for (_, (id, loc, users)) in chunks {
            let start = u64::from(loc.offset);
            let end = start + u64::from(loc.length);
            match &mut current {
                // A chunk inside the range joins it whatever its length:
                // the blobs of a bundle longer than MAX_RANGE share one read.
                Some(r) if start <= r.end + GAP && (end - r.start <= MAX_RANGE || end <= r.end) => {
                    r.end = r.end.max(end);
                    r.chunks.push((id, loc, users));
                }
                _ => {
                    out.extend(current.take());
                    current = Some(Range {
                        pack,
                        start,
                        end,
                        chunks: vec![(id, loc, users)],
                    });
                }
            }
        }
        out.extend(current);
    }
    out
}

async fn run(
    repo: Repository,
    to: Target,
    files: Arc<Vec<(PathBuf, Node)>>,
    job: Job,
    progress: &Progress,
    shared: &Shared,
) -> Vec<Staged> {
    let halt = &shared.halt;
    let all: Vec<usize> = match &job {
        Job::Empty(users) => users.clone(),
        Job::Range(r) => r.chunks.iter().flat_map(|c| c.2.iter().copied()).collect(),
    };
    // The range, and one chunk opened from it at a time.
    let _held = match &job {
        Job::Empty(_) => None,
        Job::Range(r) => {
            let largest = r.chunks.iter().map(|c| u64::from(c.1.raw_length)).max();
            shared
                .budget
                .hold(r.end - r.start + largest.unwrap_or(0))
                .await
        }
    };
    // A range that cannot be read leaves every chunk to the fallback below,
    // which tries the other copies the index files list.
    let (bytes, fetch_err) = match &job {
        Job::Empty(_) => (Default::default(), None),
        Job::Range(r) => match repo.fetch_pack_range(&r.pack, r.start..r.end).await {
            Ok(b) => (b, None),
            Err(e) => (Default::default(), Some(Unread::of(e))),
        },
    };
    let (shared, inner) = (files.clone(), repo.clone());
    let to2 = to.clone();
    let first = tokio::task::spawn_blocking(move || {
        let files = shared;
        let mut out = Vec::new();
        let mut retry = Vec::new();
        match job {
            Job::Empty(users) => {
                let write = |i| write_one(&to2, &files, i, &[]);
                out.extend(users.into_iter().map(write));
            }
            Job::Range(range) => {
                // A bundle is opened once for its blobs in the range.
                let mut opener = inner.range_opener();
                for (id, loc, users) in range.chunks {
                    let at = (u64::from(loc.offset) - range.start) as usize;
                    let opened = match bytes.get(at..at + loc.length as usize) {
                        Some(sealed) => opener.open(&loc, &id, sealed),
                        None => Err(Unread::error(fetch_err.as_ref(), id, range.pack)),
                    };
                    match opened {
                        Ok(plain) => {
                            out.extend(users.iter().map(|&i| write_one(&to2, &files, i, &plain)))
                        }
                        Err(e) => retry.push((id, users, e)),
                    }
                }
            }
        }
        (out, retry)
    });
    let (mut out, retry) = match first.await {
        Ok(r) => r,
        Err(e) => return failed(&files, &all, format!("restore task failed: {e}")),
    };
    out.extend(other_copies(&repo, &to, &files, retry, halt).await);
    for (_, size, r) in &out {
        if r.is_ok() {
            progress.add(0, *size);
        }
    }
    out
}

/// The outcome of `users`, files of `files` that could not be written.
fn failed(files: &[(PathBuf, Node)], users: &[usize], message: String) -> Vec<Staged> {
    users
        .iter()
        .map(|&i| (files[i].0.clone(), files[i].1.size, Err(message.clone())))
        .collect()
}

/// Writes the files of chunks whose copy in the range failed from another
/// copy the index files list, if one opens.
async fn other_copies(
    repo: &Repository,
    to: &Target,
    files: &Arc<Vec<(PathBuf, Node)>>,
    retry: Vec<(Id, Vec<usize>, cairn_repo::Error)>,
    halt: &Halt,
) -> Vec<Staged> {
    let mut out = Vec::new();
    for (id, users, err) in retry {
        // An archived pack ends the restore: no use trying the others.
        if halt.is_set() {
            out.extend(failed(files, &users, err.to_string()));
            continue;
        }
        out.extend(match repo.read_other_copy(Kind::Data, &id, err).await {
            Ok(plain) => {
                let (files2, to) = (files.clone(), to.clone());
                let users2 = users.clone();
                let written = tokio::task::spawn_blocking(move || {
                    users2
                        .iter()
                        .map(|&i| write_one(&to, &files2, i, &plain))
                        .collect::<Vec<_>>()
                })
                .await;
                written
                    .unwrap_or_else(|e| failed(files, &users, format!("restore task failed: {e}")))
            }
            Err(e) => {
                halt.note(&e);
                failed(files, &users, e.to_string())
            }
        });
    }
    out
}

/// Why a range of a pack could not be read.
struct Unread {
    message: String,
    /// The pack's path, when it is archived.
    archived: Option<String>,
}

impl Unread {
    fn of(e: cairn_repo::Error) -> Unread {
        let archived = match &e {
            cairn_repo::Error::Store(cairn_store::StoreError::Archived { path }) => {
                Some(path.clone())
            }
            _ => None,
        };
        Unread {
            message: e.to_string(),
            archived,
        }
    }

    /// The error of a chunk of the range (or of a short read, without
    /// `unread`), as the fallback to other copies expects it: an archived
    /// pack stays an archived pack, so the restore can stop on it.
    fn error(unread: Option<&Unread>, id: Id, pack: Id) -> cairn_repo::Error {
        if let Some(path) = unread.and_then(|u| u.archived.clone()) {
            return cairn_store::StoreError::Archived { path }.into();
        }
        cairn_repo::Error::CorruptBlob {
            id,
            pack,
            detail: unread.map_or_else(|| "short read of its pack".into(), |u| u.message.clone()),
        }
    }
}

/// Stages file `i` of `files` whole, with `plain` as its content.
fn write_one(to: &Target, files: &[(PathBuf, Node)], i: usize, plain: &[u8]) -> Staged {
    let (path, node) = &files[i];
    let r = Place::of(&to.root, path)
        .and_then(|at| stage_whole(&at, node, plain, to.owners, &to.devices));
    (path.clone(), node.size, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(b: u8, offset: u32, length: u32) -> ((u32, Id), Chunk) {
        let loc = BlobLocation {
            pack: Id::from_bytes([9; 32]),
            kind: cairn_core::Kind::Data,
            offset,
            length,
            raw_length: length,
        };
        let id = Id::from_bytes([b; 32]);
        ((offset, id), (id, loc, vec![usize::from(b)]))
    }

    #[test]
    fn neighbouring_chunks_share_a_read_and_far_or_long_ones_do_not() {
        let mb = 1024 * 1024;
        let mut by_pack = ByPack::new();
        by_pack.insert(
            Id::from_bytes([9; 32]),
            [
                chunk(1, 0, 1000),
                chunk(2, 1000, 1000),
                // A gap of exactly GAP still joins.
                chunk(3, 2000 + GAP as u32, 1000),
                // One byte more does not.
                chunk(4, 3000 + 2 * GAP as u32 + 1, 1000),
                // Nor does a read that would pass MAX_RANGE.
                chunk(5, 4000 + 2 * GAP as u32 + 1, 2 * mb),
            ]
            .into_iter()
            .collect(),
        );
        let r = ranges(by_pack);
        let ids: Vec<Vec<u8>> = r
            .iter()
            .map(|r| r.chunks.iter().map(|c| c.0.as_bytes()[0]).collect())
            .collect();
        assert_eq!(ids, vec![vec![1, 2, 3], vec![4], vec![5]]);
        assert_eq!((r[0].start, r[0].end), (0, 3000 + GAP));
    }

    #[test]
    fn the_chunks_of_one_bundle_share_its_range_and_each_keeps_its_files() {
        let in_bundle = |b: u8| {
            let (key, (id, mut loc, users)) = chunk(b, 500, 4000);
            loc.kind = cairn_core::Kind::Bundle;
            loc.raw_length = 10;
            (key, (id, loc, users))
        };
        let mut by_pack = ByPack::new();
        by_pack.insert(
            Id::from_bytes([9; 32]),
            [
                chunk(1, 0, 500),
                in_bundle(2),
                in_bundle(3),
                chunk(4, 4500, 10),
            ]
            .into_iter()
            .collect(),
        );
        let r = ranges(by_pack);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].start, r[0].end), (0, 4510));
        let chunks: Vec<(u8, Vec<usize>)> = r[0]
            .chunks
            .iter()
            .map(|c| (c.0.as_bytes()[0], c.2.clone()))
            .collect();
        assert_eq!(
            chunks,
            vec![(1, vec![1]), (2, vec![2]), (3, vec![3]), (4, vec![4])]
        );
    }

    #[test]
    fn the_chunks_of_a_bundle_longer_than_a_range_share_one_read() {
        let long = MAX_RANGE as u32 + 4096;
        let in_bundle = |b: u8| {
            let (key, (id, mut loc, users)) = chunk(b, 100, long);
            loc.kind = cairn_core::Kind::Bundle;
            (key, (id, loc, users))
        };
        let mut by_pack = ByPack::new();
        let chunks = [chunk(1, 0, 100), in_bundle(2), in_bundle(3), in_bundle(4)];
        by_pack.insert(Id::from_bytes([9; 32]), chunks.into_iter().collect());
        let r = ranges(by_pack);
        let ids: Vec<Vec<u8>> = r
            .iter()
            .map(|r| r.chunks.iter().map(|c| c.0.as_bytes()[0]).collect())
            .collect();
        // The first chunk and the bundle exceed MAX_RANGE together.
        assert_eq!(ids, vec![vec![1], vec![2, 3, 4]]);
        assert_eq!((r[1].start, r[1].end), (100, 100 + u64::from(long)));
    }
}
