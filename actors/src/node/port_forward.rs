//! `GET|POST /portForward/{namespace}/{pod}[/{uid}]`: kubelet's port forwarding, which
//! the API server's `pods/portforward` reaches. kubectl speaks SPDY/3.1
//! ([`rk8s_http::spdy`]), either as an HTTP upgrade (`Upgrade: SPDY/3.1`,
//! `X-Stream-Protocol-Version: portforward.k8s.io`) or tunnelled in a WebSocket
//! (protocol `SPDY/3.1+portforward.k8s.io`, what kubectl since 1.31 tries first).
//!
//! The Kubernetes clients of other languages (the Python client, kube-rs, so
//! `rk8sctl port-forward`) speak the older WebSocket protocol `v4.channel.k8s.io`:
//! the ports in the query (`?ports=8080,9090`), one connection each, on channels
//! `2i` (data) and `2i+1` (error) of binary messages whose first byte is the
//! channel, each channel's first message the port (two bytes, little-endian).
//!
//! Over SPDY, each forwarded connection is a pair of streams with the same
//! `requestID`: `error` and `data`, both naming the `port`. The data stream is joined to a TCP
//! connection to `localhost:PORT` made inside the pod's network namespace (the
//! host's, for a `hostNetwork` pod), both ways until each side ends; a failure is
//! written on the error stream, as kubelet writes it, and kubectl prints it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rk8s_http::body::Body;
use rk8s_http::query::Query;
use rk8s_http::spdy::{self, Stream};
use rk8s_http::status::{ApiError, ApiResult};
use rk8s_runtime::pod::PodRuntime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The port-forward protocol (`X-Stream-Protocol-Version`).
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket protocol of SPDY tunnelled in a WebSocket.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The WebSocket protocol of channels (one connection per port).
pub const CHANNEL_PROTOCOL: &str = "v4.channel.k8s.io";
/// How long the second stream of a pair may take to come (kubelet's
/// `streamCreationTimeout`).
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection into the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections into pods being made at once, by the whole agent (each on a thread
/// of its own for as long as it takes).
const CONNECTING_AT_ONCE: usize = 64;
/// The largest WebSocket message or frame read (clients write 32 KiB at a time).
const MAX_MESSAGE: usize = 256 * 1024;
/// The most ports one channel-protocol connection forwards.
const MAX_PORTS: usize = 64;
/// Messages of a port read and not yet written to the pod, at most: with
/// [`MAX_MESSAGE`] and [`MAX_PORTS`], at most 32 MiB of a connection's input is held.
const QUEUED_MESSAGES: usize = 2;

static CONNECTING: std::sync::LazyLock<Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| Arc::new(tokio::sync::Semaphore::new(CONNECTING_AT_ONCE)));

/// What a WebSocket of this endpoint (port forwarding, exec) reads at most.
pub(super) fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// Where the pod's ports are reached.
#[derive(Clone, Debug)]
enum Target {
    /// Inside this network namespace (a bind-mounted one's path).
    Namespace(PathBuf),
    /// On the host (`hostNetwork`).
    Host,
}

