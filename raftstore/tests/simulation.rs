//! Deterministic-network simulation of a store cluster: several members in one thread,
//! their Raft logs on disk (raft-engine), connected by a network that drops, delays,
//! reorders and partitions messages, while members crash and restart from disk and
//! leaders are isolated over and over. Clients write and read throughout; the history
//! must be linearizable, every watch must equal the committed history, and all members
//! must end with the same state.
//!
//! The network, faults and workload come from a seed. raft-rs draws its election
//! timeouts from the thread's RNG, so reruns of a seed differ in timing; the invariants
//! must hold regardless, and a failure prints the seed. `SIM_DUMP=/tmp/history` writes
//! each seed's operation history to `/tmp/history.<seed>` for a closer look.

// Test helpers may panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::Message;
use rk8s_raftstore::log::{LogFiles, RaftLog};
use rk8s_raftstore::node::{NodeConfig, RaftNode};
use rk8s_raftstore::proto::RangeRequest;
use rk8s_raftstore::watch::{WatchMessage, WatchRequest, WatchStream};
use rk8s_raftstore::{Applied, Error, Event, ops};
use support::linearizability::{self, Call, Operation, Outcome};

/// SplitMix64: a small, well-distributed, seedable generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct InFlight {
    deliver_at: u64,
    to: u64,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Client {
    busy: Option<usize>,
    /// The member the busy request went to.
    member: u64,
    /// The value and mod_revision this client last read for each key (for its
    /// compare-and-swaps).
    last_read: HashMap<u64, Option<(u64, i64)>>,
}

type Completions = Arc<Mutex<Vec<(usize, Result<Applied, Error>, Option<Option<(u64, i64)>>)>>>;

struct Sim {
    seed: u64,
    rng: Rng,
    root: PathBuf,
    nodes: BTreeMap<u64, Option<RaftNode>>,
    net: Vec<InFlight>,
    /// Members cut off from the rest (messages across the cut are lost).
    isolated: HashSet<u64>,
    drop_percent: u64,
    step: u64,
    clock: u64,
    base: Instant,
    history: Vec<Operation>,
    completions: Completions,
    clients: Vec<Client>,
    next_value: u64,
    /// Per member: its watch (reopened after crashes and snapshot restores), the events
    /// received, and the revision the watch first started from.
    watches: HashMap<u64, (Option<WatchStream>, Vec<Event>, i64)>,
    leaders_seen: HashSet<(u64, u64)>,
    /// When (event counter) each revision was first seen applied on some member: an
    /// upper bound on when its write took effect.
    first_seen: HashMap<i64, u64>,
    /// Snapshots taken by member instances that have since crashed.
    snapshots_before_crashes: u64,
}

const KEYS: u64 = 4;

fn key_bytes(k: u64) -> Vec<u8> {
    format!("/sim/key{k}").into_bytes()
}

fn value_of(bytes: &[u8]) -> u64 {
    String::from_utf8_lossy(bytes).parse().unwrap()
}

