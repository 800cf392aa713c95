//! The cluster's certificates: one CA per cluster (kept in the store, so every member
//! signs with the same one), and a serving certificate per member signed by it.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

const CA_NAME: &str = "rk8s-ca";

/// The subject of the API server's client certificate towards node agents.
pub const APISERVER_CLIENT_NAME: &str = "system:rk8s-apiserver";

/// The cluster CA: certificate and key, PEM.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClusterCa {
    /// The CA certificate (what clients trust).
    pub cert_pem: String,
    /// The CA private key.
    pub key_pem: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

/// A certificate problem.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Generating or signing failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A stored certificate or key does not parse.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
    /// TLS setup failed.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    valid_for(&mut params, 10 * 365);
    params
}

/// Valid from yesterday (clock skew between members) for `days`.
fn valid_for(params: &mut CertificateParams, days: i64) {
    let day = |offset: i64| {
        let d = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(24 * offset))
            .unwrap_or(jiff::Timestamp::MAX)
            .to_zoned(jiff::tz::TimeZone::UTC);
        rcgen::date_time_ymd(
            i32::from(d.year()),
            d.month().unsigned_abs(),
            d.day().unsigned_abs(),
        )
    };
    params.not_before = day(-1);
    params.not_after = day(days);
}

impl ClusterCa {
    /// A new CA, valid for ten years.
    pub fn generate() -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let cert = ca_params().self_signed(&key)?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues the API server's serving certificate for `names` (DNS names or IP
    /// addresses), valid for a year; returns (certificate PEM, key PEM).
    pub fn issue_server(&self, names: &[String]) -> Result<(String, String), PkiError> {
        self.issue("rk8s-apiserver", names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// Issues a node agent's serving certificate (its port 10250) for `names`.
    pub fn issue_node_server(
        &self,
        node: &str,
        names: &[String],
    ) -> Result<(String, String), PkiError> {
        self.issue(
            &format!("system:node:{node}"),
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// Issues the certificate an API server presents to node agents when it proxies
    /// logs and exec. It is the only kind of certificate the CA signs for client
    /// authentication, so node agents accept a client when its chain verifies.
    pub fn issue_apiserver_client(&self) -> Result<(String, String), PkiError> {
        self.issue(
            APISERVER_CLIENT_NAME,
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn issue(
        &self,
        common_name: &str,
        names: &[String],
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<(String, String), PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(|e| PkiError::Invalid {
            what: "CA key",
            detail: e.to_string(),
        })?;
        let issuer = Issuer::new(ca_params(), ca_key);
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        valid_for(&mut params, 365);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// `sha256:<hex>` of the CA certificate (DER): what `rk8s-node join
    /// --ca-cert-hash` pins.
    pub fn cert_hash(&self) -> Result<String, PkiError> {
        let der = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|e| {
            PkiError::Invalid {
                what: "CA certificate",
                detail: e.to_string(),
            }
        })?;
        let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
        Ok(format!("sha256:{}", hex(digest.as_ref())))
    }
}

/// The DER bytes of a PEM certificate.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|der| der.as_ref().to_vec())
        .map_err(|e| PkiError::Invalid {
            what: "certificate",
            detail: e.to_string(),
        })
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cert_and_key(
    cert_pem: &str,
    key_pem: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Invalid {
            what: "certificate",
            detail: e.to_string(),
        })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| PkiError::Invalid {
        what: "private key",
        detail: e.to_string(),
    })?;
    Ok((certs, key))
}

fn roots(ca_pem: &str) -> Result<Arc<rustls::RootCertStore>, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| PkiError::Invalid {
            what: "CA certificate",
            detail: e.to_string(),
        })?;
        roots.add(cert)?;
    }
    Ok(Arc::new(roots))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server configuration from a certificate chain and key (PEM), speaking
/// HTTP/2 and HTTP/1.1.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let (certs, key) = cert_and_key(cert_pem, key_pem)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A node agent's TLS server configuration: its certificate, and only clients with a
/// client certificate from the cluster CA (API servers) get in. HTTP/1.1, which
/// WebSocket upgrades need.
pub fn node_server_config(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let (certs, key) = cert_and_key(cert_pem, key_pem)?;
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
            .build()
            .map_err(|e| PkiError::Invalid {
                what: "CA certificate",
                detail: e.to_string(),
            })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS client configuration trusting only `ca_pem` (for tests and tools).
pub fn client_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The API server's TLS client configuration towards node agents: trusts only the
/// cluster CA and presents the API server's client certificate. HTTP/1.1.
pub fn node_client_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let (certs, key) = cert_and_key(cert_pem, key_pem)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(ca_pem: &str) -> Arc<rustls::client::WebPkiServerVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap()
    }

    #[test]
    fn issued_certificates_chain_to_the_ca() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{ServerName, UnixTime};
        let ca = ClusterCa::generate().unwrap();
        let (cert, key) = ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        server_config(&cert, &key).unwrap();
        client_config(&ca.cert_pem).unwrap();
        let end = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        for name in ["localhost", "127.0.0.1"] {
            let name = ServerName::try_from(name).unwrap();
            verifier(&ca.cert_pem)
                .verify_server_cert(&end, &[], &name, &[], UnixTime::now())
                .unwrap();
        }
        let other = ClusterCa::generate().unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        assert!(
            verifier(&other.cert_pem)
                .verify_server_cert(&end, &[], &name, &[], UnixTime::now())
                .is_err()
        );
        assert!(ca.cert_hash().unwrap().starts_with("sha256:"));
        assert_eq!(ca.cert_hash().unwrap().len(), 7 + 64);
    }

    #[test]
    fn only_apiserver_client_certificates_reach_node_agents() {
        use rustls::pki_types::UnixTime;
        let ca = ClusterCa::generate().unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots(&ca.cert_pem).unwrap(),
            provider(),
        )
        .build()
        .unwrap();
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (client, client_key) = ca.issue_apiserver_client().unwrap();
        verifier
            .verify_client_cert(&der(&client), &[], UnixTime::now())
            .unwrap();
        // A node's or a member's serving certificate is no client certificate.
        let (node, node_key) = ca
            .issue_node_server("n1", &["n1".into(), "10.0.0.5".into()])
            .unwrap();
        let (member, _) = ca.issue_server(&["localhost".into()]).unwrap();
        for cert in [&node, &member] {
            assert!(
                verifier
                    .verify_client_cert(&der(cert), &[], UnixTime::now())
                    .is_err()
            );
        }
        // Another cluster's client certificate neither.
        let (foreign, _) = ClusterCa::generate()
            .unwrap()
            .issue_apiserver_client()
            .unwrap();
        assert!(
            verifier
                .verify_client_cert(&der(&foreign), &[], UnixTime::now())
                .is_err()
        );
        node_server_config(&node, &node_key, &ca.cert_pem).unwrap();
        node_client_config(&ca.cert_pem, &client, &client_key).unwrap();
    }
}
