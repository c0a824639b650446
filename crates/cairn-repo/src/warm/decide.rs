//! What to do about each pack before reading it from archival storage, as
//! functions of what the store said: no I/O, no clock (elapsed times come
//! in as arguments).

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_core::Id;
use cairn_store::Availability;

use super::Tier;

/// One pack as a status request found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackState {
    /// The store has no such object (the restore reports the files that
    /// needed it, as it would without a warm-up).
    Missing,
    /// The object, its storage class and whether it can be read now.
    Present {
        /// Size in bytes.
        size: u64,
        /// Storage class (`STANDARD` when the server names none).
        class: String,
        /// Readable, being restored, or archived with no restore asked.
        availability: Availability,
    },
}

/// The decision for a set of packs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmPlan {
    /// Archived, no restore under way: ask for one.
    pub request: Vec<Id>,
    /// Every pack not readable yet: those in `request` and those whose
    /// restore an earlier run (or someone else) already asked for, which
    /// get no second request.
    pub wait: Vec<Id>,
    /// Readable now.
    pub ready: Vec<Id>,
    /// Not in the store.
    pub missing: Vec<Id>,
}

/// Sorts packs by what their status says to do.
pub fn plan_warm_up(states: &BTreeMap<Id, PackState>) -> WarmPlan {
    let mut plan = WarmPlan::default();
    for (id, state) in states {
        match state {
            PackState::Missing => plan.missing.push(*id),
            PackState::Present { availability, .. } => match availability {
                Availability::Readable => plan.ready.push(*id),
                Availability::Restoring => plan.wait.push(*id),
                Availability::Archived => {
                    plan.request.push(*id);
                    plan.wait.push(*id);
                }
            },
        }
    }
    plan
}

/// Refuses a tier the packs' class does not offer, before any request:
/// S3 has no expedited retrieval from Deep Archive.
pub fn check_tier(
    tier: Tier,
    states: &BTreeMap<Id, PackState>,
    plan: &WarmPlan,
) -> Result<(), String> {
    let deep = plan.request.iter().any(|id| {
        matches!(states.get(id), Some(PackState::Present { class, .. }) if class == "DEEP_ARCHIVE")
    });
    if deep && tier == Tier::Expedited {
        return Err(
            "expedited retrievals are not available for DEEP_ARCHIVE; use the standard or \
             bulk tier"
                .into(),
        );
    }
    Ok(())
}

/// How long a restore usually takes, from AWS's documentation of S3
/// Glacier Flexible Retrieval (`GLACIER`) and Deep Archive: the upper end
/// of the range and the range as AWS words it. `None` for other classes.
pub fn typical_time(class: &str, tier: Tier) -> Option<(Duration, &'static str)> {
    const MIN: u64 = 60;
    const HOUR: u64 = 3600;
    let (secs, text) = match (class, tier) {
        ("GLACIER", Tier::Expedited) => (5 * MIN, "1–5 minutes"),
        ("GLACIER", Tier::Standard) => (5 * HOUR, "3–5 hours"),
        ("GLACIER", Tier::Bulk) => (12 * HOUR, "5–12 hours"),
        ("DEEP_ARCHIVE", Tier::Standard) => (12 * HOUR, "within 12 hours"),
        ("DEEP_ARCHIVE", Tier::Bulk) => (48 * HOUR, "within 48 hours"),
        _ => return None,
    };
    Some((Duration::from_secs(secs), text))
}

/// The slowest typical time among the classes of the packs waited for
/// (they are read only once all are readable).
pub fn slowest_typical(
    tier: Tier,
    states: &BTreeMap<Id, PackState>,
    waiting: &[Id],
) -> Option<(Duration, &'static str)> {
    waiting
        .iter()
        .filter_map(|id| match states.get(id) {
            Some(PackState::Present { class, .. }) => typical_time(class, tier),
            _ => None,
        })
        .max_by_key(|(d, _)| *d)
}

/// What the wait has seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observed {
    /// Since the restores were asked for (or the wait began).
    pub elapsed: Duration,
    /// Bytes that became readable while waiting.
    pub bytes_done: u64,
    /// Time from the first of them to now.
    pub since_first_done: Duration,
    /// Bytes still being restored.
    pub bytes_left: u64,
}

