//! Cold start benchmark (`make bench`, as root): how long a request through the
//! built-in Ingress takes when its Deployment is at zero replicas and wakes on
//! request (`scale.rk8s.io/wake-on-request`), against the same request warm.
//!
//! One `rk8s-server` and two real nodes in network namespaces (the harness of
//! `tests/scale_from_zero.rs`). The Deployment (busybox httpd, no readiness probe:
//! a pod is Ready when its container has started; `terminationGracePeriodSeconds:
//! 0`) is pinned to node `a`; every request goes through node `b`, which never has
//! its pod. The image is present (a first round, not counted, unpacks it). Then
//! [`ROUNDS`] rounds (`RK8S_BENCH_COLD_ROUNDS` sets another count): scale to zero,
//! wait until no pod of it is left and its EndpointSlice is empty, send one request
//! and time it to the end of its answer; then one warm request. The stages are
//! timed from the request's start by watches of this process (each seen when its
//! watch event arrives, so a few ms late): the Deployment's `spec.replicas` written
//! by the activation controller, the pod created, bound, its container running,
//! Ready, the EndpointSlice's endpoint ready, the answer. With 20 rounds the p99 is
//! the second-highest sample (nearest rank), close to the maximum: say so when
//! reading it.
//!
//! Prints a table and writes `target/bench/cold_start.json`. The namespaces, the
//! bridge, the processes and the pods are removed afterwards, also when the
//! benchmark fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ms, percentile, print_table, write_json};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use support::apiserver::Server;
use support::images::busybox;
use support::netns::NodeNetwork;
use support::node::{eventually, eventually_within, real_node_in};

/// Counted rounds.
const ROUNDS: usize = 20;
/// The Deployment, its Service and the host its Ingress routes.
const NAME: &str = "cold";
const HOST: &str = "cold.test";
/// busybox httpd on 8080 answering with the pod's name.
const HTTPD: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www";

/// The stages, in order, as the table names them.
const STAGES: [&str; 7] = [
    "scale written",
    "pod created",
    "pod bound",
    "container running",
    "pod Ready",
    "slice ready",
    "answer",
];

/// When each stage of the round under way was first seen.
type Seen = Arc<Mutex<BTreeMap<&'static str, Instant>>>;

fn note(seen: &Seen, stage: &'static str) {
    seen.lock()
        .unwrap()
        .entry(stage)
        .or_insert_with(Instant::now);
}

