//! Scheduler benchmark (`make bench`): end to end through the API and the store, as
//! kube-scheduler's scheduler_perf SchedulingBasic measures it. A real `rk8s-server`
//! and N simulated nodes (`rk8s-node simulate`); pods are created through the API (64
//! requests in flight) and counted when a watch shows them bound.
//!
//! Reports per case: pods/s (pods ÷ time from the first create to the last binding),
//! the mean of per-second binding rates while pods were pending (scheduler_perf's
//! SchedulingThroughput), per-pod create → bound latency p50/p99, the CPU seconds of
//! the server's `control-plane` thread and of the whole server, and the server's peak
//! RSS. The `control-plane` thread runs the scheduler *and* every controller and the
//! shared informers; the threads that filter nodes in parallel (`sched-filter-N`,
//! from 512 nodes on) are not in it (they are in the server's figure). Then what the
//! store retains at the end (`rk8s_store_bytes`: keys and values as written, history
//! until compaction included; what they take in memory, `rk8s_store_held_bytes`; and
//! its revisions), the creates' latency p99 (request to
//! answer), when the last pod was seen Running (the simulated nodes report it), the
//! p99 of every kind of write the server answered while the case ran (its
//! `apiserver_request_duration_seconds` histogram, kube-apiserver's latency SLI, for
//! create, update, patch and delete by resource: the clients' creates, the
//! scheduler's bindings, the nodes' status and Lease writes, the Events), and the time
//! of a list of every pod in pages of 500 once all are bound, and how many times the
//! shared pod informer listed every pod (more than once: its watch fell behind past
//! the compacted history).
//! Prints a table and writes `target/bench/scheduler.json`.
//!
//! `RK8S_BENCH_SCHEDULER=100x1000` runs only the cases given (NODESxPODS, comma
//! separated).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    cpu_seconds, for_each_page, histogram_quantile, ms, peak_rss_mib, percentile, print_rows,
    write_json,
};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use support::apiserver::{Server, metric_sample};
use support::node::simulate;

const CASES: [(usize, usize); 4] = [
    (100, 10_000),
    (1_000, 10_000),
    (5_000, 10_000),
    (5_000, 30_000),
];

fn pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p-{i}"), "labels": {"bench": "scheduler"}},
        "spec": {"automountServiceAccountToken": false,
                 "containers": [{"name": "c", "image": "busybox",
                                 "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]},
    }))
    .unwrap()
}

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

/// Notes when `p` was first seen bound and Running.
fn seen(p: &Pod, bound: &Seen, running: &Seen) {
    let name = p.metadata.name.clone().unwrap();
    if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
        bound
            .lock()
            .unwrap()
            .entry(name.clone())
            .or_insert_with(Instant::now);
    }
    if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
        running
            .lock()
            .unwrap()
            .entry(name)
            .or_insert_with(Instant::now);
    }
}

/// Every pod of the case listed (pages of 5,000) and [`seen`]; the list's
/// resourceVersion.
async fn relist(pods: &Api<Pod>, bound: &Seen, running: &Seen) -> String {
    let first = ListParams::default().labels("bench=scheduler").limit(5_000);
    let mut params = first.clone();
    loop {
        let Ok(page) = pods.list(&params).await else {
            // From the start (a continue token can expire too).
            tokio::time::sleep(Duration::from_millis(100)).await;
            params = first.clone();
            continue;
        };
        page.items.iter().for_each(|p| seen(p, bound, running));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(next) => params = params.continue_token(&next),
            None => return page.metadata.resource_version.unwrap_or_default(),
        }
    }
}

struct Row {
    nodes: usize,
    pods: usize,
    create_per_s: f64,
    pods_per_s: f64,
    throughput: f64,
    p50: Duration,
    p99: Duration,
    /// Creates: the 99th percentile of their latency (request to answer).
    create_p99: Duration,
    /// From the first create until the last pod was seen Running.
    running_seconds: f64,
    /// The writes' latency p99 by `verb resource[/subresource]` (the server's
    /// histogram over the whole case), worst first.
    writes_p99: Vec<(String, Duration, f64)>,
    /// The share of all writes answered within 1 s.
    writes_within_1s: f64,
    /// A list of every pod in pages of 500, once all are bound.
    list_seconds: f64,
    /// The `control-plane` thread: scheduler, controllers, informers.
    control_plane_cpu: f64,
    server_cpu: f64,
    rss_mib: f64,
    /// The store's retained keys and values at the end (`rk8s_store_bytes`, measured
    /// every 5 s), and their revisions, history included.
    store_mib: f64,
    /// What they take in memory (`rk8s_store_held_bytes`: values compressed).
    store_held_mib: f64,
    store_revisions: f64,
    /// Lists of every pod the shared pod informer began (1: its watch never fell
    /// behind past the compacted history).
    pod_lists: f64,
}

