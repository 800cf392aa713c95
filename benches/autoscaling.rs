//! Autoscaling benchmark (`make bench`).
//!
//! - **Reaction time:** a real node (usage read every 10 s, the agent's default) runs a
//!   Deployment whose pod burns CPU while a file exists; an HPA (1 to 3 replicas, 50%
//!   CPU, no scale-down window) watches it. Time from creating the file to 3 replicas
//!   available, three times each with the default 15 s sync period and with 5 s.
//! - **Cost of 1,000 HPAs:** 1,000 one-replica Deployments on simulated nodes, each
//!   with an HPA on an External PromQL metric (`vector(1)`, target 1: no rescale) read
//!   from a real Prometheus; CPU seconds of the server (and of its control-plane
//!   thread) over one minute of steady syncing, per HPA sync. The syncs and the PromQL
//!   queries they made are counted from the server's metrics, not assumed.
//!
//! Prints a table and writes `target/bench/autoscaling.json`.
//! `RK8S_BENCH_HPAS=200` sets the number of HPAs (default 1000);
//! `RK8S_BENCH_HPAS_ONLY=1` skips the reaction times.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use common::{cpu_seconds, peak_rss_mib, print_rows, write_json};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::json;
use support::apiserver::{Server, free_port, served_metric};
use support::node::{eventually_within, images, real_node_with, simulate};
use support::prometheus::Prometheus;

const RUNS: usize = 3;

/// Seconds from load on to 3 available replicas, for each run.
async fn reaction(period: &str) -> Vec<f64> {
    let server = Server::start(&["--horizontal-pod-autoscaler-sync-period", period]);
    let _node = real_node_with(&server, "worker", 60, &[]).await;
    let client = server.client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let ctl = tempfile::tempdir().unwrap();
    let load = ctl.path().join("on");
    let busybox = images().join("busybox").display().to_string();
    let burner: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "burner"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "burner"}},
            "template": {"metadata": {"labels": {"app": "burner"}}, "spec": {
                "terminationGracePeriodSeconds": 0,
                "volumes": [{"name": "ctl", "hostPath": {"path": ctl.path().display().to_string()}}],
                "containers": [{"name": "main", "image": busybox,
                    "command": ["sh", "-c", "while true; do while [ -e /ctl/on ]; do :; done; sleep 0.2; done"],
                    "volumeMounts": [{"name": "ctl", "mountPath": "/ctl"}],
                    "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}}}]}}},
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &burner)
        .await
        .unwrap();
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "burner"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burner"},
            "minReplicas": 1, "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}},
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();
    let mut out = Vec::new();
    for _ in 0..RUNS {
        // Steady: one replica, measured below target.
        eventually_within(
            "steady at 1 replica",
            Duration::from_secs(300),
            async || {
                let d = deployments.get("burner").await.ok()?;
                let s = d.status?;
                let h = hpas.get("burner").await.ok()?;
                let active = h
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "ScalingActive" && c.status == "True");
                (active && s.replicas == Some(1) && s.available_replicas == Some(1)).then_some(())
            },
        )
        .await;
        std::fs::write(&load, "").unwrap();
        let started = Instant::now();
        eventually_within(
            "3 replicas available",
            Duration::from_secs(300),
            async || {
                let s = deployments.get("burner").await.ok()?.status?;
                (s.available_replicas == Some(3)).then_some(())
            },
        )
        .await;
        out.push(started.elapsed().as_secs_f64());
        std::fs::remove_file(&load).unwrap();
    }
    out
}

fn hpa_object(i: usize) -> (Deployment, HorizontalPodAutoscaler) {
    let name = format!("app-{i}");
    let d = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}]}}},
    }))
    .unwrap();
    let h = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1, "maxReplicas": 2,
            "metrics": [{"type": "External", "external": {"metric": {"name": "vector(1)"},
                "target": {"type": "Value", "value": "1"}}}]},
    }))
    .unwrap();
    (d, h)
}

/// The HPA syncs carried out so far, from the server's
/// `rk8s_controller_reconciles_total{kind="HorizontalPodAutoscaler"}`.
async fn hpa_syncs(client: &kube::Client) -> f64 {
    served_metric(
        client,
        r#"rk8s_controller_reconciles_total{kind="HorizontalPodAutoscaler"}"#,
    )
    .await
}

/// The PromQL queries the HPAs' syncs made so far, from the server's
/// `rk8s_hpa_metric_reads_total{source="prometheus"}` (one per round and distinct
/// expression, shared by the HPAs that ask it).
async fn prometheus_reads(client: &kube::Client) -> f64 {
    served_metric(
        client,
        r#"rk8s_hpa_metric_reads_total{source="prometheus"}"#,
    )
    .await
}

/// What `count` HPAs cost the server.
struct Cost {
    /// Seconds from the first create until every HPA synced once.
    first: f64,
    /// CPU seconds of the server over the steady window.
    cpu: f64,
    /// CPU seconds of its control-plane thread over the window.
    control_plane: f64,
    /// HPA syncs counted in the window.
    syncs: f64,
    /// PromQL queries the syncs made in the window.
    queries: f64,
    /// Peak RSS, MiB.
    rss: f64,
}

