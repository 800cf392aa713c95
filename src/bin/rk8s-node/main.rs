//! `rk8s-node`: the node agent. `rk8s-node join` joins a cluster with a bootstrap token
//! (the node is registered, gets its podCIDR and credential, and keeps its Lease
//! renewed); `rk8s-node run` starts again from the saved identity, or without one runs
//! only the static pods of a manifest directory, with no control plane.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use rk8s_actors::node::agent::{self, AgentConfig, Registration};
use rk8s_actors::node::registration;
use rk8s_api::duration::parse_duration;
use rk8s_netoverlay::Ipv4Net;

#[path = "../../config_file.rs"]
mod config_file;

/// The config file read when `--config` does not name one.
const DEFAULT_CONFIG: &str = "/etc/rk8s/node.yaml";

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
    /// Stop and remove every pod of this node, its pod network and its container
    /// helper (the identity and images stay). Stop the agent first.
    Reset(RunArgs),
    /// Register simulated nodes that run their pods in the fake runtime (scheduler and
    /// controller tests and benchmarks), until stopped.
    Simulate(SimulateArgs),
    /// Write the man pages of this command and its subcommands into DIR (`make
    /// install`).
    #[command(hide = true)]
    GenerateManPages {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// List or kill the actors of a running agent started with `--chaos` (chaos
    /// tests).
    Chaos {
        /// The agent's run directory.
        #[arg(long, default_value = "/run/rk8s/node")]
        run_dir: PathBuf,
        /// `list`, or the actor to kill: `node`, `pod NAMESPACE/NAME` or `random`.
        #[arg(required = true, num_args = 1..=2)]
        actor: Vec<String>,
    },
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Node names are PREFIX-0, PREFIX-1, …
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// CPUs per node.
    #[arg(long, default_value = "32")]
    cpu: String,
    /// Memory per node.
    #[arg(long, default_value = "256Gi")]
    memory: String,
    /// Pods per node.
    #[arg(long, default_value_t = 110)]
    pods: u32,
    /// Labels (`key=value`, repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Taints (`key[=value]:Effect`, repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    taints: Vec<String>,
    /// Spread the nodes over this many zones (topology.kubernetes.io/zone).
    #[arg(long, default_value_t = 0)]
    zones: usize,
    /// Time from a pod's binding to it running.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    start_latency: Duration,
    /// Requests in flight at once while registering and renewing leases.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The kubeconfig (admin credentials) [default: $RK8S_CONFIG, else ~/.rk8s/config].
    #[arg(long, env = "RK8S_CONFIG")]
    kubeconfig: Option<PathBuf>,
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let path = match args.kubeconfig {
        Some(p) => p,
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".rk8s/config"))
            .context("no --kubeconfig and no $HOME")?,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)
        .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .with_context(|| format!("the kubeconfig {}", path.display()))?;
    let client = kube::Client::try_from(config).context("cannot build the API client")?;
    let simulation = rk8s_actors::node::simulated::SimulationConfig {
        count: args.count,
        prefix: args.prefix,
        cpu: args.cpu,
        memory: args.memory,
        pods: args.pods,
        labels: registration::parse_labels(&args.labels)?,
        taints: args
            .taints
            .iter()
            .map(|t| registration::parse_taint(t))
            .collect::<Result<Vec<_>, _>>()?,
        zones: args.zones,
        start_latency: args.start_latency,
        concurrency: args.concurrency,
    };
    let run = rk8s_actors::node::simulated::simulate(client, simulation);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("failed to watch SIGTERM")?;
    tokio::select! {
        r = run => r?,
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

#[derive(clap::Args)]
struct JoinArgs {
    /// The API server, `https://HOST:6443` (else --server).
    #[arg(value_name = "SERVER")]
    url: Option<String>,
    /// The API server when no SERVER is given, as `server:` in the config file.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The bootstrap token, `ID.SECRET` (not used again when this host joined
    /// already: `join` then runs the node from its saved identity).
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
    /// A YAML file of settings: these flags without their dashes as keys
    /// (`data-dir: /srv/node`, `max-pods: 50`; `join`'s `server`, `token`… too, which
    /// `run` and `reset` pass over); flags given here win [default:
    /// /etc/rk8s/node.yaml when it exists].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The directory of Pod manifests.
    #[arg(long, env = "RK8S_MANIFESTS", default_value = "/etc/rk8s/manifests")]
    manifests: PathBuf,
    /// Persistent data: images, container bundles, pod files.
    #[arg(long, default_value = "/var/lib/rk8s/node")]
    data_dir: PathBuf,
    /// Runtime state: the container helper, network allocations.
    #[arg(long, default_value = "/run/rk8s/node")]
    run_dir: PathBuf,
    /// The pod sandbox's image (path or reference); default: RK8S_PAUSE_IMAGE, else the
    /// pause built into this binary (rk8s.internal/pause:builtin).
    #[arg(long)]
    pause_image: Option<String>,
    /// Mirrors, credentials and TLS for image pulls (k3s' format; see
    /// docs/configuration.md); none when the file does not exist.
    #[arg(long, default_value = rk8s_runtime::image::registries::DEFAULT_PATH)]
    registries: PathBuf,
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
    /// The longest a running pod goes without its ConfigMaps and Secrets read again
    /// (mounted volumes follow, environment is taken when a container starts), as
    /// kubelet's --sync-frequency.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    sync_frequency: Duration,
    /// The address of the node's HTTPS endpoint (logs and exec, for the API server).
    #[arg(long, default_value = "0.0.0.0")]
    address: IpAddr,
    /// Its port (0: any free port; the Node's status tells the API server).
    #[arg(long, default_value_t = rk8s_actors::node::server::DEFAULT_PORT)]
    port: u16,
    /// The node's InternalIP (default: this host's address towards the API server).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Open `RUN_DIR/chaos.sock`, through which `rk8s-node chaos` kills actors.
    #[arg(long)]
    chaos: bool,
    /// How often the node's and containers' usage is read (cAdvisor's housekeeping;
    /// the resource metrics API averages CPU over this window).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    stats_interval: Duration,
    /// Unused images are removed, least recently used first, once the image store's
    /// filesystem is more than this share used (percent; 100: never), as kubelet's.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    image_gc_high_threshold: u8,
    /// ... down to this share.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    image_gc_low_threshold: u8,
    /// An image used more recently than this is kept.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    image_minimum_gc_age: Duration,
    /// The whole cluster's pod range (the server's --cluster-cidr): traffic to other
    /// nodes' pods keeps the pod's address, the rest is masqueraded.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: Ipv4Net,
    /// The domain of Service names (`NAME.NAMESPACE.svc.DOMAIN`).
    #[arg(long, default_value = rk8s_netoverlay::dns::DEFAULT_DOMAIN)]
    cluster_domain: String,
    /// The Ingress proxy's plain HTTP port on every address (0: off). A port that
    /// cannot be bound is tried again with backoff.
    #[arg(long, default_value_t = 80)]
    ingress_http_port: u16,
    /// The Ingress proxy's HTTPS port on every address (0: off).
    #[arg(long, default_value_t = 443)]
    ingress_https_port: u16,
    /// The most requests the Ingress proxy holds per Service while it wakes from
    /// zero (`scale.rk8s.io/wake-on-request`); one more is answered 503 at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    ingress_activation_queue: u32,
    /// Where device plugins register (the agent serves kubelet's `Registration` on
    /// `DIR/kubelet.sock`, removing stale sockets at start), put their own sockets,
    /// and where the device allocations are checkpointed (cluster nodes only).
    #[arg(long, value_name = "DIR", default_value = rk8s_deviceplugin::v1beta1::DEVICE_PLUGIN_PATH)]
    device_plugin_dir: PathBuf,
}

impl RunArgs {
    /// What clap cannot check of the flags alone.
    fn check(&self) -> anyhow::Result<()> {
        if self.image_gc_low_threshold >= self.image_gc_high_threshold {
            anyhow::bail!(
                "--image-gc-low-threshold ({}) must be less than --image-gc-high-threshold ({})",
                self.image_gc_low_threshold,
                self.image_gc_high_threshold
            );
        }
        Ok(())
    }

    fn config(self) -> AgentConfig {
        if let Some(file) = &self.config {
            tracing::info!("settings read from {}", file.display());
        }
        AgentConfig {
            manifests: self.manifests,
            data_dir: self.data_dir,
            run_dir: self.run_dir,
            pause_image: self.pause_image,
            registries: self.registries,
            name: self.name,
            pod_cidr: self.pod_cidr,
            bridge: self.bridge,
            sync_period: self.sync_period,
            sync_frequency: self.sync_frequency,
            reserved_cpu_milli: self.reserved_cpu_milli,
            reserved_memory: self.reserved_memory_mib * 1024 * 1024,
            max_pods: self.max_pods,
            disk_free_percent: self.disk_pressure_free_percent,
            address: self.address,
            port: self.port,
            node_ip: self.node_ip.map(|ip| ip.to_string()),
            chaos: self.chaos,
            stats_interval: self.stats_interval,
            image_gc: rk8s_runtime::image::gc::GcPolicy {
                high_percent: self.image_gc_high_threshold,
                low_percent: self.image_gc_low_threshold,
                min_age: self.image_minimum_gc_age,
            },
            cluster_cidr: self.cluster_cidr,
            cluster_domain: self.cluster_domain,
            ingress_http_port: self.ingress_http_port,
            ingress_https_port: self.ingress_https_port,
            ingress_activation_queue: usize::try_from(self.ingress_activation_queue)
                .unwrap_or(rk8s_actors::node::activity::DEFAULT_QUEUE),
            device_plugin_dir: self.device_plugin_dir,
        }
    }
}

async fn join(args: JoinArgs) -> anyhow::Result<()> {
    let Some(server) = args.url.or(args.server) else {
        anyhow::bail!(
            "no API server: give it as `rk8s-node join https://HOST:6443`, with --server, or as `server:` in the config file ({DEFAULT_CONFIG})"
        );
    };
    let mut registration = Registration {
        labels: registration::parse_labels(&args.labels)?,
        ..Default::default()
    };
    registration.taints = args
        .taints
        .iter()
        .map(|t| registration::parse_taint(t))
        .collect::<Result<Vec<_>, _>>()?;
    agent::join(
        &server,
        &args.token,
        &args.ca_cert_hash,
        args.run.config(),
        registration,
    )
    .await?;
    Ok(())
}

/// Refuses a node data directory that is (inside) a control-plane member's: the two
/// are kept apart (`/var/lib/rk8s/node` and `/var/lib/rk8s/server` by default).
fn apart_from_servers(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let absolute = std::path::absolute(data_dir)
        .with_context(|| format!("--data-dir {}", data_dir.display()))?;
    if let Some(member) = absolute
        .ancestors()
        .find(|d| rk8s_raftstore::data_dir::has_member(d))
    {
        anyhow::bail!(
            "--data-dir {} is inside the data directory of an rk8s-server member ({}): give the node a directory of its own (the server's default is /var/lib/rk8s/server)",
            data_dir.display(),
            member.display()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    // Started as the container helper: that runs here, before any async runtime.
    rk8s_runtime::helper::run_if_requested();
    // Settings of `run`, `join` and `reset` from the config file (`--config`, else
    // /etc/rk8s/node.yaml when it exists), the command line's flags over them.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let sub = args.get(1).map(|s| s.to_string_lossy().into_owned());
    let args = match (
        sub.as_deref(),
        config_file::config_path(&args, std::path::Path::new(DEFAULT_CONFIG)),
    ) {
        (Some(name @ ("run" | "join" | "reset")), Some(file)) => {
            let command = Cli::command();
            let Some(sub) = command.find_subcommand(name) else {
                return ExitCode::FAILURE;
            };
            // node.yaml may hold join's settings too (server, token…): `run` and
            // `reset` pass them over.
            let join_only: Vec<String> = match command.find_subcommand("join") {
                Some(join) if name != "join" => join
                    .get_arguments()
                    .filter_map(|a| a.get_long())
                    .filter(|l| sub.get_arguments().all(|b| b.get_long() != Some(*l)))
                    .map(String::from)
                    .collect(),
                _ => Vec::new(),
            };
            match config_file::with_settings(sub, args, 2, &file, &join_only) {
                Ok(args) => args,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => args,
    };
    let cli = Cli::parse_from(args);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // libcgroups warns of every v1 controller the host lacks each time a
                // cgroup is opened, which the usage readings do every interval.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,libcgroups=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The actor system (actix) on its own tokio runtime.
    let system = actix::System::new();
    let run = match &cli.command {
        Command::Run(args) => Some(args),
        Command::Join(args) => Some(&args.run),
        _ => None,
    };
    if let Some(run) = run
        && let Err(e) = apart_from_servers(&run.data_dir).and_then(|()| run.check())
    {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Run(args) => system
            .block_on(agent::run(args.config(), None))
            .map_err(anyhow::Error::from),
        Command::Join(args) => system.block_on(join(args)),
        Command::Simulate(args) => system.block_on(simulate(args)),
        Command::Reset(args) => system
            .block_on(agent::reset(&args.config()))
            .map(|removed| {
                for pod in removed {
                    println!("removed {pod}");
                }
            })
            .map_err(anyhow::Error::from),
        Command::GenerateManPages { dir } => {
            clap_mangen::generate_to(Cli::command(), &dir).map_err(anyhow::Error::from)
        }
        Command::Chaos { run_dir, actor } => {
            let request = match actor.as_slice() {
                [list] if list == "list" => "list".to_string(),
                _ => format!("kill {}", actor.join(" ")),
            };
            system
                .block_on(agent::send_chaos(&run_dir, &request))
                .map_err(anyhow::Error::from)
                .and_then(|answer| print_chaos(&request, &answer))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Agent errors carry their causes in their message.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a chaos answer: the actors as a table for `list`, else what was killed.
fn print_chaos(request: &str, answer: &str) -> anyhow::Result<()> {
    let detail = answer.strip_prefix("ok").unwrap_or(answer).trim();
    if request != "list" {
        println!(
            "killed {}",
            if detail.is_empty() {
                request.trim_start_matches("kill ")
            } else {
                detail
            }
        );
        return Ok(());
    }
    let actors: Vec<serde_json::Value> = serde_json::from_str(detail)
        .map_err(|e| anyhow::anyhow!("the agent answered {detail:?}: {e}"))?;
    rk8s_ctl::debug::print_actors(&actors);
    Ok(())
}
