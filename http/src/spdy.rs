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

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use codec::Frame;

/// The protocol name of an HTTP upgrade to SPDY (`Upgrade: SPDY/3.1`).
pub const UPGRADE: &str = "SPDY/3.1";

/// The largest control frame read (kubectl's are a few hundred bytes).
pub const MAX_CONTROL_FRAME: usize = 64 * 1024;
/// The largest header block accepted once inflated.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// The largest data frame read (spdystream writes at most 32 KiB at a time).
pub const MAX_DATA_FRAME: usize = 1024 * 1024;
/// The most streams open at once on a connection.
pub const MAX_STREAMS: usize = 256;
/// The largest data frame written.
const WRITE_CHUNK: usize = 32 * 1024;

/// `RST_STREAM` status: protocol error.
pub const PROTOCOL_ERROR: u32 = 1;
/// `RST_STREAM` status: the stream was refused (too many open).
pub const REFUSED_STREAM: u32 = 3;
/// `RST_STREAM` status: the stream was cancelled.
pub const CANCEL: u32 = 5;
/// `GOAWAY` status: protocol error.
const GOAWAY_PROTOCOL_ERROR: u32 = 1;

/// A stream the client opened.
#[derive(Debug)]
pub struct Stream {
    /// Its id (odd: the client's).
    pub id: u32,
    /// Its headers, names lower-case as SPDY writes them.
    pub headers: Vec<(String, String)>,
    /// What the client sends on it; ends at its `FIN` or a reset.
    pub incoming: mpsc::Receiver<Bytes>,
    /// Writes to the client on it.
    pub writer: StreamWriter,
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

/// The connection has ended: nothing more can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the SPDY connection has ended")]
pub struct Closed;

/// Writes frames of one stream.
#[derive(Debug, Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
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

    /// Resolves once the connection has ended (nothing written gets anywhere).
    pub async fn closed(&self) {
        self.out.closed().await
    }

    async fn frame(&self, frame: Frame) -> Result<(), Closed> {
        self.out.send(frame).await.map_err(|_| Closed)
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    /// The client closed it, or said `GOAWAY`.
    #[error("closed by the client")]
    Closed,
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The client broke the protocol (the connection was ended with `GOAWAY`).
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Serves the SPDY connection `io`: each stream the client opens goes to `streams`
/// (a stream is refused once [`MAX_STREAMS`] are open, or when `streams` is full
/// and its receiver gone). Returns when the connection ends.
pub async fn serve<IO>(io: IO, streams: mpsc::Sender<Stream>) -> SessionEnd
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(io);
    let (out, frames) = mpsc::channel::<Frame>(64);
    let writing = tokio::spawn(write_frames(writer, frames));
    let end = read_frames(reader, &out, &streams).await;
    if let SessionEnd::Protocol(_) = &end {
        let _ = out
            .send(Frame::GoAway {
                last_stream: 0,
                status: GOAWAY_PROTOCOL_ERROR,
            })
            .await;
    }
    drop(out);
    // The writer ends once every stream's writer is dropped, or at once when the
    // client is gone.
    if matches!(end, SessionEnd::Closed | SessionEnd::Io(_)) {
        writing.abort();
    }
    let _ = writing.await;
    end
}

async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut frames: mpsc::Receiver<Frame>,
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
    }
    writer.shutdown().await
}

async fn read_frames<R: AsyncRead + Unpin>(
    mut reader: R,
    out: &mpsc::Sender<Frame>,
    streams: &mpsc::Sender<Stream>,
) -> SessionEnd {
    let mut inflate = codec::Inflater::new();
    let mut open: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut last_stream = 0u32;
    loop {
        let frame = match codec::read_frame(&mut reader, &mut inflate).await {
            Ok(Some(f)) => f,
            Ok(None) => return SessionEnd::Closed,
            Err(codec::ReadError::Io(e)) => return SessionEnd::Io(e),
            Err(codec::ReadError::Protocol(e)) => return SessionEnd::Protocol(e),
        };
        match frame {
            Frame::SynStream {
                stream,
                headers,
                fin,
            } => {
                if stream <= last_stream || stream % 2 == 0 {
                    return SessionEnd::Protocol(format!(
                        "stream id {stream} after {last_stream} (client streams are odd and rising)"
                    ));
                }
                last_stream = stream;
                let writer = StreamWriter {
                    id: stream,
                    out: out.clone(),
                };
                open.retain(|_, tx| !tx.is_closed());
                if open.len() >= MAX_STREAMS {
                    let _ = writer.reset(REFUSED_STREAM).await;
                    continue;
                }
                let (tx, incoming) = mpsc::channel(16);
                if !fin {
                    open.insert(stream, tx);
                }
                let accepted = Stream {
                    id: stream,
                    headers,
                    incoming,
                    writer,
                };
                if let Err(refused) = streams.send(accepted).await {
                    open.remove(&stream);
                    let _ = refused.0.writer.reset(REFUSED_STREAM).await;
                }
            }
            Frame::Data { stream, fin, data } => {
                let delivered = match open.get(&stream) {
                    Some(_) if data.is_empty() => true,
                    Some(tx) => tx.send(data).await.is_ok(),
                    // Data for a stream that ended or never was: reset it, once.
                    None => false,
                };
                if fin || !delivered {
                    open.remove(&stream);
                }
                if !delivered && stream <= last_stream && !fin {
                    let _ = out
                        .send(Frame::RstStream {
                            stream,
                            status: CANCEL,
                        })
                        .await;
                }
            }
            Frame::RstStream { stream, .. } => {
                open.remove(&stream);
            }
            Frame::Ping { id } => {
                if out.send(Frame::Ping { id }).await.is_err() {
                    return SessionEnd::Closed;
                }
            }
            Frame::GoAway { .. } => return SessionEnd::Closed,
            Frame::Headers { stream, fin, .. } | Frame::SynReply { stream, fin, .. } => {
                if fin {
                    open.remove(&stream);
                }
            }
            Frame::Ignored => {}
        }
    }
}

#[cfg(test)]
mod tests;