async fn case(nodes: usize, count: usize) -> Row {
    let server = Server::start(&[
        "--max-requests-inflight",
        "0",
        "--max-mutating-requests-inflight",
        "0",
    ]);
    let client = server.client().await;
    let _sim = simulate(
        &server,
        &[
            "--count",
            &nodes.to_string(),
            "--cpu",
            "64",
            "--memory",
            "512Gi",
            "--pods",
            &(count / nodes + 20).max(110).to_string(),
            "--concurrency",
            "64",
        ],
    );
    let node_api: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let have = node_api
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        if have == nodes {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {have}/{nodes} nodes registered"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rv = pods
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let bound: Seen = Arc::default();
    let running: Seen = Arc::default();
    let watcher = {
        let (pods, bound, running) = (pods.clone(), bound.clone(), running.clone());
        tokio::spawn(async move {
            let mut rv = rv;
            loop {
                let params = WatchParams::default().labels("bench=scheduler").timeout(60);
                let Ok(stream) = pods.watch(&params, &rv).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let mut stream = stream.boxed();
                while let Some(Ok(event)) = stream.next().await {
                    match event {
                        WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                            rv = p.metadata.resource_version.clone().unwrap_or(rv);
                            seen(&p, &bound, &running);
                        }
                        // Compacted past `rv` while this watcher lagged: the pods as
                        // they are now, and changes after that.
                        WatchEvent::Error(e) if e.code == 410 => {
                            rv = relist(&pods, &bound, &running).await;
                        }
                        _ => {}
                    }
                }
            }
        })
    };
    let (cpu0, sched0) = cpu_seconds(server.pid(), "control-plane");
    let begin = Instant::now();
    let created_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Bindings per second, sampled while pods are pending (created, not yet bound).
    let sampler = {
        let (bound, created_count) = (bound.clone(), created_count.clone());
        tokio::spawn(async move {
            let mut rates = Vec::new();
            let mut last = 0;
            let deadline = Instant::now() + Duration::from_secs(1800);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = bound.lock().unwrap().len();
                if created_count.load(std::sync::atomic::Ordering::Relaxed) > last {
                    rates.push((now - last) as f64);
                }
                last = now;
                if now >= count {
                    return rates;
                }
                assert!(Instant::now() < deadline, "only {now}/{count} pods bound");
            }
        })
    };
    let creates: Vec<(String, Instant, Duration)> = futures_util::stream::iter(0..count)
        .map(|i| {
            let (pods, created_count) = (pods.clone(), created_count.clone());
            async move {
                let asked = Instant::now();
                pods.create(&PostParams::default(), &pod(i)).await.unwrap();
                created_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (format!("p-{i}"), Instant::now(), asked.elapsed())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut create_latencies: Vec<Duration> = creates.iter().map(|c| c.2).collect();
    create_latencies.sort();
    let created: HashMap<String, Instant> = creates.into_iter().map(|(n, at, _)| (n, at)).collect();
    let creating = begin.elapsed();
    let rates = sampler.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let now = running.lock().unwrap().len();
        if now >= count {
            break;
        }
        assert!(Instant::now() < deadline, "only {now}/{count} pods Running");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    watcher.abort();
    let running_seconds = running
        .lock()
        .unwrap()
        .values()
        .max()
        .map_or(0.0, |at| at.duration_since(begin).as_secs_f64());
    let bound = bound.lock().unwrap().clone();
    let finished = bound.values().max().copied().unwrap_or(begin);
    let mut latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(name, at)| bound.get(name).map(|b| b.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    let (cpu1, sched1) = cpu_seconds(server.pid(), "control-plane");
    // Every pod, in pages of 500 (kubectl's chunk size), as a client lists them.
    let listing = Instant::now();
    let mut listed = 0;
    for_each_page(&pods, &ListParams::default(), |page| listed += page.len()).await;
    assert_eq!(listed, count, "the paginated list of every pod");
    let list_seconds = listing.elapsed().as_secs_f64();
    let rss_mib = peak_rss_mib(server.pid());
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let metrics = client.request_text(req).await.unwrap();
    let (writes_p99, writes_within_1s) = writes(&metrics);
    let throughput = if rates.is_empty() {
        0.0
    } else {
        rates.iter().sum::<f64>() / rates.len() as f64
    };
    Row {
        nodes,
        pods: count,
        create_per_s: count as f64 / creating.as_secs_f64(),
        pods_per_s: count as f64 / finished.duration_since(begin).as_secs_f64(),
        throughput,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        create_p99: percentile(&create_latencies, 0.99),
        running_seconds,
        writes_p99,
        writes_within_1s,
        list_seconds,
        control_plane_cpu: sched1 - sched0,
        server_cpu: cpu1 - cpu0,
        rss_mib,
        store_mib: metric_sample(&metrics, "rk8s_store_bytes") / (1 << 20) as f64,
        store_held_mib: metric_sample(&metrics, "rk8s_store_held_bytes") / (1 << 20) as f64,
        store_revisions: metric_sample(&metrics, "rk8s_store_revisions"),
        pod_lists: metric_sample(&metrics, "rk8s_informer_lists_total{resource=\"pods\"}"),
    }
}

/// The writes' latency from the server's `apiserver_request_duration_seconds`
/// buckets: per `verb resource[/subresource]` (create, update, patch, delete), the
/// 99th percentile as Prometheus' `histogram_quantile` interpolates it and the number
/// of requests, worst first; and the share of all of them answered within 1 s.
fn writes(text: &str) -> (Vec<(String, Duration, f64)>, f64) {
    const VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
    let label = |labels: &str, key: &str| -> String {
        labels
            .split(',')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix("=\""))
            .map(|v| v.trim_end_matches('"').to_string())
            .unwrap_or_default()
    };
    // (verb, resource/subresource) → [(le, cumulative count)].
    let mut series: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_duration_seconds_bucket{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let verb = label(labels, "verb");
        if !VERBS.contains(&verb.as_str()) {
            continue;
        }
        let le = label(labels, "le");
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::INFINITY)
        };
        let (resource, sub) = (label(labels, "resource"), label(labels, "subresource"));
        let key = if sub.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{sub}")
        };
        let count: f64 = value.trim().parse().unwrap_or(0.0);
        series.entry(key).or_default().push((le, count));
    }
    let (mut all, mut within) = (0.0, 0.0);
    let mut out: Vec<(String, Duration, f64)> = series
        .into_iter()
        .filter_map(|(key, mut buckets)| {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let total = buckets.last()?.1;
            if total == 0.0 {
                return None;
            }
            all += total;
            within += buckets
                .iter()
                .filter(|(le, _)| *le <= 1.0)
                .map(|(_, c)| *c)
                .next_back()
                .unwrap_or(0.0);
            let p99 = histogram_quantile(&buckets, 0.99);
            Some((key, Duration::from_secs_f64(p99), total))
        })
        .collect();
    out.sort_by_key(|w| std::cmp::Reverse(w.1));
    let share = if all > 0.0 { within / all } else { 1.0 };
    (out, share)
}

