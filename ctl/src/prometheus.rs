//! `prometheus-config`: a Prometheus scrape configuration for the cluster of the
//! kubeconfig — the API server's `/metrics` (every component of the control plane
//! exports there), every node agent's own metrics and its containers' cAdvisor series
//! (through the API server's node proxy), and the pods annotated
//! `prometheus.io/scrape: "true"`, all but the first found through the API server's
//! HTTP service discovery. Prometheus scrapes as a read-only identity of its own, made
//! (or brought up to date) here: the ServiceAccount `kube-system/rk8s-prometheus`
//! bound to the ClusterRole `rk8s:prometheus` (`get` of `/metrics`, of the service
//! discovery's path and of `nodes/proxy`), with a token from the TokenRequest API.
//! The CA and the token go into files next to it, as Prometheus reads them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;

use crate::cluster::{Cluster, KubeconfigFiles, explain};
use crate::commands::Global;

/// `prometheus-config` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct PrometheusArgs {
    /// Where to write the CA certificate and the token the configuration refers to
    /// [default: ~/.rk8s/prometheus].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// How often Prometheus scrapes.
    #[arg(long, default_value = "15s")]
    pub scrape_interval: String,
    /// How long the scrape token works; run the command again before it ends.
    #[arg(long, default_value = "8760h", value_parser = rk8s_api::duration::parse_duration)]
    pub token_ttl: std::time::Duration,
}

/// The scrape identity's namespace and name.
const NAMESPACE: &str = "kube-system";
const ACCOUNT: &str = "rk8s-prometheus";
const ROLE: &str = "rk8s:prometheus";

/// The scrape identity's ServiceAccount, ClusterRole and ClusterRoleBinding, as
/// `(path, object)` for a server-side apply.
fn scrape_identity() -> [(String, serde_json::Value); 3] {
    let rbac = "/apis/rbac.authorization.k8s.io/v1";
    [
        (
            format!("/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{ACCOUNT}"),
            serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": ACCOUNT, "namespace": NAMESPACE}}),
        ),
        (
            format!("{rbac}/clusterroles/{ROLE}"),
            serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": ROLE},
            "rules": [
                {"nonResourceURLs": ["/metrics", "/rk8s/v1/prometheus/targets"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]},
            ]}),
        ),
        (
            format!("{rbac}/clusterrolebindings/{ROLE}"),
            serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": ROLE},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
                "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}]}),
        ),
    ]
}

/// Applies the scrape identity and asks for a token of it valid for `ttl`.
async fn scrape_token(cluster: &Cluster, ttl: std::time::Duration) -> Result<String> {
    for (path, object) in scrape_identity() {
        let req = http::Request::patch(format!("{path}?fieldManager=rk8sctl&force=true"))
            .header(http::header::CONTENT_TYPE, "application/apply-patch+yaml")
            .body(serde_json::to_vec(&object)?)?;
        let _: serde_json::Value = cluster.client.request(req).await.map_err(explain)?;
    }
    let request = serde_json::json!({"apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest", "spec": {"expirationSeconds": ttl.as_secs()}});
    let req = http::Request::post(format!(
        "/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{ACCOUNT}/token"
    ))
    .header(http::header::CONTENT_TYPE, "application/json")
    .body(serde_json::to_vec(&request)?)?;
    let answer: serde_json::Value = cluster.client.request(req).await.map_err(explain)?;
    answer["status"]["token"]
        .as_str()
        .map(str::to_string)
        .context("the TokenRequest's answer holds no token")
}

