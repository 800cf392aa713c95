//! The proxy server: HTTP/1.1 and HTTP/2 (hyper-util's auto builder; ALPN `h2` and
//! `http/1.1` on TLS) on the node's ports, each request routed by the table of the
//! moment ([`Proxy::set`] swaps it in; connections and requests under way keep the
//! one they read) and passed to a pod. Answers of its own, with a short plain-text
//! body: 400 a path that climbs above `/`, 404 no route, 308 to https, 413 body too
//! large, 502 the pod could not be reached or broke off, 503 no endpoints, 504 no
//! answer in time. A request to a Service that wakes on request and has no
//! endpoints is held ([`crate::activation`]) and routed again at each table swap;
//! 503 with `Retry-After` when its queue is full or its time is up. An `Upgrade`
//! (WebSocket) answered 101 by the pod joins both connections, copied both ways
//! until neither side sends for `proxy-read-timeout` (as ingress-nginx). Bounds
//! ([`Limits`]): connections per listener, tunnels included (then accepting
//! waits); a TLS handshake timeout; the first request head
//! within the header timeout of connecting (hyper-util's auto builder reads the
//! protocol's first bytes with no timeout of its own), later HTTP/1 heads too; a
//! connection with no request in flight closed after the keep-alive timeout; HTTP/2
//! clients pinged; the body size limit.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use tokio::sync::OwnedSemaphorePermit;

use crate::activation::{self, Activation, Hold, InFlight};
use crate::clients::{Body, BoxError, Clients};
use crate::headers::{self, Forwarded};
use crate::idle::{self, Activity, Guarded, Idle, Progress, Stalled};
use crate::metrics;
use crate::table::{Backend, Route, Table};
use crate::tls::{self, Certificates, Resolver};

/// The header on answers to requests that were held while their Service woke
/// (KEDA's `X-KEDA-HTTP-Cold-Start`).
pub const COLD_START: &str = "x-rk8s-cold-start";

/// The most connections a listener serves at once, upgraded ones included (each
/// also holds a socket to a pod: two listeners at most hold 4 × this many
/// descriptors).
pub const MAX_CONNECTIONS: usize = 8_192;
/// The longest a client takes from connecting (after TLS) to its first request
/// head, and over HTTP/1 to each later one.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a TLS handshake takes.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client connection with no request in flight is kept (ingress-nginx's
/// `keep-alive`, 75 s).
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// How often an HTTP/2 client is pinged, and how long its answer may take.
pub const HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// The proxy's bounds on its clients.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The most connections a listener serves at once, upgraded ones included.
    pub max_connections: usize,
    /// The longest from connecting (after TLS) to the first request head, and over
    /// HTTP/1 to each later one.
    pub header_read_timeout: Duration,
    /// The longest a TLS handshake takes.
    pub handshake_timeout: Duration,
    /// How long a connection with no request in flight is kept.
    pub keep_alive_timeout: Duration,
    /// How often an HTTP/2 client is pinged, and how long its answer may take.
    pub http2_keep_alive: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            keep_alive_timeout: KEEP_ALIVE_TIMEOUT,
            http2_keep_alive: HTTP2_KEEP_ALIVE,
        }
    }
}

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
    limits: Limits,
    activation: Arc<Activation>,
}

impl Proxy {
    /// A proxy with an empty table, answering TLS with `default_cert` until told
    /// otherwise; `ports` are the ones it is reached on (for redirects).
    pub fn new(ports: Ports, default_cert: Arc<rustls::sign::CertifiedKey>) -> Arc<Self> {
        Self::with_limits(ports, default_cert, Limits::default())
    }

    /// [`Proxy::new`] with other bounds on its clients.
    pub fn with_limits(
        ports: Ports,
        default_cert: Arc<rustls::sign::CertifiedKey>,
        limits: Limits,
    ) -> Arc<Self> {
        Self::with_activation(
            ports,
            default_cert,
            limits,
            Activation::new(activation::DEFAULT_QUEUE),
        )
    }

    /// [`Proxy::with_limits`] holding requests to Services scaled to zero in
    /// `activation` (shared with the node's activity stream).
    pub fn with_activation(
        ports: Ports,
        default_cert: Arc<rustls::sign::CertifiedKey>,
        limits: Limits,
        activation: Arc<Activation>,
    ) -> Arc<Self> {
        Arc::new(Proxy {
            table: RwLock::new(Arc::new(Table::default())),
            certificates: Arc::new(Resolver::new(Certificates::new(default_cert))),
            clients: Clients::default(),
            ports,
            limits,
            activation,
        })
    }

    /// The held requests and the counted traffic of Services that wake on request.
    pub fn activation(&self) -> &Arc<Activation> {
        &self.activation
    }

    /// Serves `table` and `certificates` from the next request and handshake on;
    /// held requests route again on it.
    pub fn set(&self, table: Table, certificates: Certificates) {
        let keep = table.served.iter().cloned().collect();
        let holding = table
            .backends()
            .filter(|b| b.hold.is_some())
            .map(|b| b.key())
            .collect();
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
        self.certificates.set(certificates);
        self.activation.swapped(&holding);
        metrics::forget(&keep);
    }

