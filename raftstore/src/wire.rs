//! Frames on the wire: a 4-byte big-endian length, then a prost-encoded [`Frame`].
//! Readers go through a buffer and writers send everything queued in one write, so
//! that many requests in flight cost few system calls. A member's connections are
//! written through [`Outgoing`], into which its raft thread writes itself.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use prost::Message as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, BufReader};
use tokio::sync::Notify;

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

/// The sending side of a connection, shared by everyone who sends on it.
///
/// What the raft thread sends (answers to clients, messages to peers) it writes into
/// the socket itself, without waking the connection's writer task: on a small VM that
/// wake-up costs as much as the write. The task writes only what the socket did not
/// take at once, and the answers of a batch that touches many connections (see
/// [`Batch`]), which it writes while the raft thread goes on.
pub struct Outgoing<W> {
    state: Mutex<Unsent<W>>,
    wake: Arc<Notify>,
}

struct Unsent<W> {
    io: W,
    /// Encoded frames not yet handed to `io`.
    buf: Vec<u8>,
    /// `io` may hold bytes that need a flush (TLS).
    unflushed: bool,
    /// The writer task waits to write (a socket that took only part, or TLS that
    /// could not flush): it writes whatever is added meanwhile too, and nobody else
    /// may poll `io` (that would take its wake-up).
    task_writing: bool,
    /// The connection failed: nothing more is sent.
    failed: bool,
}

impl<W: AsyncWrite + Unpin> Unsent<W> {
    /// The connection failed: what waits is dropped, and what comes after.
    fn fail(&mut self) {
        self.failed = true;
        self.buf = Vec::new();
    }

