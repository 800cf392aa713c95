//! Kubernetes' remote-command stream protocol over a WebSocket, as kubelet serves it
//! for exec and attach (`k8s.io/apimachinery/pkg/util/remotecommand`): the upgrade,
//! the channels, output copied to the client, input and terminal resizes from it,
//! and the final `Status` on the error channel.
//!
//! Every copy is bounded: output goes through a channel of [`OUTGOING`] messages (a
//! client that does not read makes the copy wait, not the agent buffer), and input
//! through one of [`INCOMING`] and a read-ahead of [`READ_AHEAD`] bytes (a process
//! that does not read its stdin makes the client's messages wait; a resize or the
//! client leaving behind a little input is seen at once). All descriptors are
//! non-blocking and polled by tokio, so ending a session ends its copies at once.
//!
//! A session's client is taken for gone after [`IDLE_TIMEOUT`] without input or
//! output (kubelet's `--streaming-connection-idle-timeout`), or once it answers none
//! of the node's pings (every [`PING_INTERVAL`]) and takes nothing written to it for
//! two intervals. Ending a session waits on the client for [`FINISH_TIMEOUT`] at most.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rk8s_http::body::Body;
use rk8s_http::status::{ApiError, ApiResult};
use rk8s_runtime::nonblocking::NonBlocking;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key};

/// Channel 0: the client's input.
pub(super) const STDIN: u8 = 0;
/// Channel 1: standard output (a terminal's output).
pub(super) const STDOUT: u8 = 1;
/// Channel 2: standard error.
pub(super) const STDERR: u8 = 2;
/// Channel 3: the final `Status`.
pub(super) const ERROR: u8 = 3;
/// Channel 4: terminal sizes, as `{"Width":…,"Height":…}`.
pub(super) const RESIZE: u8 = 4;
/// v5: "close channel N" (the client's input has ended).
pub(super) const CLOSE: u8 = 255;

/// The stream protocols spoken, preferred first.
pub(super) const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Output messages waiting for the client, at most (of up to 32 KiB each).
pub(super) const OUTGOING: usize = 32;
/// Input messages waiting for the process, at most.
pub(super) const INCOMING: usize = 8;
/// Stdin read from the client beyond [`INCOMING`], at most (bytes; a message may
/// pass it).
pub(super) const READ_AHEAD: usize = 256 * 1024;

/// A session with no input or output either way for this long ends: kubelet's
/// `--streaming-connection-idle-timeout` (4 h by default).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 3600);
/// How often the node pings a session's client (the WebSocket ping; clients answer
/// them by themselves). Two intervals unanswered end the session, about what
/// client-go's WebSocket executor allows its server (a read deadline of 61 s pushed
/// on by each pong).
pub(super) const PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long ending a session waits for the client to take its last messages.
pub(super) const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// The WebSocket a client asked to upgrade to.
pub(super) struct Upgrade {
    /// The stream protocol chosen.
    protocol: &'static str,
    key: String,
}

impl Upgrade {
    /// Checks that `req` asks for a WebSocket with one of [`PROTOCOLS`]; `what` is the
    /// operation, for the messages (`exec`, `attach`).
    pub(super) fn asked(req: &Request<Incoming>, what: &str) -> ApiResult<Self> {
        let bad = ApiError::bad_request;
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        if !header("upgrade").eq_ignore_ascii_case("websocket") {
            return Err(bad(format!(
                "{what} needs a WebSocket upgrade with protocol {} (SPDY is not served)",
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
        Ok(Upgrade { protocol, key })
    }

    /// Whether the client speaks v5 (it closes its input with a CLOSE message).
    pub(super) fn v5(&self) -> bool {
        self.protocol == PROTOCOLS[0]
    }

    /// Answers `req` with 101 Switching Protocols and runs `session` on the WebSocket
    /// once the connection is upgraded.
    pub(super) fn accept<F, Fut>(self, mut req: Request<Incoming>, session: F) -> Response<Body>
    where
        F: FnOnce(WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match upgrade.await {
                Ok(upgraded) => {
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(crate::node::port_forward::websocket_config()),
                    )
                    .await;
                    session(ws).await;
                }
                Err(e) => tracing::debug!("stream upgrade failed: {e}"),
            }
        });
        let mut resp = Response::new(BodyExt::boxed(Full::new(Bytes::new())));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = resp.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(self.protocol),
        );
        if let Ok(v) = HeaderValue::from_str(&derive_accept_key(self.key.as_bytes())) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        resp
    }
}

