//! `rk8s-node`: the node agent. `rk8s-node join` joins a cluster with a bootstrap token
//! (the node is registered, gets its podCIDR and credential, and keeps its Lease
//! renewed); `rk8s-node run` starts again from the saved identity, or without one runs
//! only the static pods of a manifest directory, with no control plane.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rk8s_actors::node::{identity, node_actor, registration};
use rk8s_netoverlay::host::System;
use rk8s_netoverlay::{Ipv4Net, Network, NetworkConfig};
use rk8s_runtime::helper::HelperClient;
use rk8s_runtime::pod::{PodRuntime, PodRuntimeConfig};
use rk8s_runtime::static_pods::StaticPods;

/// The rk8s node agent.
#[derive(Parser)]
#[command(name = "rk8s-node", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run as the node: with the saved identity if this node joined a cluster, and the
    /// static pods of the manifest directory (which need no control plane).
    Run(RunArgs),
    /// Join a cluster (`rk8s-server token create` prints this command), then run.
    Join(JoinArgs),
}

#[derive(clap::Args)]
struct JoinArgs {
    /// The API server, `https://HOST:6443`.
    server: String,
    /// The bootstrap token, `ID.SECRET` (used once).
    #[arg(long)]
    token: String,
    /// `sha256:<hex>` of the cluster CA: the server is trusted only if its CA matches.
    #[arg(long)]
    ca_cert_hash: String,
    /// Labels (`key=value`, repeatable or comma-separated) besides kubernetes.io/*.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Taints (`key[=value]:Effect`, repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    taints: Vec<String>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The directory of Pod manifests.
    #[arg(long, env = "RK8S_MANIFESTS", default_value = "/etc/rk8s/manifests")]
    manifests: PathBuf,
    /// Persistent data: images, container bundles, pod files.
    #[arg(long, default_value = "/var/lib/rk8s/node")]
    data_dir: PathBuf,
    /// Runtime state: the container helper, network allocations.
    #[arg(long, default_value = "/run/rk8s/node")]
    run_dir: PathBuf,
    /// The pause image (path or reference); default: RK8S_PAUSE_IMAGE or the layout
    /// images/build.sh makes.
    #[arg(long)]
    pause_image: Option<String>,
    /// The node's name (default: the hostname).
    #[arg(long)]
    name: Option<String>,
    /// The pods' address range on this node when it has not joined a cluster (a joined
    /// node uses the podCIDR the cluster gave it).
    #[arg(long, default_value = "10.90.0.0/24")]
    pod_cidr: Ipv4Net,
    /// CPU kept for the system (millicores), not offered to pods.
    #[arg(long, default_value_t = 100)]
    reserved_cpu_milli: u64,
    /// Memory kept for the system (MiB), not offered to pods.
    #[arg(long, default_value_t = 256)]
    reserved_memory_mib: u64,
    /// Most pods on this node.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// DiskPressure when the data directory's filesystem has less than this share
    /// free, in percent (kubelet's nodefs.available<10%).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=100))]
    disk_pressure_free_percent: u8,
    /// The pods' bridge.
    #[arg(long, default_value = "rk8snode0")]
    bridge: String,
    /// How often the directory is read and the pods synced.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    sync_period: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let span: jiff::Span = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration such as 1s or 500ms: {e}"))?;
    let d = jiff::SignedDuration::try_from(span).map_err(|e| e.to_string())?;
    Duration::try_from(d).map_err(|e| e.to_string())
}