/// Answers a port-forward request for the pod `namespace/pod` (with `uid`, exactly
/// that one): 101 and the streams served, or why not.
pub async fn port_forward(
    runtime: Arc<PodRuntime>,
    mut req: Request<Incoming>,
    namespace: &str,
    pod: &str,
    uid: Option<&str>,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let record = super::server::find_pod(&runtime, namespace, pod, uid)?;
    // The host's network only for a pod that asked for it: a pod whose network is
    // not (or no longer) set up is never forwarded to the node's own ports.
    let host_network = record.host_network();
    let target = match (&record.attachment, host_network) {
        (_, true) => Target::Host,
        (Some(a), false) => Target::Namespace(a.netns_path.clone()),
        (None, false) => {
            return Err(ApiError::unavailable(format!(
                "pod {namespace}/{pod} has no network set up (yet): nothing to forward to"
            )));
        }
    };
    let described = Arc::new(format!("{namespace}/{pod}, uid {}", record.uid));
    let values = |name: &str| -> Vec<String> {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let upgrade = values("upgrade");
    let is = |what: &str| upgrade.iter().any(|u| u.eq_ignore_ascii_case(what));
    let mut resp = Response::new(BodyExt::boxed(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let mode = if is("websocket") {
        let offered = values("sec-websocket-protocol");
        let chosen = [TUNNEL_PROTOCOL, CHANNEL_PROTOCOL]
            .into_iter()
            .find(|p| offered.iter().any(|o| o == p));
        let mode = match chosen {
            Some(TUNNEL_PROTOCOL) => Mode::Tunnel,
            Some(_) => Mode::Channels(ports(query)?),
            // kubelet takes a WebSocket naming no protocol as binary channels too.
            None if offered.is_empty() => Mode::Channels(ports(query)?),
            None => {
                return Err(ApiError::bad_request(format!(
                    "none of the offered WebSocket protocols {offered:?} is served for port \
                     forwarding; use {TUNNEL_PROTOCOL} or {CHANNEL_PROTOCOL}"
                )));
            }
        };
        let key = values("sec-websocket-key");
        let key = key
            .first()
            .ok_or_else(|| ApiError::bad_request("missing Sec-WebSocket-Key"))?;
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Some(chosen) = chosen {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(chosen),
            );
        }
        if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        mode
    } else if is(spdy::UPGRADE) {
        // kubelet's `httpstream.Handshake`: a client that names protocols must name ours.
        let offered = values("x-stream-protocol-version");
        if !offered.is_empty() && !offered.iter().any(|p| p == PROTOCOL) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "unable to upgrade: unable to negotiate protocol: client supports \
                     {offered:?}, server accepts [\"{PROTOCOL}\"]"
                ),
            ));
        }
        headers.insert(header::UPGRADE, HeaderValue::from_static(spdy::UPGRADE));
        headers.insert(
            "x-stream-protocol-version",
            HeaderValue::from_static(PROTOCOL),
        );
        Mode::Spdy
    } else {
        return Err(ApiError::bad_request(format!(
            "port forwarding needs an upgrade: to {} (with X-Stream-Protocol-Version: \
             {PROTOCOL}) or to a WebSocket with protocol {TUNNEL_PROTOCOL}",
            spdy::UPGRADE
        )));
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!("port-forward upgrade failed: {e}");
                return;
            }
        };
        let protocol = match &mode {
            Mode::Spdy => "spdy",
            Mode::Tunnel => "spdy-websocket",
            Mode::Channels(_) => CHANNEL_PROTOCOL,
        };
        super::metrics::PORT_FORWARDS
            .with_label_values(&[protocol])
            .inc();
        let end = match mode {
            Mode::Channels(ports) => {
                let ws = WebSocketStream::from_raw_socket(
                    upgraded,
                    Role::Server,
                    Some(websocket_config()),
                )
                .await;
                channels(ws, ports, target, described).await;
                return;
            }
            Mode::Tunnel => {
                let ws = WebSocketStream::from_raw_socket(
                    upgraded,
                    Role::Server,
                    Some(websocket_config()),
                )
                .await;
                serve_spdy(tunnel(ws), target, described).await
            }
            Mode::Spdy => serve_spdy(upgraded, target, described).await,
        };
        tracing::debug!("port-forward connection ended: {end}");
    });
    Ok(resp)
}

/// How a port-forward connection speaks.
enum Mode {
    /// SPDY/3.1 after an HTTP upgrade.
    Spdy,
    /// SPDY/3.1 in a WebSocket's binary messages.
    Tunnel,
    /// `v4.channel.k8s.io`, forwarding these ports.
    Channels(Vec<u16>),
}

