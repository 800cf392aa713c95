//! Kubernetes' remote-command stream protocol over a WebSocket, as kubelet serves it
//! for exec and attach (`k8s.io/apimachinery/pkg/util/remotecommand`): the upgrade,
//! the channels, output copied to the client, input and terminal resizes from it,
//! and the final `Status` on the error channel.
//!
//! Every copy is bounded: output goes through a channel of [`OUTGOING`] messages (a
//! client that does not read makes the copy wait, not the agent buffer), and input
//! through one of [`INCOMING`] (a process that does not read its stdin makes the
//! client's messages wait). All descriptors are non-blocking and polled by tokio, so
//! ending a session ends its copies at once.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::SplitStream;
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

/// The client's side of a session: messages to it, and the task that sends them.
pub(super) struct Client {
    /// Messages to the client (bounded: [`OUTGOING`]).
    pub(super) out: mpsc::Sender<Message>,
    writer: JoinHandle<()>,
}

impl Client {
    /// Splits `ws`: the client to send to, and its messages.
    pub(super) fn split<S>(ws: WebSocketStream<S>) -> (Client, SplitStream<WebSocketStream<S>>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, from_client) = ws.split();
        let (out, mut outgoing) = mpsc::channel::<Message>(OUTGOING);
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
        (Client { out, writer }, from_client)
    }

    /// Sends the final `Status` (when given), closes the socket and waits for that.
    /// Copies still holding a sender must have ended (or been aborted) first.
    pub(super) async fn finish(self, status: Option<serde_json::Value>) {
        if let Some(status) = status {
            let mut message = vec![ERROR];
            message.extend_from_slice(status.to_string().as_bytes());
            let _ = self.out.send(Message::Binary(message.into())).await;
        }
        drop(self.out);
        let _ = self.writer.await;
    }
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
    /// The client's input has ended (v5 CLOSE of stdin).
    StdinClosed,
    /// The client has gone.
    ClientGone,
}

/// The input side: stdin bytes to the process (or its terminal), resizes to its
/// terminal.
pub(super) struct Input {
    stdin: Option<mpsc::Sender<Bytes>>,
    feeder: Option<JoinHandle<()>>,
    terminal: Option<Arc<std::fs::File>>,
}

/// How long the input a client sent before closing its stdin may still take to be
/// written once its session has ended.
const CLOSED_INPUT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

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
            feeder,
            terminal: terminal.map(Arc::new),
        }
    }

    /// Handles one message from the client.
    pub(super) async fn message(&mut self, message: Message, v5: bool) -> Step {
        let data = match message {
            Message::Binary(data) => data,
            Message::Text(text) => Bytes::copy_from_slice(text.as_bytes()),
            Message::Close(_) => return Step::ClientGone,
            _ => return Step::Continue,
        };
        match data.split_first() {
            Some((&STDIN, _)) => {
                if let Some(tx) = &self.stdin
                    && tx.send(data.slice(1..)).await.is_err()
                {
                    self.stdin = None;
                }
                Step::Continue
            }
            Some((&RESIZE, rest)) => {
                self.resize(rest);
                Step::Continue
            }
            // v5: "no more stdin": the process reads end-of-file once what was sent
            // is written.
            Some((&CLOSE, [STDIN])) if v5 => {
                self.stdin = None;
                Step::StdinClosed
            }
            _ => Step::Continue,
        }
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

/// Reads the client's messages into `input` until the client goes (then the task
/// ends, dropping `input`); tells each step but [`Step::Continue`] to `steps`.
pub(super) fn forward_input<S>(
    mut from_client: SplitStream<WebSocketStream<S>>,
    mut input: Input,
    v5: bool,
    steps: mpsc::Sender<Step>,
) -> JoinHandle<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        while let Some(Ok(message)) = from_client.next().await {
            match input.message(message, v5).await {
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

    #[tokio::test]
    async fn input_goes_to_stdin_until_closed_and_its_end_is_eof() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let mut input = Input::new(Some(writer.into()), None);
        let hi = Message::Binary(Bytes::from_static(b"\x00hi\n"));
        assert_eq!(input.message(hi, true).await, Step::Continue);
        // Resizes without a terminal, and unknown channels, are ignored.
        let resize = Message::Binary(Bytes::from_static(b"\x04{\"Width\":80,\"Height\":24}"));
        assert_eq!(input.message(resize, true).await, Step::Continue);
        let odd = Message::Binary(Bytes::from_static(b"\x09?"));
        assert_eq!(input.message(odd, true).await, Step::Continue);
        let close = Message::Binary(Bytes::from_static(b"\xff\x00"));
        assert_eq!(input.message(close, true).await, Step::StdinClosed);
        assert!(input.stdin.is_none());
        let got = tokio::task::spawn_blocking(move || {
            let mut got = String::new();
            reader.read_to_string(&mut got).unwrap();
            got
        })
        .await
        .unwrap();
        assert_eq!(got, "hi\n");
        assert_eq!(
            input.message(Message::Close(None), true).await,
            Step::ClientGone
        );
    }

    #[tokio::test]
    async fn v4_has_no_close_of_stdin() {
        let (_reader, writer) = std::io::pipe().unwrap();
        let mut input = Input::new(Some(writer.into()), None);
        let close = Message::Binary(Bytes::from_static(b"\xff\x00"));
        assert_eq!(input.message(close, false).await, Step::Continue);
        assert!(input.stdin.is_some());
    }

    #[tokio::test]
    async fn input_to_a_process_that_does_not_read_waits_and_is_dropped_with_the_session() {
        let (reader, writer) = std::io::pipe().unwrap();
        let mut input = Input::new(Some(writer.into()), None);
        let chunk = Bytes::from(vec![0u8; 64 * 1024 + 1]);
        // The pipe takes 64 KiB, the channel INCOMING messages: then sends wait.
        let mut sent = 0;
        loop {
            let message = Message::Binary(chunk.clone());
            let step = tokio::time::timeout(
                std::time::Duration::from_millis(300),
                input.message(message, true),
            )
            .await;
            match step {
                Ok(_) => sent += 1,
                Err(_) => break,
            }
            assert!(sent < 100, "input was buffered without bound");
        }
        assert!(sent <= INCOMING + 2, "{sent}");
        // The session ends: its feeder goes, and so does the last writer.
        let feeder = input.feeder.as_ref().unwrap().abort_handle();
        drop(input);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(feeder.is_finished());
        drop(reader);
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
