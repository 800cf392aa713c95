//! HorizontalPodAutoscalers, with the TARGETS cell that sets each metric's current
//! value beside its target (`cpu: 72%/50%`).

use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus,
};
use serde_json::Value;

use super::format::{age, quantity, with_more};
use super::{AGE, Column, NAME, col};

/// `kubectl get horizontalpodautoscalers` (kube declares the counts as strings).
pub(super) const HPA: &[Column] = &[
    NAME,
    col("Reference", "string"),
    col("Targets", "string"),
    col("MinPods", "string"),
    col("MaxPods", "string"),
    col("Replicas", "string"),
    AGE,
];

pub(super) fn hpa(h: &HorizontalPodAutoscaler, now: Timestamp) -> Vec<Value> {
    let spec = h.spec.clone().unwrap_or_default();
    let status = h.status.clone().unwrap_or_default();
    let target = &spec.scale_target_ref;
    vec![
        h.metadata.name.clone().unwrap_or_default().into(),
        format!("{}/{}", target.kind, target.name).into(),
        targets(
            spec.metrics.as_deref().unwrap_or_default(),
            status.current_metrics.as_deref().unwrap_or_default(),
        )
        .into(),
        spec.min_replicas
            .map_or_else(|| "<unset>".to_string(), |m| m.to_string())
            .into(),
        spec.max_replicas.into(),
        status.current_replicas.unwrap_or(0).into(),
        age(h.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

const UNKNOWN: &str = "<unknown>";

fn q(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> Option<String> {
    q.map(quantity)
}

/// `current/target` of a value or average-value target; ` (avg)` after averages when
/// `mark_average` (Object and External metrics).
fn value(target: &MetricTarget, current: Option<&MetricValueStatus>, mark_average: bool) -> String {
    match &target.average_value {
        Some(avg) => {
            let now = current.and_then(|c| q(c.average_value.as_ref()));
            let suffix = if mark_average { " (avg)" } else { "" };
            format!(
                "{}/{}{suffix}",
                now.as_deref().unwrap_or(UNKNOWN),
                quantity(avg)
            )
        }
        None => {
            let now = current.and_then(|c| q(c.value.as_ref()));
            let goal = q(target.value.as_ref()).unwrap_or_else(|| "0".into());
            format!("{}/{goal}", now.as_deref().unwrap_or(UNKNOWN))
        }
    }
}

/// A Resource or ContainerResource metric: `name: current/target`, as utilization
/// (`72%/50%`, `<auto>` without a target) unless the target is an average value.
fn resource(name: &str, target: &MetricTarget, current: Option<&MetricValueStatus>) -> String {
    if let Some(avg) = &target.average_value {
        let now = current.and_then(|c| q(c.average_value.as_ref()));
        return format!(
            "{name}: {}/{}",
            now.as_deref().unwrap_or(UNKNOWN),
            quantity(avg)
        );
    }
    let now = current
        .and_then(|c| c.average_utilization)
        .map_or_else(|| UNKNOWN.to_string(), |u| format!("{u}%"));
    let goal = target
        .average_utilization
        .map_or_else(|| "<auto>".to_string(), |u| format!("{u}%"));
    format!("{name}: {now}/{goal}")
}

/// The TARGETS cell (`formatHPAMetrics`): each metric beside the status at the same
/// index, the first two then `+ N more...`; `<none>` without metrics.
pub(super) fn targets(specs: &[MetricSpec], statuses: &[MetricStatus]) -> String {
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let s = statuses.get(i);
            match m.type_.as_str() {
                "External" => m.external.as_ref().map(|e| {
                    let now = s.and_then(|s| s.external.as_ref()).map(|e| &e.current);
                    value(&e.target, now, true)
                }),
                "Pods" => m.pods.as_ref().map(|p| {
                    let now = s.and_then(|s| s.pods.as_ref()).map(|p| &p.current);
                    let now = now.and_then(|c| q(c.average_value.as_ref()));
                    let goal = q(p.target.average_value.as_ref()).unwrap_or_else(|| "0".into());
                    format!("{}/{goal}", now.as_deref().unwrap_or(UNKNOWN))
                }),
                "Object" => m.object.as_ref().map(|o| {
                    let now = s.and_then(|s| s.object.as_ref()).map(|o| &o.current);
                    value(&o.target, now, true)
                }),
                "Resource" => m.resource.as_ref().map(|r| {
                    let now = s.and_then(|s| s.resource.as_ref()).map(|r| &r.current);
                    resource(&r.name, &r.target, now)
                }),
                "ContainerResource" => m.container_resource.as_ref().map(|r| {
                    let now = s
                        .and_then(|s| s.container_resource.as_ref())
                        .map(|r| &r.current);
                    resource(&r.name, &r.target, now)
                }),
                _ => None,
            }
            .unwrap_or_else(|| "<unknown type>".to_string())
        })
        .collect();
    with_more(&list, 2, ", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_targets_read_as_kubectl_prints_them() {
        let specs: Vec<MetricSpec> = serde_json::from_value(serde_json::json!([
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
            {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "AverageValue", "averageValue": "5"}}},
            {"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "web"}, "metric": {"name": "hits"}, "target": {"type": "Value", "value": "2k"}}},
        ]))
        .unwrap();
        let statuses: Vec<MetricStatus> = serde_json::from_value(serde_json::json!([
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 72, "averageValue": "72m"}}},
        ]))
        .unwrap();
        assert_eq!(
            targets(&specs, &statuses),
            "cpu: 72%/50%, memory: <unknown>/100Mi + 3 more..."
        );
        assert_eq!(
            targets(&specs[2..], &[]),
            "<unknown>/10, <unknown>/5 (avg) + 1 more..."
        );
        assert_eq!(targets(&specs[4..], &[]), "<unknown>/2k");
        assert_eq!(targets(&specs[..1], &[]), "cpu: <unknown>/50%");
        assert_eq!(targets(&[], &[]), "<none>");
    }
}
