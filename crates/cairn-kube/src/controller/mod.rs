//! The controller: turns VolumeBackups, VolumeRestores and BackupSchedules
//! into jobs assigned to nodes, and checks BackupRepositories.
//!
//! Each reconciler is a pure decision ([`assign::decide`],
//! [`schedule::plan`]) over what an executor observed; the executors
//! ([`jobs`], [`schedules`], [`repositories`]) only read and write the API.

pub mod assign;
pub mod cron;
pub mod helper;
pub mod hooks;
pub mod hooks_exec;
pub mod jobs;
pub mod maintenance;
pub mod maintenance_job;
pub mod maintenance_jobs;
pub mod placement;
pub mod repositories;
pub mod schedule;
pub mod schedules;
pub mod selector;
pub mod snapshot;
pub mod target;
pub mod velero;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client};

use crate::Error;
use crate::clock::Clock;
use crate::crd::{BackupRepository, BackupSchedule, VolumeBackup, VolumeRestore};
use crate::http::Health;
use crate::job::Job;
use crate::metrics::Metrics;
use crate::names::HELPER_KIND_LABEL;

/// How the controller runs.
#[derive(Clone)]
pub struct Config {
    /// Watch only this namespace (None: all namespaces).
    pub namespace: Option<String>,
    /// Namespace of the agents' Leases (the one cairn is installed in).
    pub agent_namespace: String,
    /// Image of helper pods (it only has to sleep).
    pub helper_image: String,
    /// Agent liveness limits.
    pub limits: assign::Limits,
    /// Longest time between two looks at a live object.
    pub resync: Duration,
    /// How soon a job that waits (for a claim, a pod, an agent) is looked at again.
    pub wait_interval: Duration,
    /// The clock schedules run on.
    pub clock: Arc<dyn Clock>,
    /// Cache for remote repositories opened for retention and checks.
    pub cache_dir: Option<PathBuf>,
    /// The administrator namespaces (see [`crate::trust`]).
    pub admins: crate::trust::Admins,
    /// The cluster's name as the agents record it in snapshots.
    pub cluster: String,
    /// Image of maintenance Jobs (None: the controller's own image).
    pub maintenance_image: Option<String>,
    /// Serve Velero as its data mover (None: Velero's objects are ignored).
    pub velero: Option<velero::VeleroConfig>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("namespace", &self.namespace)
            .field("agent_namespace", &self.agent_namespace)
            .field("helper_image", &self.helper_image)
            .field("limits", &self.limits)
            .field("resync", &self.resync)
            .field("admins", &self.admins)
            .field("cluster", &self.cluster)
            .field("velero", &self.velero)
            .finish_non_exhaustive()
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Settings.
    pub config: Config,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes events.
    pub recorder: Recorder,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The agents' Leases.
    pub fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.config.agent_namespace)
    }
}

fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn error_policy<K>(resource: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Requeue {
    move |_, err, ctx| {
        ctx.metrics.reconciled(resource, false);
        tracing::warn!(resource, error = %err, "reconcile failed; retrying");
        Requeue::requeue(Duration::from_secs(5))
    }
}

async fn drain<S, T, E>(resource: &'static str, ctx: Arc<Context>, stream: S)
where
    S: futures::Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    stream
        .for_each(|r| {
            let ctx = ctx.clone();
            async move {
                match r {
                    Ok(_) => ctx.metrics.reconciled(resource, true),
                    Err(e) => tracing::debug!(resource, error = %e, "reconcile"),
                }
            }
        })
        .await;
}

fn job_controller<J: Job>(client: &Client, cfg: &Config) -> Controller<J> {
    // Helper pods wake their job up when they change.
    let pods: Api<Pod> = api(client, &cfg.namespace);
    Controller::new(api::<J>(client, &cfg.namespace), watcher::Config::default()).watches(
        pods,
        watcher::Config::default().labels(HELPER_KIND_LABEL),
        |pod| jobs::job_of_helper::<J>(&pod),
    )
}

/// Runs the controller until the process is stopped.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> crate::Result<()> {
    let reporter = Reporter {
        controller: "cairn-controller".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        config: config.clone(),
        metrics,
    });
    let ns = &config.namespace;
    let backups = job_controller::<VolumeBackup>(&client, &config)
        .shutdown_on_signal()
        .run(
            jobs::reconcile::<VolumeBackup>,
            error_policy("volumebackup"),
            ctx.clone(),
        );
    let restores = job_controller::<VolumeRestore>(&client, &config)
        .shutdown_on_signal()
        .run(
            jobs::reconcile::<VolumeRestore>,
            error_policy("volumerestore"),
            ctx.clone(),
        );
    let schedules = Controller::new(
        api::<BackupSchedule>(&client, ns),
        watcher::Config::default(),
    )
    .owns(api::<VolumeBackup>(&client, ns), watcher::Config::default())
    .shutdown_on_signal()
    .run(
        schedules::reconcile,
        error_policy("backupschedule"),
        ctx.clone(),
    );
    let repositories = Controller::new(
        api::<BackupRepository>(&client, ns),
        watcher::Config::default(),
    )
    .owns(
        api::<k8s_openapi::api::batch::v1::Job>(&client, ns),
        watcher::Config::default().labels(crate::names::MAINTENANCE_OF_LABEL),
    )
    .shutdown_on_signal()
    .run(
        repositories::reconcile,
        error_policy("backuprepository"),
        ctx.clone(),
    );
    let velero = async {
        match ctx.config.velero {
            Some(_) => velero::run(ctx.clone()).await,
            None => Ok(()),
        }
    };
    // Velero support that cannot start stops the controller before it
    // reports ready.
    if let Some(v) = &config.velero {
        if !config.admins.contains(&v.namespace) {
            return velero.await;
        }
    }
    health.set_ready();
    let (.., velero) = tokio::join!(
        drain("volumebackup", ctx.clone(), backups),
        drain("volumerestore", ctx.clone(), restores),
        drain("backupschedule", ctx.clone(), schedules),
        drain("backuprepository", ctx.clone(), repositories),
        velero,
    );
    velero
}
