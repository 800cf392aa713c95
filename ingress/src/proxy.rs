//! The proxy server: HTTP/1.1 and HTTP/2 (hyper-util's auto builder; ALPN `h2` and
//! `http/1.1` on TLS) on the node's ports, each request routed by the table of the
//! moment ([`Proxy::set`] swaps it in; connections and requests under way keep the
//! one they read) and passed to a pod. Answers of its own, with a short plain-text
//! body: 404 no route, 308 to https, 413 body too large, 502 the pod could not be
//! reached or broke off, 503 no endpoints, 504 no answer in time. An `Upgrade`
//! (WebSocket) answered 101 by the pod joins both connections, copied both ways.
//! Bounds: [`MAX_CONNECTIONS`] per listener (then accepting waits), a header read
//! timeout, a TLS handshake timeout, the body size limit.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::clients::{Body, BoxError, Clients};
use crate::headers::{self, Forwarded};
use crate::metrics;
use crate::table::{Backend, Route, Table};
use crate::tls::{self, Certificates, Resolver};

/// The most connections a listener serves at once.
pub const MAX_CONNECTIONS: usize = 16_384;
/// The longest a client takes to send a request's head (HTTP/1).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a TLS handshake takes.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The ports the proxy answers on (0: that listener is off).
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// Plain HTTP (80).
    pub http: u16,
    /// HTTPS (443).
    pub https: u16,
}

/// The proxy: its table, its certificates and its pools of connections to pods.
pub struct Proxy {
    table: RwLock<Arc<Table>>,
    certificates: Arc<Resolver>,
    clients: Clients,
    ports: Ports,
}

impl Proxy {
    /// A proxy with an empty table, answering TLS with `default_cert` until told
    /// otherwise; `ports` are the ones it is reached on (for redirects).
    pub fn new(ports: Ports, default_cert: Arc<rustls::sign::CertifiedKey>) -> Arc<Self> {
        Arc::new(Proxy {
            table: RwLock::new(Arc::new(Table::default())),
            certificates: Arc::new(Resolver::new(Certificates::new(default_cert))),
            clients: Clients::default(),
            ports,
        })
    }

    /// Serves `table` and `certificates` from the next request and handshake on.
    pub fn set(&self, table: Table, certificates: Certificates) {
        let keep = table.served.iter().cloned().collect();
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
        self.certificates.set(certificates);
        metrics::forget(&keep);
    }

