//! The server side of SPDY/3.1 as Kubernetes' streaming protocols use it (kubectl's
//! `port-forward`, through `moby/spdystream`): a connection carrying many streams,
//! each opened by the client with a `SYN_STREAM` and a block of headers, answered
//! with a `SYN_REPLY`, carrying `DATA` both ways until each side sends `FIN`.
//!
//! Framing follows the SPDY/3.1 draft: control frames (`SYN_STREAM`, `SYN_REPLY`,
//! `RST_STREAM`, `SETTINGS`, `PING`, `GOAWAY`, `HEADERS`, `WINDOW_UPDATE`) and data
//! frames; header blocks are zlib-compressed with the draft's dictionary
//! ([`dictionary`]), one compression context per direction for the connection's
//! lifetime. As spdystream, no flow control: `WINDOW_UPDATE` and `SETTINGS` are read
//! and ignored, and back-pressure is the connection's own (a stream whose reader is
//! slow stops the reading of the connection).
//!
//! Every input is bounded: control frames to [`MAX_CONTROL_FRAME`] bytes, a header
//! block to [`MAX_HEADER_BLOCK`] bytes once inflated, data frames to
//! [`MAX_DATA_FRAME`], open streams to [`MAX_STREAMS`]; beyond, the connection ends
//! with `GOAWAY` (protocol error) or the stream is refused.

mod codec;
mod dictionary;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, watch};

use codec::Frame;

/// The protocol name of an HTTP upgrade to SPDY (`Upgrade: SPDY/3.1`).
pub const UPGRADE: &str = "SPDY/3.1";

/// The largest control frame read (kubectl's are a few hundred bytes).
pub const MAX_CONTROL_FRAME: usize = 16 * 1024;
/// The largest header block accepted once inflated.
pub const MAX_HEADER_BLOCK: usize = 16 * 1024;
/// The largest data frame read (spdystream writes at most 32 KiB at a time).
pub const MAX_DATA_FRAME: usize = 64 * 1024;
/// The most streams alive at once on a connection (until their handler drops them,
/// whatever the client closed): with [`MAX_DATA_FRAME`] and two frames queued a
/// stream, at most 32 MiB of a connection's input is held.
pub const MAX_STREAMS: usize = 256;
/// Frames of a stream read and not yet taken by its handler, at most.
const QUEUED_FRAMES: usize = 2;
/// A connection with no frame either way for this long ends (kubelet's streaming
/// idle timeout).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 3600);
/// How long frames already queued may take to be written once the client's side
/// has ended with an error.
const DRAIN: Duration = Duration::from_secs(2);
/// The largest data frame written.
const WRITE_CHUNK: usize = 32 * 1024;

/// `RST_STREAM` status: protocol error.
pub const PROTOCOL_ERROR: u32 = 1;
/// `RST_STREAM` status: the stream was refused (too many open).
pub const REFUSED_STREAM: u32 = 3;
/// `RST_STREAM` status: the stream was cancelled (what spdystream's `Reset` sends).
pub const CANCEL: u32 = 5;
/// `GOAWAY` status: protocol error.
const GOAWAY_PROTOCOL_ERROR: u32 = 1;

/// A stream the client opened. It counts towards [`MAX_STREAMS`] until dropped.
#[derive(Debug)]
pub struct Stream {
    /// Its id (odd: the client's).
    pub id: u32,
    /// Its headers, names lower-case as SPDY writes them.
    pub headers: Vec<(String, String)>,
    /// What the client sends on it; ends at its `FIN`, a reset or the connection's end.
    pub incoming: mpsc::Receiver<Bytes>,
    /// Writes to the client on it.
    pub writer: StreamWriter,
    _alive: Arc<()>,
}

impl Stream {
    /// The value of the header `name` (compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The connection has ended, or the client reset the stream: nothing more can be
/// written on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the SPDY stream or connection has ended")]
pub struct Closed;

/// Writes frames of one stream.
#[derive(Debug, Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
    /// Becomes true when the client resets the stream.
    reset: watch::Receiver<bool>,
}

impl StreamWriter {
    /// Accepts the stream (`SYN_REPLY` without headers, as Kubernetes' servers send).
    pub async fn reply(&self) -> Result<(), Closed> {
        self.frame(Frame::SynReply {
            stream: self.id,
            headers: Vec::new(),
            fin: false,
        })
        .await
    }

