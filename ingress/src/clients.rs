//! The connections to the pods: a hyper-util client (keep-alive pool, idle
//! connections closed after [`IDLE_TIMEOUT`], at most [`IDLE_PER_HOST`] kept per
//! endpoint) for each backend protocol and connect timeout the Ingresses ask for.
//! TLS to the pods (`backend-protocol: HTTPS|GRPCS`) does not verify their
//! certificate, as ingress-nginx by default (`proxy_ssl_verify off`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::annotations::Protocol;

/// An error of a body or a connection.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The bodies the proxy sends and answers with.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// How long an idle pooled connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The most idle connections kept per endpoint.
pub const IDLE_PER_HOST: usize = 256;
/// The most clients (protocol × connect timeout) kept; beyond, the 5 s default's.
const MAX_CLIENTS: usize = 64;

enum Backend {
    Plain(Client<HttpConnector, Body>),
    Tls(Client<HttpsConnector<HttpConnector>, Body>),
}

/// The clients by protocol and connect timeout.
#[derive(Default)]
pub struct Clients {
    by: Mutex<HashMap<(Protocol, Duration), Arc<Backend>>>,
}

impl Clients {
    /// Sends `req` (its URI absolute: `http://` or `https://` and the endpoint).
    pub fn request(
        &self,
        protocol: Protocol,
        connect: Duration,
        req: http::Request<Body>,
    ) -> ResponseFuture {
        match &*self.client(protocol, connect) {
            Backend::Plain(c) => c.request(req),
            Backend::Tls(c) => c.request(req),
        }
    }

    fn client(&self, protocol: Protocol, connect: Duration) -> Arc<Backend> {
        let mut by = self.by.lock().unwrap_or_else(PoisonError::into_inner);
        let connect = if by.len() >= MAX_CLIENTS && !by.contains_key(&(protocol, connect)) {
            Duration::from_secs(5)
        } else {
            connect
        };
        by.entry((protocol, connect))
            .or_insert_with(|| Arc::new(build(protocol, connect)))
            .clone()
    }
}

fn build(protocol: Protocol, connect: Duration) -> Backend {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect));
    http.set_nodelay(true);
    http.enforce_http(!protocol.tls());
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(IDLE_PER_HOST)
        .pool_timer(TokioTimer::new())
        .http2_only(protocol.http2());
    if !protocol.tls() {
        return Backend::Plain(builder.build(http));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth()
        });
    let config = match config {
        Ok(c) => c,
        // The ring provider has the default versions: not reached.
        Err(_) => return Backend::Plain(builder.build(http)),
    };
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    let connector = if protocol.http2() {
        tls.enable_http2().wrap_connector(http)
    } else {
        tls.enable_http1().wrap_connector(http)
    };
    Backend::Tls(builder.build(connector))
}

/// Accepts any certificate of a pod (signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
