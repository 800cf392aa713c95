//! The replicated state machine on its own: etcd's key-value semantics, compaction,
//! leases, snapshots, and the watch invariant (history equals the applied log).

// Test helpers may panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use rk8s_raftstore::lease::LeaseClock;
use rk8s_raftstore::proto::{
    Compare, CompareResult, CompareTarget, PutRequest, RangeRequest, RequestOp, TxnRequest,
    request_op, response_op,
};
use rk8s_raftstore::{Applied, Error, Event, EventKind, StateMachine, ops, prefix_end};

fn put(sm: &mut StateMachine, key: &str, value: &str) -> i64 {
    let (r, _) = sm.apply(&ops::put(key.as_bytes(), value.as_bytes(), 0, None));
    match r.unwrap() {
        Applied::Txn(t) => t.revision,
        other => panic!("{other:?}"),
    }
}

/// Applies a command that must not fail.
fn apply_ok(sm: &mut StateMachine, cmd: &rk8s_raftstore::proto::Command) -> Vec<Event> {
    let (r, events) = sm.apply(cmd);
    r.unwrap();
    events
}

fn range(
    sm: &StateMachine,
    key: &str,
    end: &[u8],
    revision: i64,
) -> Result<Vec<(String, String, i64)>, Error> {
    let r = sm.mvcc.range(&RangeRequest {
        key: key.as_bytes().to_vec(),
        range_end: end.to_vec(),
        revision,
        ..Default::default()
    })?;
    Ok(r.kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key).unwrap(),
                String::from_utf8(kv.value.to_vec()).unwrap(),
                kv.mod_revision,
            )
        })
        .collect())
}

#[test]
fn every_write_advances_the_global_revision_and_keeps_key_metadata() {
    let mut sm = StateMachine::default();
    assert_eq!(put(&mut sm, "/a", "1"), 1);
    assert_eq!(put(&mut sm, "/b", "1"), 2);
    assert_eq!(put(&mut sm, "/a", "2"), 3);
    let a = sm.mvcc.get(b"/a").unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (1, 3, 2));
    apply_ok(&mut sm, &ops::delete(b"/a", None));
    assert_eq!(sm.mvcc.revision(), 4);
    put(&mut sm, "/a", "3");
    let a = sm.mvcc.get(b"/a").unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (5, 5, 1));
    // Deleting a key that is not there changes nothing, not even the revision.
    apply_ok(&mut sm, &ops::delete(b"/missing", None));
    assert_eq!(sm.mvcc.revision(), 5);
}

#[test]
fn compare_and_swap_reports_the_current_revision_on_conflict() {
    let mut sm = StateMachine::default();
    let (r, _) = sm.apply(&ops::put(b"/k", b"v1", 0, Some(0)));
    let created = ops::expect_cas(b"/k", 0, r).unwrap();
    assert_eq!(created.revision, 1);
    let (r, _) = sm.apply(&ops::put(b"/k", b"again", 0, Some(0)));
    assert_eq!(
        ops::expect_cas(b"/k", 0, r),
        Err(Error::Conflict {
            key: "/k".into(),
            expected: 0,
            actual: 1,
            revision: 1
        })
    );
    let (r, _) = sm.apply(&ops::put(b"/k", b"v2", 0, Some(1)));
    assert!(ops::expect_cas(b"/k", 1, r).is_ok());
    let (r, _) = sm.apply(&ops::delete(b"/k", Some(1)));
    assert!(matches!(
        ops::expect_cas(b"/k", 1, r),
        Err(Error::Conflict { actual: 2, .. })
    ));
    let (r, _) = sm.apply(&ops::delete(b"/k", Some(2)));
    assert!(ops::expect_cas(b"/k", 2, r).is_ok());
    assert!(sm.mvcc.get(b"/k").unwrap().is_none());
}

/// A page of `limit` keys under `prefix` at `revision`, uncounted: how many keys,
/// the count, and whether more remain.
fn uncounted(sm: &StateMachine, prefix: &[u8], limit: i64, revision: i64) -> (usize, i64, bool) {
    let r = sm
        .mvcc
        .range(&RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            limit,
            revision,
            uncounted: true,
            ..Default::default()
        })
        .unwrap();
    (r.kvs.len(), r.count, r.more)
}

