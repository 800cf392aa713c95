//! A running store member: the [`RaftNode`] on its own thread (the only thread that
//! touches the log, so fsync never blocks an async runtime), peers connected over TCP,
//! and a [`Store`] handle that the rest of the process uses.
//!
//! Members find each other through the store itself: the key `/rk8s/members/<id>`
//! holds each member's address, written by the leader when a member joins (and by the
//! first member for itself), so a restarted member knows its peers from its own log.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::client::StoreClient;
use crate::error::{Error, Result};
use crate::log::RaftLog;
use crate::node::{Leadership, MembershipChange, NodeConfig, RaftNode};
use crate::ops;
use crate::peers::{HANDSHAKE_TIMEOUT, Peers};
use crate::proto::{
    ClientRequest, ClientResponse, Frame, JoinRequest, RangeRequest, RangeResponse, SnapshotLease,
    StatusResponse, TxnRequest, TxnResponse, client_request, client_response, frame,
};
use crate::state::{Applied, StateMachine};
use crate::transform::{self, ValueTransformer};
use crate::transport::{self, PeerTls};
use crate::watch::{WatchRequest, WatchStream};
use crate::wire;

pub use crate::start::{MEMBERS_PREFIX, StartError};

/// How to run a member.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// Where the log, snapshot and member id live.
    pub data_dir: PathBuf,
    /// Address to listen on for peers and clients.
    pub listen: SocketAddr,
    /// Address peers use to reach this member (defaults to `listen`).
    pub advertise: Option<String>,
    /// A member of an existing cluster to join through (only used when the data
    /// directory is new).
    pub join: Option<String>,
    /// Raft tick interval.
    pub tick: Duration,
    /// Fsync every persisted batch (turn off only in tests).
    pub sync: bool,
    /// Log entries between snapshots.
    pub snapshot_entries: u64,
    /// Mutual TLS with peers and clients (`None`: plain TCP, for tests and
    /// benchmarks inside one process).
    pub tls: Option<PeerTls>,
    /// What values are turned into before they are stored, and back when read
    /// (encryption at rest, see [`crate::transform`]); `None`: stored as written.
    /// Every member of a cluster needs the same one: each reads what the others wrote.
    pub transformer: Option<Arc<dyn ValueTransformer>>,
}

impl MemberConfig {
    /// A member with defaults: 100 ms ticks, fsync on.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        MemberConfig {
            data_dir: data_dir.into(),
            listen,
            advertise: None,
            join: None,
            tick: Duration::from_millis(100),
            sync: true,
            snapshot_entries: crate::node::DEFAULT_SNAPSHOT_ENTRIES,
            tls: None,
            transformer: None,
        }
    }
}

enum Request {
    Propose(crate::proto::Command, crate::node::Reply),
    Read(RangeRequest, bool, crate::node::ReadReply),
    ReadState(crate::node::StateRead),
    Watch(WatchRequest, oneshot::Sender<Result<WatchStream>>),
    KeepAlive(i64, oneshot::Sender<Result<i64>>),
    Membership(u64, MembershipChange, crate::node::Reply),
    Status(oneshot::Sender<StatusResponse>),
    Raft(Box<Message>),
    Shutdown,
}

/// The handle to a running member. Cheap to clone.
///
/// With a [`ValueTransformer`] (see [`MemberConfig::transformer`]), the handle is
/// where values are transformed: callers write and read plain values, the log and
/// the state machine hold the stored form (see [`crate::transform`]).
#[derive(Clone)]
pub struct Store {
    tx: std_mpsc::Sender<Request>,
    leadership: watch::Receiver<Leadership>,
    id: u64,
    transformer: Option<Arc<dyn ValueTransformer>>,
}

fn stopped() -> Error {
    Error::Unavailable("the store has stopped".into())
}

