//! The node agent's HTTPS endpoint (kubelet's port 10250): container logs, exec and
//! port forwarding for the API server, which proxies `pods/log`, `pods/exec` and
//! `pods/portforward` here. Only clients
//! with the API server's certificate from the cluster CA get through the TLS
//! handshake (see `rk8s_http::tls::node_server_config`).
//!
//! - `GET /containerLogs/{namespace}/{pod}/{container}?follow&tailLines&timestamps&previous&limitBytes&sinceSeconds&sinceTime`
//! - `GET|POST /exec/{namespace}/{pod}[/{uid}]/{container}?command=…&stdin&stdout&stderr&tty`,
//!   a WebSocket with Kubernetes' stream protocol `v5.channel.k8s.io` (or `v4`):
//!   binary messages whose first byte is the channel (0 stdin, 1 stdout, 2 stderr,
//!   3 the final `Status`, 4 terminal resize; v5 adds 255, "close channel N").
//! - `GET|POST /portForward/{namespace}/{pod}[/{uid}]`: port forwarding, SPDY/3.1
//!   as kubectl speaks it (see [`super::port_forward`]).
//! - `GET /stats/summary`: usage of the node and its pods (kubelet's Summary API).
//! - `GET /metrics`: the agent's own metrics; `GET /metrics/cadvisor`: the containers'.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rk8s_runtime::ExecProcess;
use rk8s_runtime::logs::ReadOptions;
use rk8s_runtime::pod::{PodRecord, PodRuntime};

use super::stats::Stats;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key};

/// The node agent's port, as kubelet's.
pub const DEFAULT_PORT: u16 = 10250;

use rk8s_http::body::{Body, channel_body, error_response};
use rk8s_http::query::Query;
use rk8s_http::status::{ApiError, ApiResult};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The stream protocols spoken, preferred first.
const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Serves `runtime`'s pods on `listener` with `tls` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    runtime: Arc<PodRuntime>,
    stats: Arc<Stats>,
) {
    rk8s_http::serve::serve_tls(listener, tls, move |req| {
        let (runtime, stats) = (runtime.clone(), stats.clone());
        async move { handle(runtime, &stats, req).await }
    })
    .await;
}

async fn handle(runtime: Arc<PodRuntime>, stats: &Stats, req: Request<Incoming>) -> Response<Body> {
    let path: Vec<String> = req
        .uri()
        .path()
        .trim_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let query = Query::parse(req.uri().query());
    let result = match (req.method(), segments.as_slice()) {
        (&Method::GET, ["healthz"]) => Ok(Response::new(Full::new(Bytes::from("ok")).boxed())),
        (&Method::GET, ["stats", "summary"]) => match stats.summary() {
            Some(summary) => serde_json::to_vec(&summary)
                .map_err(|e| ApiError::internal(e.to_string()))
                .and_then(|body| text(body, "application/json")),
            None => Err(ApiError::unavailable(
                "no usage read yet: the first reading comes within the stats interval",
            )),
        },
        (&Method::GET, ["metrics"]) => {
            let (format, body) = super::metrics::exposition();
            text(body, &format)
        }
        (&Method::GET, ["metrics", "cadvisor"]) => {
            text(stats.cadvisor().into_bytes(), prometheus::TEXT_FORMAT)
        }
        (&Method::GET, ["containerLogs", ns, pod, container]) => {
            logs(&runtime, ns, pod, container, &query).await
        }
        (&Method::GET | &Method::POST, ["exec", ns, pod, container]) => {
            exec(runtime.clone(), req, ns, pod, None, container, &query).await
        }
        (&Method::GET | &Method::POST, ["exec", ns, pod, uid, container]) => {
            exec(runtime.clone(), req, ns, pod, Some(uid), container, &query).await
        }
        (&Method::GET | &Method::POST, ["portForward", ns, pod]) => {
            super::port_forward::port_forward(runtime.clone(), req, ns, pod, None, &query).await
        }
        (&Method::GET | &Method::POST, ["portForward", ns, pod, uid]) => {
            super::port_forward::port_forward(runtime.clone(), req, ns, pod, Some(uid), &query)
                .await
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no such endpoint: {} {}", req.method(), req.uri().path()),
        )),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

/// A 200 answer of `content_type`.
fn text(body: Vec<u8>, content_type: &str) -> ApiResult<Response<Body>> {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)).boxed())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The pod `namespace/name` (with `uid`, exactly that one) among the runtime's.
pub(super) fn find_pod(
    runtime: &PodRuntime,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
) -> ApiResult<PodRecord> {
    let pods = runtime
        .pods()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    pods.into_iter()
        .find(|r| {
            r.pod.metadata.namespace.as_deref().unwrap_or("default") == namespace
                && r.pod.metadata.name.as_deref() == Some(name)
                && uid.is_none_or(|u| u == r.uid)
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("pod {namespace}/{name} is not running on this node"),
            )
        })
}