/// [`Cost`] of `count` HPAs over [`WINDOW`] of steady syncing.
async fn cost(count: usize) -> Cost {
    let prometheus_port = free_port();
    let server = Server::start(&["--prometheus-url", &Prometheus::url(prometheus_port)]);
    let _prometheus = Prometheus::start(&server, prometheus_port);
    let _sim = simulate(&server, &["--count", "10"]);
    let client = server.client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    futures_util::stream::iter(0..count)
        .for_each_concurrent(64, |i| {
            let (deployments, hpas) = (deployments.clone(), hpas.clone());
            async move {
                let (d, h) = hpa_object(i);
                deployments
                    .create(&PostParams::default(), &d)
                    .await
                    .unwrap();
                hpas.create(&PostParams::default(), &h).await.unwrap();
            }
        })
        .await;
    // Every HPA synced once (ScalingActive True).
    eventually_within("every HPA active", Duration::from_secs(900), async || {
        let list = hpas.list(&ListParams::default()).await.ok()?.items;
        let active = list
            .iter()
            .filter(|h| {
                h.status
                    .iter()
                    .flat_map(|s| s.conditions.iter().flatten())
                    .any(|c| c.type_ == "ScalingActive" && c.status == "True")
            })
            .count();
        (active == count).then_some(())
    })
    .await;
    let first = started.elapsed().as_secs_f64();
    // Steady: every Deployment's pod available too (its creation, scheduling and
    // start are not what the window measures).
    eventually_within(
        "every Deployment available",
        Duration::from_secs(900),
        async || {
            let list = deployments.list(&ListParams::default()).await.ok()?.items;
            let available = list
                .iter()
                .filter(|d| d.status.as_ref().and_then(|s| s.available_replicas) == Some(1))
                .count();
            (available == count).then_some(())
        },
    )
    .await;
    let (cpu0, cp0) = cpu_seconds(server.pid(), "control-plane");
    let (syncs0, queries0) = (hpa_syncs(&client).await, prometheus_reads(&client).await);
    tokio::time::sleep(WINDOW).await;
    let (cpu1, cp1) = cpu_seconds(server.pid(), "control-plane");
    let (syncs1, queries1) = (hpa_syncs(&client).await, prometheus_reads(&client).await);
    Cost {
        first,
        cpu: cpu1 - cpu0,
        control_plane: cp1 - cp0,
        syncs: syncs1 - syncs0,
        queries: queries1 - queries0,
        rss: peak_rss_mib(server.pid()),
    }
}

/// The steady window the HPAs' cost is read over.
const WINDOW: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("RK8S_BENCH_HPAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut rows = Vec::new();
    let mut json = serde_json::Map::new();
    let periods: &[&str] = if std::env::var_os("RK8S_BENCH_HPAS_ONLY").is_some() {
        &[]
    } else {
        &["15s", "5s"]
    };
    for period in periods {
        let runs = reaction(period).await;
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        rows.push((
            format!("load → 3 replicas available, sync period {period} (s; {RUNS} runs)"),
            format!(
                "min {:.1}  median {:.1}  max {:.1}",
                sorted[0],
                sorted[RUNS / 2],
                sorted[RUNS - 1]
            ),
        ));
        json.insert(format!("reaction_seconds_{period}"), json!(runs));
    }
    let c = cost(count).await;
    let window = WINDOW.as_secs();
    rows.push((
        format!("{count} HPAs: created and synced once (s)"),
        format!("{:.1}", c.first),
    ));
    rows.push((
        format!("{count} HPAs: syncs and PromQL queries counted in {window} s"),
        format!("{:.0} syncs, {:.0} queries", c.syncs, c.queries),
    ));
    rows.push((
        format!("{count} HPAs: server CPU per sync (ms), {window} s steady"),
        format!(
            "{:.2} (control-plane thread {:.2}; {:.1}% of a core in all)",
            c.cpu * 1000.0 / c.syncs,
            c.control_plane * 1000.0 / c.syncs,
            c.cpu * 100.0 / WINDOW.as_secs_f64()
        ),
    ));
    rows.push((
        format!("{count} HPAs: server peak RSS (MiB)"),
        format!("{:.0}", c.rss),
    ));
    json.insert("hpas".into(), json!(count));
    json.insert("hpas_first_sync_seconds".into(), json!(c.first));
    json.insert("window_seconds".into(), json!(window));
    json.insert("syncs".into(), json!(c.syncs));
    json.insert("prometheus_queries".into(), json!(c.queries));
    json.insert("server_cpu_seconds".into(), json!(c.cpu));
    json.insert(
        "server_cpu_ms_per_sync".into(),
        json!(c.cpu * 1000.0 / c.syncs),
    );
    json.insert(
        "control_plane_cpu_ms_per_sync".into(),
        json!(c.control_plane * 1000.0 / c.syncs),
    );
    json.insert("server_peak_rss_mib".into(), json!(c.rss));
    print_rows(&rows);
    write_json("autoscaling", &serde_json::Value::Object(json));
}
