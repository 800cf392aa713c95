//! `rk8s-server token create`: bootstrap tokens for `rk8s-node join` and for
//! `rk8s-server --join` (`--member`), and node credentials. Written straight into the
//! store through a member's store port.

use anyhow::Context;
use clap::Subcommand;
use rk8s_apiserver::auth::{Identity, TokenRecord, new_bootstrap_token, new_secret, token_key};

use super::StoreAccess;

#[derive(Subcommand)]
pub enum Command {
    /// Create a bootstrap token and print the `rk8s-node join` command that uses it
    /// (it joins any number of nodes until it expires, or `--usage-limit` of them;
    /// with `--member`, the `rk8s-server --join` command of a new control-plane
    /// member, once; with `--node`, a credential for one node).
    Create {
        /// How long the token works (`0`: forever).
        #[arg(long, default_value = "24h", value_parser = super::run::parse_duration)]
        ttl: std::time::Duration,
        /// Create the credential of this node instead of a bootstrap token.
        #[arg(long, conflicts_with = "member")]
        node: Option<String>,
        /// A token for a new store member (`rk8s-server --join`) instead of a node.
        #[arg(long)]
        member: bool,
        /// How many joins the token allows (default: any number until it expires for
        /// nodes, as kubeadm's tokens; one for --member).
        #[arg(long, conflicts_with = "node", value_parser = clap::value_parser!(u32).range(1..))]
        usage_limit: Option<u32>,
        #[command(flatten)]
        store: StoreAccess,
        /// The API server URL printed in the join command [default: the one the
        /// member of --data-dir advertises (`--advertise-address`, its port)].
        #[arg(long)]
        server: Option<String>,
    },
}

pub async fn run(cmd: Command) -> anyhow::Result<()> {
    let Command::Create {
        ttl,
        node,
        member,
        usage_limit,
        store,
        server,
    } = cmd;
    let server = server.unwrap_or_else(|| store.advertised_url());
    let client = store.connect().await?;
    let expires = (!ttl.is_zero())
        .then(|| jiff::SignedDuration::try_from(ttl).ok())
        .flatten()
        .and_then(|d| jiff::Timestamp::now().checked_add(d).ok());
    let (token, identity) = match &node {
        Some(name) => (
            new_secret().map_err(|e| anyhow::anyhow!(e.message))?,
            Identity::Node(name.clone()),
        ),
        None => {
            let (id, secret) = new_bootstrap_token().map_err(|e| anyhow::anyhow!(e.message))?;
            let identity = if member {
                Identity::MemberBootstrap(id.clone())
            } else {
                Identity::Bootstrap(id.clone())
            };
            (format!("{id}.{secret}"), identity)
        }
    };
    let record = TokenRecord {
        identity,
        expires,
        used_by: None,
        usage_limit: match (&node, member) {
            (Some(_), _) => None,
            (None, true) => Some(usage_limit.unwrap_or(1)),
            (None, false) => usage_limit,
        },
        uses: 0,
    };
    client
        .put(token_key(&token).as_bytes(), &serde_json::to_vec(&record)?)
        .await
        .context("failed to record the token")?;
    if node.is_some() {
        println!("{token}");
        return Ok(());
    }
    let secrets = StoreAccess::cluster_secrets(&client).await?;
    let hash = secrets.ca.cert_hash()?;
    if member {
        println!("rk8s-server --join {server} --token {token} --ca-cert-hash {hash}");
    } else {
        println!("rk8s-node join {server} --token {token} --ca-cert-hash {hash}");
    }
    Ok(())
}