    /// Sends `data`, in frames of at most 32 KiB.
    pub async fn send(&self, data: &[u8]) -> Result<(), Closed> {
        for chunk in data.chunks(WRITE_CHUNK) {
            self.frame(Frame::Data {
                stream: self.id,
                fin: false,
                data: Bytes::copy_from_slice(chunk),
            })
            .await?;
        }
        Ok(())
    }

    /// Ends this side of the stream (`FIN`).
    pub async fn finish(&self) -> Result<(), Closed> {
        self.frame(Frame::Data {
            stream: self.id,
            fin: true,
            data: Bytes::new(),
        })
        .await
    }

    /// Resets the stream with `status`.
    pub async fn reset(&self, status: u32) -> Result<(), Closed> {
        self.frame(Frame::RstStream {
            stream: self.id,
            status,
        })
        .await
    }

    /// Resolves once nothing written gets anywhere: the connection has ended or the
    /// client reset the stream.
    pub async fn closed(&self) {
        let mut reset = self.reset.clone();
        tokio::select! {
            () = self.out.closed() => {}
            // An error: the connection's reader is gone, so is the connection.
            _ = reset.wait_for(|r| *r) => {}
        }
    }

    async fn frame(&self, frame: Frame) -> Result<(), Closed> {
        if *self.reset.borrow() {
            return Err(Closed);
        }
        self.out.send(frame).await.map_err(|_| Closed)
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    /// The client closed it, or said `GOAWAY`.
    #[error("closed by the client")]
    Closed,
    /// No frame either way for [`IDLE_TIMEOUT`].
    #[error("idle for {}s", IDLE_TIMEOUT.as_secs())]
    Idle,
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The client broke the protocol (the connection was ended with `GOAWAY`).
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// When a frame last went either way, in milliseconds since the session began.
struct Activity {
    began: Instant,
    last: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let now = u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.began.elapsed().saturating_sub(last)
    }
}

/// Serves the SPDY connection `io`: each stream the client opens goes to `streams`
/// (a stream is refused once [`MAX_STREAMS`] are alive, or when the receiver of
/// `streams` is gone). Returns when the connection ends; by then every stream's
/// `incoming` has ended and every [`StreamWriter::closed`] resolves.
pub async fn serve<IO>(io: IO, streams: mpsc::Sender<Stream>) -> SessionEnd
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(io);
    let (out, frames) = mpsc::channel::<Frame>(64);
    let activity = Arc::new(Activity {
        began: Instant::now(),
        last: AtomicU64::new(0),
    });
    let mut writing = tokio::spawn(write_frames(writer, frames, activity.clone()));
    let idle = Arc::new(Notify::new());
    let watchdog = tokio::spawn({
        let (activity, idle) = (activity.clone(), idle.clone());
        async move {
            loop {
                let left = IDLE_TIMEOUT.saturating_sub(activity.idle());
                if left.is_zero() {
                    idle.notify_one();
                    return;
                }
                tokio::time::sleep(left).await;
            }
        }
    });
    let mut reading = Reading {
        out: &out,
        streams,
        activity: &activity,
        open: HashMap::new(),
        resets: HashMap::new(),
        alive: Arc::new(()),
        last_stream: 0,
    };
    let end = tokio::select! {
        end = reading.run(reader) => end,
        () = idle.notified() => SessionEnd::Idle,
    };
    watchdog.abort();
    let last_stream = reading.last_stream;
    // No stream more; every stream's input ends; resets end their writers.
    drop(reading);
    if let SessionEnd::Protocol(_) = &end {
        let _ = out.try_send(Frame::GoAway {
            last_stream,
            status: GOAWAY_PROTOCOL_ERROR,
        });
    }
    drop(out);
    // What is queued goes out for a moment (the GOAWAY above); then the writer
    // stops, and every stream's writer sees the connection closed.
    let drained = matches!(end, SessionEnd::Protocol(_))
        && tokio::time::timeout(DRAIN, &mut writing).await.is_ok();
    if !drained {
        writing.abort();
        let _ = writing.await;
    }
    end
}

async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut frames: mpsc::Receiver<Frame>,
    activity: Arc<Activity>,
) -> std::io::Result<()> {
    let mut deflate = codec::Deflater::new();
    let mut buf = Vec::with_capacity(WRITE_CHUNK + 8);
    while let Some(frame) = frames.recv().await {
        buf.clear();
        frame.encode(&mut deflate, &mut buf)?;
        writer.write_all(&buf).await?;
        // Write what is queued before flushing, one flush per burst.
        while let Ok(frame) = frames.try_recv() {
            buf.clear();
            frame.encode(&mut deflate, &mut buf)?;
            writer.write_all(&buf).await?;
        }
        writer.flush().await?;
        activity.touch();
    }
    writer.shutdown().await
}

