//! The proxy's certificates, chosen by SNI as ingress-nginx chooses them: the
//! certificate of the exact host, else of the wildcard `*.` + its parent domain,
//! else — no SNI, or a host without one — the node's self-signed default
//! ("Kubernetes Ingress Controller Fake Certificate", made at start with rcgen).
//! Certificates come from `kubernetes.io/tls` Secrets (`tls.crt`, `tls.key`).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::routes;

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM holds no certificate.
    #[error("tls.crt holds no PEM certificate")]
    NoCertificate,
    /// The key cannot be read or used.
    #[error("tls.key: {0}")]
    Key(String),
    /// The key does not belong to the certificate.
    #[error("tls.key does not match tls.crt: {0}")]
    Mismatch(String),
    /// The default certificate could not be made.
    #[error("the default certificate: {0}")]
    Generate(String),
}

/// A Secret's `tls.crt` and `tls.key` as a certificate rustls serves.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(Arc::new(certified))
}

/// The self-signed default certificate, as ingress-nginx's.
pub fn fake_certificate() -> Result<Arc<CertifiedKey>, TlsError> {
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut params =
        rcgen::CertificateParams::new(vec!["ingress.local".to_string()]).map_err(generate)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Kubernetes Ingress Controller Fake Certificate",
    );
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Acme Co");
    let key = rcgen::KeyPair::generate().map_err(generate)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    certified_key(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
}

/// The certificates of one moment.
#[derive(Clone)]
pub struct Certificates {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl Certificates {
    /// None but `default`.
    pub fn new(default: Arc<CertifiedKey>) -> Self {
        Certificates {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default,
        }
    }

    /// Serves `key` for `hosts` (exact or `*.` wildcards) unless an earlier call gave
    /// them one (callers add the oldest Ingress's first).
    pub fn add(&mut self, hosts: &[String], key: &Arc<CertifiedKey>) {
        for host in hosts {
            let host = host.to_ascii_lowercase();
            let (map, name) = match routes::wildcard_suffix(&host) {
                Some(suffix) => (&mut self.wildcard, suffix.to_string()),
                None => (&mut self.exact, host.clone()),
            };
            map.entry(name).or_insert_with(|| key.clone());
        }
    }

    /// The certificate for the SNI name `sni`.
    pub fn lookup(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(host) = sni.and_then(routes::normalize_host) else {
            return self.default.clone();
        };
        self.exact
            .get(&host)
            .or_else(|| self.wildcard.get(routes::parent(&host)?))
            .unwrap_or(&self.default)
            .clone()
    }
}

/// The resolver the TLS listener asks, its certificates swapped as the Ingresses
/// change (handshakes under way keep the ones they got).
pub struct Resolver {
    current: RwLock<Arc<Certificates>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl Resolver {
    /// A resolver serving `certificates`.
    pub fn new(certificates: Certificates) -> Self {
        Resolver {
            current: RwLock::new(Arc::new(certificates)),
        }
    }

    /// Serves `certificates` from now on.
    pub fn set(&self, certificates: Certificates) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certificates);
    }

    /// The certificates served now.
    pub fn current(&self) -> Arc<Certificates> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().lookup(hello.server_name()))
    }
}

/// The TLS listener's configuration: certificates from `resolver`, ALPN `h2` then
/// `http/1.1`.
pub fn server_config(resolver: Arc<Resolver>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_no_client_auth().with_cert_resolver(resolver.clone()))
    .unwrap_or_else(|_| {
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(resolver)
    });
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn cert_for(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn key_for(name: &str) -> Arc<CertifiedKey> {
        let (c, k) = cert_for(name);
        certified_key(c.as_bytes(), k.as_bytes()).unwrap()
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_the_default() {
        let default = fake_certificate().unwrap();
        let (a, wild, b) = (key_for("a.test"), key_for("*.test"), key_for("b.test"));
        let mut certs = Certificates::new(default.clone());
        certs.add(&["a.test".into()], &a);
        certs.add(&["*.test".into()], &wild);
        // A later Ingress's certificate for a host taken already is not used.
        certs.add(&["A.test".into(), "b.test".into()], &b);
        let same = |x: &Arc<CertifiedKey>, y: &Arc<CertifiedKey>| Arc::ptr_eq(x, y);
        assert!(same(&certs.lookup(Some("a.test")), &a));
        assert!(same(&certs.lookup(Some("b.test")), &b));
        assert!(same(&certs.lookup(Some("c.test")), &wild));
        assert!(same(&certs.lookup(Some("x.c.test")), &default));
        assert!(same(&certs.lookup(None), &default));
        let resolver = Resolver::new(certs);
        resolver.set(Certificates::new(a.clone()));
        assert!(same(&resolver.current().lookup(Some("b.test")), &a));
    }

    #[test]
    fn invalid_secrets_are_refused() {
        let (c1, _) = cert_for("a.test");
        let (_, k2) = cert_for("b.test");
        assert!(matches!(
            certified_key(b"nothing", k2.as_bytes()),
            Err(TlsError::NoCertificate)
        ));
        assert!(matches!(
            certified_key(c1.as_bytes(), b"nothing"),
            Err(TlsError::Key(_))
        ));
        assert!(matches!(
            certified_key(c1.as_bytes(), k2.as_bytes()),
            Err(TlsError::Mismatch(_))
        ));
    }
}
