//! `rk8s-node`: the node agent. `rk8s-node run` runs this host's static pods — the Pod
//! manifests of a directory — with no control plane, and keeps them as the files say.
//! (Joining a cluster comes with the node agent.)

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
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
    /// Run the static pods of a manifest directory (no control plane needed).
    Run(RunArgs),
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
    /// The pods' address range on this node.
    #[arg(long, default_value = "10.90.0.0/24")]
    pod_cidr: Ipv4Net,
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

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let node = match args.name {
        Some(n) => n,
        None => nix_hostname()?,
    };
    let network = Network::new(
        NetworkConfig {
            name: "node".into(),
            bridge: args.bridge.clone(),
            subnet: args.pod_cidr,
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
    let pods = StaticPods::new(&args.manifests, node.clone(), Arc::new(runtime));
    tracing::info!(node, manifests = %args.manifests.display(), "running static pods");
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
