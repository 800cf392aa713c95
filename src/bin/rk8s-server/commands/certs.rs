//! `rk8s-server certs check|rotate`: the certificates of a member's data directory
//! and when they expire, and a new certificate for the member (as `kubeadm certs
//! check-expiration|renew`). See `rk8s_apiserver::bootstrap::certs`.

use anyhow::Context;
use clap::Subcommand;
use rk8s_apiserver::bootstrap::certs;
use rk8s_apiserver::bootstrap::members::MemberCerts;
use rk8s_apiserver::bootstrap::secrets::{CLUSTER_KEY, ClusterSecrets};

use super::StoreAccess;

#[derive(Subcommand)]
pub enum Command {
    /// Print the certificates of a member's data directory, who signed them and when
    /// they expire.
    Check {
        /// The member's data directory.
        #[arg(long, default_value = super::DEFAULT_DATA_DIR)]
        data_dir: std::path::PathBuf,
    },
    /// Give the member a new certificate (new key, same names, valid for a year) from
    /// the cluster's member CA, read from the running store; the member uses it from
    /// its next start. The CAs are kept; the API server's serving certificate and the
    /// nodes' are issued anew at every start of theirs.
    Rotate {
        #[command(flatten)]
        store: StoreAccess,
    },
}

pub async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Check { data_dir } => {
            let found = certs::check(&data_dir)?;
            if found.is_empty() {
                anyhow::bail!("{} holds no certificates (pki/)", data_dir.display());
            }
            let now = jiff::Timestamp::now();
            println!("CERTIFICATE    EXPIRES               RESIDUAL TIME   SIGNED BY      FILE");
            for c in found {
                let left = c.expires.duration_since(now);
                let residual = if left.is_negative() {
                    "expired".to_string()
                } else {
                    format!("{}d", left.as_hours() / 24)
                };
                println!(
                    "{:<14} {:<21} {:<15} {:<14} {}",
                    c.name,
                    c.expires.strftime("%Y-%m-%d %H:%M UTC"),
                    residual,
                    c.authority,
                    c.path.display()
                );
            }
            Ok(())
        }
        Command::Rotate { store } => {
            let dir = store.data_dir.clone();
            let current = MemberCerts::load(&dir)?.with_context(|| {
                format!(
                    "{} has no member certificate (pki/member.crt)",
                    dir.display()
                )
            })?;
            let client = store.connect().await?;
            let read = rk8s_raftstore::proto::RangeRequest {
                key: CLUSTER_KEY.as_bytes().to_vec(),
                ..Default::default()
            };
            let found = client
                .range(read, true)
                .await
                .context("failed to read the cluster's secrets")?;
            let kv = found
                .kvs
                .first()
                .context("the store holds no cluster secrets")?;
            let secrets: ClusterSecrets = serde_json::from_slice(&kv.value)
                .with_context(|| format!("{CLUSTER_KEY} does not decode"))?;
            let ca = secrets.member_ca.context("the cluster has no member CA")?;
            let renewed = certs::renew_member(&current, &ca)?;
            renewed.save(&dir)?;
            println!(
                "member certificate renewed until {} for {}; restart the member to use it",
                certs::expiry(&renewed.cert)?.strftime("%Y-%m-%d %H:%M UTC"),
                certs::names(&renewed.cert)?.join(", ")
            );
            Ok(())
        }
    }
}
