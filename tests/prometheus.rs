//! A real Prometheus (the Debian package) scraping a real cluster with the
//! configuration `rk8sctl prometheus-config` prints: the API server's `/metrics`
//! (with the token and the cluster CA) and, found through the API server's HTTP
//! service discovery, the node agent's own metrics and its containers' cAdvisor
//! series (through the API server's node proxy) and a pod on a real node annotated
//! `prometheus.io/scrape: "true"` serving its own metrics with busybox httpd. The
//! same node's usage through the resource metrics API: `rk8sctl top` and `kubectl
//! top`. Everything stays on this host: the pod's address is on the node's bridge.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use support::apiserver::{Server, free_port};
use support::images::busybox;
use support::node::{eventually_within, real_node};
use support::prometheus::Prometheus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_control_plane_and_annotated_pods() {
    let busybox = busybox();
    let server = Server::start(&[]);
    let _node = real_node(&server, "worker", 51).await;
    let client = server.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let exporter: Pod = serde_json::from_value(json!({
        "metadata": {"name": "exporter", "annotations": {
            "prometheus.io/scrape": "true", "prometheus.io/port": "8080"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "httpd", "image": busybox,
            "command": ["sh", "-c",
                "mkdir -p /www && echo 'demo_requests_total 42' > /www/metrics && exec httpd -f -p 8080 -h /www"],
            "ports": [{"containerPort": 8080}]}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &exporter)
        .await
        .unwrap();

    // The configuration, as a user would make it.
    let prometheus = Prometheus::start(&server, free_port());

    // Both jobs' targets up.
    let health = eventually_within(
        "the API server, the node agent, its containers and the annotated pod scraped",
        std::time::Duration::from_secs(90),
        async || {
            let targets = prometheus.get("/api/v1/targets").await?;
            let active = targets["data"]["activeTargets"].as_array()?.clone();
            let up = |job: &str| {
                active
                    .iter()
                    .any(|t| t["labels"]["job"] == job && t["health"] == "up")
            };
            let all = ["rk8s-apiserver", "rk8s-nodes", "rk8s-cadvisor", "rk8s-pods"]
                .into_iter()
                .all(up);
            if !all {
                // Shown if the test fails: why each target is down.
                for t in active.iter().filter(|t| t["health"] != "up") {
                    eprintln!(
                        "{} {}: {}",
                        t["labels"]["job"], t["scrapeUrl"], t["lastError"]
                    );
                }
            }
            all.then_some(active)
        },
    )
    .await;
    // Prometheus scrapes as its own read-only account, not as the admin.
    let token = prometheus.token();
    assert_eq!(token.split('.').count(), 3, "not a ServiceAccount token");
    let as_prometheus = server.client_without_retries_as(Some(&token)).await;
    let refused = Api::<Pod>::namespaced(as_prometheus, "default")
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("User \"system:serviceaccount:kube-system:rk8s-prometheus\" cannot list"),
        "{refused}"
    );
    let pod_target = health
        .iter()
        .find(|t| t["labels"]["job"] == "rk8s-pods")
        .unwrap();
    assert_eq!(pod_target["labels"]["pod"], "exporter");
    assert_eq!(pod_target["labels"]["node"], "worker");

    // What was scraped is queryable: the pod's own series, and the control plane's.
    let demo = eventually_within(
        "the pod's series in Prometheus",
        std::time::Duration::from_secs(30),
        async || prometheus.first("demo_requests_total").await,
    )
    .await;
    assert_eq!(demo["metric"]["pod"], "exporter");
    assert_eq!(demo["value"][1], "42");
    // The container's cAdvisor series, labelled as kubelet labels them.
    let memory = eventually_within(
        "the container's working set in Prometheus",
        std::time::Duration::from_secs(30),
        async || {
            prometheus
                .first(r#"container_memory_working_set_bytes{pod="exporter"}"#)
                .await
        },
    )
    .await;
    assert_eq!(memory["metric"]["container"], "httpd");
    assert_eq!(memory["metric"]["namespace"], "default");
    assert_eq!(memory["metric"]["node"], "worker");
    let bytes: f64 = memory["value"][1].as_str().unwrap().parse().unwrap();
    assert!(bytes > 0.0, "{memory}");
    let starts = prometheus
        .first("kubelet_pod_start_duration_seconds_count")
        .await
        .unwrap();
    let starts: f64 = starts["value"][1].as_str().unwrap().parse().unwrap();
    assert!(starts >= 1.0);
    let leader = prometheus.first("etcd_server_is_leader").await.unwrap();
    assert_eq!(leader["value"][1], "1");
    let scheduled = prometheus
        .first(r#"scheduler_schedule_attempts_total{result="scheduled"}"#)
        .await
        .unwrap();
    assert_eq!(scheduled["value"][1], "1", "{scheduled}");

    // The resource metrics API: rk8sctl top and kubectl top.
    let top = eventually_within(
        "the pod in rk8sctl top pods",
        std::time::Duration::from_secs(30),
        async || {
            let out = server.rk8sctl(&["top", "pods", "--containers"]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            (out.status.success() && text.contains("exporter")).then_some(text)
        },
    )
    .await;
    let lines: Vec<&str> = top.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..2], ["exporter", "httpd"]);
    assert!(row[2].ends_with('m') && row[3].ends_with("Mi"), "{top}");
    let nodes = server.rk8sctl(&["top", "nodes"]);
    let nodes = String::from_utf8_lossy(&nodes.stdout).to_string();
    let row: Vec<&str> = nodes.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[0], "worker", "{nodes}");
    assert!(row[2].ends_with('%') && row[4].ends_with('%'), "{nodes}");
    let (ok, kubectl) = server.kubectl(&["top", "pod", "exporter", "--containers"]);
    assert!(ok && kubectl.contains("httpd"), "{kubectl}");
}
