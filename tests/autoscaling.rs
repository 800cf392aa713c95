//! HorizontalPodAutoscalers end to end: a real node running busybox pods, a real
//! Prometheus scraping the cluster (configured by `rk8sctl prometheus-config`), and
//! the control plane's HPA actors.
//!
//! - CPU: a Deployment whose pods burn CPU while a file exists in a hostPath volume
//!   (request 100m, limit 200m) under an HPA at 50%: it scales up to maxReplicas;
//!   with the file removed it scales back down after the (test-sized) stabilization
//!   window.
//! - External: any PromQL query (`max(queue_depth)`, a series a pod exports) drives a
//!   second Deployment, from 1 to zero replicas when the queue is empty and back up
//!   when it fills; the HPA's replicas show in Prometheus as kube-state-metrics
//!   names them.
//! - Batches: ten HPAs, nine of them on two PromQL queries, read Prometheus twice per
//!   sync round between them (the server's count and Prometheus' own), not nine times.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};
use support::apiserver::{Server, free_port, served_metric};
use support::images::busybox;
use support::node::{eventually_within, real_node};
use support::prometheus::Prometheus;

fn deployment(name: &str, replicas: i32, command: &str, volume: &str) -> Deployment {
    let busybox = busybox();
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "volumes": [{"name": "ctl", "hostPath": {"path": volume}}],
                    "containers": [{
                        "name": "main", "image": busybox,
                        "command": ["sh", "-c", command],
                        "volumeMounts": [{"name": "ctl", "mountPath": "/ctl"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "16Mi"},
                                      "limits": {"cpu": "200m", "memory": "64Mi"}},
                    }],
                },
            },
        },
    }))
    .unwrap()
}

async fn replicas(deployments: &Api<Deployment>, name: &str) -> i32 {
    deployments
        .get(name)
        .await
        .ok()
        .and_then(|d| d.spec?.replicas)
        .unwrap_or(-1)
}

