//! API server benchmark (`make bench`): a real one-member `rk8s-server` over HTTPS,
//! driven by the `kube` client from this process.
//!
//! - create-pod latency (p50, p99) and rate with 1 and 64 concurrent clients;
//! - listing 10,000 pods (`RK8S_BENCH_API_LIST=N`: N) in one request and in pages of
//!   500: the median time, and how far the server's RSS rose above what it was
//!   before (its peak, `VmHWM`, started again from its RSS by `clear_refs`);
//! - a scrape of `/metrics` with those pods (their kube-state-metrics series): the
//!   median time of three, and the server's RSS rise over them;
//! - a watch from resourceVersion "0" over those pods: the time until the last
//!   initial `ADDED` event, and the server's RSS rise;
//! - 1,000 concurrent watchers receiving one write: delivery latency p50/p99/max.
//!
//! Prints a table and writes `target/bench/api.json`. Client and server share this
//! machine's cores, so client work (TLS, JSON) is inside every number.
//! `RK8S_BENCH_API_QUICK=1` (`make bench-quick`) runs only the creates, with 300 and
//! 2,000 pods.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pods::create_pods;
use common::{for_each_page, ms, peak_rss_mib, percentile, reset_peak_rss, rss_mib, write_json};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    let child = Command::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--port", &free_port().to_string()])
        .args(["--peer-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--admin-kubeconfig")
        .arg(&kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("failed to start rk8s-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(Instant::now() < deadline, "rk8s-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        _dir: dir,
        kubeconfig,
    }
}

async fn client(path: &PathBuf) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn print_rows(rows: &[(String, String, String)]) {
    println!("\nrk8s API server, one member, HTTPS on loopback (client in the same machine)\n");
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    for (a, b, c) in rows {
        println!("{a:<w0$}   {b:<w1$}   {c}");
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let server = start();
    let kube = client(&server.kubeconfig).await;
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "default");
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut json_rows = Vec::new();

    let quick = std::env::var_os("RK8S_BENCH_API_QUICK").is_some();
    // Warm up connections and caches.
    create_pods(&pods, "warm", 50, 4).await;
    let cases: [(usize, usize); 2] = if quick {
        [(1, 300), (64, 2000)]
    } else {
        [(1, 1000), (64, 4000)]
    };
    for (clients, total) in cases {
        let (lat, wall) = create_pods(&pods, &format!("c{clients}"), total, clients).await;
        let rate = total as f64 / wall.as_secs_f64();
        eprintln!("create pod, {clients} client(s): done");
        rows.push((
            format!("create pod, {clients} client(s)"),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms",
                ms(percentile(&lat, 0.5)),
                ms(percentile(&lat, 0.99))
            ),
            format!("{rate:.0} creates/s ({total} pods)"),
        ));
        json_rows.push(json!({"case": "create_pod", "clients": clients, "pods": total,
            "p50_ms": ms(percentile(&lat, 0.5)), "p99_ms": ms(percentile(&lat, 0.99)), "per_second": rate}));
    }

    if quick {
        print_rows(&rows);
        write_json("api", &json!({"benchmark": "api", "rows": json_rows}));
        return;
    }

    // Fill up to that many pods, then list them.
    let listed: usize = std::env::var("RK8S_BENCH_API_LIST")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let have = pods.list(&ListParams::default()).await.unwrap().items.len();
    create_pods(&pods, "fill", listed.saturating_sub(have), 64).await;
    // What the server holds above its resident set while it answers: its peak over
    // the lists, started again from its RSS before them. First the creates' aftermath
    // settles (the scheduler and the controllers see the pods), and the server's rise
    // with no list is measured over 2 s, so that a rise can be put down to the lists.
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = rss_mib(pid);
    reset_peak_rss(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_peak = (peak_rss_mib(pid) - before).max(0.0);
    let before = rss_mib(pid);
    reset_peak_rss(pid);
    let mut whole = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let list = pods.list(&ListParams::default()).await.unwrap();
        whole.push(t.elapsed());
        assert_eq!(list.items.len(), listed);
    }
    whole.sort();
    let whole_peak = (peak_rss_mib(pid) - before).max(0.0);
    let before = rss_mib(pid);
    reset_peak_rss(pid);
    let mut paged = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut count = 0;
        for_each_page(&pods, &ListParams::default(), |page| count += page.len()).await;
        paged.push(t.elapsed());
        assert_eq!(count, listed);
    }
    paged.sort();
    let paged_peak = (peak_rss_mib(pid) - before).max(0.0);
    rows.push((
        format!("list {listed} pods"),
        format!(
            "median {:.0} ms, server peak +{whole_peak:.0} MiB (one request)",
            ms(percentile(&whole, 0.5))
        ),
        format!(
            "median {:.0} ms, +{paged_peak:.0} MiB (pages of 500; idle 2 s: +{idle_peak:.0} MiB)",
            ms(percentile(&paged, 0.5))
        ),
    ));
    json_rows.push(
        json!({"case": "list_pods", "pods": listed, "median_ms": ms(percentile(&whole, 0.5)),
        "server_peak_added_mib": whole_peak,
        "paged_500_median_ms": ms(percentile(&paged, 0.5)),
        "paged_500_server_peak_added_mib": paged_peak,
        "idle_2s_server_peak_added_mib": idle_peak}),
    );

    // A Prometheus scrape of /metrics: the server's own series and the objects'
    // (kube-state-metrics' pod series, eight lines a pod).
    let before = rss_mib(pid);
    reset_peak_rss(pid);
    let mut scrapes = Vec::new();
    let mut size = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = kube.request_text(req).await.unwrap();
        scrapes.push(t.elapsed());
        size = text.len();
        let phases = text
            .lines()
            .filter(|l| l.starts_with("kube_pod_status_phase{"))
            .count();
        assert_eq!(phases, listed * 5, "every pod's five phases");
    }
    scrapes.sort();
    let scrape_peak = (peak_rss_mib(pid) - before).max(0.0);
    rows.push((
        format!("scrape /metrics ({listed} pods)"),
        format!(
            "median {:.0} ms, server peak +{scrape_peak:.0} MiB",
            ms(percentile(&scrapes, 0.5))
        ),
        format!("{:.1} MiB of text", size as f64 / (1 << 20) as f64),
    ));
    json_rows.push(
        json!({"case": "scrape_metrics", "pods": listed, "median_ms": ms(percentile(&scrapes, 0.5)),
        "server_peak_added_mib": scrape_peak, "bytes": size}),
    );

    // A watch from resourceVersion "0": every pod as ADDED, then the changes (the
    // PyPI client's `watch.stream` and kubectl's `get -w --watch-only` start so).
    let before = rss_mib(pid);
    reset_peak_rss(pid);
    let t = Instant::now();
    let mut stream = pods
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let mut added = 0;
    while added < listed {
        match stream.next().await {
            Some(Ok(WatchEvent::Added(_))) => added += 1,
            other => panic!("not an ADDED event: {other:?}"),
        }
    }
    let initial = t.elapsed();
    drop(stream);
    let watch_peak = (peak_rss_mib(pid) - before).max(0.0);
    rows.push((
        format!("watch from \"0\" ({listed} pods)"),
        format!(
            "{:.0} ms to the last ADDED, server peak +{watch_peak:.0} MiB",
            ms(initial)
        ),
        String::new(),
    ));
    json_rows.push(
        json!({"case": "watch_initial", "pods": listed, "ms": ms(initial),
        "server_peak_added_mib": watch_peak}),
    );

    // 1,000 watchers, one write at a time.
    let target = "c1-0";
    // From the collection's revision now: the pod's own is long compacted away.
    let rv = pods
        .list_metadata(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let watchers = 1000;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut handles = Vec::new();
    // Watches are opened 50 at a time (each is a TLS connection): the point is the
    // fan-out of one write, not a connection storm.
    for batch in 0..watchers / 50 {
        let ready = Arc::new(tokio::sync::Barrier::new(51));
        for i in 0..50 {
            let w = batch * 50 + i;
            let api: Api<Pod> = Api::namespaced(kube.clone(), "default");
            let tx = tx.clone();
            let rv = rv.clone();
            let ready = ready.clone();
            handles.push(tokio::spawn(async move {
                let wp = WatchParams::default().fields(&format!("metadata.name={target}"));
                let stream = api.watch(&wp, &rv).await;
                ready.wait().await;
                let mut stream = stream.unwrap().boxed();
                while let Some(ev) = stream.next().await {
                    if let Ok(WatchEvent::Modified(_)) = ev {
                        let _ = tx.send((w, Instant::now()));
                    }
                }
            }));
        }
        ready.wait().await;
    }
    // Let every watch reach the server's cache before writing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut delivery = Vec::new();
    for round in 0..5 {
        let sent = Instant::now();
        pods.patch(
            target,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"round": round.to_string()}}})),
        )
        .await
        .unwrap();
        let mut got = 0;
        while got < watchers {
            let (_, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("watchers did not all receive the write")
                .unwrap();
            delivery.push(at - sent);
            got += 1;
        }
    }
    for h in handles {
        h.abort();
    }
    delivery.sort();
    rows.push((
        format!("{watchers} watchers, one write (×5)"),
        format!(
            "p50 {:.1} ms, p99 {:.1} ms",
            ms(percentile(&delivery, 0.5)),
            ms(percentile(&delivery, 0.99))
        ),
        format!(
            "max {:.1} ms",
            ms(*delivery.last().unwrap_or(&Duration::ZERO))
        ),
    ));
    json_rows.push(
        json!({"case": "watch_fanout", "watchers": watchers, "writes": 5,
        "p50_ms": ms(percentile(&delivery, 0.5)), "p99_ms": ms(percentile(&delivery, 0.99)),
        "max_ms": ms(*delivery.last().unwrap_or(&Duration::ZERO))}),
    );

    print_rows(&rows);
    write_json("api", &json!({"benchmark": "api", "rows": json_rows}));
}
