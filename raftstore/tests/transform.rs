//! A member with a value transformer: the state machine (what the log and snapshots
//! hold) keeps the stored form, while every way of reading through the `Store`
//! handle — ranges, transaction responses, watches, the store port's clients — gets
//! the values as written, and `is_stale` tells a value written with an older key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use rk8s_raftstore::client::StoreClient;
use rk8s_raftstore::prefix_end;
use rk8s_raftstore::proto::{RangeRequest, RequestOp, TxnRequest, request_op, response_op};
use rk8s_raftstore::server::{MemberConfig, Store};
use rk8s_raftstore::transform::{Readable, ValueTransformer};
use rk8s_raftstore::watch::{WatchMessage, WatchRequest};

/// XORs values under `/secret/` with the current key byte, behind a `k<key>:`
/// prefix; a value of an older key is stale.
#[derive(Debug, Default)]
struct Xor {
    key: AtomicU8,
}

impl ValueTransformer for Xor {
    fn transform_to_storage<'a>(
        &self,
        key: &[u8],
        value: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, String> {
        if !self.transforms(key) {
            return Ok(Cow::Borrowed(value));
        }
        let k = self.key.load(Ordering::SeqCst);
        let mut out = vec![b'k', b'0' + k, b':'];
        out.extend(value.iter().map(|b| b ^ (k + 1)));
        Ok(Cow::Owned(out))
    }

    fn transform_from_storage<'a>(
        &self,
        key: &[u8],
        stored: &'a [u8],
    ) -> Result<Readable<'a>, String> {
        if !self.transforms(key) {
            return Ok(Readable::plain(stored));
        }
        match stored {
            [b'k', digit, b':', rest @ ..] => {
                let k = digit - b'0';
                Ok(Readable {
                    value: Cow::Owned(rest.iter().map(|b| b ^ (k + 1)).collect()),
                    stale: k != self.key.load(Ordering::SeqCst),
                })
            }
            _ => Err("not transformed".into()),
        }
    }

    fn transforms(&self, key: &[u8]) -> bool {
        key.starts_with(b"/secret/")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn leading_store(dir: &std::path::Path, t: Arc<Xor>) -> (Store, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cfg = MemberConfig::new(dir, addr.parse().unwrap());
    cfg.sync = false;
    cfg.tick = Duration::from_millis(20);
    cfg.transformer = Some(t);
    let store = rk8s_raftstore::server::start(cfg).await.unwrap();
    let mut leadership = store.leadership();
    tokio::time::timeout(Duration::from_secs(10), leadership.wait_for(|l| l.is_self))
        .await
        .unwrap()
        .unwrap();
    (store, addr)
}

/// What the state machine holds for `key` (the stored form).
async fn stored(store: &Store, key: &[u8]) -> Vec<u8> {
    let state = store.state_snapshot().await.unwrap();
    state.mvcc.get(key).unwrap().unwrap().value.to_vec()
}

async fn read(store: &Store, key: &[u8]) -> Vec<u8> {
    let r = store
        .range(
            RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
            true,
        )
        .await
        .unwrap();
    r.kvs[0].value.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_holds_the_stored_form_and_readers_get_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let t = Arc::new(Xor::default());
    let (store, addr) = leading_store(dir.path(), t.clone()).await;
    let mut watch = store
        .watch(WatchRequest {
            key: b"/secret/".to_vec(),
            range_end: prefix_end(b"/secret/"),
            start_revision: 0,
        })
        .await
        .unwrap();

    let first = store.put(b"/secret/a", b"hello", 0, None).await.unwrap();
    assert_eq!(stored(&store, b"/secret/a").await, b"k0:idmmn");
    assert_eq!(read(&store, b"/secret/a").await, b"hello");
    store.put(b"/plain/a", b"hello", 0, None).await.unwrap();
    assert_eq!(stored(&store, b"/plain/a").await, b"hello");

    let Some(Ok(WatchMessage::Events(events))) = watch.next().await else {
        panic!("no events")
    };
    assert_eq!(&events[0].kv.value[..], b"hello");

    // A transaction's responses (the put's previous value, a read) come back plain.
    let r = store
        .txn(TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp {
                    request: Some(request_op::Request::Put(
                        rk8s_raftstore::proto::PutRequest {
                            key: b"/secret/a".to_vec(),
                            value: bytes::Bytes::from_static(b"again"),
                            lease: 0,
                        },
                    )),
                },
                RequestOp {
                    request: Some(request_op::Request::Range(RangeRequest {
                        key: b"/secret/a".to_vec(),
                        ..Default::default()
                    })),
                },
            ],
            failure: vec![],
        })
        .await
        .unwrap();
    let Some(response_op::Response::Range(range)) = &r.responses[1].response else {
        panic!("{r:?}")
    };
    assert_eq!(&range.kvs[0].value[..], b"again");

    // A client of the store port: its writes are transformed by the member, its
    // reads come back plain.
    let client = StoreClient::connect(&addr).await.unwrap();
    client.put(b"/secret/b", b"port").await.unwrap();
    assert_eq!(stored(&store, b"/secret/b").await, b"k0:qnsu");
    let got = client
        .range(
            RangeRequest {
                key: b"/secret/b".to_vec(),
                ..Default::default()
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(&got.kvs[0].value[..], b"port");

    // A new first key: values written with the old one are stale until written again.
    let old_rev = store
        .put(b"/secret/c", b"x", 0, None)
        .await
        .unwrap()
        .revision;
    t.key.store(1, Ordering::SeqCst);
    assert!(store.is_stale(b"/secret/c", old_rev).await.unwrap());
    // Also once the history up to now is compacted away (a no-op update of an old
    // object must not fail with "compacted").
    let later = store
        .put(b"/plain/z", b"z", 0, None)
        .await
        .unwrap()
        .revision;
    store.compact(later).await.unwrap();
    assert!(store.is_stale(b"/secret/c", old_rev).await.unwrap());
    assert_eq!(read(&store, b"/secret/c").await, b"x");
    let new_rev = store
        .put(b"/secret/c", b"x", 0, None)
        .await
        .unwrap()
        .revision;
    assert!(!store.is_stale(b"/secret/c", new_rev).await.unwrap());
    // Asked about a revision the key has moved on from: not stale (the caller's
    // compare-and-swap write will conflict and read again).
    assert!(!store.is_stale(b"/secret/c", old_rev).await.unwrap());
    assert!(
        !store
            .is_stale(b"/plain/a", first.revision + 1)
            .await
            .unwrap()
    );

    store.shutdown();
}
