//! TLS as rk8s speaks it (rustls with ring): server and client configurations from PEM,
//! the node agents' mutual TLS towards API servers, and certificate hashes.

use std::sync::{Arc, RwLock};

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use crate::client_certs::ClientCertificates;

/// A TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key does not parse.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// `sha256:<hex>` of a PEM certificate's DER: what `--ca-cert-hash` pins.
pub fn cert_hash(pem: &str) -> Result<String, TlsError> {
    let der = pem_to_der(pem)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    Ok(format!("sha256:{}", hex(digest.as_ref())))
}

/// The DER bytes of a PEM certificate.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, TlsError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|der| der.as_ref().to_vec())
        .map_err(|e| TlsError::Invalid {
            what: "certificate",
            detail: e.to_string(),
        })
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A certificate chain and its private key, from PEM.
pub fn cert_and_key(
    cert_pem: &str,
    key_pem: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            what: "certificate",
            detail: e.to_string(),
        })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Invalid {
        what: "private key",
        detail: e.to_string(),
    })?;
    Ok((certs, key))
}

/// The certificates of `ca_pem` as the only roots trusted.
pub fn roots(ca_pem: &str) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| TlsError::Invalid {
            what: "CA certificate",
            detail: e.to_string(),
        })?;
        roots.add(cert)?;
    }
    Ok(Arc::new(roots))
}

/// rustls' ring provider, which every configuration here uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server configuration from a certificate chain and key (PEM), speaking
/// HTTP/2 and HTTP/1.1.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (certs, key) = cert_and_key(cert_pem, key_pem)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The API server's TLS server configuration: its certificate (`cert`, renewed while
/// in use), HTTP/2 and HTTP/1.1, and a client certificate asked for but not required
/// (kube-apiserver's `RequestClientCert`), verified against `client_ca_pem` after the
/// handshake with the [`ClientCertificates`] returned beside it: one that verifies
/// authenticates its user, a client without one (or with one that does not verify)
/// authenticates otherwise (a bearer token).
pub fn api_server_config(
    cert: Arc<LiveCert>,
    client_ca_pem: &str,
) -> Result<(Arc<rustls::ServerConfig>, ClientCertificates), TlsError> {
    let clients = ClientCertificates::new(client_verifier(client_ca_pem, false)?);
    let config = server_config_with(cert, clients.deferred(), &[b"h2", b"http/1.1"])?;
    Ok((config, clients))
}

/// A verifier of client certificates against `ca_pem` (`required`: only clients
/// with one get in).
fn client_verifier(
    ca_pem: &str,
    required: bool,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let builder =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider());
    let builder = if required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|e| TlsError::Invalid {
        what: "CA certificate",
        detail: e.to_string(),
    })
}

/// A server configuration presenting `cert` that checks clients with `verifier`,
/// speaking `alpn`.
fn server_config_with(
    cert: Arc<LiveCert>,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A TLS client configuration trusting only `ca_pem` and presenting a client
/// certificate (a user's, for tests and tools).
pub fn client_cert_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let (certs, key) = cert_and_key(cert_pem, key_pem)?;
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// A node agent's TLS server configuration: its certificate (`cert`, renewed while in
/// use), and only clients with a client certificate from the cluster CA (API servers)
/// get in. HTTP/1.1, which WebSocket upgrades need.
pub fn node_server_config(
    cert: Arc<LiveCert>,
    ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_with(cert, client_verifier(ca_pem, true)?, &[b"http/1.1"])
}

/// A TLS client configuration trusting only `ca_pem` (for tests and tools).
pub fn client_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The API server's TLS client configuration towards node agents: trusts only the
/// node CA (`ca_pem`; the server name it checks is the node's name) and presents the
/// API server's client certificate (`cert`, renewed while in use). HTTP/1.1.
pub fn node_client_config(
    ca_pem: &str,
    cert: Arc<LiveCert>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A certificate and key that can be replaced while TLS configurations use them:
/// a server's certificate resolver and a client's certificate resolver at once.
pub struct LiveCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for LiveCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCert").finish_non_exhaustive()
    }
}

impl LiveCert {
    /// The certificate chain `cert_pem` with its key `key_pem`.
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(LiveCert {
            current: RwLock::new(certified(cert_pem, key_pem)?),
        }))
    }

    /// Presents `cert_pem` (key `key_pem`) from the next handshake on.
    pub fn replace(&self, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        self.set(certified(cert_pem, key_pem)?);
        Ok(())
    }

    /// Presents `next` (see [`certified`]) from the next handshake on.
    pub fn set(&self, next: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut current) => *current = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    /// The certificate presented now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The certificate chain `cert_pem` with its key `key_pem`, which must belong to it
/// (a key from another pair would fail every handshake, with an opaque error).
pub fn certified(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    let (certs, key) = cert_and_key(cert_pem, key_pem)?;
    let key = provider().key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(certs, key);
    certified.keys_match().map_err(|e| TlsError::Invalid {
        what: "certificate and key",
        detail: format!("the key is not the certificate's ({e})"),
    })?;
    Ok(Arc::new(certified))
}

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for LiveCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
