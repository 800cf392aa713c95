//! The node agent's own metrics, named as kubelet names them (`GET /metrics` on its
//! HTTPS port, which the API server proxies at `/api/v1/nodes/{name}/proxy/metrics`).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
};
use rk8s_http::metrics::registered;

/// `kubelet_pod_start_duration_seconds`: from the agent first seeing a pod to its
/// first Running status.
pub static POD_START: LazyLock<Histogram> = LazyLock::new(|| {
    registered(Histogram::with_opts(
        HistogramOpts::new(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from the node agent seeing a pod for the first time to the pod starting to run.",
        )
        .buckets(vec![
            0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0,
            120.0, 300.0, 600.0,
        ]),
    ))
});

/// `kubelet_runtime_operations_duration_seconds{operation_type}`.
pub static RUNTIME_OPERATIONS: LazyLock<HistogramVec> = LazyLock::new(|| {
    registered(HistogramVec::new(
        HistogramOpts::new(
            "kubelet_runtime_operations_duration_seconds",
            "Duration in seconds of runtime operations, by operation type.",
        )
        .buckets(prometheus::exponential_buckets(0.005, 2.5, 14).unwrap_or_default()),
        &["operation_type"],
    ))
});

/// `rk8s_netpol_sync_failures_total`: NetworkPolicy transactions nft refused (each
/// is retried with backoff, as a full sync).
pub static NETPOL_SYNC_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    registered(IntCounter::with_opts(Opts::new(
        "rk8s_netpol_sync_failures_total",
        "NetworkPolicy syncs whose nft transaction failed.",
    )))
});

/// `kubelet_running_pods`: pods with a running container, at the last reading.
pub static RUNNING_PODS: LazyLock<IntGauge> = LazyLock::new(|| {
    registered(IntGauge::with_opts(Opts::new(
        "kubelet_running_pods",
        "Number of pods that have a running container.",
    )))
});

/// `kubelet_running_containers{container_state="running"}` at the last reading.
pub static RUNNING_CONTAINERS: LazyLock<IntGauge> = LazyLock::new(|| {
    registered(IntGauge::with_opts(
        Opts::new(
            "kubelet_running_containers",
            "Number of containers currently running.",
        )
        .const_label("container_state", "running"),
    ))
});

/// `rk8s_node_port_forward_connections_total{protocol}`: port-forward connections
/// served, by how they spoke (`spdy`, `spdy-websocket`, `v4.channel.k8s.io`).
pub static PORT_FORWARDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    registered(IntCounterVec::new(
        Opts::new(
            "rk8s_node_port_forward_connections_total",
            "Port-forward connections served, by protocol.",
        ),
        &["protocol"],
    ))
});

/// Times one runtime operation.
pub fn time_operation(operation: &str, took: Duration) {
    RUNTIME_OPERATIONS
        .with_label_values(&[operation])
        .observe(took.as_secs_f64());
}

/// Every metric of the agent's process, in Prometheus' text format.
pub fn exposition() -> (String, Vec<u8>) {
    use prometheus::Encoder;
    // Touch each so that it is listed before its first observation.
    let _ = (
        &*POD_START,
        &*RUNTIME_OPERATIONS,
        &*RUNNING_PODS,
        &*RUNNING_CONTAINERS,
    );
    let encoder = prometheus::TextEncoder::new();
    let mut text = Vec::new();
    let _ = encoder.encode(&prometheus::gather(), &mut text);
    (encoder.format_type().to_string(), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed_by_its_kubelet_name() {
        time_operation("sync_pod", Duration::from_millis(3));
        POD_START.observe(0.4);
        let (_, text) = exposition();
        let text = String::from_utf8(text).unwrap();
        for name in [
            "kubelet_pod_start_duration_seconds_bucket",
            "kubelet_runtime_operations_duration_seconds_count{operation_type=\"sync_pod\"} 1",
            "kubelet_running_pods 0",
            "kubelet_running_containers{container_state=\"running\"} 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
