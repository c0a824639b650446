//! `cairn-controller`: assigns backup and restore jobs to nodes, runs
//! schedules and retention, and checks repositories.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cairn_kube::controller::{self, assign::Limits};
use cairn_kube::{cli, clock, http, metrics, trust};
use clap::Parser;

/// Turns VolumeBackups, VolumeRestores and BackupSchedules into jobs run by
/// the cairn agent on the node that can reach each volume.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long)]
    watch_namespace: Option<String>,
    /// Namespace where the agents' heartbeat Leases are (where cairn is installed).
    #[arg(long, env = "POD_NAMESPACE", default_value = "cairn-system")]
    agent_namespace: String,
    /// An administrator namespace (repeat, or separate with commas): its
    /// jobs may back up and restore claims of any namespace and restore any
    /// snapshot; jobs elsewhere reach only their own namespace's claims.
    #[arg(
        long = "admin-namespace",
        env = "CAIRN_ADMIN_NAMESPACES",
        value_delimiter = ','
    )]
    admin_namespaces: Vec<String>,
    /// Cluster name the agents record in snapshots (must match theirs).
    #[arg(long, env = "CAIRN_CLUSTER_NAME", default_value = "")]
    cluster_name: String,
    /// Image for helper pods that mount claims no pod mounts.
    #[arg(
        long,
        env = "CAIRN_HELPER_IMAGE",
        default_value = "registry.k8s.io/pause:3.9"
    )]
    helper_image: String,
    /// An agent whose Lease is older than this is not alive.
    #[arg(long, default_value = "40s", value_parser = cli::duration)]
    lease_timeout: Duration,
    /// A job in progress fails when its agent has been silent this long.
    #[arg(long, default_value = "5m", value_parser = cli::duration)]
    agent_timeout: Duration,
    /// Longest time between two looks at a live object.
    #[arg(long, default_value = "60s", value_parser = cli::duration)]
    resync: Duration,
    /// How soon a waiting job is looked at again.
    #[arg(long, default_value = "10s", value_parser = cli::duration)]
    wait_interval: Duration,
    /// Cache for remote repositories opened for checks and retention.
    #[arg(long, default_value = "/var/cache/cairn")]
    cache_dir: PathBuf,
    /// TESTS ONLY: read the time for schedules from this file (seconds since the epoch).
    #[arg(long, hide = true)]
    test_now_file: Option<PathBuf>,
    /// Image of repository maintenance Jobs (default: the controller's own,
    /// read from its pod).
    #[arg(long, env = "CAIRN_MAINTENANCE_IMAGE")]
    maintenance_image: Option<String>,
    /// Serve Velero in this namespace as its data mover: run its
    /// DataUploads and DataDownloads whose `datamover` is `--velero-data-mover`
    /// (docs/VELERO.md). It must also be an administrator namespace.
    #[arg(long, env = "CAIRN_VELERO_NAMESPACE")]
    velero_namespace: Option<String>,
    /// The data mover name Velero is given (`--data-mover cairn`).
    #[arg(long, default_value = "cairn", requires = "velero_namespace")]
    velero_data_mover: String,
    /// Secret in Velero's namespace holding the password of the
    /// repositories cairn keeps in Velero's locations.
    #[arg(
        long,
        default_value = "cairn-repo-credentials",
        requires = "velero_namespace"
    )]
    velero_password_secret: String,
    /// Key of that Secret.
    #[arg(
        long,
        default_value = "repository-password",
        requires = "velero_namespace"
    )]
    velero_password_key: String,
    /// Maintenance schedule (cron, UTC) of the repositories in Velero's
    /// writable locations: prune frees what deleted backups held. Empty:
    /// none.
    #[arg(long, default_value = "@daily", requires = "velero_namespace")]
    velero_maintenance: String,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, env = "CAIRN_LOG", default_value = "info")]
    log: String,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// One scheduled maintenance run of a repository (prune, check), as the
    /// controller's maintenance Jobs run it; prints a JSON report.
    Maintain(cairn_kube::maintain::MaintainArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cairn::tune_allocator();
    let args = Args::parse();
    cli::init_logging(&args.log);
    if let Some(Command::Maintain(m)) = args.command {
        // Prune's and check's large buffers unmapped when freed, as the
        // CLI's are (ADR 0023).
        cairn::unmap_large_buffers();
        std::process::exit(cairn_kube::maintain::main(m).await);
    }
    let (metrics, registry) = metrics::Metrics::controller();
    let health = Arc::new(http::Health::default());
    let addr = cli::serve_metrics(args.metrics_addr, registry, health.clone())
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_addr))?;
    tracing::info!(metrics = %addr, "cairn-controller starting");
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API")?;
    let config = controller::Config {
        namespace: args.watch_namespace,
        agent_namespace: args.agent_namespace,
        helper_image: args.helper_image,
        limits: Limits {
            lease_secs: args.lease_timeout.as_secs() as i64,
            agent_timeout_secs: args.agent_timeout.as_secs() as i64,
        },
        resync: args.resync,
        wait_interval: args.wait_interval,
        clock: clock::from_env(args.test_now_file),
        cache_dir: Some(args.cache_dir),
        admins: trust::Admins::new(args.admin_namespaces),
        cluster: args.cluster_name,
        maintenance_image: args.maintenance_image,
        velero: args
            .velero_namespace
            .map(|ns| controller::velero::VeleroConfig {
                namespace: ns,
                data_mover: args.velero_data_mover,
                password_secret: cairn_kube::crd::SecretKeyRef {
                    name: args.velero_password_secret,
                    key: Some(args.velero_password_key),
                },
                maintenance_schedule: Some(args.velero_maintenance).filter(|s| !s.is_empty()),
            }),
    };
    controller::run(client, config, metrics, health).await?;
    Ok(())
}
