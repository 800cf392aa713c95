//! Write throughput and latency of the store: 256-byte values, fsync on, members on
//! loopback (in this process, talking TCP), 1 and 3 members, 1, 16 and 256 concurrent
//! clients. Prints a table and writes `target/bench/raftstore-writes.json`.
//!
//! Run with `make bench` (or `cargo bench -p rk8s-raftstore --bench writes`);
//! `BENCH_SECONDS` sets the time per row (default 5).

// A benchmark may stop on any failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rk8s_raftstore::client::StoreClient;
use rk8s_raftstore::server::{self, MemberConfig};

fn free_addr() -> std::net::SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Row {
    members: usize,
    concurrency: usize,
    writes: usize,
    seconds: f64,
    p50_us: u64,
    p99_us: u64,
}

async fn cluster(root: &std::path::Path, members: usize) -> (Vec<server::Store>, String) {
    let first = free_addr();
    let mut stores = vec![
        server::start(MemberConfig::new(root.join("m0"), first))
            .await
            .unwrap(),
    ];
    let leader = first.to_string();
    wait_for_voters(&leader, 1).await;
    for i in 1..members {
        let mut cfg = MemberConfig::new(root.join(format!("m{i}")), free_addr());
        cfg.join = Some(leader.clone());
        stores.push(server::start(cfg).await.unwrap());
        wait_for_voters(&leader, i + 1).await;
    }
    (stores, leader)
}

async fn wait_for_voters(addr: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(c) = StoreClient::connect(addr).await
            && let Ok(s) = c.status().await
            && s.leader == s.id
            && s.voters.len() == n
            && s.learners.is_empty()
        {
            return;
        }
        assert!(Instant::now() < deadline, "cluster did not form");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run(members: usize, concurrency: usize, seconds: f64) -> Row {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/bench/tmp")
        .join(format!("writes-{members}-{concurrency}"));
    let _ = std::fs::remove_dir_all(&root);
    let (stores, leader) = cluster(&root, members).await;
    let stop = Arc::new(AtomicBool::new(false));
    let value = vec![b'x'; 256];
    let mut tasks = Vec::new();
    // A few connections shared by the clients, as a real API server would use.
    let conns: Vec<StoreClient> = {
        let mut v = Vec::new();
        for _ in 0..concurrency.clamp(1, 8) {
            v.push(StoreClient::connect(&leader).await.unwrap());
        }
        v
    };
    let start = Instant::now();
    for c in 0..concurrency {
        let client = conns[c % conns.len()].clone();
        let stop = stop.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("/bench/{c}/{i}");
                let t = Instant::now();
                client.put(key.as_bytes(), &value).await.unwrap();
                latencies.push(t.elapsed().as_micros() as u64);
                i += 1;
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    for s in &stores {
        s.shutdown();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = std::fs::remove_dir_all(&root);
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Row {
        members,
        concurrency,
        writes: all.len(),
        seconds: elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut rows = Vec::new();
    println!(
        "{:>7} {:>11} {:>10} {:>10} {:>10} {:>10}",
        "members", "concurrency", "writes", "writes/s", "p50 ms", "p99 ms"
    );
    for members in [1, 3] {
        for concurrency in [1, 16, 256] {
            let row = runtime.block_on(run(members, concurrency, seconds));
            println!(
                "{:>7} {:>11} {:>10} {:>10.0} {:>10.2} {:>10.2}",
                row.members,
                row.concurrency,
                row.writes,
                row.writes as f64 / row.seconds,
                row.p50_us as f64 / 1000.0,
                row.p99_us as f64 / 1000.0
            );
            rows.push(row);
        }
    }
    let json = serde_json::json!({
        "benchmark": "raftstore-writes",
        "value_bytes": 256,
        "fsync": true,
        "seconds_per_row": seconds,
        "rows": rows.iter().map(|r| serde_json::json!({
            "members": r.members,
            "concurrency": r.concurrency,
            "writes": r.writes,
            "writes_per_second": r.writes as f64 / r.seconds,
            "p50_ms": r.p50_us as f64 / 1000.0,
            "p99_ms": r.p99_us as f64 / 1000.0,
        })).collect::<Vec<_>>(),
    });
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("raftstore-writes.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("wrote {}", path.display());
}