    /// Writes what it can; `Ready(Ok)` once everything is out.
    fn poll_out(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.buf.is_empty() {
            match std::task::ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf)) {
                Ok(0) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.buf.drain(..n);
                    self.unflushed = true;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        if self.unflushed {
            std::task::ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }
}

impl<W> Drop for Outgoing<W> {
    fn drop(&mut self) {
        // Lets the writer task see that it is done.
        self.wake.notify_one();
    }
}

/// The most connections the raft thread writes to itself at the end of a batch; the
/// writer tasks of more write in parallel with the next batch.
const DIRECT_WRITES: usize = 2;

thread_local! {
    /// The connections answered during this thread's open [`Batch`], if it has one.
    static BATCH: RefCell<Option<Vec<Arc<dyn Flush>>>> = const { RefCell::new(None) };
}

trait Flush: Send + Sync {
    fn flush(&self, direct: bool);
}

/// While it lives, answers given on this thread ([`Outgoing::answer`]) are held back;
/// dropping it writes them, one write per connection (the raft thread opens one per
/// batch of requests).
pub struct Batch(());

impl Batch {
    /// Opens the batch of this thread.
    pub fn open() -> Batch {
        BATCH.with_borrow_mut(|b| *b = Some(Vec::new()));
        Batch(())
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        let answered = BATCH.with_borrow_mut(Option::take).unwrap_or_default();
        let direct = answered.len() <= DIRECT_WRITES;
        for outgoing in answered {
            outgoing.flush(direct);
        }
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> Outgoing<W> {
    /// Shares `io` and starts its writer task, which ends when the connection fails
    /// or every handle is gone.
    pub fn start(io: W) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let outgoing = Arc::new(Outgoing {
            state: Mutex::new(Unsent {
                io,
                buf: Vec::new(),
                unflushed: false,
                task_writing: false,
                failed: false,
            }),
            wake: Arc::new(Notify::new()),
        });
        let (weak, wake) = (Arc::downgrade(&outgoing), outgoing.wake.clone());
        let writing = tokio::spawn(async move {
            loop {
                let notified = wake.notified();
                let Some(outgoing) = weak.upgrade() else {
                    return;
                };
                let result = std::future::poll_fn(|cx| {
                    let mut unsent = outgoing.lock();
                    if unsent.failed {
                        return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
                    }
                    let written = unsent.poll_out(cx);
                    unsent.task_writing = written.is_pending();
                    written
                })
                .await;
                if result.is_err() {
                    outgoing.lock().fail();
                    return;
                }
                drop(outgoing);
                notified.await;
            }
        });
        (outgoing, writing)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Unsent<W>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `frames`; whether nothing was waiting before them (else whoever put
    /// that there writes these too).
    fn push(&self, frames: impl IntoIterator<Item = Frame>) -> bool {
        let mut unsent = self.lock();
        if unsent.failed {
            return false;
        }
        let first = unsent.buf.is_empty() && !unsent.task_writing;
        for frame in frames {
            encode_frame_into(&frame, &mut unsent.buf);
        }
        first && !unsent.buf.is_empty()
    }

    /// Answers with `frame`: written when this thread's [`Batch`] ends, or at once
    /// without one.
    pub fn answer(self: &Arc<Self>, frame: Frame) {
        if !self.push([frame]) {
            return;
        }
        let this: Arc<dyn Flush> = self.clone();
        let unbatched = BATCH.with_borrow_mut(|batch| match batch {
            Some(answered) => {
                answered.push(this);
                None
            }
            None => Some(this),
        });
        if let Some(this) = unbatched {
            this.flush(true);
        }
    }

    /// Sends `frames` now, in one write if the socket takes them.
    pub fn send(&self, frames: impl IntoIterator<Item = Frame>) {
        if self.push(frames) {
            self.flush(true);
        }
    }

    /// Hands `frame` to the writer task, which writes everything queued meanwhile
    /// with it (for senders that come many at a time).
    pub fn queue(&self, frame: Frame) {
        if self.push([frame]) {
            self.flush(false);
        }
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> Flush for Outgoing<W> {
    /// With `direct`, writes on this thread first, with a waker that does nothing:
    /// what the socket does not take goes to the writer task, which polls with its own.
    fn flush(&self, direct: bool) {
        if direct {
            let mut unsent = self.lock();
            if !unsent.task_writing {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                match unsent.poll_out(&mut cx) {
                    Poll::Ready(Ok(())) => return,
                    Poll::Ready(Err(_)) => unsent.fail(),
                    Poll::Pending => {}
                }
            }
        }
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame;

    fn raft(bytes: usize, fill: u8) -> Frame {
        Frame {
            body: Some(frame::Body::Raft(vec![fill; bytes])),
        }
    }

    /// Whether `r` has nothing to read right now (reads nothing).
    fn nothing_to_read(r: &mut BufReader<impl AsyncRead + Unpin>) -> bool {
        use tokio::io::AsyncBufRead;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(r).poll_fill_buf(&mut cx).is_pending()
    }

    #[tokio::test]
    async fn answers_of_a_batch_go_out_together_when_it_ends() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut client = buffered(client);
        let (outgoing, _) = Outgoing::start(server);
        let batch = Batch::open();
        outgoing.answer(raft(10, 1));
        outgoing.answer(raft(20, 2));
        assert!(
            nothing_to_read(&mut client),
            "written before the batch ended"
        );
        drop(batch);
        assert_eq!(read_frame(&mut client).await.unwrap(), Some(raft(10, 1)));
        assert_eq!(read_frame(&mut client).await.unwrap(), Some(raft(20, 2)));
        // Without a batch, an answer is written at once.
        outgoing.answer(raft(5, 3));
        assert!(!nothing_to_read(&mut client));
        assert_eq!(read_frame(&mut client).await.unwrap(), Some(raft(5, 3)));
    }

    #[tokio::test]
    async fn the_writer_task_writes_what_the_socket_did_not_take() {
        // A pipe that takes 64 bytes at a time: every frame is left mostly unsent.
        let (mut client, server) = tokio::io::duplex(64);
        let (outgoing, _) = Outgoing::start(server);
        for i in 0..20u8 {
            outgoing.send([raft(1000, i), raft(10, i)]);
        }
        for i in 0..20u8 {
            assert_eq!(read_frame(&mut client).await.unwrap(), Some(raft(1000, i)));
            assert_eq!(read_frame(&mut client).await.unwrap(), Some(raft(10, i)));
        }
        // More than DIRECT_WRITES connections in one batch: their writer tasks write.
        let pipes: Vec<_> = (0..DIRECT_WRITES + 2)
            .map(|_| {
                let (client, server) = tokio::io::duplex(1 << 16);
                (client, Outgoing::start(server).0)
            })
            .collect();
        let batch = Batch::open();
        for (_, outgoing) in &pipes {
            outgoing.answer(raft(100, 9));
        }
        drop(batch);
        for (mut client, _) in pipes {
            assert_eq!(read_frame(&mut client).await.unwrap(), Some(raft(100, 9)));
        }
    }

    #[tokio::test]
    async fn a_failed_connection_ends_its_writer_task() {
        let (client, server) = tokio::io::duplex(64);
        let (outgoing, writing) = Outgoing::start(server);
        drop(client);
        outgoing.send([raft(1000, 1)]);
        writing.await.unwrap();
        // Whatever comes after is dropped, not queued forever.
        outgoing.send([raft(1000, 2)]);
        assert!(outgoing.lock().buf.is_empty());
        // The task also ends when every handle is gone.
        let (_client, server) = tokio::io::duplex(64);
        let (outgoing, writing) = Outgoing::start(server);
        drop(outgoing);
        writing.await.unwrap();
    }
}
