//! One store member: a raft-rs `RawNode` over the [`RaftLog`], the state machine it
//! feeds, watches, and the leader's lease clock.
//!
//! [`RaftNode`] does no networking and has no clock of its own: its owner calls
//! [`RaftNode::tick`] on a timer, hands it peers' messages with [`RaftNode::step`],
//! runs [`RaftNode::process_ready`] after every input and sends the messages it returns.
//! A real member runs it on a dedicated thread (so fsync never blocks an event loop);
//! the deterministic simulation runs many in one thread.
//!
//! The loop follows raft-rs' rules: tick / step / propose → `ready` → send the leader's
//! messages → apply a snapshot → persist entries and hard state (one batch, one fsync)
//! → send persisted messages → apply committed entries → `advance`.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType, Message, Snapshot, SnapshotMetadata,
};
use raft::{RawNode, StateRole, Storage};

use crate::error::{Error, Result};
use crate::lease::LeaseClock;
use crate::log::RaftLog;
use crate::metrics;
use crate::ops;
use crate::proto::{Command, RangeRequest, RangeResponse};
use crate::state::{Applied, StateMachine};
use crate::watch::{WatchHub, WatchRequest, WatchStream};

/// Called with the result of a replicated request once it is applied here (or has
/// failed).
pub type Reply = Box<dyn FnOnce(Result<Applied>) + Send>;
/// Called with the result of a read.
pub type ReadReply = Box<dyn FnOnce(Result<RangeResponse>) + Send>;
/// Called, on the raft thread, with the state machine once this member has applied
/// everything committed before the read began (or with why it could not).
pub type StateRead = Box<dyn FnOnce(Result<&StateMachine>) + Send>;

/// Log entries between snapshots by default: etcd's `--snapshot-count`. A snapshot
/// is the whole state, written on the raft thread, so it must stay rare under load.
pub const DEFAULT_SNAPSHOT_ENTRIES: u64 = 100_000;

/// Bytes of log entries between snapshots by default, at least (see
/// [`NodeConfig::snapshot_bytes`]).
pub const DEFAULT_SNAPSHOT_BYTES: u64 = 64 << 20;

/// Timing and sizes of a member.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This member's id (non-zero, unique in the cluster).
    pub id: u64,
    /// Ticks without a leader's heartbeat before an election (randomised up to 2×).
    pub election_tick: usize,
    /// Ticks between the leader's heartbeats.
    pub heartbeat_tick: usize,
    /// Entries after the last snapshot that trigger a new one.
    pub snapshot_entries: u64,
    /// Bytes of entries after the last snapshot that trigger a new one (whichever
    /// limit comes first), or the state's size if that is larger: the log's files
    /// stay bounded with large values, and writing snapshots costs at most about as
    /// many bytes as the log itself (a snapshot is the whole state).
    pub snapshot_bytes: u64,
    /// Ticks a request may wait for its answer.
    pub request_timeout_ticks: u64,
    /// Ticks before a ReadIndex without answer is asked again.
    pub read_retry_ticks: u64,
    /// Ticks between watch bookmarks.
    pub progress_ticks: u64,
}

impl NodeConfig {
    /// Defaults for a 100 ms tick: elections after 1–2 s, heartbeats every 200 ms,
    /// requests time out after 5 s.
    pub fn new(id: u64) -> Self {
        NodeConfig {
            id,
            election_tick: 10,
            heartbeat_tick: 2,
            snapshot_entries: DEFAULT_SNAPSHOT_ENTRIES,
            snapshot_bytes: DEFAULT_SNAPSHOT_BYTES,
            request_timeout_ticks: 50,
            read_retry_ticks: 3,
            progress_ticks: 50,
        }
    }
}

/// A change of who leads, as this member sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leadership {
    /// The leader's id (`None` while there is none).
    pub leader: Option<u64>,
    /// The term.
    pub term: u64,
    /// Whether this member is the leader.
    pub is_self: bool,
}

struct PendingRead {
    read: StateRead,
    deadline: u64,
    retry_at: u64,
    /// The commit index to wait for, once the leader has confirmed it.
    index: Option<u64>,
}

