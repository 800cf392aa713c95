//! The resource metrics API, `metrics.k8s.io/v1beta1`, served as metrics-server
//! serves it but without a separate deployment: each request reads the Summary
//! (`/stats/summary`) of the node agents concerned, in parallel, and answers with
//! their CPU (averaged over the agent's stats interval) and memory working set.
//! `kubectl top` and the HorizontalPodAutoscaler read it. Nodes that do not answer
//! are left out, as are pods whose every container has no CPU rate yet.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures_util::future::join_all;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use rk8s_api::metrics::{
    ContainerMetrics, METRICS_API_VERSION, MetricsList, NodeMetrics, PodMetrics, PodStats, Summary,
    usage, window,
};
use rk8s_api::{AnyObject, ObjectKind};
use serde_json::Value;

use crate::discovery::METRICS_GROUP as GROUP;
use crate::handlers::Handlers;
use crate::proxy::NodeDialer;
use crate::request::{MetricsRequest, Query};
use crate::status::{ApiError, ApiResult};

/// Answers `asked`.
pub async fn serve(
    handlers: &Handlers,
    dialer: &NodeDialer,
    asked: &MetricsRequest,
    query: &Query,
) -> ApiResult<Value> {
    let to_value =
        |v: Result<Value, serde_json::Error>| v.map_err(|e| ApiError::internal(e.to_string()));
    match asked {
        MetricsRequest::Nodes { name } => {
            let nodes = nodes(handlers, name.as_deref(), query).await?;
            let summaries = summaries(dialer, &nodes).await;
            let items: Vec<NodeMetrics> = nodes
                .iter()
                .zip(&summaries)
                .filter_map(|(node, s)| node_metrics(node, s.as_ref()?))
                .collect();
            match name {
                Some(n) => to_value(serde_json::to_value(
                    items
                        .into_iter()
                        .next()
                        .ok_or_else(|| not_found("nodemetrics", n))?,
                )),
                None => to_value(serde_json::to_value(MetricsList::new(
                    "NodeMetricsList",
                    items,
                ))),
            }
        }
        MetricsRequest::Pods { namespace, name } => {
            let pods = pods(handlers, namespace.as_deref(), name.as_deref(), query).await?;
            let wanted: BTreeSet<&str> = pods
                .iter()
                .filter_map(|p| p.spec.as_ref()?.node_name.as_deref())
                .collect();
            let nodes: Vec<Node> = nodes(handlers, None, &Query::default())
                .await?
                .into_iter()
                .filter(|n| wanted.contains(n.metadata.name.as_deref().unwrap_or_default()))
                .collect();
            let summaries = summaries(dialer, &nodes).await;
            let by_uid: HashMap<&str, &PodStats> = summaries
                .iter()
                .flatten()
                .flat_map(|s| &s.pods)
                .map(|p| (p.pod_ref.uid.as_str(), p))
                .collect();
            let items: Vec<PodMetrics> = pods
                .iter()
                .filter_map(|pod| pod_metrics(pod, by_uid.get(pod.metadata.uid.as_deref()?)?))
                .collect();
            match name {
                Some(n) => to_value(serde_json::to_value(
                    items
                        .into_iter()
                        .next()
                        .ok_or_else(|| not_found("podmetrics", n))?,
                )),
                None => to_value(serde_json::to_value(MetricsList::new(
                    "PodMetricsList",
                    items,
                ))),
            }
        }
    }
}

fn not_found(resource: &str, name: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::NOT_FOUND,
        "NotFound",
        format!("{resource}.{GROUP} \"{name}\" not found"),
    )
}

/// The selectors of `query` that apply to the objects measured.
fn selectors(query: &Query) -> Query {
    let pairs: Vec<String> = query
        .pairs()
        .iter()
        .filter(|(k, _)| k == "labelSelector" || k == "fieldSelector")
        .map(|(k, v)| {
            form_urlencoded::Serializer::new(String::new())
                .append_pair(k, v)
                .finish()
        })
        .collect();
    Query::parse(Some(&pairs.join("&")))
}

async fn list(
    handlers: &Handlers,
    kind: &str,
    namespace: Option<&str>,
    name: Option<&str>,
    query: &Query,
) -> ApiResult<Vec<AnyObject>> {
    match name {
        Some(name) => {
            let kind: ObjectKind =
                rk8s_api::object::kind_named(kind).ok_or_else(ApiError::no_route)?;
            Ok(vec![handlers.registry.get(&kind, namespace, name).await?])
        }
        None => handlers.list_kind(kind, namespace, &selectors(query)).await,
    }
}

async fn nodes(handlers: &Handlers, name: Option<&str>, query: &Query) -> ApiResult<Vec<Node>> {
    Ok(list(handlers, "Node", None, name, query)
        .await?
        .into_iter()
        .filter_map(|o| match o {
            AnyObject::Node(n) => Some(*n),
            _ => None,
        })
        .collect())
}

