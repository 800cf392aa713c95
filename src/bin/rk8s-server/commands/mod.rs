//! One module per `rk8s-server` verb.

pub mod certs;
pub mod encryption;
pub mod kubeconfig;
pub mod member;
pub mod run;
pub mod snapshot;
pub mod token;

use std::path::PathBuf;

use anyhow::Context;
use rk8s_apiserver::bootstrap::secrets::{CLUSTER_KEY, ClusterSecrets};
use rk8s_raftstore::client::StoreClient;
use rk8s_raftstore::proto::RangeRequest;

/// Where a member keeps its data, for the verbs that talk to its store port.
#[derive(clap::Args)]
pub struct StoreAccess {
    /// A member's store address (`host:port`).
    #[arg(long, default_value = "127.0.0.1:2380")]
    pub endpoint: String,
    /// The data directory of a member on this machine: its certificate (pki/) is
    /// what the store port accepts.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// A member's data directory by default: beside the node agent's
/// (`/var/lib/rk8s/node`), never around it.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rk8s/server";
/// Where members kept their data before: the node agent's directory is inside it.
const OLD_DATA_DIR: &str = "/var/lib/rk8s";

/// Refuses a member data directory that is (inside) a node agent's, and the default
/// one when the member's data is still in the old default place.
pub fn check_data_dir(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let absolute = std::path::absolute(data_dir)
        .with_context(|| format!("--data-dir {}", data_dir.display()))?;
    if let Some(node) = absolute
        .ancestors()
        .find(|d| rk8s_actors::node::identity::Identity::path(d).exists())
    {
        anyhow::bail!(
            "--data-dir {} is inside the data directory of a node agent ({}): give the server a directory of its own",
            data_dir.display(),
            node.display()
        );
    }
    let old = std::path::Path::new(OLD_DATA_DIR);
    if data_dir == std::path::Path::new(DEFAULT_DATA_DIR)
        && !rk8s_raftstore::data_dir::has_member(data_dir)
        && rk8s_raftstore::data_dir::has_member(old)
    {
        anyhow::bail!(
            "this member's data is in {OLD_DATA_DIR}, the default before {DEFAULT_DATA_DIR} (the node agent's data, {OLD_DATA_DIR}/node, is inside it): move it, with the member stopped: mkdir {DEFAULT_DATA_DIR} && cd {OLD_DATA_DIR} && mv member_id format raft pki advertise-url snapshots {DEFAULT_DATA_DIR}/ (those that exist)"
        );
    }
    Ok(())
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

    /// The API server URL the member of `data_dir` advertises (its
    /// `--advertise-address` and port), or the default one.
    pub fn advertised_url(&self) -> String {
        let file = self
            .data_dir
            .join(rk8s_apiserver::cluster::ADVERTISE_URL_FILE);
        match std::fs::read_to_string(&file) {
            Ok(url) => url.trim().to_string(),
            // A member that has not started its API server yet (or an older one).
            Err(_) => "https://127.0.0.1:6443".to_string(),
        }
    }

    /// The cluster's shared secrets (its CAs), read through `client`.
    pub async fn cluster_secrets(client: &StoreClient) -> anyhow::Result<ClusterSecrets> {
        let found = client
            .range(
                RangeRequest {
                    key: CLUSTER_KEY.as_bytes().to_vec(),
                    ..RangeRequest::default()
                },
                true,
            )
            .await
            .context("failed to read the cluster CA")?;
        let kv = found
            .kvs
            .first()
            .context("the cluster has no CA yet: has its API server started once?")?;
        serde_json::from_slice(&kv.value).context("the cluster CA record does not decode")
    }
}