impl Store {
    /// This member's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Follows leadership changes (the control plane runs only on the leader).
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// Proposes `cmd`; the raft thread hands the result to `then` once the command
    /// is applied (or refused), with no task in between.
    fn propose_then(
        &self,
        cmd: crate::proto::Command,
        then: impl FnOnce(Result<Applied>) + Send + 'static,
    ) {
        let reply: crate::node::Reply = Box::new(move |result| {
            // Errors of the command itself (a conflict, an unknown lease) were
            // committed and applied; these never were.
            if let Err(
                Error::EmptyCommand
                | Error::NotLeader { .. }
                | Error::Timeout(_)
                | Error::Unavailable(_),
            ) = &result
            {
                crate::metrics::PROPOSALS_FAILED.inc();
            }
            then(result);
        });
        if let Err(std_mpsc::SendError(Request::Propose(_, reply))) =
            self.tx.send(Request::Propose(cmd, reply))
        {
            reply(Err(stopped()));
        }
    }

    /// Proposes `cmd` with its values in their stored form; the result's values
    /// are turned back (here, not on the raft thread).
    async fn propose(&self, mut cmd: crate::proto::Command) -> Result<Applied> {
        if let Some(t) = &self.transformer {
            transform::command_to_storage(t.as_ref(), &mut cmd)?;
        }
        let (tx, rx) = oneshot::channel();
        self.propose_then(cmd, move |r| {
            let _ = tx.send(r);
        });
        let applied = rx.await.unwrap_or_else(|_| {
            crate::metrics::PROPOSALS_FAILED.inc();
            Err(stopped())
        });
        self.readable(applied)
    }

    /// `applied` with the values in it turned back into what was written.
    fn readable(&self, applied: Result<Applied>) -> Result<Applied> {
        match (applied, &self.transformer) {
            (Ok(Applied::Txn(mut r)), Some(t)) => {
                transform::txn_from_storage(t.as_ref(), &mut r)?;
                Ok(Applied::Txn(r))
            }
            (other, _) => other,
        }
    }

    /// Runs a transaction and hands its result to `then` on the raft thread (the
    /// store port's writes: no task in between). Values are transformed as
    /// [`Store::txn`] does.
    fn txn_then(&self, mut t: TxnRequest, then: impl FnOnce(Result<TxnResponse>) + Send + 'static) {
        let transformer = self.transformer.clone();
        if let Some(tr) = &transformer
            && let Err(e) = transform::txn_to_storage(tr.as_ref(), &mut t)
        {
            return then(Err(e));
        }
        self.propose_then(ops::txn(t), move |result| {
            let mut result = txn_result(result);
            if let (Ok(r), Some(tr)) = (&mut result, &transformer)
                && let Err(e) = transform::txn_from_storage(tr.as_ref(), r)
            {
                result = Err(e);
            }
            then(result);
        });
    }

    /// Runs a transaction; returns once a quorum has committed it and this member has
    /// applied it.
    pub async fn txn(&self, t: TxnRequest) -> Result<TxnResponse> {
        txn_result(self.propose(ops::txn(t)).await)
    }

    /// Writes a key, optionally only at an expected `mod_revision` (see [`ops::put`]);
    /// a mismatch is a [`Error::Conflict`].
    pub async fn put(
        &self,
        key: &[u8],
        value: &[u8],
        lease: i64,
        expected: Option<i64>,
    ) -> Result<TxnResponse> {
        let result = self.propose(ops::put(key, value, lease, expected)).await;
        ops::expect_cas(key, expected.unwrap_or(0), result)
    }

    /// Deletes a key, optionally only at an expected `mod_revision`.
    pub async fn delete(&self, key: &[u8], expected: Option<i64>) -> Result<TxnResponse> {
        let result = self.propose(ops::delete(key, expected)).await;
        ops::expect_cas(key, expected.unwrap_or(0), result)
    }

    /// Reads keys, linearizable (confirmed with a quorum) or serializable (local).
    pub async fn range(&self, req: RangeRequest, linearizable: bool) -> Result<RangeResponse> {
        let mut r = self.range_stored(req, linearizable).await?;
        if let Some(t) = &self.transformer {
            transform::range_from_storage(t.as_ref(), &mut r)?;
        }
        Ok(r)
    }

