//! Seeded, deterministic test data: incompressible noise from xorshift64
//! and compressible text, the same bytes on every run and machine.

/// xorshift64 (Marsaglia): tiny, fast, and good enough for test data. Not
/// for anything that needs real randomness.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// The generator for `seed`. Seeds are spread by a multiplication so
    /// that neighbouring seeds give unrelated streams.
    pub fn new(seed: u64) -> XorShift {
        // Zero is xorshift's one fixed point; `| 1` keeps the state odd.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The generator starting from exactly `state`, for tests whose data
    /// must stay byte for byte what it was (golden vectors).
    ///
    /// # Panics
    /// If `state` is zero, the one state xorshift never leaves.
    pub fn from_state(state: u64) -> XorShift {
        assert_ne!(state, 0, "xorshift64 stays at zero forever");
        XorShift(state)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `buf`, eight bytes (little-endian) per step.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let last = self.next_u64().to_le_bytes();
            rest.copy_from_slice(&last[..rest.len()]);
        }
    }

    /// `len` bytes, eight per step (see [`fill`](Self::fill)).
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill(&mut v);
        v
    }

    /// `len` bytes, one per step: the low byte of each state. Eight times
    /// slower than [`bytes`](Self::bytes); it reproduces data that older
    /// tests generated this way.
    pub fn low_bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// `len` bytes of incompressible data, the same for the same `seed`.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    XorShift::new(seed).bytes(len)
}

/// `len` bytes of compressible, source-code-like text (zstd shrinks it
/// several times over), the same for the same `seed`.
pub fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 10] = [
        "fn ", "let ", "cairn ", "chunk ", "(x) ", "{\n", "}\n", "self.", "0x1f ", "// why\n",
    ];
    let mut x = seed;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        // A 64-bit LCG (Knuth's MMIX constants): its high bits pick words.
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.extend_from_slice(WORDS[(x >> 33) as usize % WORDS.len()].as_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_others_differ() {
        assert_eq!(noise(1, 1000), noise(1, 1000));
        assert_ne!(noise(1, 1000), noise(2, 1000));
        // A shorter run is a prefix of a longer one.
        assert_eq!(noise(5, 13), noise(5, 100)[..13]);
        assert_eq!(text(7, 50), text(7, 500)[..50]);
        assert_eq!(noise(3, 0), Vec::<u8>::new());
    }

    #[test]
    fn the_stream_is_the_one_the_tests_were_written_against() {
        // The first step from seed 1, by hand: state 0x9E37_79B9_7F4A_7C15.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        assert_eq!(noise(1, 8), x.to_le_bytes());
        assert_eq!(
            XorShift::from_state(0x9E37_79B9_7F4A_7C15).low_bytes(1),
            [x as u8]
        );
    }

    #[test]
    fn noise_is_incompressible_and_text_is_not() {
        let n = noise(9, 1 << 16);
        let t = text(9, 1 << 16);
        // Byte frequencies: noise close to flat, text a few words' letters.
        let distinct = |b: &[u8]| {
            let mut seen = [false; 256];
            b.iter().for_each(|&c| seen[c as usize] = true);
            seen.iter().filter(|s| **s).count()
        };
        assert!(cairn_core::looks_incompressible(&n));
        assert!(!cairn_core::looks_incompressible(&t));
        assert_eq!(distinct(&n), 256);
        assert!(distinct(&t) < 40, "{}", distinct(&t));
        let mut counts = [0usize; 256];
        n.iter().for_each(|&c| counts[c as usize] += 1);
        let (lo, hi) = (counts.iter().min(), counts.iter().max());
        assert!(lo >= Some(&150) && hi <= Some(&370), "{lo:?}..{hi:?}");
    }
}