async fn pods(
    handlers: &Handlers,
    namespace: Option<&str>,
    name: Option<&str>,
    query: &Query,
) -> ApiResult<Vec<Pod>> {
    Ok(list(handlers, "Pod", namespace, name, query)
        .await?
        .into_iter()
        .filter_map(|o| match o {
            AnyObject::Pod(p) => Some(*p),
            _ => None,
        })
        .collect())
}

/// Each node's Summary, None for a node that did not give one.
async fn summaries(dialer: &NodeDialer, nodes: &[Node]) -> Vec<Option<Summary>> {
    join_all(nodes.iter().map(|node| async move {
        match dialer.get_json::<Summary>(node, "/stats/summary").await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!("no metrics from a node: {}", e.message);
                None
            }
        }
    }))
    .await
}

fn meta(name: &str, namespace: Option<&str>, of: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: of.labels.clone(),
        creation_timestamp: Some(Time(jiff::Timestamp::now())),
        ..Default::default()
    }
}

fn window_of(nanos: Option<u64>) -> String {
    window(Duration::from_nanos(nanos.unwrap_or(0)))
}

fn node_metrics(node: &Node, summary: &Summary) -> Option<NodeMetrics> {
    let cpu = &summary.node.cpu;
    let name = node.metadata.name.as_deref()?;
    Some(NodeMetrics {
        api_version: METRICS_API_VERSION.into(),
        kind: "NodeMetrics".into(),
        metadata: meta(name, None, &node.metadata),
        timestamp: cpu.time.clone(),
        window: window_of(cpu.usage_window_nano_seconds),
        usage: usage(cpu.usage_nano_cores?, summary.node.memory.working_set_bytes),
    })
}

fn pod_metrics(pod: &Pod, stats: &PodStats) -> Option<PodMetrics> {
    let containers = stats
        .containers
        .iter()
        .map(|c| {
            Some(ContainerMetrics {
                name: c.name.clone(),
                usage: usage(c.cpu.usage_nano_cores?, c.memory.working_set_bytes),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(PodMetrics {
        api_version: METRICS_API_VERSION.into(),
        kind: "PodMetrics".into(),
        metadata: meta(
            pod.metadata.name.as_deref()?,
            pod.metadata.namespace.as_deref(),
            &pod.metadata,
        ),
        timestamp: stats.cpu.time.clone(),
        window: window_of(stats.cpu.usage_window_nano_seconds),
        containers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk8s_api::metrics::{ContainerStats, CpuStats, MemoryStats, PodReference};
    use serde_json::json;

    fn stats(nano_cores: Option<u64>) -> PodStats {
        let t = Time(jiff::Timestamp::UNIX_EPOCH);
        let cpu = CpuStats {
            time: t.clone(),
            usage_nano_cores: nano_cores,
            usage_core_nano_seconds: 5_000_000_000,
            usage_window_nano_seconds: nano_cores.map(|_| 10_000_000_000),
        };
        let memory = MemoryStats {
            time: t.clone(),
            usage_bytes: 8 << 20,
            working_set_bytes: 4 << 20,
            available_bytes: None,
        };
        PodStats {
            pod_ref: PodReference {
                name: "web".into(),
                namespace: "default".into(),
                uid: "u1".into(),
            },
            start_time: t.clone(),
            containers: vec![ContainerStats {
                name: "main".into(),
                start_time: t,
                cpu: cpu.clone(),
                memory: memory.clone(),
            }],
            cpu,
            memory,
        }
    }

    #[test]
    fn a_pod_is_measured_only_once_every_container_has_a_rate() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "labels": {"app": "web"}},
        }))
        .unwrap();
        let m = pod_metrics(&pod, &stats(Some(150_000_000))).unwrap();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["kind"], "PodMetrics");
        assert_eq!(v["apiVersion"], "metrics.k8s.io/v1beta1");
        assert_eq!(v["metadata"]["labels"]["app"], "web");
        assert_eq!(v["window"], "10s");
        assert_eq!(v["containers"][0]["usage"]["cpu"], "150000000n");
        assert_eq!(v["containers"][0]["usage"]["memory"], "4096Ki");
        assert!(pod_metrics(&pod, &stats(None)).is_none());
    }

    #[test]
    fn only_selectors_pass_to_the_listing() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb&limit=5&fieldSelector=spec.nodeName%3Dn1",
        ));
        let s = selectors(&q);
        assert_eq!(s.get("labelSelector"), Some("app=web"));
        assert_eq!(s.get("fieldSelector"), Some("spec.nodeName=n1"));
        assert_eq!(s.get("limit"), None);
    }
}
