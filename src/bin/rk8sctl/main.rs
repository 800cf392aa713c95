//! `rk8sctl`: the rk8s command line. Every command is `rk8s_ctl`'s; this file only
//! parses arguments and reports errors.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use rk8s_ctl::commands::{
    self as ctl, ConfigCommand, DeleteArgs, DrainArgs, ExposeArgs, Files, GetArgs, Global, MetaMap,
    RunArgs, SetImageArgs, WaitArgs,
};

/// Drive an rk8s cluster, or check manifests locally.
#[derive(Parser)]
#[command(name = "rk8sctl", version, about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or update objects from files so the cluster matches them.
    Apply(Files),
    /// Create objects from files (fails if they exist).
    Create(Files),
    /// List objects, or show some (`get KIND [NAME...]`, `get KIND/NAME`).
    Get(GetArgs),
    /// Show objects in detail, with their events.
    Describe {
        /// `KIND [NAME...]` or `KIND/NAME`.
        #[arg(required = true, add = rk8s_ctl::completion::resources(1))]
        resources: Vec<String>,
    },
    /// Delete objects by name, selector or file.
    Delete(DeleteArgs),
    /// Set the replicas of a Deployment or ReplicaSet.
    Scale {
        /// `KIND/NAME` or `KIND`.
        #[arg(add = rk8s_ctl::completion::resources(1))]
        resource: String,
        /// The name, when not given as KIND/NAME.
        #[arg(add = rk8s_ctl::completion::resources(1))]
        name: Option<String>,
        /// The number of replicas.
        #[arg(long)]
        replicas: u32,
    },
    /// Create a HorizontalPodAutoscaler for a Deployment or ReplicaSet.
    Autoscale(ctl::AutoscaleArgs),
    /// Set (`key=value`) or remove (`key-`) labels.
    Label {
        /// `KIND NAME` or `KIND/NAME`, then the changes.
        #[arg(required = true, add = rk8s_ctl::completion::resources(1))]
        args: Vec<String>,
        /// Allow changing an existing value.
        #[arg(long)]
        overwrite: bool,
    },
    /// Set (`key=value`) or remove (`key-`) annotations.
    Annotate {
        /// `KIND NAME` or `KIND/NAME`, then the changes.
        #[arg(required = true, add = rk8s_ctl::completion::resources(1))]
        args: Vec<String>,
        /// Allow changing an existing value.
        #[arg(long)]
        overwrite: bool,
    },
    /// Edit an object in $EDITOR and save it back.
    Edit {
        /// `KIND/NAME` or `KIND`.
        #[arg(add = rk8s_ctl::completion::resources(1))]
        resource: String,
        /// The name, when not given as KIND/NAME.
        #[arg(add = rk8s_ctl::completion::resources(1))]
        name: Option<String>,
    },
    /// Run an image in a new pod (`run NAME --image IMAGE [-- ARGS...]`).
    Run(RunArgs),
    /// Make a Service for a workload, Service or Pod (its selector, its ports).
    Expose(ExposeArgs),
    /// Change objects' fields (`set image KIND/NAME CONTAINER=IMAGE...`).
    #[command(subcommand)]
    Set(SetCommand),
    /// Mark a node unschedulable (its pods stay).
    Cordon {
        /// The node.
        #[arg(add = rk8s_ctl::completion::names_of("nodes"))]
        node: String,
    },
    /// Mark a node schedulable again.
    Uncordon {
        /// The node.
        #[arg(add = rk8s_ctl::completion::names_of("nodes"))]
        node: String,
    },
    /// Cordon a node and evict its pods for maintenance, as their
    /// PodDisruptionBudgets allow (their controllers make them again elsewhere).
    Drain(DrainArgs),
    /// Wait until objects are deleted, created, or in a condition
    /// (`--for=condition=Available`, `--for=jsonpath='{.status.phase}'=Running`).
    Wait(WaitArgs),
    /// Follow, list, undo, restart, pause or resume the rollouts of a Deployment, DaemonSet or StatefulSet.
    #[command(subcommand)]
    Rollout(rk8s_ctl::rollout::RolloutCommand),
    /// Show CPU and memory of nodes or pods (the resource metrics API).
    #[command(subcommand)]
    Top(rk8s_ctl::top::TopCommand),
    /// List or kill the control plane's actors (servers run with --enable-chaos).
    #[command(subcommand)]
    Debug(rk8s_ctl::debug::DebugCommand),
    /// Print a Prometheus scrape configuration for this cluster (its CA and token are
    /// written next to it).
    PrometheusConfig(rk8s_ctl::prometheus::PrometheusArgs),
    /// Print containers' logs (from the nodes running their pods): of a pod, of one pod
    /// of a workload (`deploy/NAME`), or of every pod `-l` selects.
    Logs(rk8s_ctl::logs::LogsArgs),
    /// Run a command in a container (`exec -it POD -- sh` for a shell).
    Exec(rk8s_ctl::stream::ExecArgs),
    /// Forward local ports to a pod (`port-forward svc/web 8080:80`), until interrupted.
    PortForward(rk8s_ctl::port_forward::PortForwardArgs),
    /// Where the control plane is, and whether it is ready.
    ClusterInfo,
    /// The versions of rk8sctl and of the server.
    Version,
    /// Read or change the kubeconfig.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write the man pages of this command and its subcommands into DIR (`make
    /// install`).
    #[command(hide = true)]
    GenerateManPages {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// Print a shell completion script (`source <(rk8sctl completion bash)`): it
    /// completes verbs and flags, the kinds the server serves and its objects' names.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Check manifests, single-container files and Compose files without applying them.
    Validate(rk8s_ctl::validate::ValidateArgs),
    /// Manage the local image store (pull, import, ls, rm).
    Image(rk8s_ctl::local::image::ImageArgs),
    /// Run single containers on this host, without a cluster (original rk8s files).
    #[command(subcommand)]
    Container(rk8s_ctl::local::commands::LocalCommand),
    /// Run pods on this host, without a cluster.
    #[command(subcommand)]
    Pod(rk8s_ctl::local::commands::LocalCommand),
    /// Run a Compose app on this host, without a cluster.
    Compose(rk8s_ctl::local::compose::ComposeArgs),
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Apply(f) => ctl::apply(g, &f).await?,
        Command::Create(f) => ctl::create(g, &f).await?,
        Command::Get(a) => ctl::get(g, &a).await?,
        Command::Describe { resources } => ctl::describe(g, &resources).await?,
        Command::Delete(a) => ctl::delete(g, &a).await?,
        Command::Scale {
            resource,
            name,
            replicas,
        } => ctl::scale(g, &resource, name.as_deref(), replicas).await?,
        Command::Autoscale(a) => ctl::autoscale(g, &a).await?,
        Command::Label { args, overwrite } => {
            ctl::set_metadata(g, MetaMap::Labels, &args, overwrite).await?
        }
        Command::Annotate { args, overwrite } => {
            ctl::set_metadata(g, MetaMap::Annotations, &args, overwrite).await?
        }
        Command::Edit { resource, name } => ctl::edit(g, &resource, name.as_deref()).await?,
        Command::Wait(a) => ctl::wait(g, &a).await?,
        Command::Cordon { node } => ctl::cordon(g, &node, true).await?,
        Command::Uncordon { node } => ctl::cordon(g, &node, false).await?,
        Command::Drain(a) => ctl::drain(g, &a).await?,
        Command::Run(a) => ctl::run(g, &a).await?,
        Command::Expose(a) => ctl::expose(g, &a).await?,
        Command::Set(SetCommand::Image(a)) => ctl::set_image(g, &a).await?,
        Command::Rollout(c) => rk8s_ctl::rollout::rollout(g, &c).await?,
        Command::Debug(c) => rk8s_ctl::debug::debug(g, &c).await?,
        Command::Top(c) => rk8s_ctl::top::top(g, &c).await?,
        Command::PrometheusConfig(a) => rk8s_ctl::prometheus::prometheus_config(g, &a).await?,
        Command::Logs(a) => rk8s_ctl::logs::logs(g, &a).await?,
        Command::Exec(a) => {
            let code = rk8s_ctl::stream::exec(g, &a).await?;
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        Command::PortForward(a) => rk8s_ctl::port_forward::port_forward(g, &a).await?,
        Command::ClusterInfo => ctl::cluster_info(g).await?,
        Command::Version => ctl::version(g).await?,
        Command::Config(c) => ctl::config(g, &c)?,
        Command::GenerateManPages { dir } => clap_mangen::generate_to(Cli::command(), &dir)?,
        Command::Completion { shell } => {
            rk8s_ctl::completion::write_script(&shell.to_string(), &mut std::io::stdout())?
        }
        Command::Validate(args) => return rk8s_ctl::validate::validate(&args),
        Command::Image(args) => rk8s_ctl::local::image::image(&args).await?,
        Command::Container(c) => return rk8s_ctl::local::commands::run("container", c).await,
        Command::Pod(c) => return rk8s_ctl::local::commands::run("pod", c).await,
        Command::Compose(args) => return rk8s_ctl::local::compose::run(args).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// `set` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
enum SetCommand {
    /// Set containers' images (`CONTAINER=IMAGE`, `*=IMAGE` for all).
    Image(SetImageArgs),
}

fn main() -> ExitCode {
    // Started as the container helper: that runs here, before any async runtime.
    rk8s_runtime::helper::run_if_requested();
    // Called back by the completion script (`COMPLETE=SHELL`): answers and exits.
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // As kubectl (cmdutil.CheckErr): the server's errors as they are
            // (`Error from server (NotFound): …`), its own after `error: `.
            let text = format!("{e:#}");
            if text.starts_with("Error from server") {
                eprintln!("{text}");
            } else {
                eprintln!("error: {text}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // clap checks every subcommand (unique short options, …) only when it is used;
        // this checks them all.
        super::Cli::command().debug_assert();
    }
}