/// The ports of a channel-protocol request (`?ports=80,443`, or repeated), as
/// kubelet reads them.
fn ports(query: &Query) -> ApiResult<Vec<u16>> {
    let mut ports = Vec::new();
    for (_, value) in query.pairs().iter().filter(|(k, _)| k == "ports") {
        if value.is_empty() {
            return Err(ApiError::bad_request(
                "query parameter \"ports\" cannot be empty",
            ));
        }
        for p in value.split(',') {
            let port: u16 = p.parse().map_err(|e| {
                ApiError::bad_request(format!("unable to parse {value:?} as a port: {e}"))
            })?;
            if port == 0 {
                return Err(ApiError::bad_request(format!("port {value:?} must be > 0")));
            }
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request(
            "query parameter \"ports\" is required",
        ));
    }
    if ports.len() > MAX_PORTS {
        return Err(ApiError::bad_request(format!(
            "{} ports asked for: at most {MAX_PORTS} a connection",
            ports.len()
        )));
    }
    Ok(ports)
}

/// Serves a SPDY connection's streams.
async fn serve_spdy<IO>(io: IO, target: Target, pod: Arc<String>) -> spdy::SessionEnd
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (tx, streams) = mpsc::channel(16);
    let serving = tokio::spawn(forward_streams(streams, target, pod));
    let end = spdy::serve(io, tx).await;
    let _ = serving.await;
    end
}

/// One channel of a WebSocket: the pod's side written as messages on it.
struct Channel {
    number: u8,
    out: mpsc::Sender<Message>,
}

impl Channel {
    fn message(&self, data: &[u8]) -> Message {
        let mut bytes = Vec::with_capacity(data.len() + 1);
        bytes.push(self.number);
        bytes.extend_from_slice(data);
        Message::Binary(bytes.into())
    }
}

impl Downstream for Channel {
    async fn send(&self, data: &[u8]) -> Result<(), ()> {
        self.out.send(self.message(data)).await.map_err(|_| ())
    }

    async fn closed(&self) {
        self.out.closed().await
    }
}

/// Serves a `v4.channel.k8s.io` connection: each port forwarded once, on its two
/// channels; the connection closes when every port's connection has ended.
async fn channels<S>(ws: WebSocketStream<S>, ports: Vec<u16>, target: Target, pod: Arc<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut source) = ws.split();
    let (out, mut messages) = mpsc::channel::<Message>(64);
    let writing = tokio::spawn(async move {
        while let Some(message) = messages.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut inputs = Vec::with_capacity(ports.len());
    let mut forwards = tokio::task::JoinSet::new();
    for (i, port) in ports.into_iter().enumerate() {
        // At most MAX_PORTS ports: the channel numbers fit a byte.
        let number = u8::try_from(2 * i).unwrap_or(u8::MAX - 1);
        let (data, error) = (
            Channel {
                number,
                out: out.clone(),
            },
            Channel {
                number: number + 1,
                out: out.clone(),
            },
        );
        let (tx, mut incoming) = mpsc::channel::<Bytes>(QUEUED_MESSAGES);
        inputs.push(tx);
        let (target, pod) = (target.clone(), pod.clone());
        forwards.spawn(async move {
            let prefix = port.to_le_bytes();
            if data.send(&prefix).await.is_err() || error.send(&prefix).await.is_err() {
                return;
            }
            match connect(&target, port).await {
                Ok(tcp) => pump(tcp, &mut incoming, &data).await,
                Err(e) => {
                    let message = format!("error forwarding port {port} to pod {pod}: {e}");
                    tracing::debug!("port-forward: {message}");
                    let _ = error.send(message.as_bytes()).await;
                }
            }
        });
    }
    drop(out);
    let reading = async {
        while let Some(Ok(message)) = source.next().await {
            let data = match message {
                Message::Binary(data) => data,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, rest)) = data.split_first() else {
                continue;
            };
            // The client writes on data channels only.
            let input = inputs
                .get(usize::from(channel) / 2)
                .filter(|_| channel % 2 == 0);
            if let Some(input) = input
                && !rest.is_empty()
                && input.send(Bytes::copy_from_slice(rest)).await.is_err()
            {
                continue;
            }
        }
        // The client is gone: the pods' connections see the end of their input.
        inputs.clear();
    };
    let forwarding = async { while forwards.join_next().await.is_some() {} };
    tokio::select! {
        () = forwarding => {}
        () = reading => {}
    }
    forwards.abort_all();
    let _ = writing.await;
}