/// When things last happened on a session, in milliseconds since it began: kept by
/// the task writing to the client and the one reading from it, read for the idle
/// timeout and for whether the client still answers.
pub(super) struct Liveness {
    began: Instant,
    /// A message of any kind came from the client (a pong too).
    heard: AtomicU64,
    /// Stdin, output, a resize or the status went either way: the idle timeout's
    /// clock (pings and pongs do not count, as they never stop).
    exchanged: AtomicU64,
    /// A message other than a ping was taken by the connection.
    wrote: AtomicU64,
    /// A ping was written then and is unanswered ([`NEVER`]: none is).
    ping: AtomicU64,
    /// A write under way since then ([`NEVER`]: none is).
    writing: AtomicU64,
}

/// No time: nothing of the kind is under way.
const NEVER: u64 = u64::MAX;

/// Why a session is ended for its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unheard {
    /// Nothing but pings and pongs either way for [`IDLE_TIMEOUT`].
    Idle,
    /// The client answers no ping and takes nothing written to it.
    Unresponsive,
}

impl std::fmt::Display for Unheard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unheard::Idle => write!(
                f,
                "no input or output for {} h (the stream idle timeout)",
                IDLE_TIMEOUT.as_secs() / 3600
            ),
            Unheard::Unresponsive => write!(
                f,
                "the client answered no ping and took nothing for {} s",
                2 * PING_INTERVAL.as_secs()
            ),
        }
    }
}

impl Liveness {
    fn new() -> Self {
        Liveness {
            began: Instant::now(),
            heard: AtomicU64::new(0),
            exchanged: AtomicU64::new(0),
            wrote: AtomicU64::new(0),
            ping: AtomicU64::new(NEVER),
            writing: AtomicU64::new(NEVER),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.began.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    /// A message came from the client; `data` when it was stdin, a resize or a close.
    fn heard(&self, data: bool) {
        let now = self.now();
        self.heard.store(now, Ordering::Relaxed);
        self.ping.store(NEVER, Ordering::Relaxed);
        if data {
            self.exchanged.store(now, Ordering::Relaxed);
        }
    }

    /// The client's messages are not read now (its input waits for the process): it
    /// counts as heard, as its pongs cannot be.
    fn not_reading(&self) {
        self.heard.store(self.now(), Ordering::Relaxed);
    }

    fn writing(&self) {
        self.writing.store(self.now(), Ordering::Relaxed);
    }

    /// The connection took a message (a ping, or one that counts as traffic).
    fn written(&self, ping: bool) {
        let now = self.now();
        self.writing.store(NEVER, Ordering::Relaxed);
        if ping {
            self.ping.store(now, Ordering::Relaxed);
        } else {
            self.wrote.store(now, Ordering::Relaxed);
            self.exchanged.store(now, Ordering::Relaxed);
        }
    }

    /// Whether a ping may go (none is unanswered).
    fn ping_due(&self) -> bool {
        self.ping.load(Ordering::Relaxed) == NEVER
    }

    /// Whether the session should end now.
    fn verdict(&self) -> Option<Unheard> {
        self.verdict_at(self.now())
    }

    /// Whether the session should end at `now`: idle for [`IDLE_TIMEOUT`]; or nothing
    /// heard from the client for two ping intervals while a ping of as long ago is
    /// unanswered and nothing else was taken by the connection (a slow link that
    /// takes output still has a ping stuck behind it), or while one write has waited
    /// that long.
    fn verdict_at(&self, now: u64) -> Option<Unheard> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NEVER);
        let since = |at: &AtomicU64| match at.load(Ordering::Relaxed) {
            NEVER => None,
            at => Some(now.saturating_sub(at)),
        };
        if since(&self.exchanged).is_some_and(|idle| idle >= millis(IDLE_TIMEOUT)) {
            return Some(Unheard::Idle);
        }
        let long = millis(2 * PING_INTERVAL);
        let stale = |at: &AtomicU64| since(at).is_some_and(|t| t >= long);
        let unanswered = stale(&self.ping) && stale(&self.wrote);
        (stale(&self.heard) && (unanswered || stale(&self.writing)))
            .then_some(Unheard::Unresponsive)
    }
}