/// One member of the replicated store.
pub struct RaftNode {
    raw: RawNode<RaftLog>,
    sm: StateMachine,
    hub: WatchHub,
    clock: LeaseClock,
    cfg: NodeConfig,
    ticks: u64,
    seq: u64,
    proposals: HashMap<u64, (u64, Reply)>,
    reads: HashMap<u64, PendingRead>,
    revoking: HashSet<i64>,
    leadership: Leadership,
    leadership_changes: Vec<Leadership>,
    snapshots_taken: u64,
    /// Set when a member was added: it must be able to start from a snapshot that
    /// already lists it (raft-rs refuses a snapshot whose membership lacks it).
    snapshot_wanted: bool,
    /// The highest commit index the followers were sent (see [`RaftNode::announce_commit`]).
    announced_commit: u64,
}

/// Proposal and read ids carry the proposer's id in their top 16 bits, so a member
/// recognises its own proposals when they are applied.
fn request_id(node: u64, seq: u64) -> u64 {
    (node << 48) | (seq & ((1 << 48) - 1))
}

/// The members a batch of messages sends snapshots to.
fn snapshot_targets(msgs: &[Message]) -> Vec<u64> {
    msgs.iter()
        .filter(|m| m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot)
        .map(|m| m.to)
        .collect()
}

fn id_bytes(id: u64) -> Vec<u8> {
    id.to_le_bytes().to_vec()
}

fn id_from(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(e.to_string())
}

impl RaftNode {
    /// Starts a member on `log`, restoring the state machine from the log's snapshot;
    /// entries committed after it are re-applied by the first [`RaftNode::process_ready`].
    pub fn new(cfg: NodeConfig, log: RaftLog) -> Result<Self> {
        let snapshot = log.read_snapshot().map_err(unavailable)?;
        let sm = if snapshot.get_data().is_empty() {
            StateMachine::default()
        } else {
            StateMachine::restore(snapshot.get_data())?
        };
        let applied = snapshot.get_metadata().index;
        drop(snapshot);
        metrics::CURRENT_REVISION.set(sm.mvcc.revision());
        let raft_cfg = raft::Config {
            id: cfg.id,
            election_tick: cfg.election_tick,
            heartbeat_tick: cfg.heartbeat_tick,
            applied,
            check_quorum: true,
            pre_vote: true,
            // A new commit index reaches followers with the next append, or at once
            // when the leader goes idle (`announce_commit`): not in a message of its
            // own after every write, ahead of the client's answer.
            skip_bcast_commit: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Default::default()
        };
        raft_cfg.validate().map_err(unavailable)?;
        // Ids must not repeat across restarts: a proposal or ReadIndex answer of the
        // previous run, still in flight, must never match a request of this one. Each
        // run starts its sequence at a random point of the 48-bit space.
        let seq = {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one((cfg.id, Instant::now())) & ((1 << 47) - 1)
        };
        let raw = RawNode::new(&raft_cfg, log, &crate::logger::raft_logger(cfg.id))
            .map_err(unavailable)?;
        Ok(RaftNode {
            raw,
            sm,
            hub: WatchHub::default(),
            clock: LeaseClock::default(),
            cfg,
            ticks: 0,
            seq,
            proposals: HashMap::new(),
            reads: HashMap::new(),
            revoking: HashSet::new(),
            leadership: Leadership {
                leader: None,
                term: 0,
                is_self: false,
            },
            leadership_changes: Vec::new(),
            snapshots_taken: 0,
            snapshot_wanted: false,
            announced_commit: 0,
        })
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.cfg.id
    }

    /// Who leads, as this member sees it.
    pub fn leadership(&self) -> Leadership {
        self.leadership
    }

    /// Leadership changes since the last call (the scheduler and controllers start
    /// and stop on these).
    pub fn take_leadership_changes(&mut self) -> Vec<Leadership> {
        std::mem::take(&mut self.leadership_changes)
    }

