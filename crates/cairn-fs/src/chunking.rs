//! Reading a file and cutting it into chunks with bounded memory.
//!
//! The file is read through a window of one and a half maximum chunk sizes
//! (12 MiB by default; two, the earlier size, cost 8 MiB more per window
//! and gained nothing measurable), and one large file at a time through two
//! such windows, one read while the other is sealed. FastCDC
//! decides each cut only from the bytes between the chunk's start and at
//! most `max_size` beyond it, so a chunk is final once that span is in the
//! window (or the file ended): the cut points are exactly those of chunking
//! the whole file at once, whatever the window size.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

use cairn_core::ChunkerParams;

/// Reads `r` to the end, calling `emit` with each window of the buffer and
/// the `(offset, length)` chunks that are final in it. Returns bytes read.
///
/// A file longer than one window may be read through two: while `emit`
/// seals the chunks of one (on other threads, through rayon), this thread
/// reads and cuts the next, so reading and cutting a large file, one
/// thread's serial work, does not leave the other cores waiting. One file
/// at a time gets the second window ([`Second`]): two files read at once
/// keep two cores busy already, and the memory stays one window per
/// reading thread and one more. A file that fits in one window never asks.
pub(crate) fn chunk_stream<R, E>(
    r: R,
    params: &ChunkerParams,
    emit: impl FnMut(&[u8], &[(usize, usize)]) -> Result<(), E> + Send,
    on_read: impl FnMut(u64) + Send,
    io_err: impl Fn(std::io::Error) -> E + Sync,
) -> Result<u64, E>
where
    R: Read + Send,
    E: Send,
{
    chunk_stream_with(&SECOND_TAKEN, r, params, emit, on_read, io_err)
}

/// [`chunk_stream`], with `taken` saying whether the second window is.
fn chunk_stream_with<R, E>(
    taken: &AtomicBool,
    r: R,
    params: &ChunkerParams,
    mut emit: impl FnMut(&[u8], &[(usize, usize)]) -> Result<(), E> + Send,
    on_read: impl FnMut(u64) + Send,
    io_err: impl Fn(std::io::Error) -> E + Sync,
) -> Result<u64, E>
where
    R: Read + Send,
    E: Send,
{
    let max = params.max_size as usize;
    let mut filler = Filler {
        r,
        window: max + max / 2,
        max,
        eof: false,
        total: 0,
        on_read,
    };
    let mut cur = Window::take();
    filler.fill(&mut cur).map_err(&io_err)?;
    let mut chunks = final_chunks(params, &cur, filler.eof);
    let mut second = if filler.eof {
        None
    } else {
        Second::take(taken)
    };
    while !filler.eof {
        // The chunk cut short by the window's end starts the next window.
        let consumed = chunks.last().map_or(0, |&(o, l)| o + l);
        let (read, sealed) = match &mut second {
            Some(Second(next, _)) => {
                next.clear();
                next.extend_from_slice(&cur[consumed..]);
                // This thread reads on at once; another takes the sealing.
                let both = rayon::join(
                    || {
                        filler
                            .fill(next)
                            .map(|()| final_chunks(params, next, filler.eof))
                    },
                    || emit(&cur, &chunks),
                );
                std::mem::swap(&mut cur, next);
                both
            }
            None => match emit(&cur, &chunks) {
                Err(e) => (Ok(Vec::new()), Err(e)),
                Ok(()) => {
                    cur.drain(..consumed);
                    let read = filler.fill(&mut cur);
                    (
                        read.map(|()| final_chunks(params, &cur, filler.eof)),
                        Ok(()),
                    )
                }
            },
        };
        sealed?;
        chunks = read.map_err(&io_err)?;
    }
    if !chunks.is_empty() {
        emit(&cur, &chunks)?;
    }
    Ok(filler.total)
}