    /// Whether the value `key` holds at `mod_revision` was stored in another form
    /// than a write makes now — with another key or provider than the first of the
    /// encryption configuration (kube-apiserver's "stale" transformation). An update
    /// that changes nothing must still write such a value, so that rewriting every
    /// object moves them all to the current key. False without a transformer, and for
    /// a key that has no value at that revision.
    pub async fn is_stale(&self, key: &[u8], mod_revision: i64) -> Result<bool> {
        let Some(t) = self.transformer.clone().filter(|t| t.transforms(key)) else {
            return Ok(false);
        };
        // The current value, not the one at `mod_revision` (compaction may have
        // dropped that revision's history): if it moved on, the caller's
        // compare-and-swap write conflicts and is retried anyway.
        let req = RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        };
        let r = self.range_stored(req, false).await?;
        match r.kvs.into_iter().next() {
            Some(mut kv) if kv.mod_revision == mod_revision => {
                transform::kv_from_storage(t.as_ref(), &mut kv)
            }
            _ => Ok(false),
        }
    }

    /// Reads keys as they are stored.
    async fn range_stored(&self, req: RangeRequest, linearizable: bool) -> Result<RangeResponse> {
        let (tx, rx) = oneshot::channel();
        let reply: crate::node::ReadReply = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.tx
            .send(Request::Read(req, linearizable, reply))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// A copy of the whole state, consistent (linearizable: confirmed with a quorum,
    /// from any member) and complete (every key's retained history, the leases),
    /// copied on the raft thread: keys, revisions and the values as held in memory
    /// (compressed; the dictionaries shared). Values are in their stored form (backups
    /// of an encrypted store stay encrypted).
    pub async fn state_snapshot(&self) -> Result<StateMachine> {
        let (tx, rx) = oneshot::channel();
        let read: crate::node::StateRead = Box::new(move |sm| {
            let _ = tx.send(sm.cloned());
        });
        self.tx
            .send(Request::ReadState(read))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Watches a key range from a revision.
    pub async fn watch(&self, req: WatchRequest) -> Result<WatchStream> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::Watch(req, tx))
            .map_err(|_| stopped())?;
        let stream = rx.await.map_err(|_| stopped())??;
        Ok(match &self.transformer {
            Some(t) => stream.with_transformer(t.clone()),
            None => stream,
        })
    }

    /// Compacts history before `revision`.
    pub async fn compact(&self, revision: i64) -> Result<()> {
        self.propose(ops::compact(revision)).await.map(|_| ())
    }

    /// Grants a lease; returns its id.
    pub async fn lease_grant(&self, ttl: i64) -> Result<i64> {
        match self.propose(ops::lease_grant(ttl)).await? {
            Applied::LeaseGranted { id, .. } => Ok(id),
            other => Err(Error::Decode(format!("unexpected result {other:?}"))),
        }
    }

    /// Revokes a lease, deleting its keys; returns the revision after.
    pub async fn lease_revoke(&self, id: i64) -> Result<i64> {
        match self.propose(ops::lease_revoke(id)).await? {
            Applied::LeaseRevoked { revision } => Ok(revision),
            other => Err(Error::Decode(format!("unexpected result {other:?}"))),
        }
    }

    /// Extends a lease (on the leader); returns its ttl.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Request::KeepAlive(id, tx))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Changes membership (see [`MembershipChange`]).
    pub async fn change_membership(
        &self,
        id: u64,
        change: MembershipChange,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let (tx, rx) = oneshot::channel();
        let reply: crate::node::Reply = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.tx
            .send(Request::Membership(id, change, reply))
            .map_err(|_| stopped())?;
        match rx.await.map_err(|_| stopped())?? {
            Applied::Membership { voters, learners } => Ok((voters, learners)),
            other => Err(Error::Decode(format!("unexpected result {other:?}"))),
        }
    }

    /// Adds a member: records its address, then adds it as a learner (the leader
    /// promotes it to voter once it has caught up).
    pub async fn add_member(&self, id: u64, address: &str) -> Result<(Vec<u64>, Vec<u64>)> {
        self.put(
            format!("{MEMBERS_PREFIX}{id}").as_bytes(),
            address.as_bytes(),
            0,
            None,
        )
        .await?;
        self.change_membership(id, MembershipChange::AddLearner)
            .await
    }

    /// Promotes learner `id` to voter now (the leader also does once it has caught up).
    /// Only a learner: an unknown id made a voter would count against the quorum.
    pub async fn promote_member(&self, id: u64) -> Result<(Vec<u64>, Vec<u64>)> {
        let status = self.status().await?;
        if status.voters.contains(&id) {
            return Err(Error::Unavailable(format!(
                "member {id} is a voter already"
            )));
        }
        if !status.learners.contains(&id) {
            return Err(Error::Unavailable(format!(
                "member {id} is not a learner of this cluster (see `member list`)"
            )));
        }
        self.change_membership(id, MembershipChange::Promote).await
    }

    /// Removes a member.
    pub async fn remove_member(&self, id: u64) -> Result<(Vec<u64>, Vec<u64>)> {
        let members = self.change_membership(id, MembershipChange::Remove).await?;
        self.delete(format!("{MEMBERS_PREFIX}{id}").as_bytes(), None)
            .await?;
        Ok(members)
    }

    /// Every member's recorded address.
    pub async fn member_addresses(&self) -> Result<Vec<JoinRequest>> {
        self.status().await.map(|s| s.addresses)
    }

    /// This member's view of the cluster.
    pub async fn status(&self) -> Result<StatusResponse> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Request::Status(tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// Stops the member (its raft thread finishes the current batch first).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Request::Shutdown);
    }
}

