//! `rk8s-server` (no verb): run a member until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use rk8s_raftstore::server::{self, MemberConfig};
use tokio::signal::unix::{SignalKind, signal};

#[derive(clap::Args)]
pub struct Args {
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

pub async fn run(args: Args) -> anyhow::Result<()> {
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
