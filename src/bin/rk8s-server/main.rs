//! `rk8s-server`: the control plane. Today it runs a member of the embedded,
//! Raft-replicated store; the API server, scheduler and controllers join it as they
//! land.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use rk8s_raftstore::server::{self, MemberConfig};
use tokio::signal::unix::{SignalKind, signal};

/// Run an rk8s control-plane member.
#[derive(Parser)]
#[command(name = "rk8s-server", version, about)]
struct Args {
    /// Where the store's log and snapshots live.
    #[arg(long, default_value = "/var/lib/rk8s")]
    data_dir: PathBuf,
    /// Address for peers and store clients.
    #[arg(long, default_value = "127.0.0.1:2380")]
    peer_listen: SocketAddr,
    /// Address peers should use to reach this member (default: --peer-listen).
    #[arg(long)]
    advertise: Option<String>,
    /// Join an existing cluster through this member (`host:port`); only used the first
    /// time, when the data directory is new.
    #[arg(long)]
    join: Option<String>,
    /// Log entries between store snapshots.
    #[arg(long, default_value_t = 10_000)]
    snapshot_entries: u64,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,raft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = MemberConfig::new(&args.data_dir, args.peer_listen);
    cfg.advertise = args.advertise;
    cfg.join = args.join;
    cfg.snapshot_entries = args.snapshot_entries;
    let store = server::start(cfg)
        .await
        .context("failed to start the store member")?;
    let mut term = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    store.shutdown();
    // Give the raft thread a moment to finish its batch.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    Ok(())
}
