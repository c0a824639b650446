//! Content-defined chunking parameters (FastCDC 2020 with normalisation).
//!
//! The parameters, including a per-repository gear seed, live in the config:
//! cut points are part of the format, so every writer of a repository must
//! chunk the same way for deduplication to work.

use fastcdc::v2020::{self, FastCDC, Normalization};

use crate::{Error, Result};

/// The chunking algorithm. Only one exists in format v1.
pub(crate) const ALGORITHM_FASTCDC_2020: u8 = 1;

/// FastCDC 2020 parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChunkerParams {
    /// Smallest chunk, except a file's last.
    pub min_size: u32,
    /// Target average chunk.
    pub avg_size: u32,
    /// Largest chunk.
    pub max_size: u32,
    /// Normalisation level, 0–3.
    pub normalization: u8,
    /// XORed into the gear table so that cut points, and therefore chunk
    /// sizes, differ between repositories and do not fingerprint content.
    pub seed: u64,
}

impl ChunkerParams {
    /// Defaults: min 512 KiB, average 1 MiB, max 8 MiB, normalisation level 1.
    pub fn with_seed(seed: u64) -> Self {
        ChunkerParams {
            min_size: 512 * 1024,
            avg_size: 1024 * 1024,
            max_size: 8 * 1024 * 1024,
            normalization: 1,
            seed,
        }
    }

    /// Checks the limits FastCDC 2020 requires.
    pub fn validate(&self) -> Result<()> {
        let (min, avg, max) = (
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        );
        let ok = (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&min)
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&avg)
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&max)
            && min < avg
            && avg < max
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0
            && self.normalization <= 3;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidParameter(format!(
                "chunker sizes min {min}, avg {avg}, max {max}, normalisation {}: need even sizes \
                 with {}<=min<=1MiB, 256<=avg<=4MiB, 1KiB<=max<=16MiB, min<avg<max, level<=3",
                self.normalization,
                v2020::MINIMUM_MIN
            )))
        }
    }

    fn level(&self) -> Normalization {
        match self.normalization {
            0 => Normalization::Level0,
            1 => Normalization::Level1,
            2 => Normalization::Level2,
            _ => Normalization::Level3,
        }
    }

    /// Splits `data` into chunks, yielding `(offset, length)` pairs that
    /// cover it exactly. Parameters must have passed [`validate`](Self::validate).
    pub fn chunks<'a>(&self, data: &'a [u8]) -> impl Iterator<Item = (usize, usize)> + 'a {
        FastCDC::with_level_and_seed(
            data,
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
            self.level(),
            self.seed,
        )
        .map(|c| (c.offset, c.length))
    }
}
