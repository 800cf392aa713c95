//! Snapshots of the store: save and restore of a store holding N pod-sized objects
//! (150,000 by default: Kubernetes' pod limit; `RK8S_BENCH_SNAPSHOT=N`), on a real
//! store member of this process (raft thread, raft-engine log with fsync).
//!
//! - copy: `Store::state_snapshot`, the consistent copy of the state taken on the raft
//!   thread (a ReadIndex, then keys and revisions copied, values shared): for that
//!   long the member handles nothing else;
//! - save: the copy written as a backup file (`write_backup`, as `GET
//!   /rk8s/v1/snapshot` streams it), and the file's size;
//! - restore: the file read, checked (SHA-256) and decoded (`read_backup`), then made a
//!   new member's data directory (`restore_member`: its log's snapshot, fsynced);
//! - start: a member started on the restored directory until it answers a
//!   linearizable read of the whole pod range (count).
//!
//! - pages: the pod range read 500 keys at a time from the first key to the last,
//!   as the API server reads a paginated list, with each page counting the keys after
//!   it (as etcd's range does; `remainingItemCount`) and uncounted (a page reads its
//!   own keys): every page is a read on the raft thread.
//!
//! The API server's part of `rk8s-server snapshot save` (TLS, the HTTP stream) is not
//! in these figures. Prints a table and writes `target/bench/snapshot.json`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use rk8s_raftstore::backup::{read_backup, write_backup};
use rk8s_raftstore::proto::RangeRequest;
use rk8s_raftstore::server::{self, MemberConfig, Store};

fn free_addr() -> std::net::SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A stored pod's JSON, shaped as the API server stores one (about 2 KB).
fn pod(i: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("web-7c5ddbdf54-{i:06}"), "namespace": "default",
            "uid": format!("6f1a2b3c-0000-4000-8000-{i:012}"),
            "generateName": "web-7c5ddbdf54-", "creationTimestamp": "2026-12-04T10:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "7c5ddbdf54"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c5ddbdf54",
                "uid": "0b6c1d2e-1111-4111-8111-111111111111", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "rk8s-controllers", "operation": "Update", "apiVersion": "v1",
                "time": "2026-12-04T10:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}]
        },
        "spec": {
            "containers": [{"name": "web", "image": "registry.example.com/web:1.27.3",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "nodeName": format!("node-{:04}", i % 5000),
            "schedulerName": "default-scheduler", "priority": 0, "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        },
        "status": {
            "phase": "Running", "podIP": format!("10.244.{}.{}", (i / 250) % 256, i % 250 + 2),
            "hostIP": format!("10.0.{}.{}", (i % 5000) / 250, (i % 5000) % 250 + 1),
            "startTime": "2026-12-04T10:00:01Z", "qosClass": "Burstable",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-12-04T10:00:01Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-04T10:00:03Z"},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-12-04T10:00:03Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-04T10:00:00Z"}],
            "containerStatuses": [{"name": "web", "ready": true, "started": true, "restartCount": 0,
                "image": "registry.example.com/web:1.27.3", "imageID": "sha256:5f0c1e3a",
                "containerID": format!("rk8s://{i:064}"),
                "state": {"running": {"startedAt": "2026-12-04T10:00:02Z"}}}]
        }
    }))
    .unwrap()
}

const PODS: &str = "/registry/pods/";

fn pod_range() -> RangeRequest {
    RangeRequest {
        key: PODS.as_bytes().to_vec(),
        range_end: b"/registry/pods0".to_vec(),
        count_only: true,
        ..RangeRequest::default()
    }
}

