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

/// A clock read from a file holding seconds since the epoch, at every
/// tick: a clock several processes share and a test moves by rewriting
/// the file. The system clock while the file is missing or unreadable.
/// For tests.
#[derive(Debug)]
pub struct FileClock(pub std::path::PathBuf);

impl Clock for FileClock {
    fn now(&self) -> i64 {
        std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| SystemClock.now())
    }
}

/// The environment variable of the binaries' test clock (read only by
/// builds with their `testing` feature).
pub const TEST_NOW_VAR: &str = "CAIRN_TEST_NOW";

/// The test clock a `CAIRN_TEST_NOW` value names: a number of seconds
/// (a [`FixedClock`]) or `@FILE` (a [`FileClock`]); None for anything else.
pub fn test_clock(value: &str) -> Option<std::sync::Arc<dyn Clock>> {
    if let Some(file) = value.strip_prefix('@') {
        return Some(std::sync::Arc::new(FileClock(file.into())));
    }
    let secs = value.trim().parse::<i64>().ok()?;
    Some(std::sync::Arc::new(FixedClock::new(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_is_a_number_or_a_file() {
        assert_eq!(
            test_clock("1700000000").map(|c| c.now()),
            Some(1_700_000_000)
        );
        assert!(test_clock("soon").is_none());
        let dir = std::env::temp_dir().join(format!("cairn-clock-{}", std::process::id()));
        std::fs::write(&dir, "42").expect("write");
        let c = test_clock(&format!("@{}", dir.display())).expect("file clock");
        assert_eq!(c.now(), 42);
        std::fs::write(&dir, "43\n").expect("write");
        assert_eq!(c.now(), 43, "read at every tick");
        std::fs::remove_file(&dir).expect("remove");
        assert!(
            c.now() > 1_600_000_000,
            "the system clock once the file is gone"
        );
    }
}
