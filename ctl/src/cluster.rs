//! The connection to a cluster: kubeconfig loading (`--kubeconfig`, `RK8S_CONFIG`,
//! `KUBECONFIG`, `~/.rk8s/config`, `~/.kube/config`), the `kube` client, and errors worded as kubectl words them.

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

/// The kubeconfig files, in the order their settings count (the first file to set a
/// value wins, as kubectl merges them): `--kubeconfig`; else `RK8S_CONFIG`; else
/// `KUBECONFIG` (a list of paths, as kubectl reads it); else `~/.rk8s/config` and then
/// `~/.kube/config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeconfigFiles {
    /// The files, existing or not.
    pub paths: Vec<PathBuf>,
    /// Where they were named.
    pub source: Source,
}

/// Where the kubeconfig files were named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `--kubeconfig` or `RK8S_CONFIG`: one file, which must exist.
    Explicit,
    /// `KUBECONFIG`.
    List,
    /// `~/.rk8s/config`, `~/.kube/config`.
    Home,
}

impl KubeconfigFiles {
    /// The files `flag` and the environment name.
    pub fn find(flag: Option<&PathBuf>) -> Result<Self> {
        Self::from_env(flag, |name| std::env::var_os(name))
    }

    fn from_env(
        flag: Option<&PathBuf>,
        var: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Self> {
        let explicit = |p: PathBuf| KubeconfigFiles {
            paths: vec![p],
            source: Source::Explicit,
        };
        if let Some(p) = flag {
            return Ok(explicit(p.clone()));
        }
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        if let Some(p) = set("RK8S_CONFIG") {
            return Ok(explicit(PathBuf::from(p)));
        }
        if let Some(list) = set("KUBECONFIG") {
            let mut paths: Vec<PathBuf> = Vec::new();
            for p in std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()) {
                if !paths.contains(&p) {
                    paths.push(p);
                }
            }
            return Ok(KubeconfigFiles {
                paths,
                source: Source::List,
            });
        }
        let home = PathBuf::from(set("HOME").context("HOME is not set: pass --kubeconfig")?);
        Ok(KubeconfigFiles {
            paths: vec![home.join(".rk8s/config"), home.join(".kube/config")],
            source: Source::Home,
        })
    }

    /// The files that exist, in order; an error naming them when none does (or when
    /// the explicit one does not).
    pub fn existing(&self) -> Result<Vec<&PathBuf>> {
        let found: Vec<&PathBuf> = self.paths.iter().filter(|p| p.exists()).collect();
        if found.is_empty() || (self.source == Source::Explicit && found.len() != self.paths.len())
        {
            let names: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
            anyhow::bail!(
                "cannot read the kubeconfig {}: start rk8s-server (it writes ~/.rk8s/config) or pass --kubeconfig",
                names.join(" or ")
            );
        }
        Ok(found)
    }

    /// Where a new setting is written, as kubectl chooses: the explicit file, else
    /// the first of the files that exists, else the last of `KUBECONFIG`'s (the first
    /// of the default ones).
    pub fn default_file(&self) -> PathBuf {
        if let Some(p) = self.paths.iter().find(|p| p.exists()) {
            return p.clone();
        }
        match self.source {
            Source::List => self.paths.last(),
            Source::Explicit | Source::Home => self.paths.first(),
        }
        .cloned()
        .unwrap_or_default()
    }

    /// The files merged (`kube`'s merge: kubectl's first-wins rules).
    pub fn load(&self) -> Result<kube::config::Kubeconfig> {
        let mut merged: Option<kube::config::Kubeconfig> = None;
        for path in self.existing()? {
            let next = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            merged = Some(match merged {
                None => next,
                Some(m) => m
                    .merge(next)
                    .with_context(|| format!("cannot merge the kubeconfig {}", path.display()))?,
            });
        }
        merged.context("no kubeconfig")
    }
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
        let files = KubeconfigFiles::find(target.kubeconfig.as_ref())?;
        let kubeconfig = files.load()?;
        let options = kube::config::KubeConfigOptions {
            context: target.context.clone(),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .with_context(|| format!("invalid kubeconfig {}", describe_files(&files)))?;
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
        let _ = SERVER.set(server.clone());
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

fn describe_files(files: &KubeconfigFiles) -> String {
    let names: Vec<String> = files
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    names.join(":")
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
        other => unreachable_error(&other),
    }
}

/// The API server this process talks to (set when it connects), for errors that
/// happen before any answer.
static SERVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// An error reaching the server, as kubectl words it: the address and the cause at
/// the bottom of the error's chain (refused, timed out, a certificate not trusted).
fn unreachable_error(e: &kube::Error) -> anyhow::Error {
    let server = SERVER.get().map(String::as_str).unwrap_or("the API server");
    let mut causes: Vec<String> = Vec::new();
    let mut refused = false;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = next {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        let text = cause.to_string();
        // Wrappers repeat their source's words; keep each once.
        if !causes.iter().any(|c| c.contains(&text)) {
            causes.retain(|c| !text.contains(c.as_str()));
            causes.push(text);
        }
        next = cause.source();
    }
    let host = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    if refused {
        return anyhow::anyhow!(
            "The connection to the server {host} was refused - did you specify the right host or port?"
        );
    }
    anyhow::anyhow!(
        "Unable to connect to the server {server}: {}",
        causes.join(": ")
    )
}

/// Whether an error is the server's 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(flag: Option<&str>, env: &[(&str, &str)]) -> KubeconfigFiles {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        KubeconfigFiles::from_env(flag.map(PathBuf::from).as_ref(), |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.into())
        })
        .unwrap()
    }

    #[test]
    fn kubeconfig_files_in_kubectls_order() {
        let all = [
            ("RK8S_CONFIG", "/r"),
            ("KUBECONFIG", "/a:/b"),
            ("HOME", "/h"),
        ];
        assert_eq!(files(Some("/f"), &all).paths, [PathBuf::from("/f")]);
        assert_eq!(files(None, &all).paths, [PathBuf::from("/r")]);
        assert_eq!(files(None, &all).source, Source::Explicit);
        let list = files(None, &all[1..]);
        assert_eq!(list.paths, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(list.source, Source::List);
        // Empty entries and repeats are dropped; an empty variable is unset.
        assert_eq!(
            files(None, &[("KUBECONFIG", ":/a::/a:/b"), ("HOME", "/h")])
                .paths
                .len(),
            2
        );
        assert_eq!(
            files(None, &[("KUBECONFIG", ""), ("HOME", "/h")]).paths,
            [
                PathBuf::from("/h/.rk8s/config"),
                PathBuf::from("/h/.kube/config")
            ]
        );
        // New settings: the last of a list none of which exists, the first default.
        assert_eq!(
            files(None, &[("KUBECONFIG", "/nx/a:/nx/b")]).default_file(),
            PathBuf::from("/nx/b")
        );
        assert_eq!(
            files(None, &[("HOME", "/nx")]).default_file(),
            PathBuf::from("/nx/.rk8s/config")
        );
    }
}
