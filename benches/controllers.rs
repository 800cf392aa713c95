//! Controller benchmark (`make bench`): a real `rk8s-server` (scheduler and
//! controllers on the leader, `--enable-chaos`) with simulated nodes.
//!
//! - **ReplicaSets:** N ReplicaSets × 10 replicas created through the API (64 requests
//!   in flight); time until every one reports 10 ready replicas. Then every
//!   ReplicaSet actor (and the ReplicaSet supervisor) is killed at once through the
//!   chaos endpoint while one pod of each of 100 ReplicaSets is deleted; time until
//!   all are back at 10, counted from the pods. Both waits poll lists in pages of
//!   500, as clients list. CPU seconds of the control-plane thread and of the server,
//!   and the server's peak RSS.
//! - **DaemonSet:** one DaemonSet on M simulated nodes (a pod each); time until every
//!   pod is available, then until a new template is rolled out on every node
//!   (`maxUnavailable: 10%`); CPU seconds of the server and its peak RSS.
//! - **StatefulSets:** on the same nodes, K StatefulSets × 3 (OrderedReady: each pod
//!   Running and Ready before the next) created through the API; time until every
//!   one reports 3 ready replicas; CPU seconds of the server.
//! - **Node failure:** a Deployment of 10 replicas on one simulated node whose process
//!   is then killed; time until 10 replacement pods run on the other nodes, with the
//!   default settings (grace 40 s, toleration 300 s) and with test settings (5 s, 2 s).
//!
//! Prints a table and writes `target/bench/controllers.json`.
//! `RK8S_BENCH_CONTROLLERS=200` sets N (default 1000); `RK8S_BENCH_CONTROLLERS_QUICK=1`
//! skips the node failure with default settings (it takes six minutes);
//! `RK8S_BENCH_DAEMONSET_NODES=500` sets M (default 1000; 200 with
//! `RK8S_BENCH_CONTROLLERS_QUICK`); `RK8S_BENCH_STATEFULSETS=50` sets K (default
//! 100).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use common::{cpu_seconds, list_paged, peak_rss_mib, print_rows, write_json};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;
use support::apiserver::Server;
use support::node::simulate;

const REPLICAS: i32 = 10;

fn replicaset(i: usize) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("rs-{i}")},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"rs": format!("rs-{i}")}},
            "template": {"metadata": {"labels": {"rs": format!("rs-{i}")}},
                "spec": {"automountServiceAccountToken": false, "containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]}},
        },
    }))
    .unwrap()
}

