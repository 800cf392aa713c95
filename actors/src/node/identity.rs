//! Joining: a bootstrap token and a pinned CA hash become a node credential, a
//! podCIDR and a kubeconfig, saved under the node's data directory so that a restart
//! (`rk8s-node run`) reuses them.

use std::path::{Path, PathBuf};

use http::Request;
use kube::config::{AuthInfo, Config};
use rk8s_http::wire::{ClusterInfo, JoinRequest, JoinResponse, ServingCert, ServingCertRequest};
use serde::{Deserialize, Serialize};

use super::{Error, Result, api};

/// What a joined node keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The API server.
    pub server: String,
    /// The node's name.
    pub node_name: String,
    /// Its pod range.
    pub pod_cidr: String,
    /// The cluster CA (PEM).
    pub ca_cert: String,
    /// Its credential.
    pub token: String,
}

fn uri(server: &str) -> Result<http::Uri> {
    server.parse().map_err(|e| {
        Error::Other(format!(
            "{server:?} is not a server URL such as https://10.0.0.1:6443: {e}"
        ))
    })
}

/// `sha256:<hex>` of the DER of a PEM certificate, as `rk8s-server token create` prints.
pub fn ca_hash(pem: &str) -> Result<String> {
    rk8s_http::tls::cert_hash(pem).map_err(|e| Error::Other(format!("the server's CA: {e}")))
}

fn pem_der(pem: &str) -> Result<Vec<u8>> {
    rk8s_http::tls::pem_to_der(pem).map_err(|e| Error::Other(format!("the server's CA: {e}")))
}

/// The cluster CA of the API server at `server`, read over a connection not yet
/// trusted and accepted only if it hashes to `expected_hash` (`sha256:<hex>`), as
/// kubeadm's token discovery does.
pub async fn trusted_ca(server: &str, expected_hash: &str) -> Result<String> {
    let mut insecure = Config::new(uri(server)?);
    insecure.accept_invalid_certs = true;
    let client = kube::Client::try_from(insecure).map_err(api("failed to reach the API server"))?;
    let request = Request::get("/rk8s/v1/cluster-info")
        .body(Vec::new())
        .map_err(|e| Error::Other(e.to_string()))?;
    let info: ClusterInfo = client
        .request(request)
        .await
        .map_err(api(format!("failed to read the cluster CA from {server}")))?;
    let actual = ca_hash(&info.ca_cert)?;
    if actual != expected_hash.trim() {
        return Err(Error::CaMismatch {
            expected: expected_hash.trim().to_string(),
            actual,
        });
    }
    Ok(info.ca_cert)
}

/// Joins the cluster at `server` with the bootstrap `token`, trusting it only if its
/// CA hashes to `ca_hash` (`sha256:<hex>`).
pub async fn join(
    server: &str,
    token: &str,
    expected_hash: &str,
    node_name: &str,
) -> Result<Identity> {
    // 1. The CA, checked against the pin.
    let ca_cert = trusted_ca(server, expected_hash).await?;
    // 2. From here on the server is verified against that CA.
    let client = client_for(server, &ca_cert, token)?;
    let asked = JoinRequest {
        node_name: node_name.to_string(),
    };
    let body = serde_json::to_vec(&asked).map_err(|e| Error::Other(e.to_string()))?;
    let request = Request::post("/rk8s/v1/join")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| Error::Other(e.to_string()))?;
    let joined: JoinResponse = client
        .request(request)
        .await
        .map_err(api("the server refused the join"))?;
    Ok(Identity {
        server: server.to_string(),
        node_name: joined.node_name,
        pod_cidr: joined.pod_cidr,
        ca_cert,
        token: joined.token,
    })
}

/// A client for `server`, verified against `ca_pem`, authenticating with `token`.
pub fn client_for(server: &str, ca_pem: &str, token: &str) -> Result<kube::Client> {
    let mut config = Config::new(uri(server)?);
    config.root_cert = Some(vec![pem_der(ca_pem)?]);
    config.auth_info = AuthInfo {
        token: Some(token.to_string().into()),
        ..Default::default()
    };
    kube::Client::try_from(config).map_err(api(format!("failed to set up a client for {server}")))
}

/// Writes a file readable by root only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)
}

impl Identity {
    /// Where the identity is kept in a data directory.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("identity.json")
    }

    /// Saves it (readable by root only), with a kubeconfig next to it.
    pub fn save(&self, data_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(data_dir).map_err(|source| Error::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        write_private(&Self::path(data_dir), &json)?;
        let kubeconfig = rk8s_http::wire::kubeconfig(
            &self.server,
            &self.ca_cert,
            &format!("system:node:{}", self.node_name),
            &self.token,
        );
        write_private(&data_dir.join("kubeconfig"), kubeconfig.as_bytes())
    }

    /// The saved identity, if the node has joined.
    pub fn load(data_dir: &Path) -> Result<Option<Self>> {
        let path = Self::path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Other(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// A serving certificate for this node's HTTPS endpoint from the cluster CA,
    /// naming `addresses`; saved next to the identity, whose copy is used when the
    /// control plane cannot be reached.
    pub async fn serving_cert(
        &self,
        client: &kube::Client,
        data_dir: &Path,
        addresses: &[String],
    ) -> Result<ServingCert> {
        let path = data_dir.join("serving.json");
        let asked = ServingCertRequest {
            addresses: addresses.to_vec(),
        };
        let body = serde_json::to_vec(&asked).map_err(|e| Error::Other(e.to_string()))?;
        let request = Request::post("/rk8s/v1/serving-cert")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| Error::Other(e.to_string()))?;
        match client.request::<ServingCert>(request).await {
            Ok(cert) => {
                let json =
                    serde_json::to_vec_pretty(&cert).map_err(|e| Error::Other(e.to_string()))?;
                write_private(&path, &json)?;
                Ok(cert)
            }
            Err(e) => {
                let saved = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                match saved {
                    Some(cert) => {
                        tracing::warn!("no new serving certificate ({e}); using the saved one");
                        Ok(cert)
                    }
                    None => Err(api("failed to get a serving certificate")(e)),
                }
            }
        }
    }

    /// A client with this identity.
    pub fn client(&self) -> Result<kube::Client> {
        client_for(&self.server, &self.ca_cert, &self.token)
    }
}