/// A writer into a response body; fails once the client has gone (so a followed log
/// stops) or `limit` bytes are written.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    left: Option<u64>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let take = match self.left {
            Some(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Some(n) => buf.len().min(usize::try_from(n).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        self.tx
            .blocking_send(Bytes::copy_from_slice(&buf[..take]))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        if let Some(n) = self.left.as_mut() {
            *n -= take as u64;
        }
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.tx.is_closed() {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        Ok(())
    }
}

async fn logs(
    runtime: &Arc<PodRuntime>,
    namespace: &str,
    pod: &str,
    container: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let record = find_pod(runtime, namespace, pod, None)?;
    let previous = query.flag("previous");
    // Checked before the stream starts, so a bad request gets its status code.
    runtime
        .container_log(&record.uid, container, previous)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let options = ReadOptions {
        follow: query.flag("follow"),
        tail: query
            .number("tailLines")?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        timestamps: query.flag("timestamps"),
        since: since(query)?,
    };
    // Query::number only yields non-negative values.
    let left = query.number("limitBytes")?.map(i64::unsigned_abs);
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let (runtime, container) = (runtime.clone(), container.to_string());
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter { tx, left };
        if let Err(e) = runtime.write_log(&record.uid, &container, previous, &options, &mut out) {
            tracing::debug!("log of {}/{container}: {e}", record.key());
        }
    });
    let mut resp = Response::new(channel_body(rx));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

/// The time a log read starts from: `sinceSeconds` ago, or `sinceTime` (RFC 3339), as
/// kubelet reads them (at most one of the two).
fn since(query: &Query) -> ApiResult<Option<jiff::Timestamp>> {
    let seconds = query.number("sinceSeconds")?;
    let time = query.get("sinceTime");
    match (seconds, time) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "at most one of sinceTime or sinceSeconds may be specified".to_string(),
        )),
        (Some(s), None) => {
            if s < 1 {
                return Err(ApiError::bad_request(
                    "sinceSeconds: must be greater than 0".to_string(),
                ));
            }
            let ago = jiff::SignedDuration::from_secs(s);
            Ok(jiff::Timestamp::now().checked_sub(ago).ok())
        }
        (None, Some(t)) => t.parse().map(Some).map_err(|e| {
            ApiError::bad_request(format!("sinceTime: {t:?} is not an RFC 3339 time: {e}"))
        }),
        (None, None) => Ok(None),
    }
}

/// What an exec asks for.
struct ExecRequest {
    uid: String,
    container: String,
    command: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    /// v5: the client closes stdin with a CLOSE message.
    v5: bool,
}

