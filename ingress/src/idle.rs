//! How long the proxy waits for a peer that has gone quiet: a client connection's
//! activity ([`Activity`]: the first request head, the requests in flight, the
//! keep-alive idle time), a body whose next piece must come in time ([`Idle`]), a
//! request body's progress towards the pod ([`Progress`], for `proxy-send-timeout`
//! and `proxy-read-timeout` as nginx applies them: between two successive writes,
//! then from the request's end to the response), and an upgraded connection copied
//! both ways until neither side has sent anything for a while ([`tunnel`], as nginx
//! applies `proxy_read_timeout` to WebSockets).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::clients::BoxError;

/// A peer sent nothing (or took nothing) for longer than a limit.
#[derive(Debug, thiserror::Error)]
#[error("{0} stalled for longer than its timeout")]
pub struct Stalled(pub &'static str);

/// What one client connection is doing: whether a request has come, how many are
/// being answered, and since when none is.
#[derive(Debug)]
pub struct Activity {
    requests: AtomicU64,
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }
}

impl Activity {
    /// A request's head came: it is in flight until the guard (kept with its
    /// response body) is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Whether a request head has come on the connection.
    pub fn started(&self) -> bool {
        self.requests.load(Ordering::Relaxed) > 0
    }

    /// Since when no request is in flight (`None`: one is).
    pub fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(*self.last.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A request in flight on a connection ([`Activity::begin`]).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it is dropped.
pub struct Guarded<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Guarded<B> {
    /// `inner`, the request in flight while it lives.
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        Guarded {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How far a request body has got towards the pod.
#[derive(Debug)]
pub struct Progress {
    /// When the last piece was handed on (or, before the first, when connecting is
    /// due to have ended).
    last: Mutex<Instant>,
    /// The whole body has been handed on (at `last`).
    sent: AtomicBool,
    /// Told when `sent` is set (the deadline moves closer).
    done: tokio::sync::Notify,
}

impl Progress {
    /// A request about to be sent; connecting may take `connect`.
    pub fn new(connect: Duration) -> Arc<Self> {
        Arc::new(Progress {
            last: Mutex::new(Instant::now() + connect),
            sent: AtomicBool::new(false),
            done: tokio::sync::Notify::new(),
        })
    }

    fn touch(&self, sent: bool) {
        if self.sent.load(Ordering::Acquire) {
            return;
        }
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        if sent {
            self.sent.store(true, Ordering::Release);
            self.done.notify_one();
        }
    }

    /// When the wait for the pod runs out: `send` after the last piece of the body
    /// handed on while it is being sent; `read` after its end once it is.
    pub fn deadline(&self, send: Duration, read: Duration) -> Instant {
        let last = *self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if self.sent.load(Ordering::Acquire) {
            last + read
        } else {
            last + send
        }
    }

    /// `response` (the pod's answer), or `None` when the pod took no piece of the
    /// body for `send`, or gave no response head `read` after the body's end.
    pub async fn wait<F: Future>(
        &self,
        response: F,
        send: Duration,
        read: Duration,
    ) -> Option<F::Output> {
        let mut response = std::pin::pin!(response);
        loop {
            let deadline = self.deadline(send, read);
            tokio::select! {
                r = response.as_mut() => return Some(r),
                () = self.done.notified() => {}
                () = tokio::time::sleep_until(deadline) => {
                    if self.deadline(send, read) <= Instant::now() {
                        return None;
                    }
                }
            }
        }
    }
}

/// A body that fails with [`Stalled`] when its next piece takes longer than a
/// limit (counted from when it is first found waiting for that piece, which the
/// proxy asks for as soon as it has passed the last one on), telling a
/// [`Progress`] (if any) of each piece.
pub struct Idle<B> {
    inner: B,
    limit: Duration,
    what: &'static str,
    /// Set when the body is found waiting for its next piece (`armed`): most bodies
    /// of a proxied request come whole, and never start a timer.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether `sleep` runs from the wait under way (not from one before a piece).
    armed: bool,
    progress: Option<Arc<Progress>>,
}

impl<B: hyper::body::Body> Idle<B> {
    /// `inner`, each piece within `limit` of the one before (`what`: named in the
    /// error).
    pub fn new(inner: B, limit: Duration, what: &'static str) -> Self {
        Idle {
            inner,
            limit,
            what,
            sleep: None,
            armed: false,
            progress: None,
        }
    }

    /// Tells `progress` of each piece handed on, and of the end (an empty body's
    /// when the client asks, once connected, whether there is more).
    pub fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = Some(progress);
        self
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
                this.armed = false;
                if let Some(p) = &this.progress {
                    p.touch(frame.is_none() || this.inner.is_end_stream());
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.armed {
                    let due = Instant::now() + this.limit;
                    match this.sleep.as_mut() {
                        Some(sleep) => sleep.as_mut().reset(due),
                        None => this.sleep = Some(Box::pin(tokio::time::sleep_until(due))),
                    }
                    this.armed = true;
                }
                match this.sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
                    Some(Poll::Ready(())) => Poll::Ready(Some(Err(Box::new(Stalled(this.what))))),
                    _ => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end && let Some(p) = &self.progress {
            p.touch(true);
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The time of the last byte read on either side of a tunnel.
struct Touched {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
}

impl Touched {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// One side of a tunnel, noting each read.
struct Watched<T> {
    io: T,
    touched: Arc<Touched>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touched.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Copies `client` and `pod` both ways until both are done, or until neither has
/// sent anything for `idle`; then both are closed (dropped).
pub async fn tunnel<C, P>(client: C, pod: P, idle: Duration)
where
    C: AsyncRead + AsyncWrite + Unpin,
    P: AsyncRead + AsyncWrite + Unpin,
{
    let touched = Arc::new(Touched {
        start: Instant::now(),
        last: AtomicU64::new(0),
    });
    let mut c = Watched {
        io: client,
        touched: touched.clone(),
    };
    let mut p = Watched {
        io: pod,
        touched: touched.clone(),
    };
    let copy = tokio::io::copy_bidirectional(&mut c, &mut p);
    let mut copy = std::pin::pin!(copy);
    loop {
        let deadline = touched.last() + idle;
        tokio::select! {
            _ = copy.as_mut() => return,
            () = tokio::time::sleep_until(deadline) => {
                if touched.last() + idle <= Instant::now() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_without_requests_in_flight() {
        let a = Arc::new(Activity::default());
        assert!(!a.started());
        let guard = a.begin();
        assert!(a.started());
        assert_eq!(a.idle_since(), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(guard);
        assert_eq!(a.idle_since(), Some(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_read_timeout_starts_when_the_body_has_been_sent() {
        let send = Duration::from_secs(60);
        let read = Duration::from_secs(5);
        let progress = Progress::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(
            progress.deadline(send, read),
            start + Duration::from_secs(61)
        );
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut body = Idle::new(Chan(rx), send, "body").with_progress(progress.clone());
        // A slow upload: each piece within proxy-send-timeout, the whole far longer
        // than proxy-read-timeout, is no timeout.
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(30)).await;
            tx.send(Bytes::from_static(b"x")).await.unwrap();
            body.frame().await.unwrap().unwrap();
            assert_eq!(progress.deadline(send, read), Instant::now() + send);
        }
        drop(tx);
        assert!(body.frame().await.is_none());
        assert_eq!(progress.deadline(send, read), Instant::now() + read);
        // The pod's answer is waited for `read` after the end.
        let never = std::future::pending::<()>();
        let at = Instant::now();
        assert!(progress.wait(never, send, read).await.is_none());
        assert_eq!(at.elapsed(), read);
    }

    /// A body of the pieces sent on a channel.
    struct Chan(tokio::sync::mpsc::Receiver<Bytes>);

    impl hyper::body::Body for Chan {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let limit = Duration::from_secs(3);
        let mut body = Idle::new(Chan(rx), limit, "the pod's response");
        let e = body.frame().await.unwrap().unwrap_err();
        assert!(e.is::<Stalled>(), "{e}");
        // After a piece, the limit counts again from the wait for the next one.
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        body.frame().await.unwrap().unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        tx.send(Bytes::from_static(b"y")).await.unwrap();
        body.frame().await.unwrap().unwrap();
        let waiting = Instant::now();
        let e = body.frame().await.unwrap().unwrap_err();
        assert!(e.is::<Stalled>(), "{e}");
        assert_eq!(waiting.elapsed(), limit);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_is_closed_when_both_sides_are_quiet() {
        let (mut client, proxy_client) = tokio::io::duplex(64);
        let (proxy_pod, mut pod) = tokio::io::duplex(64);
        let idle = Duration::from_secs(60);
        let run = tokio::spawn(tunnel(proxy_client, proxy_pod, idle));
        // Traffic keeps it open past the limit.
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(40)).await;
            client.write_all(b"hi").await.unwrap();
            let mut two = [0u8; 2];
            pod.read_exact(&mut two).await.unwrap();
        }
        assert!(!run.is_finished());
        tokio::time::advance(idle + Duration::from_secs(1)).await;
        run.await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
