//! One module per `rk8s-server` verb.

pub mod certs;
pub mod member;
pub mod run;
pub mod snapshot;
pub mod token;

use std::path::PathBuf;

use anyhow::Context;
use rk8s_raftstore::client::StoreClient;

/// Where a member keeps its data, for the verbs that talk to its store port.
#[derive(clap::Args)]
pub struct StoreAccess {
    /// A member's store address (`host:port`).
    #[arg(long, default_value = "127.0.0.1:2380")]
    pub endpoint: String,
    /// The data directory of a member on this machine: its certificate (pki/) is
    /// what the store port accepts.
    #[arg(long, default_value = "/var/lib/rk8s")]
    pub data_dir: PathBuf,
}

impl StoreAccess {
    /// A client of the member at `endpoint`, over mutual TLS with the certificate of
    /// the member in `data_dir`.
    pub async fn connect(&self) -> anyhow::Result<StoreClient> {
        let dir = &self.data_dir;
        let certs = rk8s_apiserver::bootstrap::members::MemberCerts::load(dir)?.with_context(|| {
            format!(
                "{} has no member certificate (pki/member.crt): give the data directory of a member on this machine with --data-dir",
                dir.display()
            )
        })?;
        let tls = certs.tls().context("the member's certificates")?;
        StoreClient::connect_with(&self.endpoint, Some(&tls.client))
            .await
            .with_context(|| format!("failed to reach the member at {}", self.endpoint))
    }
}