async fn exec(
    runtime: Arc<PodRuntime>,
    mut req: Request<Incoming>,
    namespace: &str,
    pod: &str,
    uid: Option<&str>,
    container: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let bad = ApiError::bad_request;
    let record = find_pod(&runtime, namespace, pod, uid)?;
    let running = record
        .containers
        .get(container)
        .is_some_and(|c| c.id.is_some());
    if !running {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("container {container} is not running in pod {namespace}/{pod}"),
        ));
    }
    let command: Vec<String> = query
        .pairs()
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return Err(bad("you must specify at least 1 command".into()));
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if !header("upgrade").eq_ignore_ascii_case("websocket") {
        return Err(bad(format!(
            "exec needs a WebSocket upgrade with protocol {} (SPDY is not served)",
            PROTOCOLS.join(" or ")
        )));
    }
    let offered = header("sec-websocket-protocol");
    let protocol = PROTOCOLS
        .into_iter()
        .find(|p| offered.split(',').any(|o| o.trim() == *p))
        .ok_or_else(|| {
            bad(format!(
                "none of the offered stream protocols {offered:?} is served; use {}",
                PROTOCOLS.join(" or ")
            ))
        })?;
    let key = header("sec-websocket-key");
    if key.is_empty() {
        return Err(bad("missing Sec-WebSocket-Key".into()));
    }
    let tty = query.flag("tty");
    let exec = ExecRequest {
        uid: record.uid.clone(),
        container: container.to_string(),
        command,
        stdin: query.flag("stdin"),
        stdout: query.flag("stdout"),
        // A terminal has one output stream.
        stderr: query.flag("stderr") && !tty,
        tty,
        v5: protocol == PROTOCOLS[0],
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(super::port_forward::websocket_config()),
                )
                .await;
                session(runtime, ws, exec).await;
            }
            Err(e) => tracing::debug!("exec upgrade failed: {e}"),
        }
    });
    let mut resp = Response::new(BodyExt::boxed(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(resp)
}

/// Copies a process' output (a pipe or its terminal) to a channel of the socket, on
/// a thread (the read blocks until the process writes or ends).
fn pump_out(
    mut from: impl Read + Send + 'static,
    channel: u8,
    out: mpsc::Sender<Message>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        buf[0] = channel;
        // A terminal reads EIO once its last process exits; a pipe reads 0.
        while let Ok(n) = from.read(&mut buf[1..]) {
            if n == 0 {
                break;
            }
            let message = Message::Binary(Bytes::copy_from_slice(&buf[..=n]));
            if out.blocking_send(message).is_err() {
                break;
            }
        }
    })
}

/// The input side: stdin bytes to the process (on a thread), resizes to its terminal.
struct Input {
    stdin: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    terminal: Option<std::fs::File>,
}

impl Input {
    fn new(to: Option<impl Write + Send + 'static>, terminal: Option<std::fs::File>) -> Self {
        let stdin = to.map(|mut to| {
            let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
            std::thread::spawn(move || {
                for data in rx {
                    if to.write_all(&data).is_err() {
                        break;
                    }
                }
            });
            tx
        });
        Input { stdin, terminal }
    }

    /// Handles one message from the client; false once the client is gone.
    fn message(&mut self, message: Message, v5: bool) -> bool {
        let data = match message {
            Message::Binary(data) => data.to_vec(),
            Message::Text(text) => text.as_bytes().to_vec(),
            Message::Close(_) => return false,
            _ => return true,
        };
        match data.split_first() {
            Some((&STDIN, rest)) => {
                if let Some(tx) = &self.stdin
                    && tx.send(rest.to_vec()).is_err()
                {
                    self.stdin = None;
                }
            }
            Some((&RESIZE, rest)) => {
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "PascalCase")]
                struct Size {
                    width: u16,
                    height: u16,
                }
                if let (Some(terminal), Ok(size)) =
                    (&self.terminal, serde_json::from_slice::<Size>(rest))
                {
                    let winsize = rustix::termios::Winsize {
                        ws_row: size.height,
                        ws_col: size.width,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let _ = rustix::termios::tcsetwinsize(terminal, winsize);
                }
            }
            // v5: "no more stdin": the process reads end-of-file.
            Some((&CLOSE, [STDIN])) if v5 => self.stdin = None,
            _ => {}
        }
        true
    }
}

/// The `Status` sent on the error channel when the process ends.
fn exit_status(command: &[String], result: &rk8s_runtime::Result<i32>) -> serde_json::Value {
    match result {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("error executing command {command:?}: {e}"),
            "reason": "InternalError",
        }),
    }
}

