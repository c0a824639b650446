//! Warming packs up: before reading packs that may sit in an archival
//! storage class (S3 `GLACIER`, `DEEP_ARCHIVE`), ask each one's status,
//! ask for the restore of those archived, and wait until all are readable
//! (docs/ARCHIVAL.md, "Cold restores").
//!
//! The decision is [`plan_warm_up`], a function of the statuses; the
//! requests and the wait are [`Repository::warm_packs`]. The state lives
//! on the server: a run that is stopped and started again finds the packs
//! it asked for `Restoring` and asks nothing twice.

mod apply;
mod decide;

use std::sync::Arc;
use std::time::Duration;

pub use decide::{
    Observed, PackState, WarmPlan, check_tier, estimate, plan_warm_up, slowest_typical,
    typical_time,
};

/// When to warm packs up before reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WarmWhen {
    /// When the repository's settings put data packs in an archival class.
    #[default]
    Auto,
    /// Whatever the settings say: for buckets whose lifecycle rules move
    /// packs to an archival class. S3 stores only (others have none).
    Always,
    /// Never: reading an archived pack fails with
    /// [`cairn_store::StoreError::Archived`].
    Never,
}

/// How fast (and how dearly) S3 restores: its retrieval tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Minutes, the dearest; not offered by Deep Archive.
    Expedited,
    /// Hours.
    #[default]
    Standard,
    /// Many hours, the cheapest.
    Bulk,
}

impl Tier {
    /// The name S3 takes (`Expedited`, `Standard`, `Bulk`).
    pub fn s3_name(self) -> &'static str {
        match self {
            Tier::Expedited => "Expedited",
            Tier::Standard => "Standard",
            Tier::Bulk => "Bulk",
        }
    }

    /// `expedited`, `standard` or `bulk`, any case.
    pub fn parse(s: &str) -> Option<Tier> {
        match s.to_ascii_lowercase().as_str() {
            "expedited" => Some(Tier::Expedited),
            "standard" => Some(Tier::Standard),
            "bulk" => Some(Tier::Bulk),
            _ => None,
        }
    }
}

/// Called after each round of status requests, with where things stand.
pub type WarmObserver = Arc<dyn Fn(&WarmTally) + Send + Sync>;
/// Asked between polls whether to stop waiting.
pub type WarmStop = Arc<dyn Fn() -> bool + Send + Sync>;

/// How to warm packs up.
#[derive(Clone)]
#[non_exhaustive]
pub struct WarmOptions {
    /// Whether to at all, for reads that warm up on their own (restore,
    /// check); [`Repository::warm_packs`] itself always does.
    pub when: WarmWhen,
    /// Days a restored copy stays readable.
    pub days: u32,
    /// Retrieval tier of the restores asked for.
    pub tier: Tier,
    /// Time between two status rounds while waiting.
    pub poll_interval: Duration,
    /// Wait until every pack is readable (else only ask).
    pub wait: bool,
    /// Progress, after each status round.
    pub observer: Option<WarmObserver>,
    /// Stops the wait early (the report then says `complete: false`).
    pub stop: Option<WarmStop>,
}

impl Default for WarmOptions {
    fn default() -> Self {
        WarmOptions {
            when: WarmWhen::Auto,
            days: 7,
            tier: Tier::Standard,
            poll_interval: Duration::from_secs(60),
            wait: true,
            observer: None,
            stop: None,
        }
    }
}

impl std::fmt::Debug for WarmOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmOptions")
            .field("when", &self.when)
            .field("days", &self.days)
            .field("tier", &self.tier)
            .field("poll_interval", &self.poll_interval)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// Where a warm-up stands, for progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WarmTally {
    /// Packs to be read.
    pub packs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Of those, readable now.
    pub readable: usize,
    /// Their bytes.
    pub readable_bytes: u64,
    /// Restores asked for by this run so far.
    pub requested: usize,
    /// Since the warm-up started.
    pub elapsed: Duration,
    /// Time left until all are readable, if it can be told.
    pub estimate: Option<Duration>,
    /// The tier's typical time for the slowest class waited for, as AWS
    /// words it ("3–5 hours").
    pub typical: Option<&'static str>,
    /// The tier asked for.
    pub tier: Tier,
    /// True once the wait is over (or was not asked for).
    pub done: bool,
}

/// What a warm-up found and did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WarmReport {
    /// Packs that hold what is to be read.
    pub planned: usize,
    /// Their bytes.
    pub planned_bytes: u64,
    /// Readable when first asked (hot, or restored earlier).
    pub already_readable: usize,
    /// Their bytes.
    pub already_readable_bytes: u64,
    /// Restores this run asked for.
    pub requested: usize,
    /// Their bytes.
    pub requested_bytes: u64,
    /// Being restored already when first asked (an earlier run's request).
    pub already_restoring: usize,
    /// Their bytes.
    pub already_restoring_bytes: u64,
    /// Packs the store does not have.
    pub missing: usize,
    /// Readable at the end (all but the missing ones when the wait ran
    /// to its end).
    pub readable_at_end: usize,
    /// Seconds spent waiting.
    pub waited_seconds: f64,
    /// True when every pack present is readable (false without `wait`,
    /// or when stopped).
    pub complete: bool,
}

/// Whether reads of data packs should warm them up first: on S3 stores,
/// always with [`WarmWhen::Always`], and with [`WarmWhen::Auto`] when the
/// settings in force put data packs in an archival class.
pub fn should_warm(when: WarmWhen, is_s3: bool, data_class: Option<&str>) -> bool {
    is_s3
        && match when {
            WarmWhen::Never => false,
            WarmWhen::Always => true,
            WarmWhen::Auto => data_class.is_some_and(cairn_store::is_archival_class),
        }
}

impl crate::Repository {
    /// [`should_warm`] for this repository's store and settings.
    pub fn should_warm(&self, when: WarmWhen) -> bool {
        let settings = self.settings();
        should_warm(
            when,
            self.store().is_s3(),
            settings.as_ref().map(|s| s.data_class.as_str()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_ups_happen_on_s3_when_asked_or_when_the_data_class_is_archival() {
        use WarmWhen::*;
        let table = [
            (Auto, true, Some("GLACIER"), true),
            (Auto, true, Some("DEEP_ARCHIVE"), true),
            (Auto, true, Some("GLACIER_IR"), false),
            (Auto, true, Some(""), false),
            (Auto, true, None, false),
            (Always, true, None, true),
            (Always, false, Some("GLACIER"), false),
            (Auto, false, Some("GLACIER"), false),
            (Never, true, Some("GLACIER"), false),
        ];
        for (when, s3, class, want) in table {
            assert_eq!(
                should_warm(when, s3, class),
                want,
                "{when:?} {s3} {class:?}"
            );
        }
        assert_eq!(Tier::parse("BULK"), Some(Tier::Bulk));
        assert_eq!(Tier::parse("fast"), None);
        assert_eq!(Tier::Expedited.s3_name(), "Expedited");
    }
}