    /// On the leader, when the commit index moved past what the followers were told:
    /// tells them now (their applied state, what their watchers see, follows it). For
    /// a leader with nothing else to do; a busy one tells them with its next appends.
    pub fn announce_commit(&mut self) {
        if self.commit_unannounced() {
            self.announced_commit = self.raw.raft.raft_log.committed;
            self.raw.raft.bcast_append();
        }
    }

    /// Whether this member leads and its followers may not know its commit index.
    pub fn commit_unannounced(&self) -> bool {
        self.is_leader() && self.raw.raft.raft_log.committed > self.announced_commit
    }

    /// Whether this member leads.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The index of the last applied entry.
    pub fn applied(&self) -> u64 {
        self.raw.raft.raft_log.applied
    }

    /// The replicated state, as applied here.
    pub fn state_machine(&self) -> &StateMachine {
        &self.sm
    }

    /// The index of the latest snapshot (0: none yet).
    pub fn snapshot_index(&self) -> u64 {
        self.raw.store().latest_snapshot().index
    }

    /// Snapshots this member has taken of its own state.
    pub fn snapshots_taken(&self) -> u64 {
        self.snapshots_taken
    }

    /// The voters and learners as of the last applied membership change.
    pub fn members(&self) -> (Vec<u64>, Vec<u64>) {
        let cs = self.raw.store().conf_state();
        (cs.voters.clone(), cs.learners.clone())
    }

    /// Opens a watch on this member's applied state.
    pub fn watch(&mut self, req: &WatchRequest) -> Result<WatchStream> {
        self.hub.watch(&self.sm.mvcc, req)
    }

    /// Cancels a watch.
    pub fn cancel_watch(&mut self, id: u64) {
        self.hub.cancel(id);
    }