async fn load(store: &Store, n: usize) {
    const WRITERS: usize = 64;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(WRITERS) {
                let key = format!("{PODS}default/web-7c5ddbdf54-{i:06}");
                store.put(key.as_bytes(), &pod(i), 0, None).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Reads the pod range `page` keys at a time, each page `uncounted` or not: how long,
/// and how many keys were read.
async fn read_in_pages(store: &Store, page: i64, uncounted: bool) -> (Duration, i64) {
    let t = Instant::now();
    let mut key = PODS.as_bytes().to_vec();
    let mut read = 0;
    loop {
        let r = store
            .range(
                RangeRequest {
                    key: key.clone(),
                    range_end: b"/registry/pods0".to_vec(),
                    limit: page,
                    uncounted,
                    ..RangeRequest::default()
                },
                true,
            )
            .await
            .unwrap();
        read += r.kvs.len() as i64;
        match r.kvs.last().filter(|_| r.more) {
            Some(last) => {
                key = last.key.clone();
                key.push(0);
            }
            None => return (t.elapsed(), read),
        }
    }
}

async fn started(dir: &std::path::Path) -> Store {
    let store = server::start(MemberConfig::new(dir, free_addr()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.range(pod_range(), true).await.is_err() {
        assert!(Instant::now() < deadline, "no leader after 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store
}

fn main() {
    let n: usize = std::env::var("RK8S_BENCH_SNAPSHOT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150_000);
    let root = tempfile::Builder::new()
        .prefix("rk8s-bench-snapshot")
        .tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target"))
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let figures = runtime.block_on(async {
        let source = started(&root.path().join("source")).await;
        let loading = Instant::now();
        load(&source, n).await;
        let load_time = loading.elapsed();
        let counted = source.range(pod_range(), true).await.unwrap().count;
        assert_eq!(counted, n as i64);
        let mut pages = Vec::new();
        for uncounted in [false, true] {
            let (took, read) = read_in_pages(&source, 500, uncounted).await;
            assert_eq!(read, n as i64, "every key read");
            pages.push(took);
        }

        let copying = Instant::now();
        let state = source.state_snapshot().await.unwrap();
        let copy = copying.elapsed();
        let file = root.path().join("backup.db");
        let saving = Instant::now();
        let info = {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            let info = write_backup(&state, source.id(), &mut out).unwrap();
            out.into_inner().unwrap().sync_all().unwrap();
            info
        };
        let save = saving.elapsed();
        drop(state);
        source.shutdown();

        let restoring = Instant::now();
        let bytes = std::fs::read(&file).unwrap();
        let (_, restored) = read_backup(&bytes).unwrap();
        drop(bytes);
        let decode = restoring.elapsed();
        let target = root.path().join("restored");
        let writing = Instant::now();
        rk8s_raftstore::data_dir::restore_member(&target, restored).unwrap();
        let write_dir = writing.elapsed();
        let starting = Instant::now();
        let member = started(&target).await;
        let start = starting.elapsed();
        let restored_count = member.range(pod_range(), true).await.unwrap().count;
        assert_eq!(restored_count, n as i64, "every object restored");
        member.shutdown();
        (
            load_time, pages, copy, save, info.bytes, decode, write_dir, start,
        )
    });
    let (load_time, pages, copy, save, bytes, decode, write_dir, start) = figures;
    let page_count = n.div_ceil(500);
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "snapshot of a store with {n} pods (about 2 KB each), loaded in {:.1} s\n",
        load_time.as_secs_f64()
    );
    common::print_table(
        &["step", "time", "note"],
        &[
            vec![
                "pages of 500, each counting the rest".into(),
                format!("{:.2} s", pages[0].as_secs_f64()),
                format!(
                    "{page_count} pages, {:.1} ms each (raft thread)",
                    common::ms(pages[0]) / page_count as f64
                ),
            ],
            vec![
                "pages of 500, uncounted".into(),
                format!("{:.2} s", pages[1].as_secs_f64()),
                format!("{:.2} ms each", common::ms(pages[1]) / page_count as f64),
            ],
            vec![
                "copy (raft thread)".into(),
                format!("{:.0} ms", common::ms(copy)),
                "consistent copy, ReadIndex included".into(),
            ],
            vec![
                "save (write the file)".into(),
                format!("{:.2} s", save.as_secs_f64()),
                format!("{mib:.0} MiB, {:.0} B per object", bytes as f64 / n as f64),
            ],
            vec![
                "restore: read, check, decode".into(),
                format!("{:.2} s", decode.as_secs_f64()),
                String::new(),
            ],
            vec![
                "restore: new data directory".into(),
                format!("{:.2} s", write_dir.as_secs_f64()),
                "its log's snapshot, fsynced".into(),
            ],
            vec![
                "restored member: start to first read".into(),
                format!("{:.2} s", start.as_secs_f64()),
                String::new(),
            ],
        ],
    );
    common::write_json(
        "snapshot",
        &serde_json::json!({
            "objects": n,
            "pages_500_counted_s": pages[0].as_secs_f64(),
            "pages_500_uncounted_s": pages[1].as_secs_f64(),
            "copy_ms": common::ms(copy),
            "save_s": save.as_secs_f64(),
            "file_bytes": bytes,
            "restore_decode_s": decode.as_secs_f64(),
            "restore_write_s": write_dir.as_secs_f64(),
            "restored_start_s": start.as_secs_f64(),
        }),
    );
}
