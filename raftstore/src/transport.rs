//! Connections between members, and from clients to members: TCP, with mutual TLS
//! when the member has certificates ([`PeerTls`]). A member with TLS accepts only
//! peers and clients that present a certificate of its CA.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A member's mutual TLS: how it accepts connections and how it makes them.
#[derive(Clone)]
pub struct PeerTls {
    /// Accepts peers and clients (requires their certificate).
    pub server: Arc<rustls::ServerConfig>,
    /// Connects to peers (presents this member's certificate).
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls").finish_non_exhaustive()
    }
}

/// A byte stream to a member or from a peer: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A boxed [`Io`].
pub type Stream = Box<dyn Io>;

/// The host of `host:port` (brackets of an IPv6 address removed).
fn host(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Connects to `addr` (`host:port`); with `tls`, verifies that the member's
/// certificate names `host` and presents this side's.
pub async fn connect(
    addr: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> std::io::Result<Stream> {
    let tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else {
        return Ok(Box::new(tcp));
    };
    let name = ServerName::try_from(host(addr).to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr:?}: not a host name or address: {e}"),
        )
    })?;
    let stream = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await?;
    Ok(Box::new(stream))
}

/// Completes an accepted connection: the TLS handshake when the member has TLS.
pub async fn accept(
    tcp: TcpStream,
    tls: Option<&tokio_rustls::TlsAcceptor>,
) -> std::io::Result<Stream> {
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Box::new(tcp)),
        Some(acceptor) => Ok(Box::new(acceptor.accept(tcp).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::host;

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host("127.0.0.1:2380"), "127.0.0.1");
        assert_eq!(host("member-a.example:2380"), "member-a.example");
        assert_eq!(host("[::1]:2380"), "::1");
    }
}