/// The client's side of a session: messages to it, and the task that sends them.
pub(super) struct Client {
    /// Messages to the client (bounded: [`OUTGOING`]).
    pub(super) out: mpsc::Sender<Message>,
    writer: JoinHandle<()>,
    liveness: Arc<Liveness>,
}

impl Client {
    /// Splits `ws`: the client to send to, and its messages.
    pub(super) fn split<S>(ws: WebSocketStream<S>) -> (Client, SplitStream<WebSocketStream<S>>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sink, from_client) = ws.split();
        let (out, outgoing) = mpsc::channel::<Message>(OUTGOING);
        let liveness = Arc::new(Liveness::new());
        let writer = tokio::spawn(write_to_client(sink, outgoing, liveness.clone()));
        let client = Client {
            out,
            writer,
            liveness,
        };
        (client, from_client)
    }

    /// When things last happened on the session, for [`forward_input`].
    pub(super) fn liveness(&self) -> Arc<Liveness> {
        self.liveness.clone()
    }

    /// Sends the final `Status` (when given), closes the socket and waits for that,
    /// for [`FINISH_TIMEOUT`] at most: then the connection is dropped. Copies still
    /// holding a sender must have ended (or been aborted) first, and so should
    /// anything of the runtime's the session held.
    pub(super) async fn finish(self, status: Option<serde_json::Value>) {
        self.finish_within(status, FINISH_TIMEOUT).await;
    }

    async fn finish_within(self, status: Option<serde_json::Value>, limit: Duration) {
        let Client {
            out, mut writer, ..
        } = self;
        let deadline = tokio::time::Instant::now() + limit;
        if let Some(status) = status {
            let mut message = vec![ERROR];
            message.extend_from_slice(status.to_string().as_bytes());
            let send = out.send(Message::Binary(message.into()));
            let _ = tokio::time::timeout_at(deadline, send).await;
        }
        drop(out);
        if tokio::time::timeout_at(deadline, &mut writer)
            .await
            .is_err()
        {
            tracing::debug!(
                "the client took nothing for {} s: its connection is dropped",
                limit.as_secs()
            );
            writer.abort();
        }
    }
}

/// Sends `outgoing`, and a ping every [`PING_INTERVAL`] while none is unanswered,
/// until `outgoing` ends (then a normal close) or the connection fails.
async fn write_to_client<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut outgoing: mpsc::Receiver<Message>,
    liveness: Arc<Liveness>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut pings =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            message = outgoing.recv() => match message {
                Some(message) => message,
                None => break,
            },
            _ = pings.tick() => {
                if !liveness.ping_due() {
                    continue;
                }
                Message::Ping(Bytes::new())
            }
        };
        let ping = matches!(message, Message::Ping(_));
        liveness.writing();
        if sink.send(message).await.is_err() {
            return;
        }
        liveness.written(ping);
    }
    // A normal closure (1000): kubectl takes a close without a code for an error.
    let normal = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(normal))).await;
    let _ = sink.close().await;
}

/// Copies what `from` (a pipe or a terminal's master end) gives to channel `channel`
/// of the client until it ends (a terminal reads EIO once its last process exits)
/// or the client goes; waits while the client's channel is full.
pub(super) fn pump_out(
    from: impl Into<OwnedFd>,
    channel: u8,
    out: mpsc::Sender<Message>,
) -> JoinHandle<()> {
    let from = NonBlocking::new(from);
    tokio::spawn(async move {
        let from = match from {
            Ok(from) => from,
            Err(e) => {
                tracing::debug!("output channel {channel}: {e}");
                return;
            }
        };
        let mut buf = vec![0u8; 32 * 1024];
        buf[0] = channel;
        while let Ok(n @ 1..) = from.read(&mut buf[1..]).await {
            let message = Message::Binary(Bytes::copy_from_slice(&buf[..=n]));
            if out.send(message).await.is_err() {
                return;
            }
        }
    })
}

