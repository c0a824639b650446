//! The node agent: runs the VolumeBackups and VolumeRestores assigned to
//! its node, reaching each volume through the kubelet's pods directory.
//!
//! [`decide`] is the pure reconciler; [`runner`] runs one job; [`engine`]
//! calls the cairn engine; [`volume`] finds volumes on disk; [`lease`] is
//! the heartbeat the controller watches.

pub mod decide;
pub mod engine;
pub mod lease;
pub mod runner;
pub mod volume;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::Semaphore;

use self::decide::{AgentAction, AgentFacts};
use self::runner::{RunHandle, release};
use crate::clock::Clock;
use crate::crd::{Phase, VolumeBackup, VolumeRestore, time_from_secs};
use crate::http::Health;
use crate::job::Job;
use crate::kubeutil::{event, ready_condition, transition, wall_now};
use crate::metrics::Metrics;
use crate::names::{AGENT_FINALIZER, NODE_LABEL, node_label};
use crate::{Error, Result};

/// How the agent runs.
#[derive(Clone)]
pub struct Config {
    /// This node's name.
    pub node: String,
    /// The kubelet's root directory as the agent sees it, for backups
    /// (mounted read-only where the deployment allows).
    pub kubelet_root: PathBuf,
    /// The same directory mounted read-write, used only by restores.
    pub restore_root: PathBuf,
    /// Namespace for the agent's Lease (where cairn is installed).
    pub namespace: String,
    /// Cluster name recorded in snapshots (may be empty).
    pub cluster: String,
    /// Jobs run at once on this node; more wait, Assigned.
    pub max_concurrent: usize,
    /// How often running jobs patch their progress.
    pub progress_interval: Duration,
    /// How often the Lease is renewed.
    pub lease_interval: Duration,
    /// How long to wait for a volume to appear (a helper pod starting).
    pub volume_wait: Duration,
    /// Runs of one job before an agent restart mid-run fails it.
    pub max_attempts: u32,
    /// Cache for remote repositories.
    pub cache_dir: Option<PathBuf>,
    /// Local disk a repository's merged index table may take, in bytes
    /// (`None`: the library's default, 1 GiB).
    pub index_table_limit: Option<u64>,
    /// This process's id, recorded in the jobs it runs.
    pub agent_id: String,
    /// Clock for snapshot times.
    pub clock: Arc<dyn Clock>,
    /// The administrator namespaces (see [`crate::trust`]); the agent checks
    /// every job again, from objects it reads itself.
    pub admins: crate::trust::Admins,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("node", &self.node)
            .field("kubelet_root", &self.kubelet_root)
            .field("namespace", &self.namespace)
            .field("max_concurrent", &self.max_concurrent)
            .field("agent_id", &self.agent_id)
            .field("admins", &self.admins)
            .finish_non_exhaustive()
    }
}