/// The reading side of a connection.
struct Reading<'a> {
    out: &'a mpsc::Sender<Frame>,
    streams: mpsc::Sender<Stream>,
    activity: &'a Activity,
    /// The streams the client may still send on: where their data goes.
    open: HashMap<u32, mpsc::Sender<Bytes>>,
    /// Every stream whose writer is still held: its reset flag.
    resets: HashMap<u32, watch::Sender<bool>>,
    /// One count more for each stream alive.
    alive: Arc<()>,
    last_stream: u32,
}

impl Reading<'_> {
    async fn run<R: AsyncRead + Unpin>(&mut self, mut reader: R) -> SessionEnd {
        let mut inflate = codec::Inflater::new();
        loop {
            let frame = match codec::read_frame(&mut reader, &mut inflate).await {
                Ok(Some(f)) => f,
                Ok(None) => return SessionEnd::Closed,
                Err(codec::ReadError::Io(e)) => return SessionEnd::Io(e),
                Err(codec::ReadError::Protocol(e)) => return SessionEnd::Protocol(e),
            };
            self.activity.touch();
            match frame {
                Frame::SynStream {
                    stream,
                    headers,
                    fin,
                } => {
                    if stream <= self.last_stream || stream % 2 == 0 {
                        return SessionEnd::Protocol(format!(
                            "stream id {stream} after {} (client streams are odd and rising)",
                            self.last_stream
                        ));
                    }
                    self.last_stream = stream;
                    self.open_stream(stream, headers, fin).await;
                }
                Frame::Data { stream, fin, data } => self.data(stream, fin, data).await,
                Frame::RstStream { stream, .. } => {
                    self.open.remove(&stream);
                    if let Some(reset) = self.resets.remove(&stream) {
                        let _ = reset.send(true);
                    }
                }
                // Echoed when the client's (odd); an even id answers a ping of ours.
                Frame::Ping { id } if id % 2 == 1 => {
                    if self.out.send(Frame::Ping { id }).await.is_err() {
                        return SessionEnd::Closed;
                    }
                }
                Frame::GoAway { .. } => return SessionEnd::Closed,
                Frame::Headers { stream, fin, .. } | Frame::SynReply { stream, fin, .. } => {
                    if fin {
                        self.open.remove(&stream);
                    }
                }
                Frame::Ping { .. } | Frame::Ignored => {}
            }
        }
    }

    async fn open_stream(&mut self, stream: u32, headers: Vec<(String, String)>, fin: bool) {
        self.resets.retain(|_, r| !r.is_closed());
        let (reset_tx, reset) = watch::channel(false);
        let writer = StreamWriter {
            id: stream,
            out: self.out.clone(),
            reset,
        };
        // Streams count until their handler drops them, whatever the client closed.
        if Arc::strong_count(&self.alive) > MAX_STREAMS {
            let _ = writer.reset(REFUSED_STREAM).await;
            return;
        }
        let (tx, incoming) = mpsc::channel(QUEUED_FRAMES);
        if !fin {
            self.open.insert(stream, tx);
        }
        self.resets.insert(stream, reset_tx);
        let accepted = Stream {
            id: stream,
            headers,
            incoming,
            writer,
            _alive: self.alive.clone(),
        };
        if let Err(refused) = self.streams.send(accepted).await {
            self.open.remove(&stream);
            self.resets.remove(&stream);
            let _ = refused.0.writer.reset(REFUSED_STREAM).await;
        }
    }

    async fn data(&mut self, stream: u32, fin: bool, data: Bytes) {
        let delivered = match self.open.get(&stream) {
            Some(_) if data.is_empty() => true,
            Some(tx) => tx.send(data).await.is_ok(),
            None => false,
        };
        if fin || !delivered {
            self.open.remove(&stream);
        }
        // Data for a stream whose handler no longer reads: reset it (the client's
        // later frames for it are dropped without a word).
        if !delivered && let Some(reset) = self.resets.remove(&stream) {
            let _ = reset.send(true);
            let _ = self
                .out
                .send(Frame::RstStream {
                    stream,
                    status: CANCEL,
                })
                .await;
        }
    }
}

#[cfg(test)]
mod tests;