/// Writes what arrives on `rx` to `to` (a pipe, FIFO or terminal) until `rx` ends
/// (then `to` is closed: the reader's end-of-file, when it was the last writer) or
/// a write fails.
fn feed(to: OwnedFd, mut rx: mpsc::Receiver<Bytes>) -> JoinHandle<()> {
    let to = NonBlocking::new(to);
    tokio::spawn(async move {
        let to = match to {
            Ok(to) => to,
            Err(e) => {
                tracing::debug!("input: {e}");
                return;
            }
        };
        while let Some(data) = rx.recv().await {
            if to.write_all(&data).await.is_err() {
                return;
            }
        }
    })
}

/// What a client's message meant for its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Go on.
    Continue,
    /// The client's input has ended (v5 CLOSE of stdin), and all of it has gone to
    /// the process' stdin writer.
    StdinClosed,
    /// The client has gone, or is taken for gone (idle, unresponsive).
    ClientGone,
}

/// The input side: stdin bytes to the process (or its terminal), resizes to its
/// terminal. A message is taken at once: stdin waits in a queue of at most
/// [`READ_AHEAD`] bytes for the process, so that what comes after it (a resize, a
/// close, the client leaving) is seen while the process does not read.
pub(super) struct Input {
    stdin: Option<mpsc::Sender<Bytes>>,
    /// Stdin read from the client, not yet given to the feeder.
    queued: VecDeque<Bytes>,
    queued_bytes: usize,
    /// The client closed its input (v5): the sender goes once the queue is empty.
    closing: bool,
    /// [`Step::StdinClosed`] was told.
    closed: bool,
    feeder: Option<JoinHandle<()>>,
    terminal: Option<Arc<std::fs::File>>,
}

/// How long the input a client sent before closing its stdin may still take to be
/// written once its session has ended.
const CLOSED_INPUT_GRACE: Duration = Duration::from_secs(5);

impl Drop for Input {
    fn drop(&mut self) {
        // A session that ends leaves nothing writing for it; input the client had
        // closed (so it was all sent) gets a little time to be written first.
        let Some(feeder) = self.feeder.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if self.stdin.is_none() => {
                runtime.spawn(async move {
                    let abort = feeder.abort_handle();
                    if tokio::time::timeout(CLOSED_INPUT_GRACE, feeder)
                        .await
                        .is_err()
                    {
                        abort.abort();
                    }
                });
            }
            _ => feeder.abort(),
        }
    }
}

impl Input {
    /// Input going to `to` (when given), resizes to `terminal`.
    pub(super) fn new(to: Option<OwnedFd>, terminal: Option<std::fs::File>) -> Self {
        let (stdin, feeder) = match to {
            Some(to) => {
                let (tx, rx) = mpsc::channel::<Bytes>(INCOMING);
                (Some(tx), Some(feed(to, rx)))
            }
            None => (None, None),
        };
        Input {
            stdin,
            queued: VecDeque::new(),
            queued_bytes: 0,
            closing: false,
            closed: false,
            feeder,
            terminal: terminal.map(Arc::new),
        }
    }

    /// Takes one message from the client, without waiting.
    pub(super) fn message(&mut self, message: Message, v5: bool) -> Step {
        let data = match message {
            Message::Binary(data) => data,
            Message::Text(text) => Bytes::copy_from_slice(text.as_bytes()),
            Message::Close(_) => return Step::ClientGone,
            _ => return Step::Continue,
        };
        match data.split_first() {
            Some((&STDIN, rest)) => {
                if self.stdin.is_some() && !self.closing && !rest.is_empty() {
                    self.queued_bytes += rest.len();
                    self.queued.push_back(data.slice(1..));
                }
                Step::Continue
            }
            Some((&RESIZE, rest)) => {
                self.resize(rest);
                Step::Continue
            }
            // v5: "no more stdin": the process reads end-of-file once what was sent
            // is written.
            Some((&CLOSE, [STDIN])) if v5 && !self.closing && !self.closed => {
                self.closing = true;
                self.close_when_sent()
            }
            _ => Step::Continue,
        }
    }