/// What a transaction's proposal yields.
fn txn_result(applied: Result<Applied>) -> Result<TxnResponse> {
    match applied? {
        Applied::Txn(r) => Ok(r),
        other => Err(Error::Decode(format!("unexpected result {other:?}"))),
    }
}

/// Starts a member: opens (or creates) its data, joins a cluster if asked, starts the
/// raft thread and the listener. Must be called inside a tokio runtime.
pub async fn start(cfg: MemberConfig) -> std::result::Result<Store, StartError> {
    let (id, new) = crate::data_dir::read_or_create_id(&cfg.data_dir)?;
    let advertise = cfg
        .advertise
        .clone()
        .unwrap_or_else(|| cfg.listen.to_string());
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let client_tls = cfg.tls.as_ref().map(|t| t.client.clone());
    let mut seed_addresses = HashMap::new();
    let voters = match (&cfg.join, new) {
        (Some(peer), true) => {
            seed_addresses = join_through(peer, id, &advertise, client_tls.as_ref()).await?;
            Vec::new()
        }
        (_, true) => vec![id],
        // An existing member keeps its membership from its log.
        (_, false) => Vec::new(),
    };
    let log = RaftLog::open(&cfg.data_dir.join("raft"), &voters, cfg.sync)?;
    let mut node_cfg = NodeConfig::new(id);
    node_cfg.snapshot_entries = cfg.snapshot_entries.max(1);
    let node = RaftNode::new(node_cfg, log)?;
    let (tx, rx) = std_mpsc::channel();
    let (lead_tx, lead_rx) = watch::channel(node.leadership());
    let peers = Peers::new(client_tls, tokio::runtime::Handle::current());
    let tick = cfg.tick;
    let self_addr = advertise.clone();
    std::thread::Builder::new()
        .name(format!("raft-{id}"))
        .spawn(move || drive(node, rx, peers, lead_tx, tick, self_addr, seed_addresses))
        .map_err(|source| StartError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        })?;
    let store = Store {
        tx,
        leadership: lead_rx,
        id,
        transformer: cfg.transformer.clone(),
    };
    let acceptor = cfg
        .tls
        .as_ref()
        .map(|t| tokio_rustls::TlsAcceptor::from(t.server.clone()));
    tokio::spawn(serve(listener, acceptor, store.clone()));
    tracing::info!(
        member = id,
        listen = %cfg.listen,
        %advertise,
        tls = cfg.tls.is_some(),
        "store member started"
    );
    Ok(store)
}

