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

/// The host and port of `host:port` (brackets of an IPv6 address removed).
pub fn host_and_port(addr: &str) -> Option<(&str, &str)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.trim_start_matches('[').trim_end_matches(']'), port))
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
    let host = host_and_port(addr).map_or(addr, |(host, _)| host);
    let name = ServerName::try_from(host.to_string()).map_err(|e| {
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
    use super::host_and_port;

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host_and_port("127.0.0.1:2380"), Some(("127.0.0.1", "2380")));
        assert_eq!(
            host_and_port("member-a.example:2380"),
            Some(("member-a.example", "2380"))
        );
        assert_eq!(host_and_port("[::1]:2380"), Some(("::1", "2380")));
        assert_eq!(host_and_port("member-a"), None);
    }
}