/// The chunks of `buf` that are final: a cut found before the window's end
/// is final, as FastCDC decides a cut at position p from the bytes before
/// p alone (with fewer than the average size left it only stops testing
/// the large mask, which applies from the average size on, past the data
/// anyway). A chunk that ends at the window's end stopped for lack of data,
/// and waits for the next window, unless the input ended. So each window
/// yields all but its last chunk, not only those starting in its first
/// maximum chunk: fewer windows, each with more chunks to seal in parallel.
fn final_chunks(params: &ChunkerParams, buf: &[u8], eof: bool) -> Vec<(usize, usize)> {
    params
        .chunks(buf)
        .take_while(|&(off, len)| eof || off + len < buf.len())
        .collect()
}

/// The reading half of [`chunk_stream`]: fills windows from `r`.
struct Filler<R, F> {
    r: R,
    /// One and a half maximum chunks (12 MiB by default; two, the earlier
    /// size, cost 8 MiB more per window and gained nothing measurable).
    window: usize,
    /// The most one read asks for: a maximum chunk.
    max: usize,
    eof: bool,
    total: u64,
    on_read: F,
}

impl<R: Read, F: FnMut(u64)> Filler<R, F> {
    /// Reads into `buf` until it holds a window or the input ends.
    fn fill(&mut self, buf: &mut Window) -> std::io::Result<()> {
        // Grow the buffer only as the file needs it so small files cost
        // small buffers: `read_to_end` grows the vector as bytes arrive
        // (resizing to the request first would allocate and zero a
        // maximum-size chunk for every file, even an empty one).
        while !self.eof && buf.len() < self.window {
            let want = (self.window - buf.len()).min(self.max);
            // Room for the whole window, exactly: `read_to_end` growing the
            // vector itself doubles it past the window (to 16 MiB for a
            // 12 MiB window). Reserved, not written: a small file touches
            // only the pages it fills.
            buf.0.reserve_exact(self.window - buf.len());
            let n = self.r.by_ref().take(want as u64).read_to_end(&mut buf.0)?;
            // Fewer bytes than asked for: the reader reached its end.
            self.eof = n < want;
            if n > 0 {
                self.total += n as u64;
                (self.on_read)(n as u64);
            }
        }
        Ok(())
    }
}

/// The second window of the one file read through two (see
/// [`chunk_stream`]); dropping it lets the next file take one.
struct Second<'a>(Window, &'a AtomicBool);

/// A file holds the second window.
static SECOND_TAKEN: AtomicBool = AtomicBool::new(false);

impl Second<'_> {
    /// The second window, unless another file holds it.
    fn take(taken: &AtomicBool) -> Option<Second<'_>> {
        taken
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Second(Window::take(), taken))
    }
}

impl Drop for Second<'_> {
    fn drop(&mut self) {
        self.1.store(false, Ordering::Release);
    }
}

/// A read window, returned on drop to a small pool for the next file: a
/// window grows to one and a half maximum chunks (12 MiB by default), and allocating
/// and freeing one per file left the allocator holding several times the
/// memory in use.
struct Window(Vec<u8>);

/// Windows kept for reuse: one per thread that reads files at once, and
/// the second window.
static SPARE: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// Frees the read windows kept for reuse, and returns their bytes. The
/// next backup allocates its windows afresh. A long-running process calls
/// it between jobs (through `cairn::release_free_memory`); a backup still
/// running only allocates what it next needs.
pub fn release_windows() -> usize {
    let all = std::mem::take(&mut *SPARE.lock().unwrap_or_else(|p| p.into_inner()));
    all.iter().map(Vec::capacity).sum()
}

impl Window {
    fn take() -> Window {
        let buf = SPARE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        Window(buf)
    }
}

impl std::ops::Deref for Window {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Window {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        buf.clear();
        let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < rayon::current_num_threads() + 1 {
            spare.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the largest buffer the chunker asks a read to fill.
    struct LargestRead<R> {
        inner: R,
        largest: usize,
    }

    impl<R: Read> Read for LargestRead<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.largest = self.largest.max(buf.len());
            self.inner.read(buf)
        }
    }

