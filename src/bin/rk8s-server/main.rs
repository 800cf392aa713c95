//! `rk8s-server`: the control plane. It runs a member of the embedded,
//! Raft-replicated store with the Kubernetes API server on top (and manages store
//! membership); the scheduler and controllers join it as they land.

mod commands;
#[path = "../../config_file.rs"]
mod config_file;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Run an rk8s control-plane member, or manage the members.
#[derive(Parser)]
#[command(name = "rk8s-server", version, about)]
struct Cli {
    #[command(flatten)]
    run: commands::run::Args,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Store membership: status of a member, removal of a member.
    #[command(subcommand)]
    Member(commands::member::Command),
    /// Bootstrap tokens for joining nodes, and node credentials.
    #[command(subcommand)]
    Token(commands::token::Command),
    /// The member's certificates: when they expire, and a new one for the member.
    #[command(subcommand)]
    Certs(commands::certs::Command),
    /// Kubeconfigs for users, with client certificates from the cluster's client CA.
    #[command(subcommand)]
    Kubeconfig(commands::kubeconfig::Command),
    /// Snapshots of the store: save one from a running member, restore one into a new
    /// cluster, check one.
    #[command(subcommand)]
    Snapshot(commands::snapshot::Command),
    /// Encryption at rest: rewrite the stored objects with the current first key
    /// of the encryption configuration (after a key rotation).
    #[command(subcommand)]
    Encryption(commands::encryption::Command),
    /// Write the man pages of this command and its subcommands into DIR (`make
    /// install`).
    #[command(hide = true)]
    GenerateManPages {
        /// The directory.
        dir: std::path::PathBuf,
    },
}

// The API server allocates and frees many small buffers from many threads; glibc's
// allocator spent a quarter of the server's CPU time on that (perf, scheduler bench).
// The `system-allocator` feature leaves the choice to the C library (or a preloaded
// allocator), for heap profiles.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The config file read when `--config` does not name one.
const DEFAULT_CONFIG: &str = "/etc/rk8s/server.yaml";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,raft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Settings from the config file (`--config`, else /etc/rk8s/server.yaml when it
    // exists), the command line's flags over them.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = match config_file::config_path(&args, std::path::Path::new(DEFAULT_CONFIG)) {
        None => args,
        Some(file) => match config_file::with_settings(&Cli::command(), args, 1, &file, &[]) {
            Ok(args) => args,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    let cli = Cli::parse_from(args);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            None => commands::run::run(cli.run).await,
            Some(Command::Member(c)) => commands::member::run(c).await,
            Some(Command::Token(c)) => commands::token::run(c).await,
            Some(Command::Snapshot(c)) => commands::snapshot::run(c).await,
            Some(Command::Encryption(c)) => commands::encryption::run(c).await,
            Some(Command::Kubeconfig(c)) => commands::kubeconfig::run(c).await,
            Some(Command::Certs(c)) => commands::certs::run(c).await,
            Some(Command::GenerateManPages { dir }) => {
                clap_mangen::generate_to(Cli::command(), &dir).map_err(anyhow::Error::from)
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
