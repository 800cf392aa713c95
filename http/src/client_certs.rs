//! The API server's client certificates, checked as kube-apiserver checks them: the
//! TLS handshake takes any certificate whose key the client proves it holds (Go's
//! `tls.RequestClientCert`), and the certificate is verified against the client CA
//! once per connection after it ([`ClientCertificates::verify`]). A certificate of
//! another CA, or an expired one, then authenticates nobody — the request goes on to
//! its bearer token, or gets 401 — instead of failing the handshake.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Verifies a connection's client certificate chain against the client CA.
#[derive(Clone, Debug)]
pub struct ClientCertificates(Arc<dyn ClientCertVerifier>);

impl ClientCertificates {
    /// Checks with `verifier` (the client CA's).
    pub fn new(verifier: Arc<dyn ClientCertVerifier>) -> Self {
        ClientCertificates(verifier)
    }

    /// Whether `chain` (leaf first) verifies against the client CA now; why not.
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<(), String> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| "no certificate".to_string())?;
        self.0
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The handshake's side: any certificate, its key's possession proven with
    /// the client CA's verifier, the client CA's names offered as hints.
    pub fn deferred(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(Deferred(self.0.clone()))
    }
}

/// A verifier that takes every chain in the handshake (verified later) but checks
/// the handshake's signatures as `.0` does.
#[derive(Debug)]
struct Deferred(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Deferred {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Checked after the handshake, per connection (see the module's comment).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