    /// The table served now.
    pub fn table(&self) -> Arc<Table> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Listens on `port` of every address (plain, or TLS), retrying with backoff
    /// (telling `failed` each time) while the port cannot be bound; then serves.
    pub async fn listen(self: Arc<Self>, port: u16, tls: bool, failed: impl Fn(&std::io::Error)) {
        let mut wait = Duration::from_secs(1);
        let listener = loop {
            match TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, port)).await {
                Ok(l) => break l,
                Err(_) => match TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)).await {
                    Ok(l) => break l,
                    Err(e) => {
                        failed(&e);
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(60));
                    }
                },
            }
        };
        tracing::info!(port, tls, "ingress proxy listening");
        self.serve(listener, tls).await;
    }

    /// Serves `listener` (TLS or not) until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, tls: bool) {
        let acceptor = tls.then(|| {
            tokio_rustls::TlsAcceptor::from(tls::server_config(self.certificates.clone()))
        });
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, mostly: wait rather than spin.
                    tracing::debug!("ingress accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (me, acceptor) = (self.clone(), acceptor.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let at = (peer, port);
                match acceptor {
                    Some(a) => {
                        if let Ok(Ok(s)) =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, a.accept(stream)).await
                        {
                            me.connection(TokioIo::new(s), at, true).await;
                        }
                    }
                    None => me.connection(TokioIo::new(stream), at, false).await,
                }
            });
        }
    }

    async fn connection<I>(self: Arc<Self>, io: I, (peer, port): (SocketAddr, u16), https: bool)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(256);
        let service = hyper::service::service_fn(move |req| {
            let me = self.clone();
            async move { Ok::<_, Infallible>(me.handle(req, peer, port, https).await) }
        });
        let _ = builder.serve_connection_with_upgrades(io, service).await;
    }

    /// Answers one request.
    async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        port: u16,
        https: bool,
    ) -> Response<Body> {
        let started = Instant::now();
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                let h = req.headers().get(header::HOST)?;
                h.to_str().ok().map(str::to_string)
            })
            .unwrap_or_default();
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let table = self.table();
        let (backend, response) = match table.route(&host, &path, https) {
            Route::NotFound => (None, text(StatusCode::NOT_FOUND, "default backend - 404")),
            Route::Redirect => (None, self.redirect(&host, &path)),
            Route::Backend { backend, path } => {
                let backend = backend.clone();
                let at = Client {
                    peer,
                    port,
                    https,
                    host: &host,
                };
                let r = self.forward(req, &backend, path, &at).await;
                (Some(backend), r)
            }
        };
        let (ns, ingress, service) = match &backend {
            Some(b) => (b.namespace.as_str(), b.ingress.as_str(), b.service.as_str()),
            None => ("", "", ""),
        };
        metrics::observe(
            ns,
            ingress,
            service,
            response.status().as_u16(),
            started.elapsed(),
        );
        response
    }

    /// 308 to the same host and path on the HTTPS port.
    fn redirect(&self, host: &str, path: &str) -> Response<Body> {
        let name = crate::routes::normalize_host(host).unwrap_or_default();
        let name = if name.contains(':') {
            format!("[{name}]")
        } else {
            name
        };
        let location = match self.ports.https {
            443 | 0 => format!("https://{name}{path}"),
            p => format!("https://{name}:{p}{path}"),
        };
        let mut r = text(StatusCode::PERMANENT_REDIRECT, "permanent redirect");
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
    }

    /// Passes `req` to an endpoint of `backend` as `path`.
    async fn forward(
        &self,
        mut req: Request<Incoming>,
        backend: &Backend,
        path: String,
        client: &Client<'_>,
    ) -> Response<Body> {
        let options = &backend.options;
        let length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let (Some(limit), Some(len)) = (options.body_limit, length)
            && len > limit
        {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "request entity too large");
        }
        let Some(endpoint) = backend.pick() else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable: no endpoints",
            );
        };
        let upgrade = headers::upgrade(req.headers());
        let client_side = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let scheme = if options.protocol.tls() {
            "https"
        } else {
            "http"
        };
        let Ok(uri) = format!("{scheme}://{endpoint}{path}").parse::<Uri>() else {
            return text(StatusCode::BAD_REQUEST, "bad request path");
        };
        headers::strip_hop_by_hop(&mut parts.headers, options.protocol.http2());
        if let Some(u) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, u.clone());
        }
        if !parts.headers.contains_key(header::HOST)
            && let Ok(v) = HeaderValue::from_str(client.host)
        {
            parts.headers.insert(header::HOST, v);
        }
        headers::set_forwarded(
            &mut parts.headers,
            &Forwarded {
                client: client.peer.ip(),
                proto: if client.https { "https" } else { "http" },
                host: client.host,
                port: client.port,
            },
        );
        parts.uri = uri;
        parts.version = if options.protocol.http2() {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        let body: Body = match options.body_limit {
            Some(limit) => Idle::new(
                Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)),
                options.send_timeout,
            )
            .boxed_unsync(),
            None => Idle::new(body.map_err(BoxError::from), options.send_timeout).boxed_unsync(),
        };
        let sent = self.clients.request(
            options.protocol,
            options.connect_timeout,
            Request::from_parts(parts, body),
        );
        let answered =
            tokio::time::timeout(options.connect_timeout + options.read_timeout, sent).await;
        let mut response = match answered {
            Err(_) => return text(StatusCode::GATEWAY_TIMEOUT, "gateway timeout"),
            Ok(Err(e)) => {
                if caused_by::<http_body_util::LengthLimitError>(&e) {
                    return text(StatusCode::PAYLOAD_TOO_LARGE, "request entity too large");
                }
                if caused_by::<SendTimeout>(&e) {
                    return text(StatusCode::GATEWAY_TIMEOUT, "gateway timeout");
                }
                tracing::debug!(%endpoint, "ingress backend: {e}");
                return text(StatusCode::BAD_GATEWAY, "bad gateway");
            }
            Ok(Ok(r)) => r,
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_side) = client_side else {
                return text(
                    StatusCode::BAD_GATEWAY,
                    "bad gateway: an upgrade nobody asked for",
                );
            };
            let pod_side = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                let (Ok(c), Ok(p)) = tokio::join!(client_side, pod_side) else {
                    return;
                };
                let (mut c, mut p) = (TokioIo::new(c), TokioIo::new(p));
                let _ = tokio::io::copy_bidirectional(&mut c, &mut p).await;
            });
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, empty());
        }
        headers::strip_hop_by_hop(response.headers_mut(), false);
        response.map(|b| b.map_err(BoxError::from).boxed_unsync())
    }
}

/// Who asked, and where.
struct Client<'a> {
    peer: SocketAddr,
    port: u16,
    https: bool,
    host: &'a str,
}

/// Whether `e` or one of its causes is an `E`.
fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<E>() {
            return true;
        }
        cause = c.source();
    }
    false
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An answer of the proxy's own: `status` with `message` and a newline, plain text.
pub fn text(status: StatusCode, message: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(format!("{message}\n")))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `proxy-send-timeout` ran out.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled for longer than proxy-send-timeout")]
struct SendTimeout;

/// A request body that fails when its next piece takes longer than a limit.
struct Idle<B> {
    inner: B,
    limit: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl<B> Idle<B> {
    fn new(inner: B, limit: Duration) -> Self {
        Idle {
            inner,
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl<B> hyper::body::Body for Idle<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.limit;
                this.sleep.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(SendTimeout)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
