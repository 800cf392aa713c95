//! The API server's Prometheus metrics, named as kube-apiserver names them, and the
//! text exposition of every metric of the process (`GET /metrics`, admin only: the
//! store's, the scheduler's and the controllers' register in the same default
//! registry).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, TextEncoder,
};
use rk8s_api::stored::StoredView;
use rk8s_http::metrics::registered;
use serde::Deserialize;

/// Kubernetes' request latency buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// `apiserver_request_total{verb, resource, subresource, code}`.
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(IntCounterVec::new(
        Opts::new(
            "apiserver_request_total",
            "Requests by verb, resource, subresource and HTTP code.",
        ),
        &["verb", "resource", "subresource", "code"],
    ))
});

/// `apiserver_request_duration_seconds{verb, resource, subresource}`.
pub static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    registered(HistogramVec::new(
        HistogramOpts::new(
            "apiserver_request_duration_seconds",
            "Time to the response's head by verb, resource and subresource (watches: until they start).",
        )
        .buckets(LATENCY_BUCKETS.to_vec()),
        &["verb", "resource", "subresource"],
    ))
});

/// `apiserver_authorization_duration_seconds{result}`: how long RBAC took to decide
/// (users' and ServiceAccounts' requests; superusers and nodes are not timed).
pub static AUTHORIZATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    registered(HistogramVec::new(
        HistogramOpts::new(
            "apiserver_authorization_duration_seconds",
            "Time RBAC took to decide a request, by result (allowed, denied).",
        )
        .buckets(vec![
            1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
        ]),
        &["result"],
    ))
});

/// `apiserver_current_inflight_requests{request_kind}`.
pub static INFLIGHT: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    registered(IntGaugeVec::new(
        Opts::new(
            "apiserver_current_inflight_requests",
            "Requests being served, readOnly or mutating (watches are not counted).",
        ),
        &["request_kind"],
    ))
});

/// `apiserver_longrunning_requests{verb="WATCH", resource}`.
pub static WATCHES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    registered(IntGaugeVec::new(
        Opts::new(
            "apiserver_longrunning_requests",
            "Open long-running requests (watches) by resource.",
        ),
        &["verb", "resource"],
    ))
});

/// `apiserver_watch_cache_resource_version{resource}`: the newest revision a
/// resource's watch cache has seen.
pub static WATCH_CACHE_REVISION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    registered(IntGaugeVec::new(
        Opts::new(
            "apiserver_watch_cache_resource_version",
            "The newest resourceVersion a resource's watch cache has seen.",
        ),
        &["resource"],
    ))
});

/// `apiserver_watch_cache_initializations_total{resource}`: a watch cache (re)started
/// following the store (after it fell behind the store's watch, or a compaction).
pub static WATCH_CACHE_INITIALIZATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(IntCounterVec::new(
        Opts::new(
            "apiserver_watch_cache_initializations_total",
            "Times a resource's watch cache started following the store; after the first, its watchers were dropped and resumed.",
        ),
        &["resource"],
    ))
});

/// `apiserver_terminated_watchers_total{resource}`: watchers disconnected because
/// their queue was full (they resume from the last revision they saw).
pub static TERMINATED_WATCHERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(IntCounterVec::new(
        Opts::new(
            "apiserver_terminated_watchers_total",
            "Watchers disconnected for not reading their changes fast enough, by resource.",
        ),
        &["resource"],
    ))
});

/// `rk8s_watch_store_catchups_total{resource}`: watches that began from a revision
/// the watch cache no longer held, and read the store's history until they could
/// join it.
pub static WATCH_CATCHUPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(IntCounterVec::new(
        Opts::new(
            "rk8s_watch_store_catchups_total",
            "Watches that began from a revision older than the watch cache holds, read from the store's history, by resource.",
        ),
        &["resource"],
    ))
});

/// Counts one served request.
pub fn observe(verb: &str, resource: &str, subresource: &str, code: u16, took: Duration) {
    REQUESTS
        .with_label_values(&[verb, resource, subresource, &code.to_string()])
        .inc();
    DURATION
        .with_label_values(&[verb, resource, subresource])
        .observe(took.as_secs_f64());
}