/// Time left until every pack is readable: at the rate observed since the
/// first pack became readable, once there is one; before that, what is left
/// of the typical time. `None` when past the typical time with nothing
/// observed yet (any time now, or slower than usual).
pub fn estimate(typical: Option<Duration>, seen: Observed) -> Option<Duration> {
    if seen.bytes_left == 0 {
        return Some(Duration::ZERO);
    }
    if seen.bytes_done > 0 && !seen.since_first_done.is_zero() {
        let rate = seen.bytes_done as f64 / seen.since_first_done.as_secs_f64();
        return Some(Duration::from_secs_f64(seen.bytes_left as f64 / rate));
    }
    let typical = typical?;
    (typical > seen.elapsed).then(|| typical - seen.elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 32])
    }

    fn present(class: &str, availability: Availability) -> PackState {
        PackState::Present {
            size: 100,
            class: class.into(),
            availability,
        }
    }

    #[test]
    fn each_status_leads_to_one_decision() {
        use Availability::*;
        // (state, requested, waited for, ready, missing)
        let table = [
            (present("GLACIER", Archived), true, true, false, false),
            (present("DEEP_ARCHIVE", Archived), true, true, false, false),
            // Asked for by an earlier run: waited for, never asked again.
            (present("GLACIER", Restoring), false, true, false, false),
            (present("GLACIER", Readable), false, false, true, false),
            (present("STANDARD", Readable), false, false, true, false),
            (PackState::Missing, false, false, false, true),
        ];
        for (state, request, wait, ready, missing) in table {
            let states = BTreeMap::from([(id(1), state.clone())]);
            let plan = plan_warm_up(&states);
            let has = |v: &[Id]| v.contains(&id(1));
            assert_eq!(
                (
                    has(&plan.request),
                    has(&plan.wait),
                    has(&plan.ready),
                    has(&plan.missing)
                ),
                (request, wait, ready, missing),
                "{state:?}"
            );
        }
    }

    #[test]
    fn a_mixed_set_is_split_in_order() {
        use Availability::*;
        let states = BTreeMap::from([
            (id(4), present("GLACIER", Readable)),
            (id(1), present("GLACIER", Archived)),
            (id(3), PackState::Missing),
            (id(2), present("GLACIER", Restoring)),
            (id(5), present("GLACIER", Archived)),
        ]);
        let plan = plan_warm_up(&states);
        assert_eq!(plan.request, [id(1), id(5)]);
        assert_eq!(plan.wait, [id(1), id(2), id(5)]);
        assert_eq!(plan.ready, [id(4)]);
        assert_eq!(plan.missing, [id(3)]);
        assert_eq!(plan_warm_up(&BTreeMap::new()), WarmPlan::default());
    }

    #[test]
    fn deep_archive_has_no_expedited_tier() {
        use Availability::*;
        let deep = BTreeMap::from([(id(1), present("DEEP_ARCHIVE", Archived))]);
        let plan = plan_warm_up(&deep);
        assert!(check_tier(Tier::Expedited, &deep, &plan).is_err());
        assert!(check_tier(Tier::Bulk, &deep, &plan).is_ok());
        // Already restoring: nothing is asked, so no tier is involved.
        let restoring = BTreeMap::from([(id(1), present("DEEP_ARCHIVE", Restoring))]);
        let plan = plan_warm_up(&restoring);
        assert!(check_tier(Tier::Expedited, &restoring, &plan).is_ok());
    }

    #[test]
    fn typical_times_follow_the_class_and_tier() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        let table = [
            ("GLACIER", Tier::Expedited, Some(Duration::from_secs(300))),
            ("GLACIER", Tier::Standard, Some(h(5))),
            ("GLACIER", Tier::Bulk, Some(h(12))),
            ("DEEP_ARCHIVE", Tier::Standard, Some(h(12))),
            ("DEEP_ARCHIVE", Tier::Bulk, Some(h(48))),
            ("DEEP_ARCHIVE", Tier::Expedited, None),
            ("STANDARD", Tier::Standard, None),
        ];
        for (class, tier, want) in table {
            assert_eq!(
                typical_time(class, tier).map(|t| t.0),
                want,
                "{class} {tier:?}"
            );
        }
        use Availability::*;
        let states = BTreeMap::from([
            (id(1), present("GLACIER", Archived)),
            (id(2), present("DEEP_ARCHIVE", Restoring)),
            (id(3), present("DEEP_ARCHIVE", Readable)),
        ]);
        let slowest = slowest_typical(Tier::Standard, &states, &[id(1), id(2)]);
        assert_eq!(slowest.map(|t| t.0), Some(h(12)));
        let glacier_only = slowest_typical(Tier::Standard, &states, &[id(1)]);
        assert_eq!(glacier_only.map(|t| t.0), Some(h(5)));
    }

    #[test]
    fn estimates_start_from_the_typical_time_and_follow_the_observed_rate() {
        let s = Duration::from_secs;
        let typical = Some(s(5 * 3600));
        let seen = |elapsed, done, since, left| Observed {
            elapsed: s(elapsed),
            bytes_done: done,
            since_first_done: s(since),
            bytes_left: left,
        };
        let table = [
            // Nothing readable yet: what is left of the typical time.
            (typical, seen(3600, 0, 0, 100), Some(s(4 * 3600))),
            // Past it: unknown.
            (typical, seen(6 * 3600, 0, 0, 100), None),
            (None, seen(10, 0, 0, 100), None),
            // Some done, but all in the same poll: no rate yet.
            (typical, seen(3600, 50, 0, 50), Some(s(4 * 3600))),
            // 100 bytes in 10 s since the first; 300 left: 30 s.
            (typical, seen(3 * 3600, 100, 10, 300), Some(s(30))),
            (None, seen(20, 100, 10, 300), Some(s(30))),
            // All done.
            (typical, seen(60, 0, 0, 0), Some(Duration::ZERO)),
        ];
        for (typical, observed, want) in table {
            assert_eq!(estimate(typical, observed), want, "{observed:?}");
        }
    }
}
