//! One member driven by hand: leases expire on the leader's clock and their keys are
//! deleted; a new leader gives leases their full time again; reads and watches.

// Test helpers may panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rk8s_raftstore::log::RaftLog;
use rk8s_raftstore::node::{NodeConfig, RaftNode};
use rk8s_raftstore::proto::RangeRequest;
use rk8s_raftstore::watch::{WatchMessage, WatchRequest};
use rk8s_raftstore::{Applied, EventKind, ops};

/// A single member that has become leader, with a fake clock.
struct One {
    node: RaftNode,
    now: Instant,
}

impl One {
    fn new() -> Self {
        Self::with(NodeConfig::new(1))
    }

    fn with(cfg: NodeConfig) -> Self {
        let mut node = RaftNode::new(cfg, RaftLog::in_memory(&[1])).unwrap();
        node.campaign();
        let mut one = One {
            node,
            now: Instant::now(),
        };
        one.settle();
        assert!(one.node.is_leader());
        one
    }

    fn settle(&mut self) {
        for _ in 0..5 {
            assert!(self.node.process_ready(self.now).unwrap().is_empty());
        }
    }

    fn tick(&mut self, by: Duration) {
        self.now += by;
        self.node.tick(self.now);
        self.settle();
    }

    fn apply(&mut self, cmd: rk8s_raftstore::proto::Command) -> Applied {
        let out = Arc::new(Mutex::new(None));
        let o = out.clone();
        self.node
            .propose(&cmd, Box::new(move |r| *o.lock().unwrap() = Some(r)));
        self.settle();
        let result = out.lock().unwrap().take().expect("applied");
        result.unwrap()
    }

    fn get(&mut self, key: &[u8]) -> i64 {
        let out = Arc::new(Mutex::new(None));
        let o = out.clone();
        let req = RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        };
        self.node
            .read(req, true, Box::new(move |r| *o.lock().unwrap() = Some(r)));
        self.settle();
        let r = out.lock().unwrap().take().expect("read answered");
        r.unwrap().count
    }
}

#[test]
fn an_expired_lease_deletes_its_keys_at_a_new_revision() {
    let mut one = One::new();
    let Applied::LeaseGranted { id, .. } = one.apply(ops::lease_grant(2)) else {
        panic!()
    };
    one.apply(ops::put(b"/nodes/n1", b"alive", id, None));
    one.apply(ops::put(b"/other", b"stays", 0, None));
    let mut watch = one
        .node
        .watch(&WatchRequest {
            key: b"/nodes/".to_vec(),
            range_end: rk8s_raftstore::prefix_end(b"/nodes/"),
            start_revision: 0,
        })
        .unwrap();
    // Kept alive, it lives past its ttl.
    for _ in 0..3 {
        one.tick(Duration::from_secs(1));
        one.node.lease_keep_alive(id, one.now).unwrap();
    }
    assert_eq!(one.get(b"/nodes/n1"), 1);
    // Left alone, it expires and the leader revokes it.
    for _ in 0..4 {
        one.tick(Duration::from_secs(1));
    }
    assert_eq!(one.get(b"/nodes/n1"), 0);
    assert_eq!(one.get(b"/other"), 1);
    match watch.try_next() {
        Some(Ok(WatchMessage::Events(e))) => {
            assert_eq!(e.len(), 1);
            assert_eq!(e[0].kind, EventKind::Delete);
            assert_eq!(e[0].prev_kv.as_ref().unwrap().value, &b"alive"[..]);
        }
        other => panic!("expected the deletion, got {other:?}"),
    }
    assert!(one.node.lease_keep_alive(id, one.now).is_err());
}

#[test]
fn linearizable_reads_wait_for_the_leaders_commit() {
    let mut one = One::new();
    let Applied::Txn(t) = one.apply(ops::put(b"/k", b"v", 0, None)) else {
        panic!()
    };
    assert_eq!(t.revision, 1);
    assert_eq!(one.get(b"/k"), 1);
    assert_eq!(one.node.state_machine().mvcc.revision(), 1);
}

#[test]
fn snapshots_wait_for_as_many_bytes_of_log_as_the_state_holds() {
    let mut cfg = NodeConfig::new(1);
    cfg.snapshot_bytes = 4 << 10;
    let mut one = One::with(cfg);
    // 32 KiB of state in 32 keys, 8 times the bytes the configuration asks for at
    // least.
    let value = vec![b'x'; 1 << 10];
    let mut revision = 0;
    for k in 0..32 {
        revision = revision_of(one.apply(ops::put(format!("/k/{k}").as_bytes(), &value, 0, None)));
    }
    one.apply(ops::compact(revision));
    let state = one.node.state_machine().mvcc.footprint().bytes;
    assert!((32 << 10..40 << 10).contains(&state), "{state}");
    // From a snapshot on, overwrites of one key, the history compacted away: the
    // state stays as large, the log grows.
    one.node.snapshot_now().unwrap();
    let before = one.node.snapshots_taken();
    let mut writes = 0;
    while one.node.snapshots_taken() == before {
        let revision = revision_of(one.apply(ops::put(b"/k/0", &value, 0, None)));
        one.apply(ops::compact(revision));
        writes += 1;
        assert!(writes < 100, "no snapshot after {writes} writes of 1 KiB");
    }
    assert!(
        (24..=40).contains(&writes),
        "a snapshot after {writes} writes of 1 KiB, the state {state} bytes"
    );
}

fn revision_of(applied: Applied) -> i64 {
    match applied {
        Applied::Txn(t) => t.revision,
        other => panic!("not a transaction: {other:?}"),
    }
}