impl Sim {
    fn new(seed: u64, members: u64) -> Self {
        let root =
            std::env::temp_dir().join(format!("rk8s-raftstore-sim-{}-{seed}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let voters: Vec<u64> = (1..=members).collect();
        let mut sim = Sim {
            seed,
            rng: Rng(seed),
            root,
            nodes: BTreeMap::new(),
            net: Vec::new(),
            isolated: HashSet::new(),
            drop_percent: 5,
            step: 0,
            clock: 0,
            base: Instant::now(),
            history: Vec::new(),
            completions: Arc::new(Mutex::new(Vec::new())),
            clients: (0..3).map(|_| Client::default()).collect(),
            next_value: 0,
            watches: HashMap::new(),
            leaders_seen: HashSet::new(),
            first_seen: HashMap::new(),
            snapshots_before_crashes: 0,
        };
        for id in voters.iter().copied() {
            let node = sim.open(id, &voters);
            sim.nodes.insert(id, Some(node));
            sim.watches.insert(id, (None, Vec::new(), 1));
            sim.watch_resume(id);
        }
        sim
    }

    fn open(&self, id: u64, voters: &[u64]) -> RaftNode {
        // Process crashes, not power loss, are modelled: no fsync needed. Only the
        // newest kilobyte of entries stays in memory: lagging members are sent, and
        // members apply after a restart, entries read back from the files.
        let files = LogFiles {
            memory_bytes: 1 << 10,
            ..LogFiles::default()
        };
        let log =
            RaftLog::open_with(&self.root.join(id.to_string()), voters, false, files).unwrap();
        let mut cfg = NodeConfig::new(id);
        cfg.snapshot_entries = 100;
        cfg.request_timeout_ticks = 30;
        RaftNode::new(cfg, log).unwrap()
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_millis(100 * self.clock)
    }

    fn event(&mut self) -> u64 {
        self.step += 1;
        self.step
    }

    fn drain_completions(&mut self) {
        let done: Vec<_> = std::mem::take(&mut *self.completions.lock().unwrap());
        for (index, result, read) in done {
            let end = self.event();
            let op = &mut self.history[index];
            op.end = end;
            op.outcome = match (&op.call, result, read) {
                (Call::Get, Ok(_), Some(v)) => Outcome::Read(v.map(|(value, _)| value)),
                (_, Ok(Applied::Txn(t)), _) if t.succeeded => Outcome::Written,
                (Call::Cas { .. }, Ok(Applied::Txn(_)), _) => Outcome::Refused,
                (_, Err(Error::NotLeader { .. }), _) if op.call != Call::Get => Outcome::Failed,
                _ => {
                    op.end = u64::MAX;
                    Outcome::Unknown
                }
            };
            let client = self.clients.iter_mut().find(|c| c.busy == Some(index));
            if let Some(c) = client {
                c.busy = None;
                if let Some(v) = read {
                    c.last_read.insert(op.key, v);
                }
            }
        }
    }

    /// The ids of the members that are running (`true`) or crashed (`false`).
    fn member_ids(&self, running: bool) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_some() == running)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Restarts a crashed member from its on-disk log and resumes its watch.
    fn restart(&mut self, id: u64) {
        let voters: Vec<u64> = self.nodes.keys().copied().collect();
        let node = self.open(id, &voters);
        self.nodes.insert(id, Some(node));
        self.watch_resume(id);
    }

    fn issue(&mut self, client: usize) {
        let live = self.member_ids(true);
        let member = live[self.rng.below(live.len() as u64) as usize];
        let key = self.rng.below(KEYS);
        self.next_value += 1;
        let value = self.next_value;
        let last_read = self.clients[client].last_read.get(&key).copied().flatten();
        let call = match self.rng.below(10) {
            0..=3 => Call::Put(value),
            4..=5 => Call::Cas {
                expected: last_read.map(|(v, _)| v),
                value,
            },
            6 => Call::Delete,
            _ => Call::Get,
        };
        let start = self.event();
        let index = self.history.len();
        self.history.push(Operation {
            key,
            call: call.clone(),
            outcome: Outcome::Unknown,
            start,
            end: u64::MAX,
        });
        self.clients[client].busy = Some(index);
        self.clients[client].member = member;
        let done = self.completions.clone();
        let node = self.nodes.get_mut(&member).unwrap().as_mut().unwrap();
        let k = key_bytes(key);
        match call {
            Call::Get => node.read(
                RangeRequest {
                    key: k,
                    ..Default::default()
                },
                true,
                Box::new(move |r| {
                    let (result, read) = match r {
                        Ok(resp) => (
                            Ok(Applied::Compacted(0)),
                            Some(
                                resp.kvs
                                    .first()
                                    .map(|kv| (value_of(&kv.value), kv.mod_revision)),
                            ),
                        ),
                        Err(e) => (Err(e), None),
                    };
                    done.lock().unwrap().push((index, result, read));
                }),
            ),
            Call::Put(v) => node.propose(
                &ops::put(&k, v.to_string().as_bytes(), 0, None),
                Box::new(move |r| done.lock().unwrap().push((index, r, None))),
            ),
            Call::Cas { value, .. } => {
                // The client compares with the revision it read; a value's revision is
                // unique to it, so the checker compares values.
                let expected_rev = last_read.map_or(0, |(_, rev)| rev);
                node.propose(
                    &ops::put(&k, value.to_string().as_bytes(), 0, Some(expected_rev)),
                    Box::new(move |r| done.lock().unwrap().push((index, r, None))),
                )
            }
            Call::Delete => node.propose(
                &ops::delete(&k, None),
                Box::new(move |r| done.lock().unwrap().push((index, r, None))),
            ),
        }
        self.drain_completions();
    }

    fn send(&mut self, from: u64, msgs: Vec<Message>) {
        for m in msgs {
            let to = m.to;
            let cut = self.isolated.contains(&from) != self.isolated.contains(&to);
            if cut || self.rng.chance(self.drop_percent) {
                continue;
            }
            let delay = self.rng.below(3);
            self.net.push(InFlight {
                deliver_at: self.clock + delay,
                to,
                bytes: m.write_to_bytes().unwrap(),
            });
        }
    }

    fn pump(&mut self) {
        let now = self.now();
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            let Some(Some(node)) = self.nodes.get_mut(&id) else {
                continue;
            };
            let msgs = node.process_ready(now).unwrap();
            for l in node.take_leadership_changes() {
                if l.is_self {
                    self.leaders_seen.insert((l.term, id));
                }
            }
            self.drain_completions();
            self.send(id, msgs);
        }
    }