    /// A large input is chunked through a window of one and a half
    /// maximum chunks at most, and gives the cuts of the whole input.
    #[test]
    fn large_inputs_use_a_window_of_one_and_a_half_maximum_chunks() {
        let params = ChunkerParams::with_seed(3);
        let max = params.max_size as usize;
        let mut data = vec![0u8; 5 * max + 12345];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        let (mut chunks, mut widest) = (Vec::new(), 0);
        chunk_stream::<_, std::io::Error>(
            &data[..],
            &params,
            |buf, cs| {
                widest = widest.max(buf.len());
                chunks.extend(cs.iter().map(|&(o, l)| buf[o..o + l].len()));
                Ok(())
            },
            |_| {},
            |e| e,
        )
        .expect("read from memory");
        assert!(widest <= max + max / 2, "a window of {widest} bytes");
        // Its buffer, back in the pool, was never grown past the window
        // (every window of these tests has the same maximum chunk size).
        for spare in SPARE.lock().expect("pool").iter() {
            assert!(
                spare.capacity() <= max + max / 2,
                "a window of {} bytes",
                spare.capacity()
            );
        }
        let whole: Vec<usize> = params.chunks(&data).map(|(_, l)| l).collect();
        assert_eq!(chunks, whole);
    }

    /// A small file used to cost a zeroed buffer of the maximum chunk size
    /// (8 MiB by default), which made backups of many small files slow.
    #[test]
    fn small_inputs_do_not_get_max_chunk_size_buffers() {
        let params = ChunkerParams::with_seed(7);
        for len in [0usize, 1, 100, 5000] {
            let data = vec![0xa5u8; len];
            let mut r = LargestRead {
                inner: &data[..],
                largest: 0,
            };
            let mut chunks = Vec::new();
            let read = chunk_stream::<_, std::io::Error>(
                &mut r,
                &params,
                |buf, cs| {
                    chunks.extend(cs.iter().map(|&(o, l)| buf[o..o + l].to_vec()));
                    Ok(())
                },
                |_| {},
                |e| e,
            )
            .expect("read from memory");
            assert_eq!(read, len as u64);
            assert_eq!(chunks.concat(), data, "input length {len}");
            assert!(
                r.largest <= 64 * 1024,
                "input of {len} bytes read into a buffer of {} bytes",
                r.largest
            );
        }
    }