/// Asks `peer` to add this member; returns the members' addresses, which this member
/// needs before its log tells it (it answers the leader before it has applied anything).
async fn join_through(
    peer: &str,
    id: u64,
    advertise: &str,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> std::result::Result<HashMap<u64, String>, StartError> {
    let err = |reason: String| StartError::Join {
        peer: peer.to_string(),
        reason,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let client = StoreClient::connect_with(peer, tls).await?;
            client.join(id, advertise).await
        };
        match attempt.await {
            Ok(addresses) => return Ok(addresses.into_iter().map(|a| (a.id, a.address)).collect()),
            Err(e) if Instant::now() < deadline => {
                tracing::info!("joining through {peer} failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(err(e.to_string())),
        }
    }
}

/// How long a leader waits for more work before it sends a new commit index to the
/// followers in a message of its own: a busy leader sends it with its next appends.
const ANNOUNCE_WHEN_IDLE: Duration = Duration::from_millis(1);

/// The raft thread: ticks, requests, ready handling. Ends on shutdown or on a log
/// failure (fail-stop: a member that cannot persist must not go on).
fn drive(
    mut node: RaftNode,
    rx: std_mpsc::Receiver<Request>,
    mut peers: Peers,
    leadership: watch::Sender<Leadership>,
    tick: Duration,
    self_addr: String,
    seed_addresses: HashMap<u64, String>,
) {
    let id = node.id();
    let mut next_tick = Instant::now() + tick;
    let mut promoting: HashMap<u64, Instant> = HashMap::new();
    let mut registering = false;
    let mut addresses = seed_addresses.clone();
    let mut last_request = Instant::now();
    loop {
        // A leader whose followers have not heard of its latest commit index tells
        // them once it has had nothing to do for a moment (see announce_commit).
        let announce_at = node
            .commit_unannounced()
            .then(|| last_request + ANNOUNCE_WHEN_IDLE);
        let deadline = announce_at.map_or(next_tick, |at| at.min(next_tick));
        let first = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(r) => {
                last_request = Instant::now();
                Some(r)
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => None,
            Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if first.is_none() && announce_at.is_some_and(|at| Instant::now() >= at) {
            node.announce_commit();
        }
        let mut shutdown = false;
        // Answers to clients go out once the batch is done (see wire::Batch).
        let answers = wire::Batch::open();
        // Take everything queued: one ready (one fsync) covers the whole batch.
        for req in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            let now = Instant::now();
            match req {
                Request::Propose(cmd, reply) => node.propose(&cmd, reply),
                Request::Read(r, lin, reply) => node.read(r, lin, reply),
                Request::ReadState(read) => node.read_state(read),
                Request::Watch(w, reply) => {
                    let _ = reply.send(node.watch(&w));
                }
                Request::KeepAlive(lease, reply) => {
                    let _ = reply.send(node.lease_keep_alive(lease, now));
                }
                Request::Membership(m, change, reply) => node.change_membership(m, change, reply),
                Request::Status(reply) => {
                    let l = node.leadership();
                    let (voters, learners) = node.members();
                    let _ = reply.send(StatusResponse {
                        id,
                        leader: l.leader.unwrap_or(0),
                        term: l.term,
                        applied: node.applied(),
                        snapshot_index: node.snapshot_index(),
                        revision: node.state_machine().mvcc.revision(),
                        history_bytes: node.state_machine().mvcc.footprint().history_bytes,
                        voters,
                        learners,
                        addresses: member_addresses(&node),
                    });
                }
                Request::Raft(m) => node.step(*m),
                Request::Shutdown => shutdown = true,
            }
        }
        if shutdown {
            break;
        }
        let now = Instant::now();
        let mut refresh_addresses = false;
        if now >= next_tick {
            refresh_addresses = true;
            node.tick(now);
            next_tick += tick;
            if next_tick < now {
                next_tick = now + tick;
            }
            if node.is_leader() {
                leader_duties(&mut node, &mut promoting, &mut registering, &self_addr);
            }
        }
        let result = node.process_ready_sending(now, &mut |msgs| {
            let mut by_peer: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
            for m in msgs {
                match m.write_to_bytes() {
                    Ok(bytes) => by_peer.entry(m.to).or_default().push(bytes),
                    Err(e) => tracing::warn!("cannot encode a raft message: {e}"),
                }
            }
            for (to, messages) in by_peer {
                let Some(addr) = addresses.get(&to) else {
                    tracing::debug!(member = id, "no address for member {to} yet");
                    refresh_addresses = true;
                    continue;
                };
                peers.send(to, addr, messages);
            }
        });
        if let Err(e) = result {
            tracing::error!(member = id, "stopping: {e}");
            break;
        }
        // Peer addresses come from the store itself (what it records wins over what
        // the join answer said). They change rarely: re-read them once a tick, or at
        // once when a message had nowhere to go — not on every write.
        if refresh_addresses {
            addresses = seed_addresses.clone();
            addresses.extend(
                member_addresses(&node)
                    .into_iter()
                    .map(|a| (a.id, a.address)),
            );
        }
        for change in node.take_leadership_changes() {
            tracing::info!(member = id, leader = ?change.leader, term = change.term, "leadership changed");
            let _ = leadership.send(change);
        }
        drop(answers);
    }
    tracing::info!(member = id, "raft thread stopped");
}

/// The member addresses recorded in the store (`/rk8s/members/<id>`).
fn member_addresses(node: &RaftNode) -> Vec<JoinRequest> {
    let prefix = MEMBERS_PREFIX.as_bytes();
    let req = RangeRequest {
        key: prefix.to_vec(),
        range_end: crate::prefix_end(prefix),
        ..Default::default()
    };
    let kvs = node
        .state_machine()
        .mvcc
        .range(&req)
        .map(|r| r.kvs)
        .unwrap_or_default();
    kvs.into_iter()
        .filter_map(|kv| {
            let id = String::from_utf8_lossy(&kv.key[prefix.len()..])
                .parse()
                .ok()?;
            Some(JoinRequest {
                id,
                address: String::from_utf8_lossy(&kv.value).into_owned(),
            })
        })
        .collect()
}

/// What only the leader does: record its own address, promote learners that caught up.
fn leader_duties(
    node: &mut RaftNode,
    promoting: &mut HashMap<u64, Instant>,
    registering: &mut bool,
    self_addr: &str,
) {
    let key = format!("{MEMBERS_PREFIX}{}", node.id());
    let registered = node
        .state_machine()
        .mvcc
        .get(key.as_bytes())
        .ok()
        .flatten()
        .is_some_and(|kv| kv.value == self_addr.as_bytes());
    if !registered && !*registering {
        *registering = true;
        node.propose(
            &ops::put(key.as_bytes(), self_addr.as_bytes(), 0, None),
            Box::new(|_| {}),
        );
    } else if registered {
        *registering = false;
    }
    // One membership change at a time (raft-rs drops a second one while the first is
    // pending); a promotion not applied within a few seconds is proposed again.
    let (_, learners) = node.members();
    let now = Instant::now();
    promoting.retain(|l, since| {
        learners.contains(l) && now.duration_since(*since) < Duration::from_secs(3)
    });
    if !promoting.is_empty() {
        return;
    }
    for l in learners {
        if let Some((matched, last)) = node.learner_progress(l)
            && matched > 0
            && matched + 10 >= last
        {
            promoting.insert(l, now);
            tracing::info!("promoting member {l}: it has caught up ({matched}/{last})");
            node.change_membership(l, MembershipChange::Promote, Box::new(|_| {}));
            return;
        }
    }
}

/// Accepts connections from peers (raft messages) and clients (requests).
async fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, store: Store) {
    loop {
        let Ok((tcp, from)) = listener.accept().await else {
            continue;
        };
        let (tls, store) = (tls.clone(), store.clone());
        tokio::spawn(async move {
            let accepted =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, transport::accept(tcp, tls.as_ref()));
            match accepted.await {
                Ok(Ok(stream)) => connection(stream, store).await,
                // A peer or client without a certificate of the member CA ends here.
                Ok(Err(e)) => tracing::warn!("refused a connection from {from}: {e}"),
                Err(_) => {
                    tracing::warn!("refused a connection from {from}: no TLS handshake in time")
                }
            }
        });
    }
}

