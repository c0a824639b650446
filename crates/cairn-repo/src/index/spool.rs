//! A table build's disk work on a thread of its own, so that it overlaps
//! the work that feeds it: [`Spiller`] sorts and writes the build's runs
//! while the next index files are decoded, and [`ThreadWriter`] writes the
//! merged table while the runs are merged. Both hold a bounded number of
//! buffers: one being filled, one being worked on.
//!
//! A 10 M-entry build spent all its time on one core: decoding, sorting
//! and the kernel's copies into the page cache (a third of its samples)
//! took turns (PERFORMANCE.md, "A repository with ten million index
//! entries").

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::table::{RECORD, Record};

/// A run record is a table record followed by the ordinal of its file.
pub(super) const RUN_RECORD: usize = RECORD + 4;

/// Records and the ordinal of the file that listed each.
pub(super) type Run = Vec<(Record, u32)>;

/// Sorts `run` by id, then file ordinal (stable: the order of one file's
/// records is kept), writes it to an unnamed file in `dir` and empties it.
pub(super) fn write_run(dir: &Path, run: &mut Run) -> std::io::Result<File> {
    run.sort_by(|(a, i), (b, j)| a.id.cmp(&b.id).then(i.cmp(j)));
    let mut out = BufWriter::with_capacity(1 << 20, tempfile::tempfile_in(dir)?);
    let mut b = [0u8; RECORD];
    for (r, ordinal) in run.drain(..) {
        r.encode(&mut b);
        out.write_all(&b)?;
        out.write_all(&ordinal.to_le_bytes())?;
    }
    let mut file = out
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?;
    file.rewind()?;
    Ok(file)
}

/// A written run's file and its emptied buffer.
type Written = std::io::Result<(File, Run)>;

/// Writes runs on a thread of its own, one at a time, handing their files
/// back in the order the runs were given.
pub(super) struct Spiller {
    dir: PathBuf,
    worker: Option<(SyncSender<Run>, Receiver<Written>)>,
    thread: Option<JoinHandle<()>>,
    /// A run was handed over and its file not yet taken.
    pending: bool,
}

impl Spiller {
    pub(super) fn new(dir: &Path) -> Spiller {
        Spiller {
            dir: dir.to_owned(),
            worker: None,
            thread: None,
            pending: false,
        }
    }

    /// Hands `run` to the thread (started on first use) and returns the
    /// file of the run handed over before it, if any, with an empty buffer
    /// to fill next.
    pub(super) fn spill(&mut self, run: Run) -> std::io::Result<(Option<File>, Run)> {
        let (done, spare) = match self.take()? {
            Some((file, spare)) => (Some(file), spare),
            None => (None, Vec::with_capacity(run.len())),
        };
        if self.worker.is_none() {
            self.start()?;
        }
        let sent = self.worker.as_ref().map(|(to, _)| to.send(run));
        if !matches!(sent, Some(Ok(()))) {
            return Err(std::io::Error::other("index run writer stopped"));
        }
        self.pending = true;
        Ok((done, spare))
    }

    /// Waits for the run handed over last and returns its file and its
    /// emptied buffer; `None` when none is pending.
    pub(super) fn take(&mut self) -> std::io::Result<Option<(File, Run)>> {
        if !self.pending {
            return Ok(None);
        }
        self.pending = false;
        match self.worker.as_ref().map(|(_, from)| from.recv()) {
            Some(Ok(result)) => result.map(Some),
            _ => Err(std::io::Error::other("index run writer stopped")),
        }
    }

    fn start(&mut self) -> std::io::Result<()> {
        let (to, from) = sync_channel::<Run>(0);
        let (back, results) = sync_channel::<Written>(1);
        let dir = self.dir.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-index-runs".into())
            .spawn(move || {
                for mut run in from {
                    let result = write_run(&dir, &mut run).map(|file| (file, run));
                    if back.send(result).is_err() {
                        break;
                    }
                }
            })?;
        self.worker = Some((to, results));
        self.thread = Some(thread);
        Ok(())
    }
}

impl Drop for Spiller {
    fn drop(&mut self) {
        // Closing the channels ends the thread after the run in hand.
        self.worker = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Bytes handed to the writing thread at a time.
const CHUNK: usize = 1 << 20;

/// A buffered writer whose writes to the file happen on a thread of its
/// own. Data is in the file only after [`into_inner`](Self::into_inner);
/// an error writing it is returned by the next call after it.
pub(super) struct ThreadWriter {
    buf: Vec<u8>,
    to: Option<SyncSender<Vec<u8>>>,
    spares: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<std::io::Result<File>>>,
}

impl ThreadWriter {
    pub(super) fn new(mut file: File) -> std::io::Result<ThreadWriter> {
        let (to, from) = sync_channel::<Vec<u8>>(1);
        let (back, spares) = sync_channel(2);
        let thread = std::thread::Builder::new()
            .name("cairn-index-table".into())
            .spawn(move || {
                for mut chunk in from {
                    file.write_all(&chunk)?;
                    chunk.clear();
                    let _ = back.try_send(chunk);
                }
                Ok(file)
            })?;
        Ok(ThreadWriter {
            buf: Vec::with_capacity(CHUNK),
            to: Some(to),
            spares,
            thread: Some(thread),
        })
    }

    fn hand_over(&mut self) -> std::io::Result<()> {
        let next = self
            .spares
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.buf, next);
        let sent = self.to.as_ref().map(|to| to.send(chunk));
        if matches!(sent, Some(Ok(()))) {
            return Ok(());
        }
        // The thread stopped: its error says why.
        Err(match self.join() {
            Err(e) => e,
            Ok(_) => std::io::Error::other("index table writer stopped"),
        })
    }

    fn join(&mut self) -> std::io::Result<File> {
        self.to = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(std::io::Error::other("index table writer stopped")),
        }
    }

    /// Writes what is left and returns the file once all of it is written.
    pub(super) fn into_inner(mut self) -> std::io::Result<File> {
        if !self.buf.is_empty() {
            self.hand_over()?;
        }
        self.join()
    }
}

impl Write for ThreadWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.hand_over()?;
        }
        Ok(n)
    }

    /// Hands the buffered bytes to the thread; they are written only by
    /// [`into_inner`](Self::into_inner).
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.hand_over()
    }
}

impl Drop for ThreadWriter {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn a_thread_writer_writes_every_byte_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        let file = tempfile::tempfile_in(dir.path()).expect("file");
        let mut w = ThreadWriter::new(file).expect("writer");
        let mut expected = Vec::new();
        // Writes of many sizes, across chunk boundaries, past three chunks.
        for i in 0..5_000u32 {
            let piece: Vec<u8> = (0..(i % 1_777)).map(|j| (i ^ j) as u8).collect();
            w.write_all(&piece).expect("write");
            expected.extend_from_slice(&piece);
        }
        assert!(expected.len() > 3 * CHUNK);
        let mut file = w.into_inner().expect("into_inner");
        file.rewind().expect("rewind");
        let mut got = Vec::new();
        file.read_to_end(&mut got).expect("read");
        assert!(
            got == expected,
            "{} bytes against {}",
            got.len(),
            expected.len()
        );
    }

    #[test]
    fn a_thread_writer_reports_a_failed_write() {
        // A file opened read-only cannot be written.
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"").expect("create");
        let file = File::open(&path).expect("open");
        let mut w = ThreadWriter::new(file).expect("writer");
        let failed = (0..4).any(|_| w.write_all(&vec![1u8; CHUNK]).is_err());
        assert!(failed || w.into_inner().is_err());
    }
}
