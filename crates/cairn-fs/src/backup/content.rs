//! Reading a file's content: data segments chunked with FastCDC, holes as
//! runs of zero chunks (ADR 0005), any reader for streams.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use cairn_core::{Id, Kind};
use rayon::prelude::*;

use super::direct::{DirectReader, read_directly};
use super::sparse::{Segment, segments};
use super::walk::{EntryError, Walker};
use crate::Warning;
use crate::chunking::chunk_stream;

impl Walker {
    /// Reads, chunks and stores a file's content (`size` bytes, or a block
    /// device's to its end for `u64::MAX`), holes as runs of zero chunks
    /// (ADR 0005), large files directly (ADR 0029); returns its chunk ids
    /// and length.
    pub(super) fn read_content(
        &self,
        file: &File,
        size: u64,
        blocks: u64,
    ) -> Result<(Vec<Id>, u64), EntryError> {
        let mut ids = Vec::new();
        let mut total = 0u64;
        let read_err = |e: std::io::Error| {
            EntryError::Skip(Warning {
                path: PathBuf::new(),
                message: format!("read failed: {e}"),
            })
        };
        let segs = segments(file, size, blocks).map_err(read_err)?;
        let mut reader = DirectReader::new(file, read_directly(file, size));
        for seg in segs {
            match seg {
                Segment::Hole { len } => {
                    self.zero_chunks(len, &mut ids)?;
                    total += len;
                }
                Segment::Data { start, len } => {
                    reader.pos = start;
                    let n = self.chunk_reader((&mut reader).take(len), &mut ids)?;
                    total += n;
                    // The file shrank while it was read: what was read is
                    // the content, and its length the size.
                    if len != u64::MAX && n < len {
                        break;
                    }
                }
            }
        }
        Ok((ids, total))
    }

    /// Chunks and stores everything `reader` yields, appending the chunk
    /// ids to `ids`; returns the bytes read.
    pub(super) fn chunk_reader(
        &self,
        reader: impl Read + Send,
        ids: &mut Vec<Id>,
    ) -> Result<u64, EntryError> {
        let params = self.repo.config().chunker;
        chunk_stream(
            reader,
            &params,
            |buf, chunks| {
                self.progress.check().map_err(EntryError::Fatal)?;
                let batch: Vec<Id> = chunks
                    .par_iter()
                    .map(|&(o, l)| {
                        self.writer
                            .add_blob(Kind::Data, &buf[o..o + l])
                            .map(|r| r.0)
                    })
                    .collect::<Result<_, _>>()?;
                ids.extend(batch);
                Ok(())
            },
            |n| {
                self.stats.bytes_read.fetch_add(n, Ordering::Relaxed);
                self.progress.add(0, n);
            },
            |e| {
                EntryError::Skip(Warning {
                    path: PathBuf::new(),
                    message: format!("read failed: {e}"),
                })
            },
        )
    }

    /// Appends a hole of `len` bytes as zero chunks of the chunker's
    /// maximum size and one shorter remainder, so every hole of a
    /// repository dedupes to a handful of blobs.
    fn zero_chunks(&self, len: u64, ids: &mut Vec<Id>) -> Result<(), EntryError> {
        let max = u64::from(self.repo.config().chunker.max_size);
        let (full, rest) = (len / max, len % max);
        if full > 0 {
            let id = self.zero_id(max as usize)?;
            ids.extend(std::iter::repeat_n(id, full as usize));
        }
        if rest > 0 {
            ids.push(self.zero_id(rest as usize)?);
        }
        self.progress.add(0, len);
        Ok(())
    }

    fn zero_id(&self, len: usize) -> Result<Id, EntryError> {
        if let Some(id) = self
            .zeros
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&len)
        {
            return Ok(*id);
        }
        // One buffer of zeros for every length: a hole's remainder has a
        // length of its own, and a new buffer per hole would be mapped in
        // (up to 8 MiB) only to be hashed.
        static ZEROS: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let max = self.repo.config().chunker.max_size as usize;
        let zeros = ZEROS.get_or_init(|| vec![0u8; max]);
        let id = match zeros.get(..len) {
            Some(z) => self.writer.add_blob(Kind::Data, z)?.0,
            None => self.writer.add_blob(Kind::Data, &vec![0u8; len])?.0,
        };
        self.zeros
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(len, id);
        Ok(id)
    }
}