async fn connection(stream: transport::Stream, store: Store) {
    let (reader, writer) = tokio::io::split(stream);
    let mut reader = wire::buffered(reader);
    let (outgoing, _) = wire::Outgoing::start(writer);
    let respond = |outgoing: &std::sync::Arc<wire::Outgoing<_>>, r: ClientResponse| {
        outgoing.answer(Frame {
            body: Some(frame::Body::Response(r)),
        });
    };
    loop {
        let frame = match wire::read_frame(&mut reader).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("dropping a connection: {e}");
                return;
            }
        };
        match frame.body {
            Some(frame::Body::Raft(bytes)) => match Message::parse_from_bytes(&bytes) {
                Ok(m) => {
                    if store.tx.send(Request::Raft(Box::new(m))).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!("undecodable raft message: {e}"),
            },
            // Writes, the bulk of the traffic: answered from the raft thread.
            Some(frame::Body::Request(ClientRequest {
                id,
                request: Some(client_request::Request::Txn(t)),
            })) => {
                let outgoing = outgoing.clone();
                store.txn_then(t, move |result| {
                    let result = result.map(|r| Some(client_response::Response::Txn(r)));
                    respond(&outgoing, response(id, result));
                });
            }
            Some(frame::Body::Request(req)) => {
                let (store, outgoing) = (store.clone(), outgoing.clone());
                tokio::spawn(async move {
                    respond(&outgoing, handle(&store, req).await);
                });
            }
            Some(frame::Body::Response(_)) | None => {}
        }
    }
}