    /// Whether more of the client's messages may be read now.
    pub(super) fn wants_more(&self) -> bool {
        self.queued_bytes < READ_AHEAD
    }

    /// Whether stdin waits for the process.
    pub(super) fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Gives the first queued stdin to the feeder, once it has room (only while
    /// [`has_queued`](Self::has_queued): with nothing queued it returns at once).
    /// Cancel-safe: nothing is taken before the room is there.
    pub(super) async fn push(&mut self) -> Step {
        let fed = match &self.stdin {
            Some(tx) => match tx.reserve().await {
                Ok(permit) => {
                    if let Some(data) = self.queued.pop_front() {
                        self.queued_bytes -= data.len();
                        permit.send(data);
                    }
                    true
                }
                Err(_) => false,
            },
            None => false,
        };
        if !fed {
            // The feeder has ended (the process' stdin is closed): what is queued
            // goes nowhere.
            self.drop_stdin();
        }
        self.close_when_sent()
    }

    fn drop_stdin(&mut self) {
        self.stdin = None;
        self.queued.clear();
        self.queued_bytes = 0;
    }

    /// Once the client has closed its input and all of it is with the feeder: the
    /// sender goes (the feeder writes what it has, then closes its end).
    fn close_when_sent(&mut self) -> Step {
        if !self.closing || self.has_queued() {
            return Step::Continue;
        }
        self.closing = false;
        self.closed = true;
        self.stdin = None;
        Step::StdinClosed
    }

    fn resize(&self, size: &[u8]) {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Size {
            width: u16,
            height: u16,
        }
        if let (Some(terminal), Ok(size)) = (&self.terminal, serde_json::from_slice::<Size>(size)) {
            let winsize = rustix::termios::Winsize {
                ws_row: size.height,
                ws_col: size.width,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let _ = rustix::termios::tcsetwinsize(terminal.as_ref(), winsize);
        }
    }
}

/// Whether a client's message is traffic for the idle timeout (stdin, a resize, a
/// close of stdin), not a ping, pong or close of the connection.
fn is_data(message: &Message) -> bool {
    matches!(message, Message::Binary(_) | Message::Text(_))
}

/// Reads the client's messages into `input` until the client goes (then the task
/// ends, dropping `input`); tells each step but [`Step::Continue`] to `steps`. The
/// client is taken for gone after [`IDLE_TIMEOUT`] without traffic, or once it
/// answers no ping (see [`Liveness`]). Stdin the process does not take waits, and
/// the client's later messages are read on up to [`READ_AHEAD`] bytes of it.
pub(super) fn forward_input<S>(
    mut from_client: SplitStream<WebSocketStream<S>>,
    mut input: Input,
    v5: bool,
    liveness: Arc<Liveness>,
    steps: mpsc::Sender<Step>,
) -> JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut checks =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
        checks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let step = tokio::select! {
                message = from_client.next(), if input.wants_more() => match message {
                    Some(Ok(message)) => {
                        liveness.heard(is_data(&message));
                        input.message(message, v5)
                    }
                    _ => Step::ClientGone,
                },
                step = input.push(), if input.has_queued() => step,
                _ = checks.tick() => {
                    if !input.wants_more() {
                        liveness.not_reading();
                    }
                    match liveness.verdict() {
                        Some(why) => {
                            tracing::debug!("ending a stream session: {why}");
                            Step::ClientGone
                        }
                        None => Step::Continue,
                    }
                }
            };
            match step {
                Step::Continue => {}
                Step::StdinClosed => {
                    let _ = steps.try_send(Step::StdinClosed);
                }
                Step::ClientGone => break,
            }
        }
        let _ = steps.try_send(Step::ClientGone);
    })
}