    fn small_params() -> ChunkerParams {
        ChunkerParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
            normalization: 1,
            seed: 7,
        }
    }

    /// While the chunks of one window are sealed, the next window is read:
    /// an `emit` that waits for the reader to get past its window sees it
    /// do so (without the overlap it would wait out its deadline), and the
    /// cuts are still those of the whole input.
    #[test]
    fn the_next_window_is_read_while_one_is_sealed() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::time::{Duration, Instant};
        let params = small_params();
        let data = cairn_testkit::noise(2, 300_000);
        let read = AtomicU64::new(0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        let (mut got, mut base, mut overlapped, mut windows) = (Vec::new(), 0, 0, 0);
        // A second window of its own: another test may hold the shared one.
        let taken = AtomicBool::new(false);
        pool.install(|| {
            chunk_stream_with::<_, std::io::Error>(
                &taken,
                &data[..],
                &params,
                |buf, cs| {
                    windows += 1;
                    let end = (base + buf.len()) as u64;
                    let deadline = Instant::now() + Duration::from_secs(5);
                    let past = || read.load(Ordering::SeqCst) > end;
                    let all = || read.load(Ordering::SeqCst) == data.len() as u64;
                    while !past() && !all() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    overlapped += usize::from(past());
                    got.extend(cs.iter().map(|&(o, l)| (base + o, l)));
                    base += cs.last().map_or(0, |&(o, l)| o + l);
                    Ok(())
                },
                |n| {
                    read.fetch_add(n, Ordering::SeqCst);
                },
                |e| e,
            )
        })
        .expect("read from memory");
        assert!(windows >= 8, "{windows} windows");
        // Every window but those read after the input's end overlapped.
        assert!(
            overlapped >= windows - 2,
            "{overlapped} of {windows} windows"
        );
        assert_eq!(got, params.chunks(&data).collect::<Vec<_>>());
    }

    /// A reader that fails, or an `emit` that fails, ends the stream with
    /// that error; nothing is emitted after a failed `emit`.
    #[test]
    fn a_failed_read_or_emit_ends_the_stream() {
        struct FailsAt<'a>(&'a [u8], usize);
        impl Read for FailsAt<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.1 == 0 {
                    return Err(std::io::Error::other("disk gone"));
                }
                let n = buf.len().min(self.1).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                (self.0, self.1) = (&self.0[n..], self.1 - n);
                Ok(n)
            }
        }
        let params = small_params();
        let data = cairn_testkit::noise(3, 300_000);
        for second_taken in [false, true] {
            let taken = AtomicBool::new(second_taken);
            for fail_at in [0, 10_000, 100_000, 299_999] {
                let r = chunk_stream_with(
                    &taken,
                    FailsAt(&data, fail_at),
                    &params,
                    |_, _| Ok(()),
                    |_| {},
                    |e| e.to_string(),
                );
                assert_eq!(r, Err("disk gone".to_string()), "failing at {fail_at}");
            }
            for fail_on in 1..4 {
                let mut calls = 0;
                let r = chunk_stream_with(
                    &taken,
                    &data[..],
                    &params,
                    |_, _| {
                        calls += 1;
                        if calls == fail_on {
                            Err(format!("seal {calls}"))
                        } else {
                            Ok(())
                        }
                    },
                    |_| {},
                    |e| e.to_string(),
                );
                assert_eq!(r, Err(format!("seal {fail_on}")));
                assert_eq!(calls, fail_on, "no window emitted after a failed one");
            }
            assert_eq!(taken.into_inner(), second_taken, "given back");
        }
    }

    /// Chunking through the window must give the same cuts as chunking the
    /// whole input at once, for inputs around and across window boundaries.
    #[test]
    fn windowed_cut_points_equal_whole_input_cut_points() {
        let params = ChunkerParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
            normalization: 1,
            seed: 7,
        };
        let mut data = cairn_testkit::noise(1, 300_000);
        // A long run of zeros forces max-size cuts.
        data[100_000..160_000].fill(0);
        // Text-like data cuts near the average size, noise anywhere.
        let text = cairn_testkit::text(3, 300_000);
        let lengths = [0, 1, 1023, 4095, 4096, 4097, 16384, 24575, 24576, 24577];
        let more = [28_672, 49151, 49152, 49153, 100_000, 212_345, 300_000];
        for (data, len) in [&data, &text]
            .into_iter()
            .flat_map(|d| lengths.iter().chain(&more).map(move |&l| (d, l)))
        {
            let input = &data[..len];
            let whole: Vec<(usize, usize)> = params.chunks(input).collect();
            // Through two windows, and through one (the second is taken).
            for second_taken in [false, true] {
                let taken = AtomicBool::new(second_taken);
                let mut got = Vec::new();
                let mut base = 0;
                chunk_stream_with::<_, std::io::Error>(
                    &taken,
                    input,
                    &params,
                    |_, cs| {
                        got.extend(cs.iter().map(|&(o, l)| (base + o, l)));
                        base += cs.last().map_or(0, |&(o, l)| o + l);
                        Ok(())
                    },
                    |_| {},
                    |e| e,
                )
                .expect("read from memory");
                assert_eq!(
                    got, whole,
                    "input length {len}, second taken {second_taken}"
                );
                assert_eq!(taken.into_inner(), second_taken, "given back");
            }
        }
    }
}
