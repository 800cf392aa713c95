//! The connection to a cluster: kubeconfig loading (`--kubeconfig`, `RK8S_CONFIG`,
//! `~/.rk8s/config`), the `kube` client, and errors worded as kubectl words them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use rk8s_api::ObjectKind;

/// Where the kubeconfig comes from.
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// `-n`.
    pub namespace: Option<String>,
}

/// The kubeconfig file to use: the flag, `RK8S_CONFIG`, or `~/.rk8s/config`.
pub fn kubeconfig_path(flag: Option<&PathBuf>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os("RK8S_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").context("HOME is not set: pass --kubeconfig")?;
    Ok(PathBuf::from(home).join(".rk8s").join("config"))
}

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: kube::Client,
    /// The namespace commands default to (`-n`, else the context's, else `default`).
    pub namespace: String,
    /// The API server URL.
    pub server: String,
}

impl Cluster {
    /// Connects as the kubeconfig says.
    pub async fn connect(target: &Target) -> Result<Self> {
        let path = kubeconfig_path(target.kubeconfig.as_ref())?;
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).with_context(|| {
            format!(
                "cannot read the kubeconfig {}: start rk8s-server (it writes ~/.rk8s/config) or pass --kubeconfig",
                path.display()
            )
        })?;
        let options = kube::config::KubeConfigOptions {
            context: target.context.clone(),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .with_context(|| format!("invalid kubeconfig {}", path.display()))?;
        let namespace = target
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let client = kube::Client::try_from(config).context("cannot build the API client")?;
        Ok(Cluster {
            client,
            namespace,
            server,
        })
    }

    /// The dynamic API of `kind` in `namespace` (ignored for cluster-scoped kinds;
    /// `None`: all namespaces).
    pub fn api(&self, kind: &ObjectKind, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = api_resource(kind);
        match (kind.is_namespaced(), namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// A GET of `path` (with query) whose answer is JSON; `accept` sets the
    /// `Accept` header (tables).
    pub async fn get_json(&self, path: &str, accept: &str) -> Result<serde_json::Value> {
        let req = http::Request::get(path)
            .header(http::header::ACCEPT, accept)
            .body(Vec::new())?;
        self.client.request(req).await.map_err(explain)
    }
}

/// The `kube` descriptor of one of rk8s's kinds.
pub fn api_resource(kind: &ObjectKind) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(kind.group, kind.version, kind.kind),
        kind.plural,
    )
}

/// A client error worded as kubectl words it:
/// `Error from server (NotFound): pods "x" not found`.
pub fn explain(e: kube::Error) -> anyhow::Error {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() {
                format!("{}", s.code)
            } else {
                s.reason.clone()
            };
            anyhow::anyhow!("Error from server ({reason}): {}", s.message)
        }
        other => anyhow::anyhow!("cannot reach the API server: {other}"),
    }
}

/// Whether an error is the server's 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
