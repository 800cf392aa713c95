//! The TLS accept loop both servers run: accept, a bounded TLS handshake, then
//! HTTP/1.1 or HTTP/2 (as ALPN chose) with upgrades, one task per connection.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::body::Body;
use crate::client_certs::ClientCertificates;

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate a client presented in its TLS handshake (DER), verified (by the
/// server configuration's client verifier, or by the [`ClientCertificates`] the
/// server was given), in each of its requests' extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificate(pub Arc<[u8]>);

/// A certificate a client presented that did not verify, and why (its requests
/// authenticate otherwise, as kube-apiserver's do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedCertificate(pub String);

/// Serves `handler` on `listener` with `tls` until the task is dropped. A refused
/// handshake is logged at debug level (a probe or a client without a certificate).
/// A client's address goes with each of its requests (a `SocketAddr`), and its
/// certificate as a [`PeerCertificate`].
pub async fn serve_tls<H, F>(listener: TcpListener, tls: Arc<rustls::ServerConfig>, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    serve(listener, tls, None, handler).await;
}

/// [`serve_tls`] for a configuration that takes any client certificate in the
/// handshake ([`ClientCertificates::deferred`]): each connection's is verified with
/// `clients` once, its requests carrying a [`PeerCertificate`] if it verifies and a
/// [`RejectedCertificate`] if not.
pub async fn serve_tls_checking<H, F>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    clients: ClientCertificates,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    serve(listener, tls, Some(clients), handler).await;
}

async fn serve<H, F>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    clients: Option<ClientCertificates>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, most likely: wait instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let clients = clients.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake refused: {e}");
                    return;
                }
                Err(_) => return,
            };
            let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
            let checked = match (&clients, chain.is_empty()) {
                (_, true) => None,
                (None, false) => Some(Ok(())),
                (Some(clients), false) => Some(clients.verify(chain)),
            };
            let peer_cert = match checked {
                None => None,
                Some(Ok(())) => chain
                    .first()
                    .map(|der| Ok(PeerCertificate(Arc::from(der.as_ref())))),
                Some(Err(why)) => {
                    tracing::debug!(%peer, "client certificate not verified: {why}");
                    Some(Err(RejectedCertificate(why)))
                }
            };
            let handler = move |mut req: Request<Incoming>| {
                // The client's address, for audit's `sourceIPs`.
                req.extensions_mut().insert(peer);
                match &peer_cert {
                    Some(Ok(cert)) => {
                        req.extensions_mut().insert(cert.clone());
                    }
                    Some(Err(rejected)) => {
                        req.extensions_mut().insert(rejected.clone());
                    }
                    None => {}
                }
                handler(req)
            };
            if let Err(e) = serve_connection(TokioIo::new(tls), handler).await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

/// Serves `handler` on one connection (HTTP/1.1 or HTTP/2, with upgrades) until it
/// ends: a TLS connection's, or an in-process one's ([`crate::loopback`]).
pub async fn serve_connection<I, H, F>(io: I, handler: H) -> Result<(), BoxError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let answer = handler(req);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(io, service)
        .await
}

/// An error of a connection.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
