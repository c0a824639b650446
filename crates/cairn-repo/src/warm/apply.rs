//! The requests and the wait of a warm-up: status rounds, restore
//! requests, polls. The decisions are `decide`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cairn_core::Id;
use cairn_store::{Availability, StoreError};
use futures::{StreamExt, TryStreamExt};

use super::decide::{
    Observed, PackState, WarmPlan, check_tier, estimate, plan_warm_up, slowest_typical,
};
use super::{WarmOptions, WarmReport, WarmTally};
use crate::{Error, Repository, Result, paths};

/// Status and restore requests in flight at once: each is a small request,
/// and a restore of a large tree plans thousands of packs.
const REQUEST_CONCURRENCY: usize = 16;
/// Longest sleep between two looks at `WarmOptions::stop`.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// Shortest time between two status rounds, whatever the options say: a
/// zero interval would send requests without pause.
const MIN_POLL: Duration = Duration::from_millis(100);

/// A warm-up in progress.
struct Warming<'a> {
    opts: &'a WarmOptions,
    /// The latest state of every planned pack.
    states: BTreeMap<Id, PackState>,
    /// Packs not readable yet.
    waiting: Vec<Id>,
    requested: usize,
    start: Instant,
    /// When the first pack became readable during the wait.
    first_done: Option<Instant>,
    /// Bytes that became readable during the wait.
    bytes_done: u64,
}

impl Warming<'_> {
    fn size(&self, id: &Id) -> u64 {
        match self.states.get(id) {
            Some(PackState::Present { size, .. }) => *size,
            _ => 0,
        }
    }

    fn readable(&self) -> impl Iterator<Item = (&Id, u64)> {
        self.states.iter().filter_map(|(id, s)| match s {
            PackState::Present {
                size,
                availability: Availability::Readable,
                ..
            } => Some((id, *size)),
            _ => None,
        })
    }

    fn tally(&self, done: bool) -> WarmTally {
        let now = Instant::now();
        let bytes = self.states.keys().map(|id| self.size(id)).sum();
        let (readable, readable_bytes) = self
            .readable()
            .fold((0, 0), |(n, b), (_, size)| (n + 1, b + size));
        let typical = slowest_typical(self.opts.tier, &self.states, &self.waiting);
        let seen = Observed {
            elapsed: now - self.start,
            bytes_done: self.bytes_done,
            since_first_done: self.first_done.map_or(Duration::ZERO, |t| now - t),
            bytes_left: self.waiting.iter().map(|id| self.size(id)).sum(),
        };
        WarmTally {
            packs: self.states.len(),
            bytes,
            readable,
            readable_bytes,
            requested: self.requested,
            elapsed: seen.elapsed,
            estimate: estimate(typical.map(|t| t.0), seen),
            typical: typical.map(|t| t.1),
            tier: self.opts.tier,
            done,
        }
    }

    fn observe(&self, done: bool) {
        if let Some(o) = &self.opts.observer {
            o(&self.tally(done));
        }
    }

    /// Sleeps one poll interval; false if asked to stop meanwhile.
    async fn sleep(&self) -> bool {
        let until = Instant::now() + self.opts.poll_interval.max(MIN_POLL);
        loop {
            if self.opts.stop.as_ref().is_some_and(|stop| stop()) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            tokio::time::sleep(STOP_CHECK.min(until - now)).await;
        }
    }
}