    fn deliver(&mut self) {
        // Deliver due messages in a shuffled order (reordering).
        let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.net)
            .into_iter()
            .partition(|m| m.deliver_at <= self.clock);
        self.net = later;
        for i in (1..due.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            due.swap(i, j);
        }
        for m in due {
            if let Some(Some(node)) = self.nodes.get_mut(&m.to) {
                node.step(Message::parse_from_bytes(&m.bytes).unwrap());
            }
        }
    }

    fn read_watches(&mut self) {
        let ids: Vec<u64> = self.watches.keys().copied().collect();
        for id in ids {
            let Some((stream, events, _)) = self.watches.get_mut(&id) else {
                continue;
            };
            let mut closed = stream.is_none();
            while let Some(m) = stream.as_mut().and_then(WatchStream::try_next) {
                match m {
                    Ok(WatchMessage::Events(mut e)) => {
                        self.step += 1;
                        for ev in &e {
                            self.first_seen.entry(ev.revision()).or_insert(self.step);
                        }
                        events.append(&mut e);
                    }
                    Ok(WatchMessage::Progress { .. }) => {}
                    // Closed by a snapshot restore: resume after the last event seen.
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            if closed {
                self.watch_resume(id);
            }
        }
    }

    /// (Re)opens a member's watch right after the last event it delivered.
    fn watch_resume(&mut self, id: u64) {
        let Some((stream, events, start)) = self.watches.get_mut(&id) else {
            return;
        };
        *stream = None;
        let Some(Some(node)) = self.nodes.get_mut(&id) else {
            return;
        };
        let req = WatchRequest {
            key: b"/sim/".to_vec(),
            range_end: rk8s_raftstore::prefix_end(b"/sim/"),
            start_revision: events.last().map_or(*start, |e| e.revision() + 1),
        };
        // A member that has not yet applied up to there fails with a future revision
        // only in reads; a watch simply starts later. Either way it is retried.
        *stream = node.watch(&req).ok();
    }

    fn faults(&mut self, tick: u64) {
        // Isolate the current leader regularly to force elections.
        if tick.is_multiple_of(40) {
            self.isolated.clear();
            let leader = self
                .nodes
                .iter()
                .find(|(_, n)| n.as_ref().is_some_and(|n| n.is_leader()))
                .map(|(id, _)| *id);
            if let Some(l) = leader {
                self.isolated.insert(l);
            }
        }
        if tick % 40 == 25 {
            self.isolated.clear();
        }
        // Now and then a random partition.
        if self.rng.chance(1) {
            self.isolated.clear();
            for id in self.nodes.keys() {
                if self.rng.chance(40) {
                    self.isolated.insert(*id);
                }
            }
        }
        // Crash a member, or restart a crashed one.
        if self.rng.chance(1) {
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            let id = ids[self.rng.below(ids.len() as u64) as usize];
            let crashed = self.nodes.values().filter(|n| n.is_none()).count();
            match self.nodes.get(&id) {
                Some(Some(_)) if crashed == 0 => {
                    if let Some(Some(n)) = self.nodes.insert(id, None) {
                        self.snapshots_before_crashes += n.snapshots_taken();
                    }
                    // Requests in flight on it now have an unknown outcome.
                    for c in &mut self.clients {
                        if c.member == id {
                            c.busy = None;
                        }
                    }
                }
                Some(None) => self.restart(id),
                _ => {}
            }
        }
    }

    /// One tick of every live member.
    fn tick_all(&mut self) {
        self.clock += 1;
        let now = self.now();
        for n in self.nodes.values_mut().flatten() {
            n.tick(now);
        }
    }

    /// Lets messages flow for a tick: ready handling and delivery, three rounds.
    fn exchange(&mut self) {
        for _ in 0..3 {
            self.pump();
            self.deliver();
        }
        self.read_watches();
    }

    fn run(&mut self, ticks: u64) {
        for tick in 1..=ticks {
            self.tick_all();
            self.faults(tick);
            for c in 0..self.clients.len() {
                if self.clients[c].busy.is_none() && self.rng.chance(60) {
                    self.issue(c);
                }
            }
            self.exchange();
        }
    }

    /// Heals everything and lets the cluster settle.
    fn heal(&mut self) {
        self.isolated.clear();
        self.drop_percent = 0;
        for id in self.member_ids(false) {
            self.restart(id);
        }
        for _ in 0..400 {
            self.tick_all();
            self.exchange();
            let applied: HashSet<u64> =
                self.nodes.values().flatten().map(|n| n.applied()).collect();
            let leader = self.nodes.values().flatten().any(|n| n.is_leader());
            if applied.len() == 1
                && leader
                && self.net.is_empty()
                && self.clients.iter().all(|c| c.busy.is_none())
            {
                break;
            }
        }
    }

    fn check(&mut self) {
        let seed = self.seed;
        // 1. All members hold the same state.
        let states: Vec<_> = self
            .nodes
            .values()
            .flatten()
            .map(|n| n.state_machine().snapshot())
            .collect();
        let views: Vec<(u64, u64, i64)> = self
            .nodes
            .iter()
            .filter_map(|(id, n)| {
                n.as_ref()
                    .map(|n| (*id, n.applied(), n.state_machine().mvcc.revision()))
            })
            .collect();
        assert!(
            states.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: members disagree after healing (member, applied, revision): {views:?}"
        );
        // 2. Linearizability. Values are unique, and no history is compacted here, so
        // whether a write without an answer happened can be read off the committed
        // history, with an upper bound on when.
        let node = self.nodes.values().flatten().next().unwrap();
        let log = node
            .state_machine()
            .mvcc
            .events_since(b"/sim/", &rk8s_raftstore::prefix_end(b"/sim/"), 1)
            .unwrap();
        let written: HashMap<Vec<u8>, i64> = log
            .iter()
            .filter(|e| !e.kv.value.is_empty())
            .map(|e| (e.kv.value.to_vec(), e.revision()))
            .collect();
        for op in &mut self.history {
            let value = match (&op.call, &op.outcome) {
                (Call::Put(v) | Call::Cas { value: v, .. }, Outcome::Unknown) => *v,
                _ => continue,
            };
            match written.get(value.to_string().as_bytes()) {
                Some(rev) => {
                    op.outcome = Outcome::Written;
                    op.end = self
                        .first_seen
                        .get(rev)
                        .copied()
                        .unwrap_or(u64::MAX)
                        .max(op.start);
                }
                None => op.outcome = Outcome::Failed,
            }
        }
        if let Ok(path) = std::env::var("SIM_DUMP") {
            let text: String = self.history.iter().map(|o| format!("{o:?}\n")).collect();
            std::fs::write(format!("{path}.{seed}"), text).unwrap();
        }
        linearizability::check(&self.history)
            .unwrap_or_else(|e| panic!("seed {seed}: history is not linearizable: {e}"));
        // 3. Every watch stream equals the committed history from where it started.
        for (id, (_, events, from)) in &self.watches {
            let expected: Vec<&Event> = log.iter().filter(|e| e.revision() >= *from).collect();
            let brief = |e: Option<&&Event>| {
                e.map(|e| {
                    (
                        e.revision(),
                        String::from_utf8_lossy(&e.kv.key).into_owned(),
                        e.kind,
                    )
                })
            };
            if let Some(i) = (0..events.len()).find(|i| expected.get(*i) != Some(&&events[*i])) {
                panic!(
                    "seed {seed}: watch on member {id} differs from the committed history at event {i} of {}: got {:?}, expected {:?}",
                    events.len(),
                    brief(events.iter().collect::<Vec<_>>().get(i)),
                    brief(expected.get(i)),
                );
            }
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn simulate(seed: u64, members: u64, ticks: u64) -> (usize, usize, u64) {
    let mut sim = Sim::new(seed, members);
    sim.run(ticks);
    sim.heal();
    sim.check();
    let writes = sim
        .history
        .iter()
        .filter(|o| o.outcome == Outcome::Written)
        .count();
    let snapshots = sim.snapshots_before_crashes
        + sim
            .nodes
            .values()
            .flatten()
            .map(|n| n.snapshots_taken())
            .sum::<u64>();
    eprintln!(
        "seed {seed}, {members} members, {ticks} ticks: {} leader changes, {writes} acknowledged writes, {} operations, {snapshots} snapshots",
        sim.leaders_seen.len(),
        sim.history.len()
    );
    (sim.leaders_seen.len(), writes, snapshots)
}

#[test]
fn three_members_survive_partitions_crashes_and_elections() {
    for seed in [1, 2, 3, 4, 5, 6, 8, 9] {
        let (leaders, writes, snapshots) = simulate(seed, 3, 6000);
        assert!(leaders >= 100, "seed {seed}: only {leaders} leader changes");
        assert!(
            writes > 300,
            "seed {seed}: only {writes} acknowledged writes"
        );
        assert!(snapshots > 0, "seed {seed}: no snapshot was taken");
    }
    assert!(
        rk8s_raftstore::metrics::LOG_ENTRIES_READ.get() > 0,
        "no entry was read back from the log's files"
    );
}

#[test]
fn five_members_survive_partitions_crashes_and_elections() {
    for seed in [7, 10, 11] {
        let (leaders, writes, _) = simulate(seed, 5, 6000);
        assert!(leaders >= 100, "seed {seed}: only {leaders} leader changes");
        assert!(
            writes > 300,
            "seed {seed}: only {writes} acknowledged writes"
        );
    }
}