fn main() {
    let rounds = std::env::var("RK8S_BENCH_COLD_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROUNDS);
    // Declared first, dropped last: nodes are reset inside their namespaces first.
    let mut net = NodeNetwork::new();
    let server = Server::start(&["--address", &net.host_ip()]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (cold, warm, stages) = runtime.block_on(async {
        let mut agents = Vec::new();
        for (i, name) in [(1, "a"), (2, "b")] {
            let ns = net.add_node(i);
            agents.push(real_node_in(&server, name, 85 + i, Some(ns), &[]).await);
        }
        let through = format!("{}:80", net.node_ip(2));
        let admin = server.client().await;
        deploy(&admin).await;
        let seen: Seen = Arc::default();
        let _watches = watch_stages(&admin, seen.clone());
        let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "default");
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        let mut stages: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        // Round 0 unpacks the image: not counted.
        for round in 0..=rounds {
            to_zero(&admin, &deployments).await;
            seen.lock().unwrap().clear();
            let at = through.clone();
            let started = Instant::now();
            let (status, head) = tokio::task::spawn_blocking(move || get(&at))
                .await
                .unwrap()
                .expect("the cold request is answered");
            let took = started.elapsed();
            assert!(status.contains(" 200 "), "round {round}: {status}\n{head}");
            assert!(head.contains("x-rk8s-cold-start: true"), "{head}");
            note(&seen, "answer");
            let at = through.clone();
            let warm_started = Instant::now();
            let (status, _) = tokio::task::spawn_blocking(move || get(&at))
                .await
                .unwrap()
                .expect("the warm request is answered");
            let warm_took = warm_started.elapsed();
            assert!(status.contains(" 200 "), "{status}");
            eprintln!("round {round}: cold {took:.2?}, warm {warm_took:.2?}");
            if round == 0 {
                continue;
            }
            cold.push(took);
            warm.push(warm_took);
            let got = seen.lock().unwrap().clone();
            for stage in STAGES {
                if let Some(t) = got.get(stage) {
                    let offset = t.saturating_duration_since(started);
                    stages.entry(stage).or_default().push(offset);
                }
            }
        }
        drop(agents);
        (cold, warm, stages)
    });
    drop(runtime);
    drop(server);
    drop(net);
    report(&cold, &warm, &stages);
}

/// The wakeable Deployment at zero on node `a` (never scaled down by idleness: the
/// benchmark does it), its Service and Ingress; waits until the activation
/// controller has marked the Service.
async fn deploy(admin: &kube::Client) {
    let post = PostParams::default();
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": NAME, "annotations": {
            "scale.rk8s.io/wake-on-request": "true", "scale.rk8s.io/idle-after": "0"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {"metadata": {"labels": {"app": NAME}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "nodeSelector": {"kubernetes.io/hostname": "a"},
                "containers": [{"name": "c", "image": busybox(), "command": ["sh", "-c", HTTPD],
                    "ports": [{"name": "http", "containerPort": 8080}]}]
            }}
        }
    }))
    .unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": NAME},
        "spec": {"selector": {"app": NAME}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .unwrap();
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": NAME},
        "spec": {"rules": [{"host": HOST, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": NAME, "port": {"number": 80}}}}]}}]}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(admin.clone(), "default")
        .create(&post, &deployment)
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(admin.clone(), "default");
    services.create(&post, &service).await.unwrap();
    Api::<Ingress>::namespaced(admin.clone(), "default")
        .create(&post, &ingress)
        .await
        .unwrap();
    eventually("the Service marked for activation", async || {
        let a = services.get(NAME).await.ok()?.metadata.annotations?;
        a.contains_key(rk8s_api::activation::ACTIVATION_TIMEOUT)
            .then_some(())
    })
    .await;
}

/// Scales to zero and waits until no pod is left and the slice is empty (then a
/// second for the nodes' tables).
async fn to_zero(admin: &kube::Client, deployments: &Api<Deployment>) {
    let zero = json!({"spec": {"replicas": 0}});
    deployments
        .patch_scale(NAME, &PatchParams::default(), &Patch::Merge(&zero))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), "default");
    let selected = ListParams::default().labels(&format!("app={NAME}"));
    let of_service = ListParams::default().labels(&format!("kubernetes.io/service-name={NAME}"));
    eventually_within("no pod left", Duration::from_secs(60), async || {
        let left = pods.list(&selected).await.ok()?.items.len();
        let endpoints: usize = slices
            .list(&of_service)
            .await
            .ok()?
            .items
            .iter()
            .map(|s| s.endpoints.len())
            .sum();
        (left == 0 && endpoints == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Watches the Deployment, its pods and its slices, noting each stage in `seen`.
fn watch_stages(admin: &kube::Client, seen: Seen) -> Vec<AbortOnDrop> {
    let mut tasks = Vec::new();
    let config = watcher::Config::default();
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), "default");
    let s = seen.clone();
    let c = config.clone().fields(&format!("metadata.name={NAME}"));
    tasks.push(AbortOnDrop(tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher::watcher(deployments, c));
        while let Some(e) = events.next().await {
            if let Ok(watcher::Event::Apply(d)) = e
                && d.spec.and_then(|s| s.replicas).unwrap_or(0) > 0
            {
                note(&s, "scale written");
            }
        }
    })));
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let s = seen.clone();
    let c = config.clone().labels(&format!("app={NAME}"));
    tasks.push(AbortOnDrop(tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher::watcher(pods, c));
        while let Some(e) = events.next().await {
            let Ok(watcher::Event::Apply(p)) = e else {
                continue;
            };
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            note(&s, "pod created");
            if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                note(&s, "pod bound");
            }
            let status = p.status.unwrap_or_default();
            let running = status
                .container_statuses
                .iter()
                .flatten()
                .any(|c| c.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
            if running {
                note(&s, "container running");
            }
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                note(&s, "pod Ready");
            }
        }
    })));
    let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), "default");
    let c = config.labels(&format!("kubernetes.io/service-name={NAME}"));
    tasks.push(AbortOnDrop(tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher::watcher(slices, c));
        while let Some(e) = events.next().await {
            let Ok(watcher::Event::Apply(slice)) = e else {
                continue;
            };
            let ready = slice
                .endpoints
                .iter()
                .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false));
            if ready {
                note(&seen, "slice ready");
            }
        }
    })));
    tasks
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One GET of `/` for [`HOST`] at `address` (HTTP/1.0), read to its end: the status
/// line and the head (lower case).
fn get(address: &str) -> Option<(String, String)> {
    let mut stream =
        std::net::TcpStream::connect_timeout(&address.parse().ok()?, Duration::from_secs(2))
            .ok()?;
    stream.set_nodelay(true).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .ok()?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {HOST}\r\n\r\n").ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, _) = reply.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), head.to_ascii_lowercase()))
}

fn report(cold: &[Duration], warm: &[Duration], stages: &BTreeMap<&str, Vec<Duration>>) {
    let sorted = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let mut rows = Vec::new();
    let mut json_stages = serde_json::Map::new();
    for stage in STAGES {
        let Some(v) = stages.get(stage) else {
            rows.push(vec![
                format!("  {stage}"),
                "-".into(),
                "-".into(),
                "0".into(),
            ]);
            continue;
        };
        let v = sorted(v);
        let (p50, p99) = (percentile(&v, 0.5), percentile(&v, 0.99));
        rows.push(vec![
            format!("  {stage}"),
            format!("{:.1}", ms(p50)),
            format!("{:.1}", ms(p99)),
            v.len().to_string(),
        ]);
        json_stages.insert(
            stage.to_string(),
            json!({"p50_ms": ms(p50), "p99_ms": ms(p99), "samples": v.len()}),
        );
    }
    let (cold, warm) = (sorted(cold), sorted(warm));
    let line = |name: &str, v: &[Duration]| {
        vec![
            name.to_string(),
            format!("{:.1}", ms(percentile(v, 0.5))),
            format!("{:.1}", ms(percentile(v, 0.99))),
            v.len().to_string(),
        ]
    };
    let mut table = vec![line("cold: request → answer", &cold)];
    table.push(vec!["stages, from the request's start:".into()]);
    table.extend(rows);
    table.push(line("warm: request → answer", &warm));
    println!();
    print_table(&["case", "p50 ms", "p99 ms", "samples"], &table);
    let value = json!({
        "rounds": cold.len(),
        "cold": {"p50_ms": ms(percentile(&cold, 0.5)), "p99_ms": ms(percentile(&cold, 0.99)),
                 "max_ms": ms(cold.last().copied().unwrap_or_default()),
                 "samples_ms": cold.iter().map(|d| ms(*d)).collect::<Vec<_>>()},
        "warm": {"p50_ms": ms(percentile(&warm, 0.5)), "p99_ms": ms(percentile(&warm, 0.99))},
        "stages": json_stages,
    });
    write_json("cold_start", &value);
}