/// The bytes a WebSocket's binary messages carry, as one byte stream each way.
fn tunnel<S>(ws: WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let (mut sink, mut source) = ws.split();
        let (mut from_spdy, mut to_spdy) = tokio::io::split(ours);
        let inbound = async {
            while let Some(Ok(message)) = source.next().await {
                match message {
                    Message::Binary(data) if to_spdy.write_all(&data).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = to_spdy.shutdown().await;
        };
        let outbound = async {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = from_spdy.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let message = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                if sink.send(message).await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        };
        // Either side's end is the tunnel's: a client that neither sends nor closes
        // is not waited for once the SPDY side has ended.
        tokio::select! {
            () = inbound => {}
            () = outbound => {}
        }
    });
    theirs
}

/// The streams of one request: its error and data streams as they come.
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
    since: Instant,
}

/// Pairs the streams of `streams` by request and forwards each complete pair.
async fn forward_streams(mut streams: mpsc::Receiver<Stream>, target: Target, pod: Arc<String>) {
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    loop {
        let due = pairs.values().map(|p| p.since + PAIR_TIMEOUT).min();
        let stream = tokio::select! {
            stream = streams.recv() => match stream {
                Some(s) => s,
                None => return,
            },
            () = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                expire(&mut pairs);
                continue;
            }
        };
        let (port, kind) = match check(&stream) {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!("port-forward stream {} refused: {e}", stream.id);
                let _ = stream.writer.reset(spdy::CANCEL).await;
                continue;
            }
        };
        if stream.writer.reply().await.is_err() {
            return;
        }
        // Old clients send no request id: kubelet pairs stream n (error) with n + 2.
        let id = match stream.header("requestid") {
            Some(id) => id.to_string(),
            None if kind == "error" => stream.id.to_string(),
            None => stream.id.saturating_sub(2).to_string(),
        };
        let pair = pairs.entry(id.clone()).or_insert_with(|| Pair {
            error: None,
            data: None,
            since: Instant::now(),
        });
        let slot = if kind == "error" {
            &mut pair.error
        } else {
            &mut pair.data
        };
        if slot.is_some() {
            // kubelet says so on the pair's error stream.
            let message =
                format!("error processing stream for request {id}: {kind} stream already assigned");
            tracing::debug!("port-forward: {message}");
            if let Some(error) = &pair.error {
                let _ = error.writer.send(message.as_bytes()).await;
            }
            let _ = stream.writer.reset(spdy::CANCEL).await;
            continue;
        }
        *slot = Some(stream);
        let complete = pair.error.is_some() && pair.data.is_some();
        if let Some(Pair {
            error: Some(error),
            data: Some(data),
            ..
        }) = complete.then(|| pairs.remove(&id)).flatten()
        {
            // The data stream's port, as kubelet takes it.
            let port = check(&data).map_or(port, |(p, _)| p);
            tokio::spawn(forward(data, error, port, target.clone(), pod.clone()));
        }
    }
}

/// Ends the pairs whose second stream did not come in time, saying so on the error
/// stream as kubelet does.
fn expire(pairs: &mut HashMap<String, Pair>) {
    let stale: Vec<String> = pairs
        .iter()
        .filter(|(_, p)| p.since.elapsed() >= PAIR_TIMEOUT)
        .map(|(id, _)| id.clone())
        .collect();
    for id in stale {
        let Some(pair) = pairs.remove(&id) else {
            continue;
        };
        let message = format!("(request={id}) timed out waiting for streams");
        tokio::spawn(async move {
            if let Some(error) = pair.error {
                let _ = error.writer.send(message.as_bytes()).await;
                let _ = error.writer.finish().await;
            }
            if let Some(data) = pair.data {
                let _ = data.writer.finish().await;
            }
        });
    }
}

