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

/// The current time, injected so that retention, grace periods and golden
/// vectors can run on a fixed or simulated clock.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;

    /// True if the readings are the real time, so they can be compared
    /// with the timestamps a storage server puts on objects (clock skew is
    /// then measured and refused beyond a bound). Test clocks say no: their
    /// skew is measured but tolerated.
    fn is_wall_clock(&self) -> bool {
        false
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }

    fn is_wall_clock(&self) -> bool {
        true
    }
}

/// A clock that stays where it is set. For tests.
#[derive(Debug, Default)]
pub struct FixedClock(pub std::sync::atomic::AtomicI64);

impl FixedClock {
    /// A clock showing `secs`.
    pub fn new(secs: i64) -> Self {
        FixedClock(std::sync::atomic::AtomicI64::new(secs))
    }
    /// Moves the clock.
    pub fn set(&self, secs: i64) {
        self.0.store(secs, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}
