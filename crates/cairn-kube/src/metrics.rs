//! Prometheus metrics of both binaries. Labels are bounded: the kind of
//! job, a phase, a resource type, `ok`/`error` — never error text. The
//! per-claim gauges of the controller carry the claim's namespace and name:
//! one series per claim that was ever backed up, as many as the cluster has
//! claims.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::Phase;
use crate::job::JobKind;

/// `kind="backup"` or `kind="restore"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// Backup or restore.
    pub kind: &'static str,
}

/// A job kind and the phase it reached.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Backup or restore.
    pub kind: &'static str,
    /// The phase reached.
    pub phase: &'static str,
}

/// A claim, for the per-claim gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClaimLabels {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub claim: String,
}

/// A repository, for the maintenance series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepositoryLabels {
    /// The BackupRepository's namespace.
    pub namespace: String,
    /// Its name.
    pub repository: String,
}

/// `result="ok"` or `result="error"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// A reconciled resource type and how it went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `volumebackup`, `volumerestore`, `backupschedule`, `backuprepository`.
    pub resource: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

fn duration_histogram() -> Histogram {
    // 1 s … about 9 h.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// Every metric; each binary registers the ones it updates.
#[derive(Debug)]
pub struct Metrics {
    /// Bytes read by backups and written by restores.
    pub bytes: Family<KindLabel, Counter>,
    /// Files finished by backups and restores.
    pub files: Family<KindLabel, Counter>,
    /// How long jobs ran, from start to a final phase.
    pub duration: Family<KindLabel, Histogram, fn() -> Histogram>,
    /// Jobs that reached a final phase (agent) or a transition the
    /// controller made.
    pub outcomes: Family<OutcomeLabels, Counter>,
    /// Jobs waiting on this node for a free slot.
    pub queued: Family<KindLabel, Gauge>,
    /// Jobs running on this node.
    pub running: Family<KindLabel, Gauge>,
    /// Reconciles by resource and result (controller).
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// VolumeBackups created by schedules.
    pub scheduled: Counter,
    /// Snapshots forgotten by retention.
    pub forgotten: Counter,
    /// Helper pods created for claims no pod mounts.
    pub helper_pods: Counter,
    /// When each claim's newest successful backup completed (seconds
    /// since the epoch).
    pub last_backup: Family<ClaimLabels, Gauge>,
    /// How many bytes that backup read (the claim's size in files).
    pub last_backup_bytes: Family<ClaimLabels, Gauge>,
    /// Maintenance runs recorded, by result.
    pub maintenance_runs: Family<ResultLabel, Counter>,
    /// When each repository's last successful maintenance run was recorded.
    pub last_maintenance: Family<RepositoryLabels, Gauge>,
    /// Bytes maintenance freed, per repository.
    pub reclaimed: Family<RepositoryLabels, Counter>,
}

impl Metrics {
    fn empty() -> Metrics {
        Metrics {
            bytes: Family::default(),
            files: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            outcomes: Family::default(),
            queued: Family::default(),
            running: Family::default(),
            reconciles: Family::default(),
            scheduled: Counter::default(),
            forgotten: Counter::default(),
            helper_pods: Counter::default(),
            last_backup: Family::default(),
            last_backup_bytes: Family::default(),
            maintenance_runs: Family::default(),
            last_maintenance: Family::default(),
            reclaimed: Family::default(),
        }
    }

    /// The agent's metrics and their registry.
    pub fn agent() -> (std::sync::Arc<Metrics>, Registry) {
        let m = Metrics::empty();
        // Every series exists from the start, at zero.
        for kind in [JobKind::Backup, JobKind::Restore] {
            let k = Metrics::kind(kind);
            let _ = m.bytes.get_or_create(&k);
            let _ = m.files.get_or_create(&k);
            let _ = m.queued.get_or_create(&k);
            let _ = m.running.get_or_create(&k);
        }
        let mut r = Registry::with_prefix("cairn_agent");
        r.register(
            "processed_bytes",
            "Bytes read by backups and written by restores",
            m.bytes.clone(),
        );
        r.register(
            "processed_files",
            "Files finished by backups and restores",
            m.files.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Time from a job's start to its final phase",
            m.duration.clone(),
        );
        r.register(
            "jobs_finished",
            "Jobs that reached a final phase, by kind and phase",
            m.outcomes.clone(),
        );
        r.register(
            "jobs_queued",
            "Jobs waiting for a free slot on this node",
            m.queued.clone(),
        );
        r.register(
            "jobs_running",
            "Jobs running on this node",
            m.running.clone(),
        );
        (std::sync::Arc::new(m), r)
    }

    /// The controller's metrics and their registry.
    pub fn controller() -> (std::sync::Arc<Metrics>, Registry) {
        let m = Metrics::empty();
        let mut r = Registry::with_prefix("cairn_controller");
        r.register(
            "reconciles",
            "Reconciles by resource and result",
            m.reconciles.clone(),
        );
        r.register(
            "job_transitions",
            "Job phase changes made by the controller",
            m.outcomes.clone(),
        );
        r.register(
            "scheduled_backups",
            "VolumeBackups created by schedules",
            m.scheduled.clone(),
        );
        r.register(
            "forgotten_snapshots",
            "Snapshots forgotten by schedule retention",
            m.forgotten.clone(),
        );
        r.register(
            "helper_pods",
            "Helper pods created for claims no pod mounts",
            m.helper_pods.clone(),
        );
        r.register(
            "last_successful_backup_timestamp_seconds",
            "When the newest completed backup of each claim finished",
            m.last_backup.clone(),
        );
        r.register(
            "last_successful_backup_bytes",
            "Bytes the newest completed backup of each claim read",
            m.last_backup_bytes.clone(),
        );
        r.register(
            "maintenance_runs",
            "Scheduled repository maintenance runs recorded, by result",
            m.maintenance_runs.clone(),
        );
        r.register(
            "last_successful_maintenance_timestamp_seconds",
            "When each repository's last successful maintenance run was recorded",
            m.last_maintenance.clone(),
        );
        r.register(
            "maintenance_reclaimed_bytes",
            "Bytes of storage maintenance freed, per repository",
            m.reclaimed.clone(),
        );
        (std::sync::Arc::new(m), r)
    }

    /// Counts a job reaching `phase`.
    pub fn outcome(&self, kind: JobKind, phase: Phase) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                kind: kind.as_str(),
                phase: phase.as_str(),
            })
            .inc();
    }

    /// Records a completed backup of `namespace/claim` that finished at
    /// `at` (seconds since the epoch) and read `bytes`, unless a newer one
    /// is recorded already (reconciles come in any order).
    pub fn backup_completed(&self, namespace: &str, claim: &str, at: i64, bytes: u64) {
        let labels = ClaimLabels {
            namespace: namespace.to_owned(),
            claim: claim.to_owned(),
        };
        let last = self.last_backup.get_or_create(&labels);
        if at > last.get() {
            last.set(at);
            self.last_backup_bytes
                .get_or_create(&labels)
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }

    /// Records a maintenance run of `namespace/repository` recorded at `at`.
    pub fn maintenance_done(
        &self,
        namespace: &str,
        repository: &str,
        ok: bool,
        reclaimed: u64,
        at: i64,
    ) {
        let result = if ok { "ok" } else { "error" };
        self.maintenance_runs
            .get_or_create(&ResultLabel { result })
            .inc();
        let labels = RepositoryLabels {
            namespace: namespace.to_owned(),
            repository: repository.to_owned(),
        };
        self.reclaimed.get_or_create(&labels).inc_by(reclaimed);
        if ok {
            self.last_maintenance.get_or_create(&labels).set(at);
        }
    }

    /// Counts one reconcile.
    pub fn reconciled(&self, resource: &'static str, ok: bool) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                resource,
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// The label for `kind`.
    pub fn kind(kind: JobKind) -> KindLabel {
        KindLabel {
            kind: kind.as_str(),
        }
    }
}

/// The text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_metrics_render_with_bounded_labels() {
        let (m, r) = Metrics::agent();
        m.bytes
            .get_or_create(&Metrics::kind(JobKind::Backup))
            .inc_by(4096);
        m.outcome(JobKind::Backup, Phase::Completed);
        m.duration
            .get_or_create(&Metrics::kind(JobKind::Restore))
            .observe(3.0);
        m.queued
            .get_or_create(&Metrics::kind(JobKind::Backup))
            .set(2);
        let text = render(&r);
        assert!(
            text.contains(r#"cairn_agent_processed_bytes_total{kind="backup"} 4096"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cairn_agent_jobs_finished_total{kind="backup",phase="Completed"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cairn_agent_job_duration_seconds_bucket{le="4.0",kind="restore"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cairn_agent_jobs_queued{kind="backup"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn controller_metrics_render() {
        let (m, r) = Metrics::controller();
        m.reconciled("volumebackup", true);
        m.scheduled.inc();
        let text = render(&r);
        assert!(
            text.contains(
                r#"cairn_controller_reconciles_total{resource="volumebackup",result="ok"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("cairn_controller_scheduled_backups_total 1"),
            "{text}"
        );
    }

    #[test]
    fn the_newest_completed_backup_of_each_claim_is_reported() {
        let (m, r) = Metrics::controller();
        m.backup_completed("shop", "db", 2000, 4096);
        // An older backup reconciled later changes nothing.
        m.backup_completed("shop", "db", 1000, 1);
        m.backup_completed("billing", "db", 1500, 10);
        let text = render(&r);
        for line in [
            r#"cairn_controller_last_successful_backup_timestamp_seconds{namespace="shop",claim="db"} 2000"#,
            r#"cairn_controller_last_successful_backup_bytes{namespace="shop",claim="db"} 4096"#,
            r#"cairn_controller_last_successful_backup_timestamp_seconds{namespace="billing",claim="db"} 1500"#,
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }
}