/// Waits (up to `limit`) until `count` nodes are registered.
async fn nodes_registered(client: &kube::Client, count: usize, limit: Duration) {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + limit;
    while nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len()
        < count
    {
        assert!(Instant::now() < deadline, "nodes never registered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until every ReplicaSet reports all its replicas ready; how long it took.
async fn all_ready(sets: &Api<ReplicaSet>, count: usize, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let listed = list_paged(sets, &ListParams::default()).await;
        let ready = listed
            .iter()
            .filter(|rs| {
                let s = rs.status.as_ref();
                s.and_then(|s| s.ready_replicas) == Some(REPLICAS)
                    && s.map(|s| s.replicas) == Some(REPLICAS)
            })
            .count();
        if ready == count {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "only {ready}/{count} ReplicaSets ready"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until every ReplicaSet `rs-0..count` has exactly its replicas Running and
/// not terminating, counted from the pods themselves (a ReplicaSet's status is
/// written by its actor, which may be the one just killed: an old status would say
/// ready too soon); how long it took.
async fn all_running(pods: &Api<Pod>, count: usize, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let mut running = std::collections::HashMap::<String, i32>::new();
        for p in list_paged(pods, &ListParams::default()).await {
            let live = p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if let (true, Some(rs)) = (live, p.metadata.labels.and_then(|mut l| l.remove("rs"))) {
                *running.entry(rs).or_default() += 1;
            }
        }
        let ready = (0..count)
            .filter(|i| running.get(&format!("rs-{i}")) == Some(&REPLICAS))
            .count();
        if ready == count {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "only {ready}/{count} ReplicaSets with {REPLICAS} pods running"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn kill(client: &kube::Client, kind: &str, name: &str) {
    let body = serde_json::to_vec(&json!({"kind": kind, "name": name})).unwrap();
    let req = http::Request::post("/rk8s/v1/debug/actors/kill")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap();
    client.request::<serde_json::Value>(req).await.unwrap();
}

struct Convergence {
    sets: usize,
    nodes: usize,
    create: Duration,
    after_kill: Duration,
    control_plane_cpu: f64,
    server_cpu: f64,
    rss_mib: f64,
}

async fn replicasets(count: usize) -> Convergence {
    let nodes = (count * REPLICAS as usize).div_ceil(100).max(10);
    let server = Server::start(&["--enable-chaos"]);
    let client = server.client().await;
    let _sim = simulate(&server, &["--count", &nodes.to_string()]);
    nodes_registered(&client, nodes, Duration::from_secs(300)).await;
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let (cpu0, cp0) = cpu_seconds(server.pid(), "control-plane");
    let begin = Instant::now();
    futures_util::stream::iter(0..count)
        .map(|i| {
            let sets = sets.clone();
            async move { sets.create(&PostParams::default(), &replicaset(i)).await }
        })
        .buffer_unordered(64)
        .for_each(|r| {
            r.unwrap();
            async {}
        })
        .await;
    let create = all_ready(&sets, count, begin).await;
    let (cpu1, cp1) = cpu_seconds(server.pid(), "control-plane");

    // Every ReplicaSet actor and their supervisor killed at once, pods deleted meanwhile.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut victims = Vec::new();
    for i in 0..count.min(100) {
        let params = ListParams::default().labels(&format!("rs=rs-{i}")).limit(1);
        let listed = pods.list(&params).await.unwrap().items;
        victims.extend(listed.into_iter().filter_map(|p| p.metadata.name));
    }
    let begin = Instant::now();
    kill(&client, "Controller", "replicaset").await;
    futures_util::stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move { kill(&client, "ReplicaSet", &format!("default/rs-{i}")).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    for name in &victims {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    let after_kill = all_running(&pods, count, begin).await;
    Convergence {
        sets: count,
        nodes,
        create,
        after_kill,
        control_plane_cpu: cp1 - cp0,
        server_cpu: cpu1 - cpu0,
        rss_mib: peak_rss_mib(server.pid()),
    }
}

struct Daemons {
    nodes: usize,
    create: Duration,
    roll: Duration,
    server_cpu: f64,
    rss_mib: f64,
    stateful_sets: usize,
    stateful_ready: Duration,
    stateful_cpu: f64,
    stateful_rss_mib: f64,
}

fn stateful_set(i: usize) -> StatefulSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": format!("db-{i}")},
        "spec": {
            "replicas": 3,
            "serviceName": format!("db-{i}"),
            "selector": {"matchLabels": {"db": format!("db-{i}")}},
            "template": {"metadata": {"labels": {"db": format!("db-{i}")}},
                "spec": {"automountServiceAccountToken": false, "containers": [{"name": "c", "image": "busybox",
                    "command": ["sleep", "3600"],
                    "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]}},
        },
    }))
    .unwrap()
}

/// Creates `count` StatefulSets × 3 (64 requests in flight) and waits until every
/// one has 3 ready replicas; how long that took.
async fn stateful_sets(client: &kube::Client, count: usize) -> Duration {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let begin = Instant::now();
    futures_util::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &stateful_set(i)).await }
        })
        .buffer_unordered(64)
        .for_each(|r| async move {
            r.unwrap();
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let listed = api.list(&ListParams::default()).await.unwrap().items;
        let ready = listed
            .iter()
            .filter(|s| s.status.as_ref().and_then(|s| s.ready_replicas) == Some(3))
            .count();
        if ready == count {
            return begin.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{ready} of {count} StatefulSets ready"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn daemon_set(sleep: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {"rollingUpdate": {"maxUnavailable": "10%"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"automountServiceAccountToken": false, "containers": [{"name": "c", "image": "busybox",
                    "command": ["sleep", sleep],
                    "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]}},
        },
    })
}

/// Waits until the DaemonSet's status shows every one of `nodes` pods updated and
/// available for its current generation; how long since `since`.
async fn daemons_rolled_out(api: &Api<DaemonSet>, nodes: usize, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(1800);
    let want = i32::try_from(nodes).unwrap();
    loop {
        let ds = api.get("agent").await.unwrap();
        let s = ds.status.unwrap_or_default();
        if s.observed_generation == ds.metadata.generation
            && s.desired_number_scheduled == want
            && s.updated_number_scheduled == Some(want)
            && s.number_available == Some(want)
        {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the DaemonSet never rolled out: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn daemonset(nodes: usize, stateful: usize) -> Daemons {
    let server = Server::start(&["--enable-chaos"]);
    let client = server.client().await;
    let _sim = simulate(&server, &["--count", &nodes.to_string()]);
    nodes_registered(&client, nodes, Duration::from_secs(300)).await;
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let (cpu0, _) = cpu_seconds(server.pid(), "control-plane");
    let begin = Instant::now();
    let ds: DaemonSet = serde_json::from_value(daemon_set("3600")).unwrap();
    api.create(&PostParams::default(), &ds).await.unwrap();
    let create = daemons_rolled_out(&api, nodes, begin).await;
    let begin = Instant::now();
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "c", "command": ["sleep", "7200"]}]}}}});
    api.patch(
        "agent",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(&patch),
    )
    .await
    .unwrap();
    let roll = daemons_rolled_out(&api, nodes, begin).await;
    let (cpu1, _) = cpu_seconds(server.pid(), "control-plane");
    let rss_mib = peak_rss_mib(server.pid());
    let stateful_ready = stateful_sets(&client, stateful).await;
    let (cpu2, _) = cpu_seconds(server.pid(), "control-plane");
    Daemons {
        nodes,
        create,
        roll,
        server_cpu: cpu1 - cpu0,
        rss_mib,
        stateful_sets: stateful,
        stateful_ready,
        stateful_cpu: cpu2 - cpu1,
        stateful_rss_mib: peak_rss_mib(server.pid()),
    }
}

/// A node fails under a Deployment of 10: time until 10 replacements run elsewhere.
async fn node_failure(settings: &[&str]) -> Duration {
    let mut args = vec!["--enable-chaos"];
    args.extend_from_slice(settings);
    let server = Server::start(&args);
    let client = server.client().await;
    let doomed = simulate(&server, &["--count", "1", "--prefix", "doomed"]);
    nodes_registered(&client, 1, Duration::from_secs(60)).await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }))
    .unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let running_on = async |prefix: &str| {
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .count()
    };
    while running_on("doomed").await < 10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _spare = simulate(&server, &["--count", "3", "--prefix", "spare"]);
    nodes_registered(&client, 4, Duration::from_secs(60)).await;
    drop(doomed);
    let begin = Instant::now();
    let deadline = begin + Duration::from_secs(900);
    while running_on("spare").await < 10 {
        assert!(Instant::now() < deadline, "pods never replaced");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    begin.elapsed()
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("RK8S_BENCH_CONTROLLERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let quick = std::env::var_os("RK8S_BENCH_CONTROLLERS_QUICK").is_some();
    let c = replicasets(count).await;
    let daemon_nodes: usize = std::env::var("RK8S_BENCH_DAEMONSET_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 200 } else { 1000 });
    let stateful: usize = std::env::var("RK8S_BENCH_STATEFULSETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let d = daemonset(daemon_nodes, stateful).await;
    let test_settings = [
        "--node-monitor-grace-period",
        "5s",
        "--default-unreachable-toleration-seconds",
        "2",
    ];
    let failure_test = node_failure(&test_settings).await;
    let failure_default = if quick {
        None
    } else {
        Some(node_failure(&[]).await)
    };
    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    print_rows(&[
        (
            format!(
                "{} ReplicaSets × {REPLICAS} on {} simulated nodes: all ready",
                c.sets, c.nodes
            ),
            secs(c.create),
        ),
        (
            "  control-plane thread CPU / server CPU while converging".into(),
            format!("{:.1} s / {:.1} s", c.control_plane_cpu, c.server_cpu),
        ),
        ("  server peak RSS".into(), format!("{:.0} MiB", c.rss_mib)),
        (
            "every ReplicaSet actor killed (+100 pods deleted): all running again (pods counted)"
                .into(),
            secs(c.after_kill),
        ),
        (
            format!(
                "a DaemonSet on {} simulated nodes: every pod available",
                d.nodes
            ),
            secs(d.create),
        ),
        (
            "  a new template rolled out on every node (maxUnavailable 10%)".into(),
            secs(d.roll),
        ),
        (
            "  server CPU (both) / server peak RSS".into(),
            format!("{:.1} s / {:.0} MiB", d.server_cpu, d.rss_mib),
        ),
        (
            format!(
                "{} StatefulSets × 3 on those nodes: all ready (pods one at a time each)",
                d.stateful_sets
            ),
            secs(d.stateful_ready),
        ),
        (
            "  server CPU (both) / server peak RSS after".into(),
            format!("{:.1} s / {:.0} MiB", d.stateful_cpu, d.stateful_rss_mib),
        ),
        (
            "node failure → 10 replacements Running (grace 5 s, toleration 2 s)".into(),
            secs(failure_test),
        ),
        (
            "node failure → 10 replacements Running (defaults: 40 s, 300 s)".into(),
            failure_default.map_or("skipped".into(), secs),
        ),
    ]);
    write_json(
        "controllers",
        &json!({
            "replicasets": c.sets, "replicas": REPLICAS, "nodes": c.nodes,
            "create_to_ready_s": c.create.as_secs_f64(),
            "after_killing_all_actors_s": c.after_kill.as_secs_f64(),
            "control_plane_cpu_s": c.control_plane_cpu, "server_cpu_s": c.server_cpu,
            "server_peak_rss_mib": c.rss_mib,
            "daemonset_nodes": d.nodes,
            "daemonset_create_to_available_s": d.create.as_secs_f64(),
            "daemonset_roll_s": d.roll.as_secs_f64(),
            "daemonset_server_cpu_s": d.server_cpu,
            "daemonset_server_peak_rss_mib": d.rss_mib,
            "statefulsets": d.stateful_sets,
            "statefulsets_create_to_ready_s": d.stateful_ready.as_secs_f64(),
            "statefulsets_server_cpu_s": d.stateful_cpu,
            "statefulsets_server_peak_rss_mib": d.stateful_rss_mib,
            "node_failure_test_settings_s": failure_test.as_secs_f64(),
            "node_failure_default_settings_s": failure_default.map(|d| d.as_secs_f64()),
        }),
    );
}