async fn join(args: JoinArgs) -> anyhow::Result<()> {
    let node = match &args.run.name {
        Some(n) => n.clone(),
        None => nix_hostname()?,
    };
    let mut labels = std::collections::BTreeMap::new();
    for label in &args.labels {
        let (k, v) = label
            .split_once('=')
            .with_context(|| format!("label {label:?}: expected key=value"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    let taints = args
        .taints
        .iter()
        .map(|t| registration::parse_taint(t))
        .collect::<Result<Vec<_>, _>>()?;
    let identity = identity::join(&args.server, &args.token, &args.ca_cert_hash, &node).await?;
    identity.save(&args.run.data_dir)?;
    println!(
        "joined {} as node {} (podCIDR {}); credentials in {}",
        identity.server,
        identity.node_name,
        identity.pod_cidr,
        args.run.data_dir.display()
    );
    run(args.run, Some((labels, taints))).await
}

async fn run(
    args: RunArgs,
    join: Option<(
        std::collections::BTreeMap<String, String>,
        Vec<k8s_openapi::api::core::v1::Taint>,
    )>,
) -> anyhow::Result<()> {
    let identity = identity::Identity::load(&args.data_dir)?;
    let node = match (&identity, args.name.clone()) {
        (Some(id), _) => id.node_name.clone(),
        (None, Some(n)) => n,
        (None, None) => nix_hostname()?,
    };
    let subnet = match &identity {
        Some(id) => id
            .pod_cidr
            .parse()
            .with_context(|| format!("the saved podCIDR {:?}", id.pod_cidr))?,
        None => args.pod_cidr,
    };
    let cluster = match &identity {
        Some(id) => {
            let (labels, taints) = join.unwrap_or_default();
            let info = registration::NodeInfo {
                name: node.clone(),
                labels,
                taints,
                pod_cidr: id.pod_cidr.clone(),
                reserved_cpu_milli: args.reserved_cpu_milli,
                reserved_memory: args.reserved_memory_mib * 1024 * 1024,
                max_pods: args.max_pods,
                data_dir: args.data_dir.clone(),
                disk_free_percent: args.disk_pressure_free_percent,
            };
            let client = id.client()?;
            registration::register(&client, &info).await?;
            registration::renew_lease(&client, &node).await?;
            tracing::info!(node, server = %id.server, "registered");
            Some((client, info))
        }
        None => None,
    };
    let network = Network::new(
        NetworkConfig {
            name: "node".into(),
            bridge: args.bridge.clone(),
            subnet,
            state_dir: args.run_dir.join("net"),
        },
        System,
    )
    .context("failed to set up the pod network")?;
    let pause = args
        .pause_image
        .unwrap_or_else(|| rk8s_runtime::image::default_pause_image(&args.data_dir));
    let config = PodRuntimeConfig::new(&args.data_dir, pause);
    let exe = std::env::current_exe().context("failed to find this program's path")?;
    let helper = HelperClient::new(args.run_dir.join("helper"), exe);
    let runtime = PodRuntime::new(config, Arc::new(helper), Some(Arc::new(network)))
        .context("failed to open the node's state")?;
    let runtime = Arc::new(runtime);
    let pods = StaticPods::new(&args.manifests, node.clone(), runtime.clone());
    tracing::info!(node, manifests = %args.manifests.display(), "running static pods");
    // Joined: the node actor runs the pods the cluster binds here, under a supervisor.
    let _node_actor = cluster.map(|(client, info)| {
        let runtime = runtime.clone();
        actix::Supervisor::start(move |_| node_actor::NodeActor::new(client, info, runtime))
    });
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("failed to watch SIGTERM")?;
    loop {
        if let Err(e) = pods.reconcile().await {
            tracing::warn!("static pods: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(args.sync_period) => {}
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Like kubelet: the pods keep running; the next start finds them.
    tracing::info!("stopping; pods keep running");
    Ok(())
}

fn nix_hostname() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("failed to read the hostname")?;
    Ok(name.trim().to_lowercase())
}

fn main() -> ExitCode {
    // Started as the container helper: that runs here, before any async runtime.
    rk8s_runtime::helper::run_if_requested();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The actor system (actix) on its own tokio runtime.
    let system = actix::System::new();
    let result = match cli.command {
        Command::Run(args) => system.block_on(run(args, None)),
        Command::Join(args) => system.block_on(join(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