#[test]
fn ranges_read_prefixes_with_limits_and_past_revisions() {
    let mut sm = StateMachine::default();
    for (k, v) in [
        ("/registry/pods/a/x", "1"),
        ("/registry/pods/a/y", "2"),
        ("/registry/pods/b/z", "3"),
        ("/registry/podsx", "4"),
    ] {
        put(&mut sm, k, v);
    }
    put(&mut sm, "/registry/pods/a/x", "changed");
    let prefix = b"/registry/pods/";
    let all = range(&sm, "/registry/pods/", &prefix_end(prefix), 0).unwrap();
    assert_eq!(
        all.iter().map(|(k, _, _)| k.as_str()).collect::<Vec<_>>(),
        [
            "/registry/pods/a/x",
            "/registry/pods/a/y",
            "/registry/pods/b/z"
        ]
    );
    assert_eq!(all[0].1, "changed");
    let then = range(&sm, "/registry/pods/", &prefix_end(prefix), 3).unwrap();
    assert_eq!(
        then.iter().map(|(_, v, _)| v.as_str()).collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    let limited = sm
        .mvcc
        .range(&RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            limit: 2,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        (limited.kvs.len(), limited.count, limited.more),
        (2, 3, true)
    );
    let everything = range(&sm, "\0", &[0], 0).unwrap();
    assert_eq!(everything.len(), 4);
    assert_eq!(
        range(&sm, "/a", &[], 99),
        Err(Error::FutureRevision {
            requested: 99,
            current: 5
        })
    );
    // Uncounted, a page stops at the first live key past it: `more` without the count.
    assert_eq!(uncounted(&sm, prefix, 2, 0), (2, 2, true));
    assert_eq!(uncounted(&sm, prefix, 3, 0), (3, 3, false));
    // A key deleted since is past the page now, not at a revision before.
    put(&mut sm, "/registry/pods/c", "5");
    apply_ok(&mut sm, &ops::delete(b"/registry/pods/c", None));
    assert_eq!(uncounted(&sm, prefix, 3, 0), (3, 3, false));
    assert_eq!(uncounted(&sm, prefix, 3, 6), (3, 3, true));
}

#[test]
fn transactions_apply_whole_at_one_revision_or_not_at_all() {
    let mut sm = StateMachine::default();
    put(&mut sm, "/a", "1");
    let op = |k: &str, lease: i64| RequestOp {
        request: Some(request_op::Request::Put(PutRequest {
            key: k.as_bytes().to_vec(),
            value: bytes::Bytes::from_static(b"v"),
            lease,
        })),
    };
    let t = TxnRequest {
        compare: vec![Compare {
            key: b"/a".to_vec(),
            target: CompareTarget::Value as i32,
            result: CompareResult::Equal as i32,
            number: 0,
            value: b"1".to_vec(),
        }],
        success: vec![
            op("/b", 0),
            op("/c", 0),
            RequestOp {
                request: Some(request_op::Request::Range(RangeRequest {
                    key: b"/b".to_vec(),
                    ..Default::default()
                })),
            },
        ],
        failure: vec![],
    };
    let (r, events) = sm.apply(&ops::txn(t));
    let Applied::Txn(resp) = r.unwrap() else {
        panic!()
    };
    assert!(resp.succeeded);
    assert_eq!(resp.revision, 2);
    assert_eq!(
        events.iter().map(Event::revision).collect::<Vec<_>>(),
        [2, 2]
    );
    // The read inside the transaction sees the put before it.
    let Some(response_op::Response::Range(read)) = &resp.responses[2].response else {
        panic!()
    };
    assert_eq!(read.kvs[0].mod_revision, 2);

    // A put to a lease that does not exist fails the whole transaction.
    let before = sm.clone();
    let t = TxnRequest {
        success: vec![op("/d", 0), op("/e", 42)],
        ..Default::default()
    };
    assert_eq!(sm.apply(&ops::txn(t)).0, Err(Error::LeaseNotFound(42)));
    let t = TxnRequest {
        success: vec![op("/d", 0), op("/d", 0)],
        ..Default::default()
    };
    assert_eq!(
        sm.apply(&ops::txn(t)).0,
        Err(Error::DuplicateKey("/d".into()))
    );
    assert_eq!(sm, before);
}

#[test]
fn compaction_keeps_the_latest_values_and_refuses_older_reads() {
    let mut sm = StateMachine::default();
    put(&mut sm, "/a", "1"); // 1
    put(&mut sm, "/a", "2"); // 2
    put(&mut sm, "/b", "1"); // 3
    apply_ok(&mut sm, &ops::delete(b"/b", None)); // 4
    put(&mut sm, "/a", "3"); // 5
    assert!(sm.apply(&ops::compact(4)).0.is_ok());
    assert_eq!(range(&sm, "/a", &[], 4).unwrap()[0].1, "2");
    assert!(range(&sm, "/b", &[], 4).unwrap().is_empty());
    assert_eq!(
        range(&sm, "/a", &[], 3),
        Err(Error::Compacted {
            requested: 3,
            compact_revision: 4
        })
    );
    assert_eq!(
        sm.mvcc.events_since(b"/", &[0], 4),
        Err(Error::Compacted {
            requested: 4,
            compact_revision: 4
        })
    );
    let events = sm.mvcc.events_since(b"/", &[0], 5).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].prev_kv.as_ref().unwrap().value, &b"2"[..]);
    assert_eq!(
        sm.apply(&ops::compact(4)).0,
        Err(Error::Compacted {
            requested: 4,
            compact_revision: 4
        })
    );
    assert_eq!(
        sm.apply(&ops::compact(9)).0,
        Err(Error::FutureRevision {
            requested: 9,
            current: 5
        })
    );
}