/// Waits up to two seconds for `pumps` to copy what is left in their pipes (output
/// written just before a process ended), then stops them: a background process
/// that keeps a pipe open is not waited for.
pub(super) async fn drain(pumps: Vec<JoinHandle<()>>) {
    let aborts: Vec<_> = pumps.iter().map(JoinHandle::abort_handle).collect();
    let all = futures_util::future::join_all(pumps);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), all).await;
    for abort in aborts {
        abort.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A session's WebSocket: the node's end, and the client's.
    async fn websocket_pair(
        buffer: usize,
    ) -> (
        WebSocketStream<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (node, client) = tokio::io::duplex(buffer);
        let node = WebSocketStream::from_raw_socket(node, Role::Server, None).await;
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (node, client)
    }

    fn stdin(data: &[u8]) -> Message {
        let mut message = vec![STDIN];
        message.extend_from_slice(data);
        Message::Binary(message.into())
    }

    /// Gives the feeder all that is queued.
    async fn push_all(input: &mut Input) -> Step {
        let mut step = Step::Continue;
        while input.has_queued() {
            step = input.push().await;
        }
        step
    }

    #[tokio::test]
    async fn input_goes_to_stdin_until_closed_and_its_end_is_eof() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let mut input = Input::new(Some(writer.into()), None);
        assert_eq!(input.message(stdin(b"hi\n"), true), Step::Continue);
        // Resizes without a terminal, and unknown channels, are ignored.
        let resize = Message::Binary(Bytes::from_static(b"\x04{\"Width\":80,\"Height\":24}"));
        assert_eq!(input.message(resize, true), Step::Continue);
        let odd = Message::Binary(Bytes::from_static(b"\x09?"));
        assert_eq!(input.message(odd, true), Step::Continue);
        // The close comes after what was sent, once that has gone to the feeder.
        let close = Message::Binary(Bytes::from_static(b"\xff\x00"));
        assert_eq!(input.message(close, true), Step::Continue);
        assert_eq!(push_all(&mut input).await, Step::StdinClosed);
        assert!(input.stdin.is_none());
        let got = tokio::task::spawn_blocking(move || {
            let mut got = String::new();
            reader.read_to_string(&mut got).unwrap();
            got
        })
        .await
        .unwrap();
        assert_eq!(got, "hi\n");
        assert_eq!(input.message(Message::Close(None), true), Step::ClientGone);
    }

    #[tokio::test]
    async fn v4_has_no_close_of_stdin() {
        let (_reader, writer) = std::io::pipe().unwrap();
        let mut input = Input::new(Some(writer.into()), None);
        let close = Message::Binary(Bytes::from_static(b"\xff\x00"));
        assert_eq!(input.message(close, false), Step::Continue);
        assert!(input.stdin.is_some());
    }

    #[tokio::test]
    async fn input_to_a_process_that_does_not_read_waits_bounded_and_goes_with_the_session() {
        let (reader, writer) = std::io::pipe().unwrap();
        let mut input = Input::new(Some(writer.into()), None);
        let chunk = vec![0u8; 32 * 1024];
        let mut taken = 0;
        while input.wants_more() {
            assert_eq!(input.message(stdin(&chunk), true), Step::Continue);
            taken += 1;
            assert!(taken < 100, "input was read ahead without bound");
        }
        assert_eq!(taken * chunk.len(), READ_AHEAD);
        // The pipe takes 64 KiB, the feeder a message, the channel INCOMING: then
        // pushing waits.
        let mut pushed = 0;
        loop {
            if !input.has_queued() {
                input.message(stdin(&chunk), true);
            }
            let push = tokio::time::timeout(Duration::from_millis(300), input.push());
            match push.await {
                Ok(step) => assert_eq!(step, Step::Continue),
                Err(_) => break,
            }
            pushed += 1;
            assert!(pushed < 100, "input was buffered without bound");
        }
        assert!(pushed <= INCOMING + 3, "{pushed}");
        assert!(input.has_queued());
        // The session ends: its feeder goes, and so does the last writer.
        let feeder = input.feeder.as_ref().unwrap().abort_handle();
        drop(input);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(feeder.is_finished());
        drop(reader);
    }

    #[tokio::test]
    async fn the_client_leaving_is_seen_while_the_process_does_not_read_its_stdin() {
        let (node, mut client) = websocket_pair(1 << 20).await;
        let (_reader, writer) = std::io::pipe().unwrap();
        let (to_client, from_client) = Client::split(node);
        let (steps_tx, mut steps) = mpsc::channel(4);
        let input = Input::new(Some(writer.into()), None);
        let task = forward_input(from_client, input, true, to_client.liveness(), steps_tx);
        // More than the pipe, the feeder and the channel hold, but within the
        // read-ahead: the client's close behind it is read all the same.
        let chunk = vec![b'x'; 32 * 1024];
        for _ in 0..14 {
            client.send(stdin(&chunk)).await.unwrap();
        }
        client.send(Message::Close(None)).await.unwrap();
        let step = tokio::time::timeout(Duration::from_secs(5), steps.recv())
            .await
            .expect("the client's close was not seen");
        assert_eq!(step, Some(Step::ClientGone));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn finishing_gives_up_on_a_client_that_reads_nothing() {
        // The client never reads: the node's writes fill the connection.
        let (node, client) = websocket_pair(64 * 1024).await;
        let (to_client, from_client) = Client::split(node);
        let flood = {
            let out = to_client.out.clone();
            tokio::spawn(async move {
                let message = Message::Binary(vec![STDOUT; 32 * 1024].into());
                while out.send(message.clone()).await.is_ok() {}
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        flood.abort();
        drop(from_client);
        let status = serde_json::json!({"status": "Success"});
        let began = std::time::Instant::now();
        to_client
            .finish_within(Some(status), Duration::from_millis(300))
            .await;
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "{:?}",
            began.elapsed()
        );
        drop(client);
    }

    #[test]
    fn a_client_is_taken_for_gone_when_idle_or_unanswering() {
        let minute = 60_000;
        let fresh = || {
            let l = Liveness::new();
            l.heard.store(0, Ordering::Relaxed);
            l
        };
        // Quiet but answering: the last ping was answered.
        let l = fresh();
        l.heard.store(10 * minute, Ordering::Relaxed);
        assert_eq!(l.verdict_at(10 * minute + 30_000), None);
        // A ping unanswered for two intervals, nothing else taken either: gone.
        let l = fresh();
        l.ping.store(minute, Ordering::Relaxed);
        assert_eq!(l.verdict_at(minute + 59_000), None);
        assert_eq!(l.verdict_at(2 * minute), Some(Unheard::Unresponsive));
        // The same ping stuck behind output that the link takes, slowly: not gone.
        l.wrote.store(2 * minute - 1000, Ordering::Relaxed);
        assert_eq!(l.verdict_at(2 * minute), None);
        // A write that has waited two intervals, nothing heard: gone.
        let l = fresh();
        l.writing.store(minute, Ordering::Relaxed);
        assert_eq!(l.verdict_at(2 * minute), Some(Unheard::Unresponsive));
        // The client heard lately: never gone for want of an answer.
        l.heard.store(2 * minute - 1, Ordering::Relaxed);
        assert_eq!(l.verdict_at(2 * minute), None);
        // No input or output for the idle timeout, pongs or not: ended.
        let hours = |h: u64| h * 3600 * 1000;
        let l = fresh();
        l.heard.store(hours(4), Ordering::Relaxed);
        assert_eq!(l.verdict_at(hours(4) - 1), None);
        assert_eq!(l.verdict_at(hours(4)), Some(Unheard::Idle));
        l.exchanged.store(hours(3), Ordering::Relaxed);
        assert_eq!(l.verdict_at(hours(4)), None);
    }

    #[tokio::test]
    async fn output_is_copied_with_its_channel_byte_until_the_pipe_ends() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let (out, mut messages) = mpsc::channel(OUTGOING);
        let pump = pump_out(reader, STDERR, out);
        writer.write_all(b"oops").unwrap();
        drop(writer);
        let first = messages.recv().await.unwrap();
        assert_eq!(first, Message::Binary(Bytes::from_static(b"\x02oops")));
        pump.await.unwrap();
        assert!(messages.recv().await.is_none());
    }
}
