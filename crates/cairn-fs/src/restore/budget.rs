//! A bound on the chunk bytes a restore holds at once, whatever the data.
//!
//! A chunk being restored is in memory twice (sealed and opened), and up to
//! [`FILE_CONCURRENCY`](super::FILE_CONCURRENCY) files ×
//! [`CHUNK_CONCURRENCY`](super::CHUNK_CONCURRENCY) chunks, or ranges of
//! small files, are read at once: with chunks of the 8 MiB maximum that was
//! up to 256 MiB. Every read now first takes its bytes from a [`Budget`]
//! and gives them back when its data is written. A read larger than the
//! whole budget takes all of it, and so runs alone. The semaphore is fair:
//! a large read waiting for room is not passed by smaller ones forever.

use tokio::sync::{Semaphore, SemaphorePermit};

/// The budget's unit of account.
const UNIT: u64 = 64 * 1024;

/// The chunk bytes a restore holds at most: 36 MiB, and with the 12 MiB
/// the repository's cache of opened bundles may hold beside them
/// (`cairn_repo`'s `bundles.rs`), 48 MiB of chunk data in all, the budget
/// before bundles. 48 MiB here and the bundle cache took a restore of the
/// PVC-like dataset to 94–99 MiB of peak RSS; 36 MiB, to 89–92 MiB, with
/// no change in time measurable (docs/PERFORMANCE.md).
pub(super) const BUDGET: u64 = 36 << 20;

/// See the module docs.
#[derive(Debug)]
pub(super) struct Budget {
    sem: Semaphore,
    units: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(BUDGET)
    }
}

impl Budget {
    /// A budget of `bytes` (at least one unit).
    pub(super) fn new(bytes: u64) -> Budget {
        let units = u32::try_from((bytes / UNIT).max(1)).unwrap_or(u32::MAX);
        Budget {
            sem: Semaphore::new(units as usize),
            units,
        }
    }

    /// Waits until `bytes` fit (all of the budget, if they are more), and
    /// holds them until the permit is dropped.
    pub(super) async fn hold(&self, bytes: u64) -> Option<SemaphorePermit<'_>> {
        let want = bytes.div_ceil(UNIT).clamp(1, u64::from(self.units));
        // The semaphore is never closed: `acquire_many` cannot fail.
        self.sem.acquire_many(want as u32).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn reads_wait_for_room_and_one_larger_than_the_budget_runs_alone() {
        let budget = Budget::new(4 * UNIT);
        let a = budget.hold(3 * UNIT).now_or_never().flatten();
        assert!(a.is_some(), "three units of four are free");
        assert!(
            budget.hold(2 * UNIT).now_or_never().is_none(),
            "two do not fit beside three"
        );
        let b = budget.hold(UNIT - 1).now_or_never().flatten();
        assert!(b.is_some(), "part of a unit counts as one, and it fits");
        drop((a, b));

        let all = budget.hold(100 * UNIT).now_or_never().flatten();
        assert!(all.is_some(), "more than the budget takes all of it");
        assert!(
            budget.hold(1).now_or_never().is_none(),
            "nothing runs beside it"
        );
        drop(all);
        assert!(budget.hold(4 * UNIT).now_or_never().flatten().is_some());
    }
}