/// The scrape configuration for the API server at `server` (`https://HOST:PORT`),
/// with the CA and token in `ca` and `token`.
/// The `type: Bearer` is spelled out: Prometheus before 2.47 (Debian 12 has 2.42)
/// sends HTTP service discovery requests without it otherwise (prometheus#12762).
pub fn scrape_config(server: &str, ca: &Path, token: &Path, interval: &str) -> String {
    let host = server.trim_start_matches("https://").trim_end_matches('/');
    let (ca, token) = (ca.display(), token.display());
    format!(
        "# Written by rk8sctl prometheus-config.
global:
  scrape_interval: {interval}
scrape_configs:
  - job_name: rk8s-apiserver
    scheme: https
    tls_config: {{ca_file: {ca}}}
    authorization: {{type: Bearer, credentials_file: {token}}}
    static_configs:
      - targets: ['{host}']
  - job_name: rk8s-nodes
    scheme: https
    tls_config: {{ca_file: {ca}}}
    authorization: {{type: Bearer, credentials_file: {token}}}
    http_sd_configs:
      - url: {server}/rk8s/v1/prometheus/targets?role=nodes
        refresh_interval: {interval}
        tls_config: {{ca_file: {ca}}}
        authorization: {{type: Bearer, credentials_file: {token}}}
  - job_name: rk8s-cadvisor
    scheme: https
    tls_config: {{ca_file: {ca}}}
    authorization: {{type: Bearer, credentials_file: {token}}}
    http_sd_configs:
      - url: {server}/rk8s/v1/prometheus/targets?role=cadvisor
        refresh_interval: {interval}
        tls_config: {{ca_file: {ca}}}
        authorization: {{type: Bearer, credentials_file: {token}}}
  - job_name: rk8s-pods
    http_sd_configs:
      - url: {server}/rk8s/v1/prometheus/targets?role=pods
        refresh_interval: {interval}
        tls_config: {{ca_file: {ca}}}
        authorization: {{type: Bearer, credentials_file: {token}}}
"
    )
}

/// Writes the CA of the kubeconfig's current context and a token of the scrape
/// identity into the directory and prints the configuration.
pub async fn prometheus_config(g: &Global, args: &PrometheusArgs) -> Result<()> {
    let files = KubeconfigFiles::find(g.kubeconfig.as_ref())?;
    let config = files.load()?;
    let path = files.existing()?[0].clone();
    let context_name = g
        .context
        .clone()
        .or(config.current_context.clone())
        .with_context(|| format!("{}: no current context", path.display()))?;
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.clone())
        .with_context(|| format!("{}: no context {context_name:?}", path.display()))?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .with_context(|| format!("{}: no cluster {:?}", path.display(), context.cluster))?;
    let server = cluster.server.with_context(|| {
        format!(
            "{}: cluster {:?} has no server",
            path.display(),
            context.cluster
        )
    })?;
    let ca = cluster.certificate_authority_data.with_context(|| {
        format!(
            "{}: cluster {:?} has no certificate-authority-data",
            path.display(),
            context.cluster
        )
    })?;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(ca.trim())
        .with_context(|| {
            format!(
                "{}: certificate-authority-data is not base64",
                path.display()
            )
        })?;
    let cluster = g.connect().await?;
    let token = scrape_token(&cluster, args.token_ttl).await?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set: pass --dir")?;
            PathBuf::from(home).join(".rk8s").join("prometheus")
        }
    };
    // The token reads every metric: the directory is its owner's alone.
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let cannot = || format!("cannot create {}", dir.display());
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(cannot)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .with_context(cannot)?;
    }
    let (ca_file, token_file) = (dir.join("ca.crt"), dir.join("token"));
    for (file, bytes) in [(&ca_file, ca.as_slice()), (&token_file, token.as_bytes())] {
        std::fs::write(file, bytes).with_context(|| format!("cannot write {}", file.display()))?;
    }
    print!(
        "{}",
        scrape_config(&server, &ca_file, &token_file, &args.scrape_interval)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_scrapes_the_api_server_and_discovers_pods() {
        let text = scrape_config(
            "https://127.0.0.1:6443",
            Path::new("/p/ca.crt"),
            Path::new("/p/token"),
            "5s",
        );
        assert!(text.contains("      - targets: ['127.0.0.1:6443']\n"));
        for role in ["nodes", "cadvisor", "pods"] {
            assert!(text.contains(&format!(
                "      - url: https://127.0.0.1:6443/rk8s/v1/prometheus/targets?role={role}\n"
            )));
        }
        // Explicit: Prometheus before 2.47 sends no type in HTTP SD requests without it.
        assert!(text.contains("authorization: {type: Bearer, credentials_file: /p/token}"));
        assert!(text.contains("scrape_interval: 5s"));
    }
}
