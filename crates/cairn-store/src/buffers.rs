//! Upload buffers with a hard limit on how many exist.
//!
//! A backup's largest allocations are the buffers of what it uploads: data
//! packs held whole (16 MiB by default) or the parts of packs streamed to
//! a remote store ([`crate::Spool`]), held while they fill, while they wait
//! and while they upload. [`BufferPool`] hands out at most `limit` buffers
//! at once; a writer that wants one more waits until an upload gives one
//! back (or ends, leaving its buffer to the store), so the memory they take
//! never exceeds `limit` × their capacity, whatever the input and however
//! slow the store. Returned buffers are reused: allocating a fresh one per
//! pack left the freed ones fragmenting the allocator (peak RSS twice the
//! memory in use).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// See the module docs.
#[derive(Debug)]
pub struct BufferPool {
    state: Mutex<State>,
    returned: Condvar,
    limit: usize,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Buffers given back, cleared, ready for the next pack.
    spare: Vec<Vec<u8>>,
    /// Buffers handed out and not yet given back or dropped.
    out: usize,
    /// The most ever out at once.
    peak: usize,
}

/// The place of one buffer handed out: given back with its buffer by
/// [`give_back`](Slot::give_back), or, if the buffer went elsewhere (an
/// upload that failed, or a store that kept a copy), freed when dropped.
#[derive(Debug)]
pub struct Slot {
    pool: Arc<BufferPool>,
}

impl BufferPool {
    /// At most `limit` (at least 1) buffers, each allocated with room for
    /// `capacity` bytes.
    pub fn new(limit: usize, capacity: usize) -> Arc<BufferPool> {
        Arc::new(BufferPool {
            state: Mutex::new(State::default()),
            returned: Condvar::new(),
            limit: limit.max(1),
            capacity,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An empty buffer and its slot, waiting while `limit` are out.
    pub fn take(self: &Arc<Self>) -> (Vec<u8>, Slot) {
        let mut s = self.lock();
        while s.spare.is_empty() && s.out >= self.limit {
            s = self.returned.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        self.hand_out(s)
    }

    /// An empty buffer and its slot at once, past the limit if every
    /// buffer is out: for the last bytes of a writer that must not wait
    /// (it runs on an async task, which the uploads giving buffers back
    /// may need). The excess is bounded by its caller.
    pub fn take_now(self: &Arc<Self>) -> (Vec<u8>, Slot) {
        self.hand_out(self.lock())
    }

    fn hand_out(self: &Arc<Self>, mut s: MutexGuard<'_, State>) -> (Vec<u8>, Slot) {
        let buf = s
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.capacity));
        s.out += 1;
        s.peak = s.peak.max(s.out);
        (buf, Slot { pool: self.clone() })
    }

    /// The capacity of each buffer.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Buffers handed out now, those plus the spares, and the most ever
    /// out at once (for tests and measurements).
    pub fn counts(&self) -> (usize, usize, usize) {
        let s = self.lock();
        (s.out, s.out + s.spare.len(), s.peak)
    }
}

impl Slot {
    /// Gives `buf` back for the next pack.
    pub fn give_back(self, mut buf: Vec<u8>) {
        buf.clear();
        self.pool.lock().spare.push(buf);
        // Dropping `self` now counts it as back and wakes a waiter.
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.lock().out -= 1;
        self.pool.returned.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn no_more_than_the_limit_are_out_and_a_waiter_gets_the_next_one_back() {
        let pool = BufferPool::new(2, 64);
        let (a, slot_a) = pool.take();
        let (_b, slot_b) = pool.take();
        assert_eq!(a.capacity(), 64);
        assert_eq!(pool.counts(), (2, 2, 2));

        // A third waits until one is given back, then reuses it.
        let p = pool.clone();
        let waiter = std::thread::spawn(move || {
            let (buf, slot) = p.take();
            (buf.capacity(), slot)
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "a third buffer was handed out");
        let mut a = a;
        a.extend_from_slice(b"pack");
        slot_a.give_back(a);
        let (capacity, slot_c) = waiter.join().expect("waiter");
        assert_eq!(capacity, 64);
        assert_eq!(pool.counts(), (2, 2, 2));

        // A slot dropped without its buffer (a failed upload) frees its
        // place: the next take allocates anew, still within the limit.
        drop(slot_b);
        let (fresh, _slot_d) = pool.take();
        assert!(fresh.is_empty());
        assert_eq!(pool.counts(), (2, 2, 2));
        drop(slot_c);
        assert_eq!(pool.counts(), (1, 1, 2));
        // The last bytes of a writer go past the limit rather than wait.
        let (_e, _slot_e) = pool.take_now();
        let (_f, _slot_f) = pool.take_now();
        assert_eq!(pool.counts(), (3, 3, 3));
    }
}