    /// Serves `certificates` from the next handshake on (a Secret fetched since the
    /// table was set).
    pub fn set_certificates(&self, certificates: Certificates) {
        self.certificates.set(certificates);
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
        let permits = Arc::new(tokio::sync::Semaphore::new(self.limits.max_connections));
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
                // Shared with the tunnels of upgraded requests, which outlive the
                // connection's task: the connection counts until they end.
                let permit = Arc::new(permit);
                let handshake = me.limits.handshake_timeout;
                match acceptor {
                    Some(a) => {
                        let at = Conn {
                            peer,
                            port,
                            https: true,
                            permit,
                        };
                        if let Ok(Ok(s)) = tokio::time::timeout(handshake, a.accept(stream)).await {
                            me.connection(TokioIo::new(s), at).await;
                        }
                    }
                    None => {
                        let at = Conn {
                            peer,
                            port,
                            https: false,
                            permit,
                        };
                        me.connection(TokioIo::new(stream), at).await;
                    }
                }
            });
        }
    }

    /// Serves one client connection until it ends, its first request head does not
    /// come within the header timeout, or no request is in flight for the
    /// keep-alive timeout.
    async fn connection<I>(self: Arc<Self>, io: I, at: Conn)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let limits = self.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(limits.http2_keep_alive))
            .keep_alive_timeout(limits.http2_keep_alive)
            .max_concurrent_streams(256);
        let activity = Arc::new(Activity::default());
        let seen = activity.clone();
        let at = Arc::new(at);
        let service = hyper::service::service_fn(move |req| {
            let (me, at, in_flight) = (self.clone(), at.clone(), seen.begin());
            async move {
                let response = me.handle(req, &at).await;
                // In flight until its body is sent.
                Ok::<_, Infallible>(response.map(|b| Guarded::new(b, in_flight).boxed_unsync()))
            }
        });
        let conn = builder.serve_connection_with_upgrades(io, service);
        let mut conn = std::pin::pin!(conn);
        let mut deadline = tokio::time::Instant::now() + limits.header_read_timeout;
        loop {
            tokio::select! {
                _ = conn.as_mut() => return,
                () = tokio::time::sleep_until(deadline) => {}
            }
            if !activity.started() {
                // Nothing, or no request head, in time: closed.
                return;
            }
            let now = tokio::time::Instant::now();
            match activity.idle_since() {
                Some(since) if since + limits.keep_alive_timeout <= now => break,
                Some(since) => deadline = since + limits.keep_alive_timeout,
                None => deadline = now + limits.keep_alive_timeout,
            }
        }
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(limits.header_read_timeout, conn).await;
    }

    /// Answers one request.
    async fn handle(&self, req: Request<Incoming>, at: &Conn) -> Response<Body> {
        let (peer, port, https) = (at.peer, at.port, at.https);
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
        let body = !hyper::body::Body::is_end_stream(req.body());
        let mut table = self.table();
        // Held for an endpoint (scale from zero): the place in the queue, until when.
        let mut held: Option<(Hold, tokio::time::Instant)> = None;
        let mut waited = false;
        let (backend, mut response) = loop {
            let (backend, sent) = match table.route(&host, &path, https) {
                Route::BadPath => break (None, text(StatusCode::BAD_REQUEST, "bad request path")),
                Route::NotFound => {
                    break (None, text(StatusCode::NOT_FOUND, "default backend - 404"));
                }
                Route::Redirect => break (None, self.redirect(&host, &path)),
                Route::Backend { backend, path } => (backend.clone(), path),
            };
            // Only a Service with no endpoint yet waits: a wrong port or a missing
            // Service is answered 503 at once and wakes nothing.
            if let Some(timeout) = backend.hold
                && backend.cold()
            {
                let key = backend.key();
                let deadline = held.as_ref().map(|(_, until)| *until);
                if held.as_ref().is_some_and(|(h, _)| h.key() != &key) {
                    // Routed elsewhere since: the new backend's queue, the same deadline.
                    held = None;
                }
                if held.is_none() {
                    match self.activation.hold(&key) {
                        Ok(h) => {
                            waited = true;
                            let until = deadline.unwrap_or_else(|| {
                                let limit = activation::hold_limit(timeout, body);
                                tokio::time::Instant::now() + limit
                            });
                            held = Some((h, until));
                            // A table swapped in between the read above and the hold's
                            // subscription would never wake it: route once more.
                            table = self.table();
                            continue;
                        }
                        Err(activation::Full) => {
                            let r = unavailable(1, "service unavailable: too many requests wait");
                            break (Some(backend), r);
                        }
                    }
                }
                let Some((hold, until)) = held.as_mut() else {
                    continue;
                };
                let swapped = tokio::select! {
                    s = hold.swapped() => s,
                    () = tokio::time::sleep_until(*until) => false,
                };
                if !swapped {
                    let r = unavailable(5, "service unavailable: no endpoint in time");
                    break (Some(backend), r);
                }
                table = self.table();
                continue;
            }
            let client = Client {
                peer,
                port,
                https,
                host: &host,
                permit: &at.permit,
            };
            // Counted when it can reach a pod: a request to a missing port is no
            // traffic of the Deployment's.
            let under_way = backend
                .hold
                .filter(|_| !backend.missing())
                .map(|_| self.activation.in_flight(&backend.key(), !waited));
            // Forwarded: out of the queue.
            held = None;
            let r = self.forward(req, &backend, sent, &client, under_way).await;
            break (Some(backend), r);
        };
        drop(held);
        if waited {
            response
                .headers_mut()
                .insert(COLD_START, HeaderValue::from_static("true"));
        }
        let (ns, ingress, service) = match &backend {
            Some(b) => (b.namespace.as_str(), b.ingress.as_str(), b.service.as_str()),
            None => ("", "", ""),
        };
        metrics::observe(ns, ingress, service, response.status(), started.elapsed());
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

    /// Passes `req` to an endpoint of `backend` as `path`; `under_way` (a counted
    /// backend's) lasts until the answer's body is sent, or the upgraded tunnel
    /// closes.
    async fn forward(
        &self,
        mut req: Request<Incoming>,
        backend: &Backend,
        path: String,
        client: &Client<'_>,
        under_way: Option<InFlight>,
    ) -> Response<Body> {
        let options = &backend.options;
        // RFC 9112 §6.3: with Transfer-Encoding, Content-Length is not the body's
        // length, and an intermediary removes it before passing the message on.
        if req.headers().contains_key(header::TRANSFER_ENCODING) {
            req.headers_mut().remove(header::CONTENT_LENGTH);
        }
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
        headers::merge_cookies(&mut parts.headers);
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
        // proxy-send-timeout between two pieces of the body passed on, then
        // proxy-read-timeout from its end to the response head and between two
        // reads of the response body (nginx's rules).
        let progress = Progress::new(options.connect_timeout);
        let send = options.send_timeout;
        let what = "the request body";
        let body: Body = match options.body_limit {
            Some(limit) => Idle::new(
                Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)),
                send,
                what,
            )
            .with_progress(progress.clone())
            .boxed_unsync(),
            None => Idle::new(body.map_err(BoxError::from), send, what)
                .with_progress(progress.clone())
                .boxed_unsync(),
        };
        let sent = self.clients.request(
            options.protocol,
            options.connect_timeout,
            Request::from_parts(parts, body),
        );
        let answered = progress.wait(sent, send, options.read_timeout).await;
        let mut response = match answered {
            None => return text(StatusCode::GATEWAY_TIMEOUT, "gateway timeout"),
            Some(Err(e)) => {
                if caused_by::<http_body_util::LengthLimitError>(&e) {
                    return text(StatusCode::PAYLOAD_TOO_LARGE, "request entity too large");
                }
                if caused_by::<Stalled>(&e) {
                    return text(StatusCode::GATEWAY_TIMEOUT, "gateway timeout");
                }
                tracing::debug!(%endpoint, "ingress backend: {e}");
                return text(StatusCode::BAD_GATEWAY, "bad gateway");
            }
            Some(Ok(r)) => r,
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_side) = client_side else {
                return text(
                    StatusCode::BAD_GATEWAY,
                    "bad gateway: an upgrade nobody asked for",
                );
            };
            let pod_side = hyper::upgrade::on(&mut response);
            let (permit, quiet) = (client.permit.clone(), options.read_timeout);
            tokio::spawn(async move {
                let _permit = permit;
                // In flight while the tunnel lasts: a WebSocket is traffic.
                let _under_way = under_way;
                let (Ok(c), Ok(p)) = tokio::join!(client_side, pod_side) else {
                    return;
                };
                idle::tunnel(TokioIo::new(c), TokioIo::new(p), quiet).await;
            });
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, empty());
        }
        headers::strip_hop_by_hop(response.headers_mut(), false);
        let read = options.read_timeout;
        response.map(|b| {
            let b = Idle::new(b, read, "the pod's response");
            match under_way {
                Some(guard) => b
                    .map_frame(move |f| {
                        let _ = &guard;
                        f
                    })
                    .boxed_unsync(),
                None => b.boxed_unsync(),
            }
        })
    }
}

/// A client connection: who, on which port, and its place among the listener's.
struct Conn {
    peer: SocketAddr,
    port: u16,
    https: bool,
    permit: Arc<OwnedSemaphorePermit>,
}

/// Who asked, and where.
struct Client<'a> {
    peer: SocketAddr,
    port: u16,
    https: bool,
    host: &'a str,
    permit: &'a Arc<OwnedSemaphorePermit>,
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

/// 503 with `message` and `Retry-After: retry_after` (seconds).
fn unavailable(retry_after: u32, message: &str) -> Response<Body> {
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
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

#[cfg(test)]
mod tests;