fn condition(hpa: &HorizontalPodAutoscaler, type_: &str) -> (String, String) {
    hpa.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpas_scale_on_cpu_and_on_a_promql_query_to_zero_and_back() {
    let prometheus_port = free_port();
    let server = Server::start(&[
        "--prometheus-url",
        &Prometheus::url(prometheus_port),
        "--horizontal-pod-autoscaler-sync-period",
        "2s",
    ]);
    let _node = real_node(&server, "worker", 52).await;
    let prometheus = Prometheus::start(&server, prometheus_port);
    let client = server.client().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let ctl = tempfile::tempdir().unwrap();
    let volume = ctl.path().display().to_string();
    let load = ctl.path().join("on");

    // CPU: burn while /ctl/on exists.
    std::fs::write(&load, "").unwrap();
    let burn = "while true; do while [ -e /ctl/on ]; do :; done; sleep 0.2; done";
    deployments
        .create(
            &PostParams::default(),
            &deployment("burner", 1, burn, &volume),
        )
        .await
        .unwrap();
    let out = server.rk8sctl(&[
        "autoscale",
        "deployment",
        "burner",
        "--min",
        "1",
        "--max",
        "3",
        "--cpu-percent",
        "50",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "horizontalpodautoscaler.autoscaling/burner autoscaled\n"
    );
    // A test-sized scale-down window (Kubernetes' default is 300 s).
    let patch = json!({"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 4}}}});
    hpas.patch(
        "burner",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let hpa = eventually_within(
        "the burner scaled up to 3 on CPU, and its status saying so",
        Duration::from_secs(120),
        async || {
            let hpa = hpas.get("burner").await.ok()?;
            let desired = hpa.status.as_ref()?.desired_replicas;
            (replicas(&deployments, "burner").await == 3 && desired == 3).then_some(hpa)
        },
    )
    .await;
    let status = hpa.status.clone().unwrap();
    assert_eq!(status.desired_replicas, 3);
    assert!(status.last_scale_time.is_some());
    let cpu = status.current_metrics.unwrap()[0].resource.clone().unwrap();
    assert_eq!(cpu.name, "cpu");
    assert!(
        cpu.current.average_utilization.unwrap() > 50,
        "{:?}",
        cpu.current
    );
    assert_eq!(
        condition(&hpa, "ScalingActive"),
        ("True".into(), "ValidMetricFound".into())
    );
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let rescaled = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulRescale"))
        .filter_map(|e| e.message)
        .collect::<Vec<_>>();
    assert!(
        rescaled.iter().any(|m| m.starts_with(
            "New size: 3; reason: cpu resource utilization (percentage of request) above target"
        )),
        "{rescaled:?}"
    );
    // kubectl's columns, with the measured utilization.
    let (ok, table) = server.kubectl(&["get", "hpa", "burner"]);
    assert!(ok, "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..2], ["burner", "Deployment/burner"], "{table}");
    assert!(row[2] == "cpu:" && row[3].ends_with("%/50%"), "{table}");
    // The cAdvisor series of the new pods in Prometheus.
    eventually_within(
        "the burners' CPU in Prometheus",
        Duration::from_secs(30),
        async || {
            let v = prometheus
                .first(r#"count(rate(container_cpu_usage_seconds_total{namespace="default",container="main"}[5s]) > 0.05)"#)
                .await?;
            (v["value"][1] == "3").then_some(())
        },
    )
    .await;

    // Load off: back to minReplicas once the window has passed.
    std::fs::remove_file(&load).unwrap();
    eventually_within(
        "the burner scaled back down to 1",
        Duration::from_secs(120),
        async || (replicas(&deployments, "burner").await == 1).then_some(()),
    )
    .await;

    // External: a PromQL query over a series an exporter pod serves from the volume.
    let queue = ctl.path().join("metrics");
    std::fs::write(&queue, "queue_depth 0\n").unwrap();
    let busybox = busybox();
    let exporter: Pod = serde_json::from_value(json!({
        "metadata": {"name": "queue", "annotations": {
            "prometheus.io/scrape": "true", "prometheus.io/port": "8080"}},
        "spec": {"terminationGracePeriodSeconds": 0,
            "volumes": [{"name": "ctl", "hostPath": {"path": volume}}],
            "containers": [{"name": "httpd", "image": busybox,
                "command": ["httpd", "-f", "-p", "8080", "-h", "/ctl"],
                "volumeMounts": [{"name": "ctl", "mountPath": "/ctl"}],
                "ports": [{"containerPort": 8080}]}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &exporter)
        .await
        .unwrap();
    deployments
        .create(
            &PostParams::default(),
            &deployment("worker", 1, "exec sleep 3600", &volume),
        )
        .await
        .unwrap();
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "worker"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
            "minReplicas": 0, "maxReplicas": 3,
            "metrics": [{"type": "External", "external": {
                "metric": {"name": "max(queue_depth)"},
                "target": {"type": "Value", "value": "10"}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 2}},
        },
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();
    eventually_within(
        "the worker scaled to zero on an empty queue",
        Duration::from_secs(90),
        async || (replicas(&deployments, "worker").await == 0).then_some(()),
    )
    .await;
    std::fs::write(&queue, "queue_depth 25\n").unwrap();
    eventually_within(
        "the worker scaled from zero to 3 on a queue of 25",
        Duration::from_secs(60),
        async || (replicas(&deployments, "worker").await == 3).then_some(()),
    )
    .await;
    // The status follows the rescale (the scale is written first).
    eventually_within(
        "the worker's HPA status saying 25 for 3 replicas",
        Duration::from_secs(30),
        async || {
            let status = hpas.get("worker").await.ok()?.status?;
            let external: Value = serde_json::to_value(status.current_metrics?.first()?).ok()?;
            let seen = external["external"]["current"]["value"] == "25";
            (seen && status.desired_replicas == 3).then_some(())
        },
    )
    .await;
    let (ok, table) = server.kubectl(&["get", "hpa", "worker"]);
    assert!(ok && table.contains("25/10"), "{table}");
    // The same in Prometheus, as kube-state-metrics names it.
    eventually_within(
        "the HPA's desired replicas in Prometheus",
        Duration::from_secs(30),
        async || {
            let v = prometheus
                .first(r#"kube_horizontalpodautoscaler_status_desired_replicas{horizontalpodautoscaler="worker"}"#)
                .await?;
            (v["value"][1] == "3").then_some(())
        },
    )
    .await;

    // Batched reads: eight more HPAs on one query read Prometheus once per round
    // between them (and the worker's query once), not once each.
    let quiet = "max(queue_depth) * 0";
    for i in 0..8 {
        let name = format!("idle-{i}");
        deployments
            .create(
                &PostParams::default(),
                &deployment(&name, 0, "exec sleep 3600", &volume),
            )
            .await
            .unwrap();
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": 0, "maxReplicas": 2,
                "metrics": [{"type": "External", "external": {
                    "metric": {"name": quiet},
                    "target": {"type": "Value", "value": "10"}}}],
            },
        }))
        .unwrap();
        hpas.create(&PostParams::default(), &hpa).await.unwrap();
    }
    eventually_within(
        "every idle HPA measured its query",
        Duration::from_secs(60),
        async || {
            let all = hpas.list(&ListParams::default()).await.ok()?.items;
            let measured = all
                .iter()
                .filter(|h| {
                    h.metadata
                        .name
                        .as_deref()
                        .unwrap_or_default()
                        .starts_with("idle-")
                })
                .filter(|h| {
                    h.status
                        .as_ref()
                        .and_then(|s| s.current_metrics.as_ref())
                        .is_some_and(|m| !m.is_empty())
                })
                .count();
            (measured == 8).then_some(())
        },
    )
    .await;
    let reads = async || {
        served_metric(
            &client,
            r#"rk8s_hpa_metric_reads_total{source="prometheus"}"#,
        )
        .await
    };
    let syncs = async || {
        served_metric(
            &client,
            r#"rk8s_controller_reconciles_total{kind="HorizontalPodAutoscaler"}"#,
        )
        .await
    };
    let (reads0, syncs0, answered0) = (
        reads().await,
        syncs().await,
        prometheus.queries_answered().await,
    );
    eventually_within(
        "forty more HPA syncs",
        Duration::from_secs(60),
        async || (syncs().await - syncs0 >= 40.0).then_some(()),
    )
    .await;
    let (read, synced, answered) = (
        reads().await - reads0,
        syncs().await - syncs0,
        prometheus.queries_answered().await - answered0,
    );
    // Ten HPAs sync per round; nine read Prometheus, through two distinct queries.
    assert!(
        read > 0.0 && read * 3.0 <= synced,
        "{read} Prometheus reads for {synced} HPA syncs"
    );
    // Prometheus saw those reads and no others (a read may straddle the edges).
    assert!(
        (answered - read).abs() <= 2.0,
        "Prometheus answered {answered} queries, the server counted {read} reads"
    );
}
