//! Connections to the other members, used by the raft thread alone: it writes its
//! messages into the peer's socket itself (no hand-off to a task on the way to a
//! follower and back, which on a small VM costs a thread wake-up each), while one
//! task per peer keeps the connection up: it connects, reconnects with backoff, and
//! writes what the socket did not take at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::io::WriteHalf;

use crate::proto::{Frame, frame};
use crate::transport::{self, Stream};
use crate::wire::Outgoing;

/// How long a connection may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages held for a peer while its connection is being made.
const HELD_WHILE_CONNECTING: usize = 4096;

/// The outgoing connections of one member, by peer id.
pub struct Peers {
    links: HashMap<u64, Link>,
    tls: Option<Arc<rustls::ClientConfig>>,
    runtime: tokio::runtime::Handle,
}

struct Link {
    addr: String,
    /// Shared with the link's task, which ends once this is dropped.
    state: Arc<Mutex<LinkState>>,
}

enum LinkState {
    /// Not connected (yet): messages wait here until the connection is made.
    Connecting(Vec<Frame>),
    /// Connected; a failed connection goes back to `Connecting`.
    Up(Arc<Outgoing<WriteHalf<Stream>>>),
}

fn lock(state: &Mutex<LinkState>) -> std::sync::MutexGuard<'_, LinkState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Peers {
    /// Connections made with `tls` (plain TCP without), their tasks on `runtime`.
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>, runtime: tokio::runtime::Handle) -> Self {
        Peers {
            links: HashMap::new(),
            tls,
            runtime,
        }
    }

    /// Sends encoded raft messages to member `to` at `addr`, in one write when the
    /// connection is up. Messages to a peer that cannot be reached are dropped, as
    /// raft expects of its transport (it sends again what matters).
    pub fn send(&mut self, to: u64, addr: &str, messages: Vec<Vec<u8>>) {
        let link = match self.links.get(&to) {
            Some(link) if link.addr == addr => link,
            // New, or moved: a fresh link (the old task ends with its state).
            _ => {
                let link = Link {
                    addr: addr.to_string(),
                    state: Arc::new(Mutex::new(LinkState::Connecting(Vec::new()))),
                };
                self.runtime.spawn(keep_connected(
                    addr.to_string(),
                    self.tls.clone(),
                    Arc::downgrade(&link.state),
                ));
                self.links.entry(to).insert_entry(link).into_mut()
            }
        };
        let frames = messages.into_iter().map(|bytes| Frame {
            body: Some(frame::Body::Raft(bytes)),
        });
        let mut state = lock(&link.state);
        match &mut *state {
            LinkState::Up(outgoing) => {
                let outgoing = outgoing.clone();
                drop(state);
                outgoing.send(frames);
            }
            LinkState::Connecting(held) => {
                let room = HELD_WHILE_CONNECTING.saturating_sub(held.len());
                held.extend(frames.take(room));
            }
        }
    }
}

/// Connects to `addr` and keeps the connection up while the link exists.
async fn keep_connected(
    addr: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    state: Weak<Mutex<LinkState>>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let connecting = transport::connect(&addr, tls.as_ref());
        let connected = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no TLS handshake in time".to_string()),
        };
        let Some(shared) = state.upgrade() else {
            return;
        };
        match connected {
            Ok(stream) => {
                backoff = Duration::from_millis(50);
                // Peers never answer on this connection: only its sending half is used.
                let (_, writer) = tokio::io::split(stream);
                let (outgoing, writing) = Outgoing::start(writer);
                {
                    // What was held goes first, before the raft thread sends more.
                    let mut link = lock(&shared);
                    if let LinkState::Connecting(held) = &mut *link {
                        outgoing.send(std::mem::take(held));
                    }
                    *link = LinkState::Up(outgoing.clone());
                }
                drop((shared, outgoing));
                // Its writer task ends when the connection fails, or when the link
                // (the only other holder) is gone.
                let _ = writing.await;
                let Some(shared) = state.upgrade() else {
                    return;
                };
                *lock(&shared) = LinkState::Connecting(Vec::new());
            }
            Err(e) => {
                tracing::debug!("cannot reach the peer at {addr}: {e}");
                // Drop what was held meanwhile: stale raft messages are useless.
                *lock(&shared) = LinkState::Connecting(Vec::new());
                drop(shared);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;
    use tokio::net::TcpListener;

    async fn next_message(conn: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
        match wire::read_frame(conn).await.unwrap() {
            Some(Frame {
                body: Some(frame::Body::Raft(bytes)),
            }) => bytes,
            other => panic!("expected a raft message, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn messages_reach_a_peer_that_comes_back() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut peers = Peers::new(None, tokio::runtime::Handle::current());
        // Held while the connection is made, then sent in order.
        peers.send(2, &addr, vec![b"one".to_vec(), b"two".to_vec()]);
        let (conn, _) = listener.accept().await.unwrap();
        let mut conn = wire::buffered(conn);
        assert_eq!(next_message(&mut conn).await, b"one");
        assert_eq!(next_message(&mut conn).await, b"two");
        peers.send(2, &addr, vec![b"three".to_vec()]);
        assert_eq!(next_message(&mut conn).await, b"three");
        // The peer restarts: its link connects again; what is sent meanwhile may be
        // lost (raft sends it again), what is sent after arrives.
        drop(conn);
        let mut resend = tokio::time::interval(Duration::from_millis(20));
        let conn = loop {
            tokio::select! {
                accepted = listener.accept() => break accepted.unwrap().0,
                _ = resend.tick() => peers.send(2, &addr, vec![b"again".to_vec()]),
            }
        };
        let mut conn = wire::buffered(conn);
        peers.send(2, &addr, vec![b"last".to_vec()]);
        while next_message(&mut conn).await != b"last" {}
        // A member at a new address gets a new link; the old one's task ends.
        let moved = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let old = Arc::downgrade(&peers.links[&2].state);
        peers.send(
            2,
            &moved.local_addr().unwrap().to_string(),
            vec![b"moved".to_vec()],
        );
        let mut conn = wire::buffered(moved.accept().await.unwrap().0);
        assert_eq!(next_message(&mut conn).await, b"moved");
        assert!(old.upgrade().is_none());
    }
}