/// An open watch, counted while it lives.
pub struct Watching(&'static str);

impl Watching {
    /// A watch of `resource` starts.
    pub fn start(resource: &'static str) -> Self {
        WATCHES.with_label_values(&["WATCH", resource]).inc();
        Watching(resource)
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        WATCHES.with_label_values(&["WATCH", self.0]).dec();
    }
}

/// Every metric of the process in Prometheus' text format.
pub fn exposition() -> (String, Vec<u8>) {
    let encoder = TextEncoder::new();
    let mut out = Vec::new();
    if let Err(e) = encoder.encode(&prometheus::gather(), &mut out) {
        tracing::warn!("encoding metrics: {e}");
    }
    (encoder.format_type().to_string(), out)
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TargetPort {
    container_port: i32,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct TargetContainer {
    ports: Option<Vec<TargetPort>>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TargetSpec {
    node_name: Option<String>,
    containers: Vec<TargetContainer>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TargetStatus {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
}

/// The fields of a stored pod or node that its scrape target needs (the JSON reader
/// skips the rest: discovery reads every pod of the cluster).
type Target = StoredView<TargetSpec, TargetStatus>;

/// Prometheus HTTP service discovery (`http_sd_configs`) of a pod to scrape, from its
/// stored JSON: a Running pod annotated `prometheus.io/scrape: "true"`, at its IP and
/// `prometheus.io/port` (else its first declared container port), with
/// `prometheus.io/path` (default `/metrics`) and `prometheus.io/scheme` (default
/// `http`), labelled with its namespace, name and node.
pub fn pod_target(stored: &[u8]) -> Option<serde_json::Value> {
    let p = Target::read(stored).ok()?;
    let annotations = &p.metadata.annotations;
    if annotations.get("prometheus.io/scrape").map(String::as_str) != Some("true")
        || p.metadata.deletion_timestamp.is_some()
    {
        return None;
    }
    let status = p.status?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ip = status.pod_ip?;
    let spec = p.spec?;
    let port = match annotations.get("prometheus.io/port") {
        Some(port) => port.parse::<u16>().ok()?,
        None => spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find_map(|p| u16::try_from(p.container_port).ok())?,
    };
    let path = annotations
        .get("prometheus.io/path")
        .map_or("/metrics", String::as_str);
    let scheme = annotations
        .get("prometheus.io/scheme")
        .map_or("http", String::as_str);
    Some(serde_json::json!({
        "targets": [format!("{ip}:{port}")],
        "labels": {
            "__metrics_path__": path,
            "__scheme__": scheme,
            "namespace": p.metadata.namespace,
            "pod": p.metadata.name,
            "node": spec.node_name,
        },
    }))
}

/// HTTP service discovery of a node agent, from its stored JSON, scraped through the
/// API server at `apiserver` (`HOST:PORT`, as the scraper reaches it) on the node
/// proxy path `/api/v1/nodes/{name}/proxy/{path}` (`metrics` or `metrics/cadvisor`).
/// A simulated node has no agent to scrape: none.
pub fn node_target(stored: &[u8], apiserver: &str, path: &str) -> Option<serde_json::Value> {
    let meta = Target::read(stored).ok()?.metadata;
    let name = meta.name;
    if name.is_empty() || rk8s_api::net::is_simulated_node(Some(&meta.labels)) {
        return None;
    }
    Some(serde_json::json!({
        "targets": [apiserver],
        "labels": {
            "__metrics_path__": format!("/api/v1/nodes/{name}/proxy/{path}"),
            "__scheme__": "https",
            "node": name,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_watches_show_in_the_exposition() {
        observe("create", "pods", "", 201, Duration::from_millis(3));
        let watching = Watching::start("nodes");
        INFLIGHT.with_label_values(&["mutating"]).set(2);
        let (format, text) = exposition();
        let text = String::from_utf8(text).unwrap();
        assert!(format.starts_with("text/plain; version=0.0.4"));
        assert!(text.contains(
            r#"apiserver_request_total{code="201",resource="pods",subresource="",verb="create"} "#
        ));
        assert!(
            text.contains(r#"apiserver_longrunning_requests{resource="nodes",verb="WATCH"} 1"#)
        );
        assert!(text.contains("apiserver_request_duration_seconds_bucket"));
        drop(watching);
        let text = String::from_utf8(exposition().1).unwrap();
        assert!(
            text.contains(r#"apiserver_longrunning_requests{resource="nodes",verb="WATCH"} 0"#)
        );
    }

    #[test]
    fn annotated_running_pods_become_targets() {
        let pod = |name: &str, annotations: serde_json::Value, phase: &str| {
            serde_json::to_vec(&serde_json::json!({
                "metadata": {"name": name, "namespace": "default", "annotations": annotations},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x",
                          "ports": [{"containerPort": 8080}]}]},
                "status": {"phase": phase, "podIP": "10.244.0.7"},
            }))
            .unwrap()
        };
        let pods = [
            pod(
                "a",
                serde_json::json!({"prometheus.io/scrape": "true"}),
                "Running",
            ),
            pod(
                "b",
                serde_json::json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9100",
                                   "prometheus.io/path": "/stats"}),
                "Running",
            ),
            pod(
                "c",
                serde_json::json!({"prometheus.io/scrape": "false"}),
                "Running",
            ),
            pod(
                "d",
                serde_json::json!({"prometheus.io/scrape": "true"}),
                "Pending",
            ),
        ];
        let node = br#"{"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "2"}}}"#;
        assert_eq!(
            node_target(node, "127.0.0.1:6443", "metrics/cadvisor"),
            Some(
                serde_json::json!({"targets": ["127.0.0.1:6443"], "labels": {
                "__metrics_path__": "/api/v1/nodes/n1/proxy/metrics/cadvisor",
                "__scheme__": "https", "node": "n1"}})
            )
        );
        let simulated = br#"{"metadata": {"name": "s1", "labels": {"rk8s.io/simulated": "true"}}}"#;
        assert_eq!(node_target(simulated, "127.0.0.1:6443", "metrics"), None);
        let targets: Vec<serde_json::Value> = pods.iter().filter_map(|p| pod_target(p)).collect();
        assert_eq!(
            serde_json::Value::Array(targets),
            serde_json::json!([
                {"targets": ["10.244.0.7:8080"], "labels": {"__metrics_path__": "/metrics",
                 "__scheme__": "http", "namespace": "default", "pod": "a", "node": "n1"}},
                {"targets": ["10.244.0.7:9100"], "labels": {"__metrics_path__": "/stats",
                 "__scheme__": "http", "namespace": "default", "pod": "b", "node": "n1"}},
            ])
        );
    }
}