impl Repository {
    /// Warms `packs` up, whatever the settings say: asks each one's status,
    /// asks for the restore of those archived with no restore under way
    /// (never a second one for a pack already being restored), and with
    /// `opts.wait` polls those not readable every `opts.poll_interval`
    /// until all are. Packs the store lacks are counted, not waited for.
    pub async fn warm_packs(&self, packs: &BTreeSet<Id>, opts: &WarmOptions) -> Result<WarmReport> {
        let states = self.pack_states(packs.iter().copied().collect()).await?;
        let plan = plan_warm_up(&states);
        check_tier(opts.tier, &states, &plan).map_err(Error::InvalidArgument)?;
        let mut report = first_report(&states, &plan);
        let mut w = Warming {
            opts,
            states,
            waiting: plan.wait.clone(),
            requested: 0,
            start: Instant::now(),
            first_done: None,
            bytes_done: 0,
        };
        self.request_restores(&plan.request, opts).await?;
        w.requested = plan.request.len();
        w.observe(w.waiting.is_empty() || !opts.wait);
        let waited = Instant::now();
        while opts.wait && !w.waiting.is_empty() {
            if !w.sleep().await {
                break;
            }
            self.poll(&mut w, &mut report).await?;
            w.observe(w.waiting.is_empty());
        }
        report.requested = w.requested;
        report.readable_at_end = w.readable().count();
        report.waited_seconds = if opts.wait {
            waited.elapsed().as_secs_f64()
        } else {
            0.0
        };
        report.complete = w.waiting.is_empty();
        Ok(report)
    }

    /// One status round of the packs waited for: those readable now are
    /// done, those archived again (a restore that expired or was lost) are
    /// asked for again, those gone are counted missing.
    async fn poll(&self, w: &mut Warming<'_>, report: &mut WarmReport) -> Result<()> {
        let fresh = self.pack_states(w.waiting.clone()).await?;
        let plan = plan_warm_up(&fresh);
        check_tier(w.opts.tier, &fresh, &plan).map_err(Error::InvalidArgument)?;
        self.request_restores(&plan.request, w.opts).await?;
        w.requested += plan.request.len();
        report.missing += plan.missing.len();
        let now = Instant::now();
        w.states.extend(fresh);
        for id in &plan.ready {
            w.bytes_done += w.size(id);
            w.first_done.get_or_insert(now);
        }
        w.waiting = plan.wait;
        Ok(())
    }

    /// The status of each pack, asked a few at a time.
    pub(crate) async fn pack_states(&self, packs: Vec<Id>) -> Result<BTreeMap<Id, PackState>> {
        futures::stream::iter(packs)
            .map(|id| async move {
                let state = match self.store().status(&paths::pack(&id)).await {
                    Ok(s) => PackState::Present {
                        size: s.size,
                        class: s.storage_class,
                        availability: s.availability,
                    },
                    Err(StoreError::NotFound { .. }) => PackState::Missing,
                    Err(e) => return Err(Error::from(e)),
                };
                Ok((id, state))
            })
            .buffer_unordered(REQUEST_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Asks for the restore of each pack, a few at a time. A restore
    /// already under way (someone else asked since the status) is fine.
    pub(crate) async fn request_restores(&self, packs: &[Id], opts: &WarmOptions) -> Result<()> {
        // Owned ids: a stream of references, mapped to futures, makes the
        // caller's future not `Send` for every lifetime (rustc #102211).
        let (days, tier) = (opts.days, opts.tier.s3_name());
        futures::stream::iter(packs.to_vec())
            .map(|id| async move {
                self.store()
                    .request_restore(&paths::pack(&id), days, tier)
                    .await
                    .map(drop)
                    .map_err(Error::from)
            })
            .buffer_unordered(REQUEST_CONCURRENCY)
            .try_collect::<()>()
            .await
    }
}

/// The counts of a warm-up's first status round.
fn first_report(states: &BTreeMap<Id, PackState>, plan: &WarmPlan) -> WarmReport {
    let bytes = |ids: &mut dyn Iterator<Item = &Id>| -> u64 {
        ids.filter_map(|id| match states.get(id) {
            Some(PackState::Present { size, .. }) => Some(*size),
            _ => None,
        })
        .sum()
    };
    let restoring: Vec<&Id> = plan
        .wait
        .iter()
        .filter(|id| !plan.request.contains(id))
        .collect();
    WarmReport {
        planned: states.len(),
        planned_bytes: bytes(&mut states.keys()),
        already_readable: plan.ready.len(),
        already_readable_bytes: bytes(&mut plan.ready.iter()),
        requested: plan.request.len(),
        requested_bytes: bytes(&mut plan.request.iter()),
        already_restoring: restoring.len(),
        already_restoring_bytes: bytes(&mut restoring.into_iter()),
        missing: plan.missing.len(),
        ..WarmReport::default()
    }
}
