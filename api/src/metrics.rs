//! Resource usage as it travels through the cluster: the node agent's summary (the
//! subset of kubelet's `stats/v1alpha1` Summary API that metrics-server reads) and
//! the resource metrics API, `metrics.k8s.io/v1beta1` (what `kubectl top` and the
//! HorizontalPodAutoscaler read).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta, Time};
use serde::{Deserialize, Serialize};

/// The resource metrics API's group and version.
pub const METRICS_API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// CPU used over a window, and in all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    /// When it was read.
    pub time: Time,
    /// Average use over the sampling window, in nanocores (absent until there are two
    /// readings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    /// CPU time used since the start, in nanoseconds.
    pub usage_core_nano_seconds: u64,
    /// The window `usageNanoCores` was averaged over, in nanoseconds (rk8s adds it:
    /// kubelet leaves it to cAdvisor's housekeeping interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_window_nano_seconds: Option<u64>,
}

/// Memory in use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    /// When it was read.
    pub time: Time,
    /// Memory usage, page cache included.
    pub usage_bytes: u64,
    /// The working set: usage less inactive file pages (what the OOM killer weighs).
    pub working_set_bytes: u64,
    /// What is left (nodes, and containers with a limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
}

/// One container's usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    /// The container's name in the pod.
    pub name: String,
    /// When its current attempt started.
    pub start_time: Time,
    /// CPU.
    pub cpu: CpuStats,
    /// Memory.
    pub memory: MemoryStats,
}

/// Which pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodReference {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its uid.
    pub uid: String,
}

/// One pod's usage: its containers' and their sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    /// The pod.
    pub pod_ref: PodReference,
    /// When its sandbox was made.
    pub start_time: Time,
    /// Its running containers.
    pub containers: Vec<ContainerStats>,
    /// The sum of its containers' CPU.
    pub cpu: CpuStats,
    /// The sum of its containers' memory.
    pub memory: MemoryStats,
}

/// The node itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// The node's name.
    pub node_name: String,
    /// CPU of the whole host.
    pub cpu: CpuStats,
    /// Memory of the whole host.
    pub memory: MemoryStats,
}

/// `GET /stats/summary` on a node agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The node.
    pub node: NodeStats,
    /// Its pods.
    pub pods: Vec<PodStats>,
}

/// `metrics.k8s.io/v1beta1` NodeMetrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMetrics {
    /// `metrics.k8s.io/v1beta1`.
    pub api_version: String,
    /// `NodeMetrics`.
    pub kind: String,
    /// The node's name and labels.
    pub metadata: ObjectMeta,
    /// The end of the window.
    pub timestamp: Time,
    /// The window the usage was averaged over (`10s`).
    pub window: String,
    /// `cpu` and `memory`.
    pub usage: BTreeMap<String, K8sQuantity>,
}

/// One container of a [`PodMetrics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerMetrics {
    /// The container's name.
    pub name: String,
    /// `cpu` and `memory`.
    pub usage: BTreeMap<String, K8sQuantity>,
}

/// `metrics.k8s.io/v1beta1` PodMetrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetrics {
    /// `metrics.k8s.io/v1beta1`.
    pub api_version: String,
    /// `PodMetrics`.
    pub kind: String,
    /// The pod's name, namespace and labels.
    pub metadata: ObjectMeta,
    /// The end of the window.
    pub timestamp: Time,
    /// The window the usage was averaged over.
    pub window: String,
    /// Its containers.
    pub containers: Vec<ContainerMetrics>,
}

/// A list of node or pod metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsList<T> {
    /// `metrics.k8s.io/v1beta1`.
    pub api_version: String,
    /// `NodeMetricsList` or `PodMetricsList`.
    pub kind: String,
    /// Empty: metrics have no resource versions.
    pub metadata: ListMeta,
    /// The items.
    pub items: Vec<T>,
}

impl<T> MetricsList<T> {
    /// A list of `kind`.
    pub fn new(kind: &str, items: Vec<T>) -> Self {
        MetricsList {
            api_version: METRICS_API_VERSION.to_string(),
            kind: kind.to_string(),
            metadata: ListMeta::default(),
            items,
        }
    }
}

/// `cpu` and `memory` as the metrics API writes them: nanocores (`250000000n`) and
/// kibibytes (`10240Ki`), as metrics-server does.
pub fn usage(nano_cores: u64, memory_bytes: u64) -> BTreeMap<String, K8sQuantity> {
    BTreeMap::from([
        ("cpu".to_string(), K8sQuantity(format!("{nano_cores}n"))),
        (
            "memory".to_string(),
            K8sQuantity(format!("{}Ki", memory_bytes / 1024)),
        ),
    ])
}

/// A duration as Kubernetes writes one (`10s`, `1.5s`).
pub fn window(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_written_as_metrics_server_writes_it_and_reads_back() {
        let u = usage(250_000_000, 10 << 20);
        assert_eq!(u["cpu"].0, "250000000n");
        assert_eq!(u["memory"].0, "10240Ki");
        let cpu = crate::Quantity::try_from(&u["cpu"]).unwrap();
        assert_eq!(cpu.milli_value(), 250);
        let memory = crate::Quantity::try_from(&u["memory"]).unwrap();
        assert_eq!(memory.value(), 10 << 20);
        assert_eq!(window(std::time::Duration::from_secs(10)), "10s");
        assert_eq!(window(std::time::Duration::from_millis(2500)), "2.5s");
    }
}