    /// Advances logical time by one tick; `now` drives the leader's lease clock.
    pub fn tick(&mut self, now: Instant) {
        self.raw.tick();
        self.ticks += 1;
        let ticks = self.ticks;
        // Kept up to date by every write: reading it costs nothing.
        let f = self.sm.mvcc.footprint();
        let gauge = |g: &prometheus::IntGauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        gauge(&metrics::KEYS, f.keys);
        gauge(&metrics::REVISIONS, f.revisions);
        gauge(&metrics::BYTES, f.bytes);
        gauge(&metrics::HISTORY_BYTES, f.history_bytes);
        gauge(&metrics::HELD_BYTES, f.held_bytes);
        let expired: Vec<u64> = self
            .proposals
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= ticks)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((_, reply)) = self.proposals.remove(&id) {
                reply(Err(Error::Timeout("the write to be committed")));
            }
        }
        let mut retry = Vec::new();
        let mut dead = Vec::new();
        for (id, r) in &mut self.reads {
            if r.deadline <= ticks {
                dead.push(*id);
            } else if r.index.is_none() && r.retry_at <= ticks {
                // raft-rs drops a ReadIndex while the leader has not committed in its
                // term, or when leadership moves: ask again.
                r.retry_at = ticks + self.cfg.read_retry_ticks;
                retry.push(*id);
            }
        }
        for id in dead {
            if let Some(r) = self.reads.remove(&id) {
                (r.read)(Err(Error::Timeout("a linearizable read")));
            }
        }
        for id in retry {
            self.raw.read_index(id_bytes(id));
        }
        if self.is_leader() {
            for id in self.clock.expired(&self.sm.lessor, now) {
                if self.revoking.insert(id) {
                    let data = ops::lease_revoke(id).encode_to_vec();
                    if self.raw.propose(Vec::new(), data).is_err() {
                        self.revoking.remove(&id);
                    }
                }
            }
        }
        if ticks.is_multiple_of(self.cfg.progress_ticks) {
            self.hub.progress(self.sm.mvcc.revision());
        }
    }

    /// Hands a message from a peer to raft.
    pub fn step(&mut self, msg: Message) {
        if let Err(e) = self.raw.step(msg) {
            // Messages from removed or unknown members, or stale ones, are dropped.
            tracing::debug!(member = self.cfg.id, "dropped a raft message: {e}");
        }
    }

    /// Proposes a command; `reply` gets its result once it is applied on this member.
    pub fn propose(&mut self, cmd: &Command, reply: Reply) {
        let id = self.next_request_id();
        let proposed = self.raw.propose(id_bytes(id), cmd.encode_to_vec());
        self.track_proposal(id, proposed, reply);
    }

    fn next_request_id(&mut self) -> u64 {
        self.seq += 1;
        request_id(self.cfg.id, self.seq)
    }

    /// Waits for a proposal to be applied, or answers at once if raft refused it.
    fn track_proposal(&mut self, id: u64, proposed: raft::Result<()>, reply: Reply) {
        match proposed {
            Ok(()) => {
                let deadline = self.ticks + self.cfg.request_timeout_ticks;
                self.proposals.insert(id, (deadline, reply));
            }
            Err(raft::Error::ProposalDropped) => reply(Err(Error::NotLeader {
                leader: self.leadership.leader,
            })),
            Err(e) => reply(Err(unavailable(e))),
        }
    }

    /// Reads keys. A linearizable read confirms with a quorum (ReadIndex) that this
    /// member has applied everything committed before the read began; a serializable
    /// one answers from local state at once, possibly stale.
    pub fn read(&mut self, req: RangeRequest, linearizable: bool, reply: ReadReply) {
        if !linearizable {
            reply(self.sm.mvcc.range(&req));
            return;
        }
        self.read_state(Box::new(move |sm| {
            reply(sm.and_then(|sm| sm.mvcc.range(&req)))
        }));
    }

    /// Runs `read` on the state machine once a quorum has confirmed (ReadIndex) that
    /// this member has applied everything committed before now: a consistent view from
    /// any member, leader or follower.
    pub fn read_state(&mut self, read: StateRead) {
        let id = self.next_request_id();
        self.reads.insert(
            id,
            PendingRead {
                read,
                deadline: self.ticks + self.cfg.request_timeout_ticks,
                retry_at: self.ticks + self.cfg.read_retry_ticks,
                index: None,
            },
        );
        self.raw.read_index(id_bytes(id));
    }

    /// Extends a lease from now (leader only: it alone runs the lease clock).
    pub fn lease_keep_alive(&mut self, id: i64, now: Instant) -> Result<i64> {
        if !self.is_leader() {
            return Err(Error::NotLeader {
                leader: self.leadership.leader,
            });
        }
        self.clock
            .keep_alive(&self.sm.lessor, id, now)
            .ok_or(Error::LeaseNotFound(id))
    }

    /// Proposes a membership change: add `id` as a learner (it receives the log but
    /// does not vote), promote a learner to voter, or remove a member.
    pub fn change_membership(&mut self, id: u64, change: MembershipChange, reply: Reply) {
        let kind = match change {
            MembershipChange::AddLearner => ConfChangeType::AddLearnerNode,
            MembershipChange::Promote => ConfChangeType::AddNode,
            MembershipChange::Remove => ConfChangeType::RemoveNode,
        };
        let mut cc = ConfChange::default();
        cc.set_change_type(kind);
        cc.node_id = id;
        let rid = self.next_request_id();
        let proposed = self.raw.propose_conf_change(id_bytes(rid), cc);
        self.track_proposal(rid, proposed, reply);
    }

    /// How far a learner's log matches the leader's, and the leader's last index
    /// (leader only): promote it once it has caught up.
    pub fn learner_progress(&self, id: u64) -> Option<(u64, u64)> {
        let pr = self.raw.raft.prs().get(id)?;
        Some((pr.matched, self.raw.raft.raft_log.last_index()))
    }

    /// Tries to become leader now (tests, and a single new member).
    pub fn campaign(&mut self) {
        if let Err(e) = self.raw.campaign() {
            tracing::debug!("campaign failed: {e}");
        }
    }

    /// Handles everything raft has ready; returns the messages to send to peers.
    pub fn process_ready(&mut self, now: Instant) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        self.process_ready_sending(now, &mut |msgs| out.extend(msgs))?;
        Ok(out)
    }

    /// Like [`RaftNode::process_ready`], but hands messages to `send` as soon as they
    /// may go: the leader's appends before its own fsync, so that followers persist in
    /// parallel with it (raft-rs' rule for `Ready::messages`).
    pub fn process_ready_sending(
        &mut self,
        now: Instant,
        send: &mut dyn FnMut(Vec<Message>),
    ) -> Result<()> {
        let mut out = Vec::new();
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut ready = self.raw.ready();
        if let Some(ss) = ready.ss() {
            self.on_soft_state(ss.leader_id, ss.raft_state, now);
        }
        let early = ready.take_messages();
        let snapshots_to = snapshot_targets(&early);
        if !early.is_empty() {
            send(early);
        }
        if !ready.snapshot().is_empty() {
            self.apply_snapshot(ready.snapshot().clone())?;
        }
        for rs in ready.take_read_states() {
            self.on_read_state(rs.index, &rs.request_ctx);
        }
        self.apply_entries(ready.take_committed_entries(), now)?;
        let persisting = Instant::now();
        self.raw
            .mut_store()
            .persist(ready.entries(), ready.hs())
            .map_err(unavailable)?;
        if !ready.entries().is_empty() || ready.hs().is_some() {
            metrics::FSYNC.observe(persisting.elapsed().as_secs_f64());
        }
        out.extend(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw
                .mut_store()
                .set_commit(commit)
                .map_err(unavailable)?;
        }
        out.extend(light.take_messages());
        self.apply_entries(light.take_committed_entries(), now)?;
        self.raw.advance_apply();
        self.serve_reads();
        if std::mem::take(&mut self.snapshot_wanted) {
            self.snapshot_now()?;
        } else {
            self.maybe_snapshot()?;
        }
        let term = self.raw.raft.term;
        if term != self.leadership.term {
            self.leadership.term = term;
        }
        metrics::TERM.set(i64::try_from(term).unwrap_or(i64::MAX));
        let index = |i: u64| i64::try_from(i).unwrap_or(i64::MAX);
        metrics::COMMITTED.set(index(self.raw.raft.raft_log.committed));
        metrics::APPLIED.set(index(self.raw.raft.raft_log.applied));
        let mut snapshots_to = snapshots_to;
        snapshots_to.extend(snapshot_targets(&out));
        if !out.is_empty() {
            send(out);
        }
        // Snapshots go out best-effort, like every message: report them sent, so that a
        // lost one is sent again (raft-rs otherwise keeps that follower paused waiting
        // for it forever). A follower that missed it rejects the next append, and the
        // leader sends a fresh snapshot.
        for to in snapshots_to {
            self.raw.report_snapshot(to, raft::SnapshotStatus::Finish);
        }
        Ok(())
    }

    fn on_soft_state(&mut self, leader_id: u64, role: StateRole, now: Instant) {
        let leader = (leader_id != 0).then_some(leader_id);
        let is_self = role == StateRole::Leader;
        if is_self && !self.leadership.is_self {
            // A new leader gives every lease its full time to live again.
            self.clock.reset(&self.sm.lessor, now);
            self.revoking.clear();
        }
        metrics::IS_LEADER.set(i64::from(is_self));
        metrics::HAS_LEADER.set(i64::from(leader.is_some()));
        if leader != self.leadership.leader && leader.is_some() {
            metrics::LEADER_CHANGES.inc();
        }
        if leader != self.leadership.leader || is_self != self.leadership.is_self {
            self.leadership = Leadership {
                leader,
                term: self.raw.raft.term,
                is_self,
            };
            self.leadership_changes.push(self.leadership);
        }
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<()> {
        self.sm = StateMachine::restore(snapshot.get_data())?;
        metrics::SNAPSHOTS_INSTALLED.inc();
        metrics::CURRENT_REVISION.set(self.sm.mvcc.revision());
        // Watchers cannot be given a gap-free history across a snapshot.
        self.hub
            .close_all("this member was restored from a snapshot; watch again");
        self.raw
            .mut_store()
            .install_snapshot(snapshot)
            .map_err(unavailable)?;
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>, now: Instant) -> Result<()> {
        for entry in entries {
            let reply = id_from(&entry.context).and_then(|id| self.proposals.remove(&id));
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => {
                    // A new leader's empty entry.
                    if let Some((_, reply)) = reply {
                        reply(Err(Error::EmptyCommand));
                    }
                }
                EntryType::EntryNormal => {
                    let applying = Instant::now();
                    let (result, events) = self.sm.apply_bytes(&entry.data);
                    metrics::APPLY.observe(applying.elapsed().as_secs_f64());
                    if let Ok(Applied::LeaseRevoked { .. }) | Err(Error::LeaseNotFound(_)) = &result
                    {
                        self.revoking.retain(|id| self.sm.lessor.contains(*id));
                    }
                    if let Ok(Applied::LeaseGranted { id, .. }) = &result
                        && self.is_leader()
                    {
                        self.clock.keep_alive(&self.sm.lessor, *id, now);
                    }
                    // Set before any watcher hears of the write: nothing downstream is
                    // ever seen ahead of it.
                    metrics::CURRENT_REVISION.set(self.sm.mvcc.revision());
                    self.hub.notify(&events);
                    if let Some((_, reply)) = reply {
                        reply(result);
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let result = self.apply_conf_change(&entry);
                    if let Some((_, reply)) = reply {
                        reply(result);
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_conf_change(&mut self, entry: &Entry) -> Result<Applied> {
        let cs = if entry.get_entry_type() == EntryType::EntryConfChange {
            let cc = ConfChange::parse_from_bytes(&entry.data)
                .map_err(|e| Error::Decode(e.to_string()))?;
            self.raw.apply_conf_change(&cc)
        } else {
            let cc = ConfChangeV2::parse_from_bytes(&entry.data)
                .map_err(|e| Error::Decode(e.to_string()))?;
            self.raw.apply_conf_change(&cc)
        }
        .map_err(unavailable)?;
        self.raw
            .mut_store()
            .set_conf_state(cs.clone())
            .map_err(unavailable)?;
        self.snapshot_wanted = true;
        Ok(Applied::Membership {
            voters: cs.voters,
            learners: cs.learners,
        })
    }

    fn on_read_state(&mut self, index: u64, ctx: &[u8]) {
        if let Some(r) = id_from(ctx).and_then(|id| self.reads.get_mut(&id)) {
            r.index = Some(index);
        }
    }

    fn serve_reads(&mut self) {
        let applied = self.applied();
        let ready: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.index.is_some_and(|i| i <= applied))
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            if let Some(r) = self.reads.remove(&id) {
                (r.read)(Ok(&self.sm));
            }
        }
    }

    /// Takes a snapshot of the applied state once enough entries have piled up, so the
    /// log stays short and lagging members can catch up from it.
    fn maybe_snapshot(&mut self) -> Result<()> {
        let log = self.raw.store();
        let bytes = self.cfg.snapshot_bytes.max(self.sm.mvcc.footprint().bytes);
        if log.entries_since_snapshot() < self.cfg.snapshot_entries
            && log.bytes_since_snapshot() < bytes
        {
            return Ok(());
        }
        self.snapshot_now()
    }

    /// Takes a snapshot of the applied state now, written key by key straight to the
    /// log's snapshot file.
    pub fn snapshot_now(&mut self) -> Result<()> {
        let applied = self.applied();
        let term = self.raw.store().term(applied).map_err(unavailable)?;
        let mut meta = SnapshotMetadata {
            index: applied,
            term,
            ..Default::default()
        };
        meta.set_conf_state(self.raw.store().conf_state().clone());
        let sm = &self.sm;
        self.raw
            .mut_store()
            .install_snapshot_with(meta, |w| sm.write_snapshot(w))
            .map_err(unavailable)?;
        self.snapshots_taken += 1;
        metrics::SNAPSHOTS_TAKEN.inc();
        Ok(())
    }
}

/// A membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a non-voting member that receives the log.
    AddLearner,
    /// Make a learner a voter.
    Promote,
    /// Remove a member.
    Remove,
}