/// A stream's port and type (`error` or `data`), or why it is refused.
fn check(stream: &Stream) -> Result<(u16, &'static str), String> {
    let port = stream.header("port").ok_or("\"port\" header is required")?;
    let port: u16 = port
        .parse()
        .map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if port == 0 {
        return Err("port \"0\" must be > 0".into());
    }
    match stream.header("streamtype") {
        Some("error") => Ok((port, "error")),
        Some("data") => Ok((port, "data")),
        Some(other) => Err(format!("invalid stream type {other:?}")),
        None => Err("\"streamType\" header is required".into()),
    }
}

/// Where the pod's side of a forwarded connection is written: a SPDY data stream,
/// or a channel of a WebSocket.
trait Downstream {
    /// Writes `data`; an error once the client is gone.
    async fn send(&self, data: &[u8]) -> Result<(), ()>;
    /// Resolves once the client is gone.
    async fn closed(&self);
}

impl Downstream for spdy::StreamWriter {
    async fn send(&self, data: &[u8]) -> Result<(), ()> {
        spdy::StreamWriter::send(self, data).await.map_err(|_| ())
    }

    async fn closed(&self) {
        spdy::StreamWriter::closed(self).await
    }
}

/// Joins a forwarded connection's client side (`incoming`, `down`) to `tcp`, both ways,
/// until the pod's side ends (or the client goes): then the caller ends the streams,
/// as kubelet does, and the client closes its side. What the client still sends
/// after that has nowhere to go.
async fn pump(
    tcp: tokio::net::TcpStream,
    incoming: &mut mpsc::Receiver<Bytes>,
    down: &impl Downstream,
) {
    let (mut from_pod, mut to_pod) = tcp.into_split();
    let upstream = async {
        while let Some(bytes) = incoming.recv().await {
            if to_pod.write_all(&bytes).await.is_err() {
                break;
            }
        }
        // The client is done sending (a half-close): so is the connection's write
        // side; the pod's answer still comes back.
        let _ = to_pod.shutdown().await;
        std::future::pending::<()>().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let read = tokio::select! {
                read = from_pod.read(&mut buf) => read,
                () = down.closed() => return,
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if down.send(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

/// Joins the data stream to `localhost:port` in the pod, reporting a failure on the
/// error stream; ends both streams when done.
async fn forward(mut data: Stream, error: Stream, port: u16, target: Target, pod: Arc<String>) {
    match connect(&target, port).await {
        Ok(tcp) => pump(tcp, &mut data.incoming, &data.writer).await,
        Err(e) => {
            let message = format!("error forwarding port {port} to pod {pod}: {e}");
            tracing::debug!("port-forward: {message}");
            let _ = error.writer.send(message.as_bytes()).await;
        }
    }
    let _ = data.writer.finish().await;
    let _ = error.writer.finish().await;
}

/// A connection to `localhost:port` where the pod's ports are.
async fn connect(target: &Target, port: u16) -> Result<tokio::net::TcpStream, String> {
    let permit = CONNECTING
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| "the agent is stopping".to_string())?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let target = target.clone();
    // A thread of its own, ending after: entering the pod's network namespace is
    // the thread's alone, and no other work ever runs on it.
    std::thread::Builder::new()
        .name("port-forward".into())
        .spawn(move || {
            let _ = tx.send(connect_blocking(&target, port));
            drop(permit);
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    let stream = rx
        .await
        .map_err(|_| "the connecting thread ended".to_string())??;
    stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpStream::from_std(stream))
        .map_err(|e| e.to_string())
}

fn connect_blocking(target: &Target, port: u16) -> Result<std::net::TcpStream, String> {
    let inside = match target {
        Target::Namespace(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot open network namespace {}: {e}", path.display()))?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("cannot enter network namespace {}: {e}", path.display()))?;
            format!(" inside namespace {:?}", path.display().to_string())
        }
        Target::Host => String::new(),
    };
    let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    let e4 = match std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    match std::net::TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT) {
        Ok(s) => Ok(s),
        Err(e6) => Err(format!(
            "failed to connect to localhost:{port}{inside}, IPv4: {e4} IPv6: {e6}"
        )),
    }
}
