//! Reading a file and cutting it into chunks with bounded memory.
//!
//! The file is read through a window of one and a half maximum chunk sizes
//! (12 MiB by default; two, the earlier size, cost 8 MiB more per thread
//! reading a large file and gained nothing measurable). FastCDC
//! decides each cut only from the bytes between the chunk's start and at
//! most `max_size` beyond it, so a chunk is final once that span is in the
//! window (or the file ended): the cut points are exactly those of chunking
//! the whole file at once, whatever the window size.

use std::io::Read;

use cairn_core::ChunkerParams;

/// Reads `r` to the end, calling `emit` with each window of the buffer and
/// the `(offset, length)` chunks that are final in it. Returns bytes read.
pub(crate) fn chunk_stream<R: Read, E>(
    mut r: R,
    params: &ChunkerParams,
    mut emit: impl FnMut(&[u8], &[(usize, usize)]) -> Result<(), E>,
    mut on_read: impl FnMut(u64),
    io_err: impl Fn(std::io::Error) -> E,
) -> Result<u64, E> {
    let max = params.max_size as usize;
    let window = max + max / 2;
    let mut buf = Window::take();
    let mut total = 0u64;
    let mut eof = false;
    loop {
        // Fill the window, growing the buffer only as the file needs it so
        // small files cost small buffers: `read_to_end` grows the vector as
        // bytes arrive (resizing to the request first would allocate and
        // zero a maximum-size chunk for every file, even an empty one).
        while !eof && buf.len() < window {
            let want = (window - buf.len()).min(max);
            // Room for the whole window, exactly: `read_to_end` growing the
            // vector itself doubles it past the window (to 16 MiB for a
            // 12 MiB window). Reserved, not written: a small file touches
            // only the pages it fills.
            buf.0.reserve_exact(window - buf.len());
            let n = r
                .by_ref()
                .take(want as u64)
                .read_to_end(&mut buf.0)
                .map_err(&io_err)?;
            // Fewer bytes than asked for: the reader reached its end.
            eof = n < want;
            if n > 0 {
                total += n as u64;
                on_read(n as u64);
            }
        }
        if buf.is_empty() {
            return Ok(total);
        }
        // A cut found before the window's end is final: FastCDC decides a
        // cut at position p from the bytes before p alone (with fewer than
        // the average size left it only stops testing the large mask,
        // which applies from the average size on, past the data anyway).
        // A chunk that ends at the window's end stopped for lack of data,
        // and waits for the next pass. So each pass yields all but the last
        // chunk of the window, not only those starting in its first half
        // maximum chunk: a third as many passes, each with more chunks to
        // seal in parallel, and less of the window moved down after each.
        let chunks: Vec<(usize, usize)> = params
            .chunks(&buf)
            .take_while(|&(off, len)| eof || off + len < buf.len())
            .collect();
        emit(&buf, &chunks)?;
        let consumed = chunks.last().map_or(0, |&(o, l)| o + l);
        buf.drain(..consumed);
        if eof && buf.is_empty() {
            return Ok(total);
        }
    }
}

/// A read window, returned on drop to a small pool for the next file: a
/// window grows to one and a half maximum chunks (12 MiB by default), and allocating
/// and freeing one per file left the allocator holding several times the
/// memory in use.
struct Window(Vec<u8>);

/// Windows kept for reuse: one per thread that reads files at once.
static SPARE: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

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
            let mut got = Vec::new();
            let mut base = 0;
            chunk_stream::<_, std::io::Error>(
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
            assert_eq!(got, whole, "input length {len}");
        }
    }
}