/// The agent's shared state.
pub struct Agent {
    /// The API client.
    pub client: Client,
    /// Settings.
    pub config: Config,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes events.
    pub recorder: Recorder,
    /// Free job slots on this node.
    pub slots: Arc<Semaphore>,
    runs: Mutex<HashMap<String, Arc<RunHandle>>>,
    /// Set when the process is told to stop: runs end without a final
    /// phase, so the next agent resumes them.
    shutting_down: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Agent {
    fn run_of(&self, uid: &str) -> Option<Arc<RunHandle>> {
        self.runs.lock().ok()?.get(uid).cloned()
    }
    /// Registers a new run; None if one exists already.
    fn claim_run(&self, uid: &str) -> Option<Arc<RunHandle>> {
        let mut runs = self.runs.lock().ok()?;
        if runs.contains_key(uid) {
            return None;
        }
        let h = Arc::new(RunHandle::default());
        runs.insert(uid.to_owned(), h.clone());
        Some(h)
    }
    pub(crate) fn forget_run(&self, uid: &str) {
        if let Ok(mut runs) = self.runs.lock() {
            runs.remove(uid);
        }
    }
    /// Whether the process is stopping (see [`Agent::begin_shutdown`]).
    pub(crate) fn shutting_down(&self) -> bool {
        self.shutting_down
            .load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Stops every run for a shutdown: a backup stops reading, waits for
    /// its uploads in flight and indexes them, so the agent that resumes
    /// the job reuses everything uploaded; no run records a final phase.
    fn begin_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(runs) = self.runs.lock() {
            for h in runs.values() {
                h.stop();
            }
        }
    }
    /// Waits until every run has ended, at most `limit`.
    async fn drain(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.runs.lock().map(|r| !r.is_empty()).unwrap_or(false)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// SIGTERM (what the kubelet sends) or Ctrl-C.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// A unique id for this agent process.
pub fn new_agent_id(node: &str) -> String {
    let mut r = [0u8; 4];
    let _ = getrandom_bytes(&mut r);
    format!("{node}/{}-{}", std::process::id(), hex4(&r))
}

fn getrandom_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

fn hex4(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn reconcile<J: Job>(job: Arc<J>, agent: Arc<Agent>) -> Result<Requeue> {
    let uid = job.uid_str();
    let handle = agent.run_of(&uid);
    let status = job.job_status();
    let facts = AgentFacts {
        phase: job.phase(),
        cancel: job.cancel(),
        deleting: job.deleting(),
        has_finalizer: job.has_finalizer(AGENT_FINALIZER),
        mine: job.node() == Some(agent.config.node.as_str()),
        attempts: status.map(|s| s.attempts).unwrap_or(0),
        running_here: handle.is_some(),
        stop_sent: handle.as_ref().is_some_and(|h| h.stopping()),
    };
    let api: Api<J> = Api::namespaced(agent.client.clone(), &job.ns());
    let name = job.name_str();
    for action in decide::decide(&facts, agent.config.max_attempts) {
        match action {
            AgentAction::Start | AgentAction::Resume => {
                if let Some(h) = agent.claim_run(&uid) {
                    let resume = action == AgentAction::Resume;
                    tokio::spawn(runner::run(agent.clone(), job.clone(), h, resume));
                }
            }
            AgentAction::Stop => {
                if let Some(h) = &handle {
                    h.stop();
                }
            }
            AgentAction::MarkCanceled { from } => {
                end(
                    &agent,
                    &api,
                    job.as_ref(),
                    from,
                    Phase::Canceled,
                    "canceled",
                    &[],
                )
                .await?;
            }
            AgentAction::GiveUp { message } => {
                let guard = [("/status/attempts", json!(facts.attempts))];
                end(
                    &agent,
                    &api,
                    job.as_ref(),
                    Phase::InProgress,
                    Phase::Failed,
                    &message,
                    &guard,
                )
                .await?;
            }
            AgentAction::RemoveFinalizer => release(&api, &name).await?,
        }
    }
    Ok(if facts.phase.is_terminal() {
        Requeue::await_change()
    } else {
        Requeue::requeue(Duration::from_secs(60))
    })
}

/// Moves a job that is not running here to a final phase.
async fn end<J: Job>(
    agent: &Agent,
    api: &Api<J>,
    job: &J,
    from: Phase,
    to: Phase,
    message: &str,
    guard: &[(&str, serde_json::Value)],
) -> Result<()> {
    let mut expect = vec![
        ("/status/phase", json!(from)),
        ("/status/node", json!(agent.config.node)),
    ];
    expect.extend(guard.iter().cloned());
    let done = transition(
        api,
        &job.name_str(),
        &expect,
        &[
            ("/status/phase", json!(to)),
            ("/status/message", json!(message)),
            ("/status/completionTime", json!(time_from_secs(wall_now()))),
            ("/status/conditions", json!([ready_condition(to, message)])),
        ],
    )
    .await?;
    if done {
        agent.metrics.outcome(J::KIND, to);
        event(
            &agent.recorder,
            job,
            to == Phase::Failed,
            to.as_str(),
            message.to_owned(),
        )
        .await;
    }
    release(api, &job.name_str()).await
}

fn error_policy<J>(_: Arc<J>, err: &Error, _: Arc<Agent>) -> Requeue {
    tracing::warn!(error = %err, "agent reconcile failed; retrying");
    Requeue::requeue(Duration::from_secs(2))
}

fn controller<J: Job>(client: &Client, node: &str) -> Controller<J> {
    let wc = watcher::Config::default().labels(&format!("{NODE_LABEL}={}", node_label(node)));
    Controller::new(Api::<J>::all(client.clone()), wc)
}

/// How long a stopping agent waits for its runs to index their uploads
/// (deploy/ gives the pod 30 s to end).
const DRAIN: Duration = Duration::from_secs(25);

/// Runs the agent until the process is told to stop ([`shutdown_signal`]).
pub async fn run(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<()> {
    run_until(client, config, metrics, health, shutdown_signal()).await
}

/// Runs the agent until `stop` completes; then stops its runs so that what
/// they uploaded is indexed, and leaves their jobs for the next agent.
pub async fn run_until(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    if config.node.is_empty() {
        return Err(Error::Invalid(
            "the node name is empty (set --node-name or NODE_NAME)".into(),
        ));
    }
    tokio::spawn(lease::heartbeat(
        client.clone(),
        config.namespace.clone(),
        config.node.clone(),
        config.lease_interval,
    ));
    let reporter = Reporter {
        controller: "cairn-agent".into(),
        instance: Some(config.agent_id.clone()),
    };
    let agent = Arc::new(Agent {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        slots: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
        runs: Mutex::new(HashMap::new()),
        shutting_down: Default::default(),
        config,
        metrics,
    });
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let stopping = agent.clone();
    tokio::spawn({
        let stopped = stopped(rx.clone());
        async move {
            stopped.await;
            tracing::info!("stopping: runs index their uploads and are left for the next agent");
            stopping.begin_shutdown();
        }
    });
    let backups = controller::<VolumeBackup>(&client, &agent.config.node)
        .graceful_shutdown_on(stopped(rx.clone()))
        .run(reconcile::<VolumeBackup>, error_policy, agent.clone());
    let restores = controller::<VolumeRestore>(&client, &agent.config.node)
        .graceful_shutdown_on(stopped(rx))
        .run(reconcile::<VolumeRestore>, error_policy, agent.clone());
    health.set_ready();
    tokio::join!(
        backups.for_each(|_| async {}),
        restores.for_each(|_| async {})
    );
    agent.drain(DRAIN).await;
    Ok(())
}
