//! `cairn-agent`: the node agent (a DaemonSet on every node).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cairn_kube::{agent, cli, clock, http, metrics, trust};
use clap::Parser;

/// Backs up and restores the PersistentVolumeClaims mounted on this node,
/// running the VolumeBackups and VolumeRestores the controller assigned to it.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// This node's name (from the downward API in the DaemonSet).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// The kubelet's root directory as mounted into this container.
    #[arg(long, default_value = "/var/lib/kubelet")]
    kubelet_root: PathBuf,
    /// The kubelet's root directory mounted read-write, used only by
    /// restores (default: --kubelet-root).
    #[arg(long)]
    restore_kubelet_root: Option<PathBuf>,
    /// Namespace for the agent's heartbeat Lease (where cairn is installed).
    #[arg(long, env = "POD_NAMESPACE", default_value = "cairn-system")]
    namespace: String,
    /// Cluster name recorded in snapshots.
    #[arg(long, env = "CAIRN_CLUSTER_NAME", default_value = "")]
    cluster_name: String,
    /// An administrator namespace (repeat, or separate with commas): its
    /// jobs may back up and restore claims of any namespace and restore any
    /// snapshot; jobs elsewhere reach only their own namespace's claims.
    #[arg(
        long = "admin-namespace",
        env = "CAIRN_ADMIN_NAMESPACES",
        value_delimiter = ','
    )]
    admin_namespaces: Vec<String>,
    /// Jobs run at once on this node; others wait in phase Assigned.
    #[arg(long, default_value_t = 2)]
    max_concurrent: usize,
    /// How often a running job's progress is written to its status.
    #[arg(long, default_value = "10s", value_parser = cli::duration)]
    progress_interval: Duration,
    /// How often the heartbeat Lease is renewed.
    #[arg(long, default_value = "10s", value_parser = cli::duration)]
    lease_interval: Duration,
    /// How long to wait for a volume to appear under the kubelet root.
    #[arg(long, default_value = "5m", value_parser = cli::duration)]
    volume_wait: Duration,
    /// Runs of a job interrupted by agent restarts before it is failed.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// Cache of index files, snapshots, settings and trees of remote repositories.
    #[arg(long, default_value = "/var/cache/cairn")]
    cache_dir: PathBuf,
    /// Local disk a repository's merged index table may take, in MiB (96
    /// bytes per indexed chunk; default 1024, about 11 million chunks).
    #[arg(long, env = "CAIRN_INDEX_TABLE_LIMIT", value_name = "MIB")]
    index_table_limit: Option<u64>,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, env = "CAIRN_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cairn::tune_allocator();
    // The agent backs up and restores for days in one process: with
    // glibc's moving mmap threshold, what the first restore left in the
    // heap stayed resident (157–177 MiB after each restore on the PVC-like
    // dataset, docs/PERFORMANCE.md "Memory"). With the fixed threshold and
    // the free memory returned after each job (runner.rs), 27–37 MiB
    // between jobs.
    cairn::unmap_large_buffers();
    let args = Args::parse();
    cli::init_logging(&args.log);
    let (metrics, registry) = metrics::Metrics::agent();
    let health = Arc::new(http::Health::default());
    let addr = cli::serve_metrics(args.metrics_addr, registry, health.clone())
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_addr))?;
    tracing::info!(node = %args.node_name, metrics = %addr, "cairn-agent starting");
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API")?;
    let config = agent::Config {
        agent_id: agent::new_agent_id(&args.node_name),
        node: args.node_name,
        restore_root: args
            .restore_kubelet_root
            .unwrap_or_else(|| args.kubelet_root.clone()),
        kubelet_root: args.kubelet_root,
        namespace: args.namespace,
        cluster: args.cluster_name,
        max_concurrent: args.max_concurrent,
        progress_interval: args.progress_interval,
        lease_interval: args.lease_interval,
        volume_wait: args.volume_wait,
        max_attempts: args.max_attempts,
        cache_dir: Some(args.cache_dir),
        index_table_limit: args.index_table_limit.map(|m| m.saturating_mul(1 << 20)),
        clock: clock::from_env(None),
        admins: trust::Admins::new(args.admin_namespaces),
    };
    agent::run(client, config, metrics, health).await?;
    Ok(())
}
