//! A client of a store member over TCP or mutual TLS (the same frames members
//! exchange): used by joining members, `rk8s-server member|token`, tests and
//! benchmarks. Requests are pipelined on one connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::WriteHalf;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::proto::{
    ClientRequest, ClientResponse, Frame, JoinRequest, MemberId, RangeRequest, RangeResponse,
    ReadRequest, StatusResponse, TxnRequest, TxnResponse, client_request, client_response, frame,
};
use crate::{ops, wire};

/// Requests waiting for their answer; `None` once the connection has ended, so that
/// no request waits for an answer that cannot come.
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<ClientResponse>>>>>;

/// A connection to one member.
#[derive(Clone)]
pub struct StoreClient {
    out: Arc<wire::Outgoing<WriteHalf<crate::transport::Stream>>>,
    pending: Pending,
    next: Arc<AtomicU64>,
}

fn io_err(e: std::io::Error) -> Error {
    Error::Unavailable(e.to_string())
}

impl StoreClient {
    /// Connects to a member without TLS at `addr` (`host:port`).
    pub async fn connect(addr: &str) -> Result<Self> {
        Self::connect_with(addr, None).await
    }

    /// Connects to a member at `addr`; with `tls` (a member's client side, see
    /// [`crate::transport::PeerTls`]), over mutual TLS.
    pub async fn connect_with(addr: &str, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<Self> {
        let stream = crate::transport::connect(addr, tls).await.map_err(io_err)?;
        let (reader, writer) = tokio::io::split(stream);
        let mut reader = wire::buffered(reader);
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let (out, _) = wire::Outgoing::start(writer);
        let p = pending.clone();
        tokio::spawn(async move {
            while let Ok(Some(f)) = wire::read_frame(&mut reader).await {
                if let Some(frame::Body::Response(r)) = f.body {
                    let waiter = p
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .as_mut()
                        .and_then(|waiting| waiting.remove(&r.id));
                    if let Some(w) = waiter {
                        let _ = w.send(r);
                    }
                }
            }
            // The connection ended: fail everything still waiting, and what comes.
            p.lock().unwrap_or_else(PoisonError::into_inner).take();
        });
        Ok(StoreClient {
            out,
            pending,
            next: Arc::new(AtomicU64::new(1)),
        })
    }

    async fn call(
        &self,
        request: client_request::Request,
    ) -> Result<Option<client_response::Response>> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let alone = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let waiting = pending
                .as_mut()
                .ok_or_else(|| Error::Unavailable("connection closed".into()))?;
            waiting.insert(id, tx);
            waiting.len() == 1
        };
        let frame = Frame {
            body: Some(frame::Body::Request(ClientRequest {
                id,
                request: Some(request),
            })),
        };
        // A request alone goes out at once; requests that come many at a time are
        // gathered into few writes by the writer task.
        match alone {
            true => self.out.send([frame]),
            false => self.out.queue(frame),
        }
        let resp = rx
            .await
            .map_err(|_| Error::Unavailable("connection closed before the answer".into()))?;
        if resp.error.is_empty() {
            Ok(resp.response)
        } else if resp.error.starts_with("not the leader") {
            Err(Error::NotLeader {
                leader: (resp.leader != 0).then_some(resp.leader),
            })
        } else {
            Err(Error::Unavailable(resp.error))
        }
    }

    /// Runs a transaction.
    pub async fn txn(&self, t: TxnRequest) -> Result<TxnResponse> {
        match self.call(client_request::Request::Txn(t)).await? {
            Some(client_response::Response::Txn(r)) => Ok(r),
            other => Err(Error::Decode(format!("unexpected answer {other:?}"))),
        }
    }

    /// Writes a key (see [`ops::put`]); returns the revision.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<i64> {
        let Some(crate::proto::command::Request::Txn(t)) = ops::put(key, value, 0, None).request
        else {
            return Err(Error::EmptyCommand);
        };
        self.txn(t).await.map(|r| r.revision)
    }

    /// Reads keys.
    pub async fn range(&self, range: RangeRequest, linearizable: bool) -> Result<RangeResponse> {
        let req = client_request::Request::Read(ReadRequest {
            range: Some(range),
            linearizable,
        });
        match self.call(req).await? {
            Some(client_response::Response::Range(r)) => Ok(r),
            other => Err(Error::Decode(format!("unexpected answer {other:?}"))),
        }
    }

    /// Asks the cluster to add a member; returns every member's address.
    pub async fn join(&self, id: u64, address: &str) -> Result<Vec<JoinRequest>> {
        let req = client_request::Request::Join(JoinRequest {
            id,
            address: address.to_string(),
        });
        match self.call(req).await? {
            Some(client_response::Response::Status(s)) => Ok(s.addresses),
            other => Err(Error::Decode(format!("unexpected answer {other:?}"))),
        }
    }

    /// Removes a member.
    pub async fn remove_member(&self, id: u64) -> Result<()> {
        self.call(client_request::Request::RemoveMember(MemberId { id }))
            .await
            .map(|_| ())
    }

    /// Promotes a learner to voter.
    pub async fn promote_member(&self, id: u64) -> Result<()> {
        self.call(client_request::Request::PromoteMember(MemberId { id }))
            .await
            .map(|_| ())
    }

    /// The member's view of the cluster.
    pub async fn status(&self) -> Result<StatusResponse> {
        match self
            .call(client_request::Request::Status(MemberId { id: 0 }))
            .await?
        {
            Some(client_response::Response::Status(s)) => Ok(s),
            other => Err(Error::Decode(format!("unexpected answer {other:?}"))),
        }
    }
}
