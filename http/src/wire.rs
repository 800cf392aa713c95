//! What node agents and API servers send each other outside the Kubernetes API: the
//! join of a node (`POST /rk8s/v1/join`), its serving certificate
//! (`POST /rk8s/v1/serving-cert`), the cluster CA (`GET /rk8s/v1/cluster-info`), and the
//! kubeconfig a credential is written into.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What a joining node asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinRequest {
    /// The name it registers under.
    pub node_name: String,
}

/// What a joined node gets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    /// Its name.
    pub node_name: String,
    /// Its credential from now on.
    pub token: String,
    /// Its pod range.
    pub pod_cidr: String,
}

/// What a node asks a serving certificate for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServingCertRequest {
    /// The IP addresses it is reached at, besides its name.
    pub addresses: Vec<String>,
}

/// A node's serving certificate and key (PEM).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServingCert {
    /// The certificate, signed by the node CA.
    pub cert: String,
    /// Its private key.
    pub key: String,
}

/// The cluster CA, public (as kubeadm's `cluster-info` ConfigMap): a joining node
/// checks it against the hash it was given before trusting anything else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// The CA certificate (PEM).
    pub ca_cert: String,
    /// Its `sha256:<hex>` hash.
    pub ca_cert_hash: String,
}

/// A kubeconfig for `server` trusting `ca_pem`, authenticating as `user` with `token`.
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str, token: &str) -> String {
    kubeconfig_for(server, ca_pem, user, json!({"token": token}))
}

/// A kubeconfig for `server` trusting `ca_pem`, authenticating as `user` with a
/// client certificate and its key (PEM).
pub fn kubeconfig_with_certificate(
    server: &str,
    ca_pem: &str,
    user: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let credentials = json!({
        "client-certificate-data": b64(cert_pem),
        "client-key-data": b64(key_pem),
    });
    kubeconfig_for(server, ca_pem, user, credentials)
}

fn kubeconfig_for(server: &str, ca_pem: &str, user: &str, credentials: Value) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "rk8s", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "rk8s", "context": {"cluster": "rk8s", "user": user}}],
        "current-context": "rk8s",
        "preferences": {},
    });
    let mut out = String::new();
    rk8s_api::emit::write_yaml(&mut out, &config);
    out
}