#[test]
fn revoking_a_lease_deletes_its_keys_at_one_new_revision() {
    let mut sm = StateMachine::default();
    let (r, _) = sm.apply(&ops::lease_grant(10));
    let Ok(Applied::LeaseGranted { id, ttl: 10 }) = r else {
        panic!("{r:?}")
    };
    apply_ok(&mut sm, &ops::put(b"/l/1", b"x", id, None));
    apply_ok(&mut sm, &ops::put(b"/l/2", b"x", id, None));
    apply_ok(&mut sm, &ops::put(b"/l/3", b"x", id, None));
    // Overwriting without the lease detaches the key.
    apply_ok(&mut sm, &ops::put(b"/l/3", b"kept", 0, None));
    assert_eq!(sm.lessor.keys(id).len(), 2);
    let (r, events) = sm.apply(&ops::lease_revoke(id));
    assert_eq!(r, Ok(Applied::LeaseRevoked { revision: 5 }));
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e.kind == EventKind::Delete && e.revision() == 5)
    );
    assert!(sm.mvcc.get(b"/l/3").unwrap().is_some());
    assert_eq!(
        sm.apply(&ops::lease_revoke(id)).0,
        Err(Error::LeaseNotFound(id))
    );
    assert_eq!(sm.apply(&ops::lease_grant(0)).0, Err(Error::InvalidTtl(0)));
}

#[test]
fn the_lease_clock_expires_leases_and_a_new_leader_extends_them() {
    let mut sm = StateMachine::default();
    let (r, _) = sm.apply(&ops::lease_grant(2));
    let Ok(Applied::LeaseGranted { id, .. }) = r else {
        panic!()
    };
    let t0 = Instant::now();
    let mut clock = LeaseClock::default();
    clock.reset(&sm.lessor, t0);
    assert!(
        clock
            .expired(&sm.lessor, t0 + Duration::from_secs(1))
            .is_empty()
    );
    clock.keep_alive(&sm.lessor, id, t0 + Duration::from_secs(1));
    assert!(
        clock
            .expired(&sm.lessor, t0 + Duration::from_millis(2500))
            .is_empty()
    );
    assert_eq!(clock.expired(&sm.lessor, t0 + Duration::from_secs(3)), [id]);
    // A new leader's clock starts over: the lease gets its whole ttl again.
    let mut new_leader = LeaseClock::default();
    new_leader.reset(&sm.lessor, t0 + Duration::from_secs(10));
    assert!(
        new_leader
            .expired(&sm.lessor, t0 + Duration::from_secs(11))
            .is_empty()
    );
}

/// A random workload over a few keys and prefixes.
fn workload() -> impl Strategy<Value = Vec<(u8, u8, u8)>> {
    proptest::collection::vec((0u8..8, 0u8..6, 0u8..4), 1..80)
}

fn run(ops_: &[(u8, u8, u8)]) -> (StateMachine, Vec<Event>, Vec<i64>) {
    let mut sm = StateMachine::default();
    let mut log = Vec::new();
    let mut compactions = Vec::new();
    let mut leases = Vec::new();
    for &(op, k, v) in ops_ {
        let key = format!("/p{}/k{}", k % 2, k).into_bytes();
        let cmd = match op {
            0..=2 => ops::put(&key, &[v], 0, None),
            3 => ops::delete(&key, None),
            4 => ops::put(&key, &[v], 0, Some(i64::from(v))),
            5 => {
                let rev = sm.mvcc.revision() - i64::from(v);
                if rev > sm.mvcc.compact_revision() && rev > 0 {
                    compactions.push(rev);
                }
                ops::compact(rev)
            }
            6 => match leases.last() {
                Some(&id) => ops::put(&key, &[v], id, None),
                None => ops::lease_grant(5),
            },
            _ => match leases.pop() {
                Some(id) => ops::lease_revoke(id),
                None => ops::lease_grant(5),
            },
        };
        let (r, mut events) = sm.apply(&cmd);
        if let Ok(Applied::LeaseGranted { id, .. }) = r {
            leases.push(id);
        }
        log.append(&mut events);
    }
    (sm, log, compactions)
}

