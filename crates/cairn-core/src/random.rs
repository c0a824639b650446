//! Sources of randomness, injected so that tests and golden vectors are
//! reproducible while production uses the operating system's generator.

/// Fills buffers with random bytes.
pub trait RandomSource: Send + Sync {
    /// Fills `buf` completely.
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's cryptographic generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // The OS generator failing is not recoverable and must never fall
        // back to weaker randomness: nonces would repeat.
        #[allow(clippy::expect_used)]
        getrandom::fill(buf).expect("the operating system's random generator failed");
    }
}

/// A deterministic stream from a seed (BLAKE3 in XOF mode, one counter per
/// call). **For tests and golden vectors only**: it makes nonces predictable.
#[derive(Debug)]
pub struct SeededRandom {
    seed: [u8; 32],
    counter: std::sync::atomic::AtomicU64,
}

impl SeededRandom {
    /// A stream determined entirely by `seed`.
    pub fn new(seed: u64) -> Self {
        SeededRandom {
            seed: *blake3::hash(&seed.to_le_bytes()).as_bytes(),
            counter: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl RandomSource for SeededRandom {
    fn fill(&self, buf: &mut [u8]) {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut h = blake3::Hasher::new_keyed(&self.seed);
        h.update(&n.to_le_bytes());
        h.finalize_xof().fill(buf);
    }
}
