//! `rk8s-server kubeconfig create`: a kubeconfig for a user, with a fresh client
//! certificate from the cluster's client CA (as `kubeadm kubeconfig user`): the user
//! name as its common name, each group as an organization. What the user may do is
//! what RBAC grants the user and those groups (`system:masters`: everything).

use anyhow::Context;
use clap::Subcommand;

use super::StoreAccess;

#[derive(Subcommand)]
pub enum Command {
    /// Print a kubeconfig for USER with a new client certificate, signed by the
    /// cluster's client CA, read through a member's store port.
    Create {
        /// The user name (the certificate's common name).
        #[arg(long)]
        user: String,
        /// A group of the user (an organization of the certificate); repeat for more.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// How long the certificate is valid.
        #[arg(long, default_value = "8760h", value_parser = super::run::parse_duration)]
        ttl: std::time::Duration,
        #[command(flatten)]
        store: StoreAccess,
        /// The API server URL in the kubeconfig [default: the one the member of
        /// --data-dir advertises].
        #[arg(long)]
        server: Option<String>,
    },
}

pub async fn run(cmd: Command) -> anyhow::Result<()> {
    let Command::Create {
        user,
        groups,
        ttl,
        store,
        server,
    } = cmd;
    if user.is_empty() {
        anyhow::bail!("--user: a user name is needed");
    }
    if ttl.is_zero() {
        anyhow::bail!("--ttl: a certificate needs a lifetime (e.g. 720h)");
    }
    let server = server.unwrap_or_else(|| store.advertised_url());
    let client = store.connect().await?;
    let secrets = StoreAccess::cluster_secrets(&client).await?;
    let client_ca = secrets
        .client_ca
        .context("the cluster has no client CA yet: restart an API server of this version once")?;
    let (cert, key) = client_ca
        .issue_client(&user, &groups, ttl)
        .context("failed to issue the client certificate")?;
    print!(
        "{}",
        rk8s_http::wire::kubeconfig_with_certificate(
            &server,
            &secrets.ca.cert_pem,
            &user,
            &cert,
            &key
        )
    );
    Ok(())
}