proptest! {
    /// The watch invariant: the history from any revision, under any prefix, is exactly
    /// the applied log filtered the same way — or `Compacted`.
    #[test]
    fn history_equals_the_applied_log(ops_ in workload(), from in 1i64..60, prefix in 0u8..3) {
        let (sm, log, _) = run(&ops_);
        let (key, end) = match prefix {
            0 => (b"/p0/".to_vec(), prefix_end(b"/p0/")),
            1 => (b"/p1/".to_vec(), prefix_end(b"/p1/")),
            _ => (b"/".to_vec(), vec![0]),
        };
        match sm.mvcc.events_since(&key, &end, from) {
            Ok(events) => {
                let expected: Vec<Event> = log
                    .iter()
                    .filter(|e| e.revision() >= from && e.kv.key.starts_with(&key))
                    .cloned()
                    .collect();
                prop_assert_eq!(events, expected);
            }
            Err(Error::Compacted { compact_revision, .. }) => prop_assert!(from <= compact_revision),
            Err(e) => prop_assert!(false, "unexpected {}", e),
        }
    }

    /// Revisions never go backwards, events come in revision order, and a key's
    /// version counts its writes since creation.
    #[test]
    fn events_are_ordered_and_versions_count_writes(ops_ in workload()) {
        let (_, log, _) = run(&ops_);
        for pair in log.windows(2) {
            prop_assert!(pair[0].revision() <= pair[1].revision());
        }
        for e in &log {
            if e.kind == EventKind::Put {
                let expected = e.prev_kv.as_ref().map_or(1, |p| p.version + 1);
                prop_assert_eq!(e.kv.version, expected);
            }
        }
    }

    /// A snapshot restores exactly the same state (keys, history, leases).
    #[test]
    fn snapshots_restore_the_same_state(ops_ in workload()) {
        let (sm, _, _) = run(&ops_);
        let restored = StateMachine::restore(&sm.snapshot()).unwrap();
        prop_assert_eq!(restored, sm);
    }
}

#[test]
fn the_footprint_counts_live_keys_retained_revisions_and_their_bytes() {
    let mut sm = StateMachine::default();
    put(&mut sm, "a", "1234");
    put(&mut sm, "a", "12345678");
    put(&mut sm, "b", "xy");
    apply_ok(&mut sm, &ops::delete(b"b", None));
    let f = sm.mvcc.footprint();
    // a: its key, then two revisions of 1 + 4 and 1 + 8 bytes; b: its key, a put of
    // 1 + 2 bytes and a deletion.
    assert_eq!((f.keys, f.revisions), (1, 4));
    assert_eq!(f.bytes, 1 + 5 + 9 + 1 + 3);
    // No longer current: a's first value and b's (deleted) one.
    assert_eq!(f.history_bytes, 5 + 3);
    // Held: each key once, values this short as written.
    assert_eq!(f.held_bytes, 1 + 4 + 8 + 1 + 2);
    // Compacted to now: a's latest revision is left, b is gone.
    let now = sm.mvcc.revision();
    apply_ok(&mut sm, &ops::compact(now));
    let f = sm.mvcc.footprint();
    assert_eq!(
        (f.keys, f.revisions, f.bytes, f.history_bytes, f.held_bytes),
        (1, 1, 10, 0, 9)
    );
}

#[test]
fn values_alike_are_held_compressed_and_read_back_as_written() {
    let mut sm = StateMachine::default();
    let pod = |i: usize| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p-{i}","namespace":"default","labels":{{"app":"web"}}}},"spec":{{"containers":[{{"name":"c","image":"busybox","imagePullPolicy":"Always","terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}}],"dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler"}},"status":{{"phase":"Pending"}}}}"#
        )
    };
    for i in 0..100 {
        put(&mut sm, &format!("/registry/pods/default/p-{i}"), &pod(i));
    }
    let f = sm.mvcc.footprint();
    assert!(f.held_bytes * 5 < f.bytes, "{f:?}");
    let r = sm
        .mvcc
        .range(&RangeRequest {
            key: b"/registry/pods/".to_vec(),
            range_end: prefix_end(b"/registry/pods/"),
            ..Default::default()
        })
        .unwrap();
    let mut values: Vec<String> = r
        .kvs
        .iter()
        .map(|kv| String::from_utf8(kv.value.to_vec()).unwrap())
        .collect();
    let mut want: Vec<String> = (0..100).map(pod).collect();
    values.sort();
    want.sort();
    assert_eq!(values, want);
    // A snapshot holds them as written, and a restored state compresses them again.
    let restored = StateMachine::restore(&sm.snapshot()).unwrap();
    assert_eq!(restored, sm);
    assert!(restored.mvcc.footprint().held_bytes * 5 < f.bytes);
}