async fn handle(store: &Store, req: ClientRequest) -> ClientResponse {
    use client_request::Request as Q;
    use client_response::Response as R;
    let result: Result<Option<R>> = match req.request {
        None => Err(Error::EmptyCommand),
        Some(Q::Txn(t)) => store.txn(t).await.map(|r| Some(R::Txn(r))),
        Some(Q::Read(r)) => store
            .range(r.range.unwrap_or_default(), r.linearizable)
            .await
            .map(|r| Some(R::Range(r))),
        Some(Q::Compact(c)) => store.compact(c.revision).await.map(|()| None),
        Some(Q::LeaseGrant(g)) => store
            .lease_grant(g.ttl)
            .await
            .map(|id| Some(R::Lease(SnapshotLease { id, ttl: g.ttl }))),
        Some(Q::LeaseRevoke(r)) => store
            .lease_revoke(r.id)
            .await
            .map(|revision| Some(R::Revision(crate::proto::CompactRequest { revision }))),
        Some(Q::LeaseKeepAlive(r)) => store
            .lease_keep_alive(r.id)
            .await
            .map(|ttl| Some(R::Lease(SnapshotLease { id: r.id, ttl }))),
        Some(Q::Join(j)) => match store.add_member(j.id, &j.address).await {
            Ok((voters, learners)) => store.member_addresses().await.map(|addresses| {
                Some(R::Status(StatusResponse {
                    voters,
                    learners,
                    addresses,
                    ..Default::default()
                }))
            }),
            Err(e) => Err(e),
        },
        Some(Q::RemoveMember(m)) => store.remove_member(m.id).await.map(|(voters, learners)| {
            Some(R::Status(StatusResponse {
                voters,
                learners,
                ..Default::default()
            }))
        }),
        Some(Q::PromoteMember(m)) => store.promote_member(m.id).await.map(|(voters, learners)| {
            Some(R::Status(StatusResponse {
                voters,
                learners,
                ..Default::default()
            }))
        }),
        Some(Q::Status(_)) => store.status().await.map(|s| Some(R::Status(s))),
    };
    response(req.id, result)
}

/// The answer to request `id`.
fn response(id: u64, result: Result<Option<client_response::Response>>) -> ClientResponse {
    match result {
        Ok(response) => ClientResponse {
            id,
            response,
            ..Default::default()
        },
        Err(e) => ClientResponse {
            id,
            leader: match &e {
                Error::NotLeader { leader } => leader.unwrap_or(0),
                _ => 0,
            },
            error: e.to_string(),
            response: None,
        },
    }
}
