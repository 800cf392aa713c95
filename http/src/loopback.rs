//! Connections to a server in the same process: what the control plane's own clients
//! (the scheduler, the controllers, the shared informers) use to reach their member's
//! API. Each connection is an in-memory pipe served by the same handler and the same
//! HTTP/1.1 code as a TLS connection, on the server's runtime; what it saves is the
//! TLS record layer and the loopback TCP stack on every request and watch event.
//! Authentication is unchanged: the requests carry the calling component's own
//! in-process credential.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::DuplexStream;

use crate::body::Body;

/// How many bytes a pipe holds in each direction before a writer waits.
const PIPE_BYTES: usize = 256 * 1024;

type Handler =
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync;

/// Opens in-memory connections to `handler` (a `hyper_util` connector: give it to a
/// `hyper_util::client::legacy::Client`).
#[derive(Clone)]
pub struct Connector {
    handler: Arc<Handler>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector to `handler`, whose connections are served on `runtime` (the
    /// server's, not the caller's: a client on the control plane's thread must not
    /// serve its own requests there).
    pub fn new<H, F>(handler: H, runtime: tokio::runtime::Handle) -> Self
    where
        H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Response<Body>> + Send + 'static,
    {
        Connector {
            handler: Arc::new(move |req| Box::pin(handler(req))),
            runtime,
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Pipe;
    type Error = std::io::Error;
    type Future = std::future::Ready<std::io::Result<Pipe>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (client, server) = tokio::io::duplex(PIPE_BYTES);
        let handler = self.handler.clone();
        self.runtime.spawn(async move {
            let handler = move |req| handler(req);
            if let Err(e) = crate::serve::serve_connection(TokioIo::new(server), handler).await {
                tracing::debug!("in-process connection ended: {e}");
            }
        });
        std::future::ready(Ok(Pipe(TokioIo::new(client))))
    }
}

/// The client's end of an in-process connection.
#[derive(Debug)]
pub struct Pipe(TokioIo<DuplexStream>);

impl Connection for Pipe {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Pipe {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Pipe {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_with_bodies_cross_the_pipes_the_pool_opens() {
        let connector = Connector::new(
            |req: Request<Incoming>| async move {
                let path = req.uri().path().to_string();
                let body = req.into_body().collect().await.map(|b| b.to_bytes());
                let text = format!("{path} {}", body.map(|b| b.len()).unwrap_or(0));
                crate::body::text_response(http::StatusCode::OK, &text)
            },
            tokio::runtime::Handle::current(),
        );
        let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        // More requests than one connection carries at a time: the pool opens several.
        let mut asked = tokio::task::JoinSet::new();
        for i in 0..20 {
            let client = client.clone();
            asked.spawn(async move {
                let req = Request::post(format!("http://in-process/r/{i}"))
                    .body(http_body_util::Full::from(vec![b'x'; i * 1000]))
                    .unwrap();
                let resp = client.request(req).await.unwrap();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                (i, String::from_utf8(body.to_vec()).unwrap())
            });
        }
        for (i, answer) in asked.join_all().await {
            assert_eq!(answer, format!("/r/{i} {}", i * 1000));
        }
    }
}
