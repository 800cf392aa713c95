//! Frames on the wire: a 4-byte big-endian length, then a prost-encoded [`Frame`].
//! Readers go through a buffer and writers send every queued frame in one write, so
//! that many requests in flight cost few system calls.

use prost::Message as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::proto::Frame;

/// Largest frame accepted (a snapshot travels in one raft message).
pub const MAX_FRAME: usize = 256 << 20;

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is larger than the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Frame::decode(buf.as_slice())
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Appends a frame with its length prefix to `out`.
pub fn encode_frame_into(frame: &Frame, out: &mut Vec<u8>) {
    let len = frame.encoded_len();
    out.reserve(len + 4);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    frame.encode_raw(out);
}

/// A buffered reader for [`read_frame`].
pub fn buffered<R: AsyncRead>(r: R) -> BufReader<R> {
    BufReader::with_capacity(64 << 10, r)
}

/// Frames waiting to be written.
pub trait Outbox {
    /// The next frame; `None` once the sending side is gone.
    fn next(&mut self) -> impl Future<Output = Option<Frame>> + Send;
    /// The next frame if one is queued.
    fn queued(&mut self) -> Option<Frame>;
}

impl Outbox for mpsc::Receiver<Frame> {
    async fn next(&mut self) -> Option<Frame> {
        self.recv().await
    }
    fn queued(&mut self) -> Option<Frame> {
        self.try_recv().ok()
    }
}

impl Outbox for mpsc::UnboundedReceiver<Frame> {
    async fn next(&mut self) -> Option<Frame> {
        self.recv().await
    }
    fn queued(&mut self) -> Option<Frame> {
        self.try_recv().ok()
    }
}

/// The most bytes gathered into one write.
const MAX_WRITE: usize = 1 << 20;

/// Writes the frames of `outbox` until it ends (`Ok`) or the connection fails:
/// everything queued at a time (up to a megabyte) in one write.
pub async fn write_frames<W: AsyncWrite + Unpin>(
    w: &mut W,
    outbox: &mut impl Outbox,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(first) = outbox.next().await {
        buf.clear();
        encode_frame_into(&first, &mut buf);
        while buf.len() < MAX_WRITE {
            let Some(next) = outbox.queued() else { break };
            encode_frame_into(&next, &mut buf);
        }
        w.write_all(&buf).await?;
    }
    Ok(())
}