/// The scheduling cycle alone, in this process (no API, no binding): pods/s through
/// `Scheduler::schedule` + `Cache::assume` with the default profile.
fn algorithm_only(nodes: usize, pods: usize) -> f64 {
    use rk8s_scheduler::cache::Cache;
    use rk8s_scheduler::framework::PodInfo;
    let profile = rk8s_scheduler::profile::build(
        &Default::default(),
        &rk8s_scheduler::plugins::Registry::default(),
    )
    .unwrap()
    .remove(0);
    let mut cache = Cache::default();
    for i in 0..nodes {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("n-{i}"), "labels": {"kubernetes.io/hostname": format!("n-{i}")}},
            "status": {"allocatable": {"cpu": "64", "memory": "512Gi", "pods": "110"}},
        }))
        .unwrap();
        cache.upsert_node(Arc::new(node));
    }
    let mut scheduler = rk8s_scheduler::core::Scheduler::default();
    let infos: Vec<Arc<PodInfo>> = (0..pods)
        .map(|i| {
            let mut p = pod(i);
            p.metadata.namespace = Some("default".into());
            Arc::new(PodInfo::new(Arc::new(p)))
        })
        .collect();
    let begin = Instant::now();
    for info in infos {
        let decision = scheduler.schedule(&profile, &info, cache.nodes()).unwrap();
        cache.assume(info, &decision.node);
    }
    pods as f64 / begin.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cases: Vec<(usize, usize)> = match std::env::var("RK8S_BENCH_SCHEDULER") {
        Ok(list) => list
            .split(',')
            .filter_map(|c| {
                let (n, p) = c.split_once('x')?;
                Some((n.trim().parse().ok()?, p.trim().parse().ok()?))
            })
            .collect(),
        Err(_) => CASES.to_vec(),
    };
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    for (nodes, pods) in cases {
        let r = case(nodes, pods).await;
        rows.push((
            format!("{} nodes × {} pods", r.nodes, r.pods),
            format!(
                "{:>6.0} pods/s   (created {:>6.0}/s)   mean {:>6.0}/s   p50 {:>8.1} ms   p99 {:>8.1} ms   control-plane thread {:>6.1} s CPU   server {:>6.1} s CPU   RSS {:>6.0} MiB   store {:>5.0} MiB (held in {:>4.0} MiB) in {:>7.0} revisions   create p99 {:>7.1} ms   all Running {:>6.1} s   writes ≤ 1 s {:>6.2} %   list {:>5.1} s   pod informer lists {:>2.0}",
                r.pods_per_s, r.create_per_s, r.throughput, ms(r.p50), ms(r.p99), r.control_plane_cpu, r.server_cpu, r.rss_mib, r.store_mib, r.store_held_mib, r.store_revisions, ms(r.create_p99), r.running_seconds, r.writes_within_1s * 100.0, r.list_seconds, r.pod_lists
            ),
        ));
        let worst: Vec<String> = r
            .writes_p99
            .iter()
            .take(6)
            .map(|(key, p99, n)| format!("{key} {:.1} ms ({n:.0})", ms(*p99)))
            .collect();
        rows.push((
            "  writes' p99 (server), worst first".to_string(),
            worst.join(", "),
        ));
        json_rows.push(json!({
            "nodes": r.nodes, "pods": r.pods, "podsPerSecond": r.pods_per_s,
            "createdPerSecond": r.create_per_s,
            "meanBindingsPerSecond": r.throughput, "p50Ms": ms(r.p50), "p99Ms": ms(r.p99),
            "controlPlaneThreadCpuSeconds": r.control_plane_cpu, "serverCpuSeconds": r.server_cpu,
            "serverPeakRssMiB": r.rss_mib, "storeMiB": r.store_mib, "storeHeldMiB": r.store_held_mib,
            "storeRevisions": r.store_revisions, "createP99Ms": ms(r.create_p99),
            "allRunningSeconds": r.running_seconds,
            "writesWithin1s": r.writes_within_1s,
            "writesP99Ms": r.writes_p99.iter()
                .map(|(key, p99, n)| json!({"write": key, "p99Ms": ms(*p99), "requests": n}))
                .collect::<Vec<_>>(),
            "paginatedListSeconds": r.list_seconds,
            "podInformerLists": r.pod_lists,
        }));
        for (what, figures) in &rows[rows.len() - 2..] {
            println!("{what}   {figures}");
        }
    }
    let mut algorithm = Vec::new();
    for (nodes, pods) in [(100, 10_000), (1_000, 10_000), (5_000, 10_000)] {
        let rate = algorithm_only(nodes, pods);
        rows.push((
            format!("cycle only: {nodes} nodes × {pods} pods"),
            format!("{rate:>6.0} pods/s (in process: no API, no binding)"),
        ));
        algorithm.push(json!({"nodes": nodes, "pods": pods, "podsPerSecond": rate}));
    }
    println!("\nscheduler: pods through the API to bound (goal ≥ 2,700 pods/s at 5,000 nodes)");
    print_rows(&rows);
    write_json(
        "scheduler",
        &json!({"cases": json_rows, "cycleOnly": algorithm}),
    );
}