async fn session<S>(runtime: Arc<PodRuntime>, ws: WebSocketStream<S>, req: ExecRequest)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, from_client) = ws.split();
    let (out, mut outgoing) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        // A normal closure (1000): kubectl takes a close without a code for an error.
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(normal))).await;
        let _ = sink.close().await;
    });
    let process = ExecProcess {
        args: req.command.clone(),
        ..Default::default()
    };
    let (result, pumps, input) = if req.tty {
        match runtime.exec_tty(&req.uid, &req.container, process).await {
            Ok((pid, pty)) => {
                let master = std::fs::File::from(pty);
                let clones = (master.try_clone(), master.try_clone());
                match clones {
                    (Ok(reader), Ok(writer)) => {
                        let pump = pump_out(reader, STDOUT, out.clone());
                        let input = Input::new(req.stdin.then_some(writer), Some(master));
                        let input = forward_input(from_client, input, req.v5);
                        (runtime.wait_exec(pid).await, vec![pump], Some(input))
                    }
                    (Err(e), _) | (_, Err(e)) => (
                        Err(rk8s_runtime::Error::Io {
                            path: "terminal".into(),
                            source: e,
                        }),
                        Vec::new(),
                        None,
                    ),
                }
            }
            Err(e) => (Err(e), Vec::new(), None),
        }
    } else {
        match pipes(&req) {
            Ok((stdio, stdin, stdout, stderr)) => {
                let mut pumps = Vec::new();
                if let Some(r) = stdout {
                    pumps.push(pump_out(r, STDOUT, out.clone()));
                }
                if let Some(r) = stderr {
                    pumps.push(pump_out(r, STDERR, out.clone()));
                }
                let input = forward_input(from_client, Input::new(stdin, None), req.v5);
                let result = runtime.exec(&req.uid, &req.container, process, stdio).await;
                (result, pumps, Some(input))
            }
            Err(e) => (
                Err(rk8s_runtime::Error::Io {
                    path: "pipe".into(),
                    source: e,
                }),
                Vec::new(),
                None,
            ),
        }
    };
    // Output written just before the exit is still in the pipes: drain them, but do
    // not wait for a background process that keeps them open.
    let drained = tokio::task::spawn_blocking(move || {
        for pump in pumps {
            let _ = pump.join();
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(2), drained).await;
    let status = exit_status(&req.command, &result);
    let mut message = vec![ERROR];
    message.extend_from_slice(status.to_string().as_bytes());
    let _ = out.send(Message::Binary(message.into())).await;
    drop(out);
    if let Some(input) = input {
        input.abort();
    }
    let _ = writer.await;
}

/// Reads the client's messages until it goes; the task is aborted when the process
/// has ended.
fn forward_input<S>(
    mut from_client: futures_util::stream::SplitStream<WebSocketStream<S>>,
    mut input: Input,
    v5: bool,
) -> tokio::task::JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        while let Some(Ok(message)) = from_client.next().await {
            if !input.message(message, v5) {
                break;
            }
        }
    })
}

type Stdio = (
    [std::os::fd::OwnedFd; 3],
    Option<std::io::PipeWriter>,
    Option<std::io::PipeReader>,
    Option<std::io::PipeReader>,
);

/// The exec'd process' stdio: pipes for the streams asked for, /dev/null otherwise;
/// and our ends of the pipes.
fn pipes(req: &ExecRequest) -> std::io::Result<Stdio> {
    let null = || -> std::io::Result<std::os::fd::OwnedFd> {
        Ok(std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?
            .into())
    };
    let (stdin_fd, stdin) = if req.stdin {
        let (r, w) = std::io::pipe()?;
        (r.into(), Some(w))
    } else {
        (null()?, None)
    };
    let output = |wanted: bool| -> std::io::Result<_> {
        if wanted {
            let (r, w) = std::io::pipe()?;
            Ok((std::os::fd::OwnedFd::from(w), Some(r)))
        } else {
            Ok((null()?, None))
        }
    };
    let (stdout_fd, stdout) = output(req.stdout)?;
    let (stderr_fd, stderr) = output(req.stderr)?;
    Ok(([stdin_fd, stdout_fd, stderr_fd], stdin, stdout, stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_become_kubernetes_statuses() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(exit_status(&cmd, &Ok(0))["status"], "Success");
        let failed = exit_status(&cmd, &Ok(3));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
    }

    #[test]
    fn input_goes_to_stdin_until_closed() {
        let (reader, writer) = std::io::pipe().unwrap();
        let mut input = Input::new(Some(writer), None);
        assert!(input.message(Message::Binary(Bytes::from_static(b"\x00hi\n")), true));
        // Resizes without a terminal, and unknown channels, are ignored.
        assert!(input.message(
            Message::Binary(Bytes::from_static(b"\x04{\"Width\":80,\"Height\":24}")),
            true
        ));
        assert!(input.message(Message::Binary(Bytes::from_static(b"\xff\x00")), true));
        assert!(input.stdin.is_none());
        let mut got = String::new();
        let mut reader = reader;
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hi\n");
        assert!(!input.message(Message::Close(None), true));
    }

    #[test]
    fn followed_logs_stop_when_the_client_goes() {
        let (tx, rx) = mpsc::channel(4);
        let mut w = ChannelWriter { tx, left: Some(3) };
        assert_eq!(w.write(b"hello").unwrap(), 3);
        assert!(w.write(b"more").is_err());
        drop(rx);
        assert!(w.flush().is_err());
    }
}
