//! `rk8s-server snapshot save|restore|status`: backups of the store, as `etcdctl
//! snapshot save` and `etcdutl snapshot restore|status` (or `k3s etcd-snapshot`) make
//! them of etcd. `save` streams one from a member's API server (online, consistent,
//! from any member); `restore` makes a new one-member cluster's data directory from
//! one (see `rk8s_apiserver::bootstrap::restore`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use futures_util::AsyncReadExt;
use rk8s_raftstore::backup::{check_backup, read_backup};
use tokio::io::AsyncWriteExt;

use super::run::default_kubeconfig;

#[derive(Subcommand)]
pub enum Command {
    /// Save a snapshot of the store into FILE, from a running member's API server
    /// (online and consistent; every object, token and CA of the cluster).
    Save {
        /// The file to write (replaced once the snapshot is complete and checked).
        file: PathBuf,
        /// The admin kubeconfig [default: ~/.rk8s/config].
        #[arg(long, env = "RK8S_ADMIN_KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
        /// The member to take it from (`https://HOST:PORT`) [default: the
        /// kubeconfig's server].
        #[arg(long, value_name = "URL")]
        server: Option<String>,
    },
    /// Make DATA_DIR (new or empty) the data directory of a new one-member cluster
    /// holding the snapshot FILE; then start `rk8s-server --data-dir DATA_DIR` and add
    /// members as to any cluster. Nodes and kubeconfigs of the old cluster keep
    /// working: its CAs and tokens are kept.
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// The new member's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The peer address the new member will advertise (its --advertise, else
        /// --peer-listen), named in its certificate.
        #[arg(long, default_value = "127.0.0.1:2380")]
        advertise: String,
    },
    /// Check a snapshot file and print what it holds.
    Status {
        /// The snapshot file.
        file: PathBuf,
    },
}

pub async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Save {
            file,
            kubeconfig,
            server,
        } => save(&file, kubeconfig, server).await,
        Command::Restore {
            file,
            data_dir,
            advertise,
        } => {
            let bytes = read(&file)?;
            let restored =
                rk8s_apiserver::bootstrap::restore::restore(&bytes, &data_dir, &advertise)
                    .with_context(|| format!("failed to restore {}", file.display()))?;
            println!(
                "restored revision {} ({} keys) into {} as member {}; start it with: rk8s-server --data-dir {}",
                restored.backup.revision,
                restored.keys,
                data_dir.display(),
                restored.member,
                data_dir.display()
            );
            Ok(())
        }
        Command::Status { file } => {
            let bytes = read(&file)?;
            let (info, state) =
                read_backup(&bytes).with_context(|| format!("{}", file.display()))?;
            let footprint = state.mvcc.footprint();
            println!("REVISION  MEMBER  KEYS  VERSIONS  BYTES");
            println!(
                "{}  {}  {}  {}  {}",
                info.revision, info.member, footprint.keys, footprint.revisions, info.bytes
            );
            Ok(())
        }
    }
}

fn read(file: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}

async fn save(
    file: &Path,
    kubeconfig: Option<PathBuf>,
    server: Option<String>,
) -> anyhow::Result<()> {
    let kubeconfig = kubeconfig
        .or_else(default_kubeconfig)
        .context("no kubeconfig: give --kubeconfig")?;
    let loaded = kube::config::Kubeconfig::read_from(&kubeconfig)
        .with_context(|| format!("cannot read the kubeconfig {}", kubeconfig.display()))?;
    let mut config = kube::Config::from_custom_kubeconfig(loaded, &Default::default())
        .await
        .with_context(|| format!("the kubeconfig {}", kubeconfig.display()))?;
    if let Some(url) = &server {
        config.cluster_url = url
            .parse()
            .with_context(|| format!("--server {url:?} is not a URL"))?;
    }
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)?;
    let request = http::Request::get("/rk8s/v1/snapshot").body(Vec::new())?;
    let body = client
        .request_stream(request)
        .await
        .with_context(|| format!("failed to take a snapshot through {url}"))?;
    let mut body = Box::pin(body);
    let part = file.with_extension("part");
    let written = async {
        // The CAs' keys, every token and Secret: readable by its owner alone.
        let mut out = tokio::fs::File::from_std(
            rk8s_apiserver::snapshots::private_file(&part)
                .with_context(|| format!("cannot create {}", part.display()))?,
        );
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = body
                .read(&mut chunk)
                .await
                .with_context(|| format!("the snapshot from {url} broke off"))?;
            if n == 0 {
                break;
            }
            out.write_all(&chunk[..n]).await?;
        }
        out.flush().await?;
        out.sync_all().await?;
        let bytes = read(&part)?;
        let (info, _) =
            check_backup(&bytes).with_context(|| format!("the snapshot received from {url}"))?;
        std::fs::rename(&part, file)
            .with_context(|| format!("cannot rename {} to {}", part.display(), file.display()))?;
        anyhow::Ok(info)
    }
    .await;
    let info = match written {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    println!(
        "Snapshot saved at {} (revision {}, {} bytes, from member {})",
        file.display(),
        info.revision,
        info.bytes,
        info.member
    );
    Ok(())
}
