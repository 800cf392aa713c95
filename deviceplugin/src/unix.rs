//! gRPC over Unix sockets: a client channel to a socket path (as kubelet dials a
//! plugin: authority `localhost`, no TLS) and the stream of connections a server
//! accepts on a listener.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

/// How long a dial may take (kubelet's `dial`: 10 s).
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A channel to the gRPC server listening on `socket`; connected before it returns
/// (kubelet dials with `WithBlock`).
pub async fn connect(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket: PathBuf = socket.to_path_buf();
    // The URI is a placeholder: the connector ignores it and dials the socket.
    Endpoint::from_static("http://localhost")
        .connect_timeout(DIAL_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
}

/// The connections `listener` accepts, for `Server::serve_with_incoming`.
pub fn incoming(listener: tokio::net::UnixListener) -> tokio_stream::wrappers::UnixListenerStream {
    tokio_stream::wrappers::UnixListenerStream::new(listener)
}
