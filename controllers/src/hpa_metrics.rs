//! How an HPA measures its metrics, as kube-controller-manager's replica calculator
//! and metrics client do: Resource and ContainerResource metrics from the resource
//! metrics API (`metrics.k8s.io`), Pods, Object and External metrics from Prometheus
//! ([`crate::promql`]). Each metric becomes a replica proposal ([`crate::hpa`]) and
//! the status Kubernetes reports for it.

use std::collections::HashSet;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, ExternalMetricStatus, MetricIdentifier, MetricSpec,
    MetricStatus, MetricValueStatus, ObjectMetricStatus, PodsMetricStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use crate::hpa::{self, PodMetric, PodMetrics, Proposal, Tunables};
use crate::hpa_batch::Batches;
use crate::promql::{self, Sample};

/// A milli-value as a quantity (`1500m`, `2`).
pub(crate) fn quantity(milli: i64) -> K8sQuantity {
    if milli % 1000 == 0 {
        K8sQuantity((milli / 1000).to_string())
    } else {
        K8sQuantity(format!("{milli}m"))
    }
}

/// A quantity as a milli-value.
pub(crate) fn milli(q: Option<&K8sQuantity>) -> Option<i64> {
    q.and_then(|q| rk8s_api::Quantity::try_from(q).ok())
        .map(|q| q.milli_value())
}

/// One metric's outcome: its name for messages, the proposal, its status, and the
/// condition reason if it failed.
pub(crate) struct Measured {
    pub(crate) name: String,
    pub(crate) proposal: Result<Proposal, String>,
    pub(crate) status: Option<MetricStatus>,
    pub(crate) failure: &'static str,
}

/// What a sync measures its metrics with.
pub(crate) struct Measuring<'a> {
    pub(crate) batches: &'a Batches,
    pub(crate) tunables: &'a Tunables,
    pub(crate) namespace: &'a str,
    pub(crate) pods: &'a [Pod],
    pub(crate) current: i32,
    pub(crate) now: Timestamp,
}

impl Measuring<'_> {
    /// Each pod's use of `resource` (one container's, if given) from the resource
    /// metrics API: the pods of this HPA out of the round's read of its namespace.
    async fn resource_metrics(
        &self,
        resource: &str,
        container: Option<&str>,
    ) -> Result<PodMetrics, String> {
        let list = self
            .batches
            .pod_metrics(self.namespace)
            .await
            .map_err(|e| format!("unable to get metrics for resource {resource}: {e}"))?;
        let names: HashSet<&str> = self
            .pods
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let mut out = PodMetrics::new();
        for m in list.items.iter().filter(|m| {
            m.metadata.namespace.as_deref() == Some(self.namespace)
                && names.contains(m.metadata.name.as_deref().unwrap_or_default())
        }) {
            let mut sum = 0i64;
            let mut found = false;
            for c in m
                .containers
                .iter()
                .filter(|c| container.is_none_or(|n| n == c.name))
            {
                if let Some(v) = milli(c.usage.get(resource)) {
                    sum = sum.saturating_add(v);
                    found = true;
                }
            }
            if !found {
                continue;
            }
            let window = m
                .window
                .trim_end_matches('s')
                .parse::<f64>()
                .ok()
                .and_then(|s| SignedDuration::try_from_secs_f64(s).ok())
                .unwrap_or_default();
            out.insert(
                m.metadata.name.clone().unwrap_or_default(),
                PodMetric {
                    value: sum,
                    timestamp: m.timestamp.0,
                    window,
                },
            );
        }
        Ok(out)
    }

    /// The samples of a metric for this HPA: the round's query of the metric across
    /// the cluster (a bare series name with its selector), then the samples whose
    /// labels match `scope` (`namespace`, the pod or object); a PromQL expression
    /// runs as written and is not narrowed.
    async fn samples(
        &self,
        metric: &MetricIdentifier,
        scope: &[(&str, &str)],
    ) -> Result<Vec<Sample>, String> {
        let query = promql::query_for(&metric.name, metric.selector.as_ref(), &[])?;
        let samples = self.batches.query(&query).await?;
        let narrowed = promql::is_series_name(&metric.name);
        Ok(samples
            .iter()
            .filter(|s| s.value.is_finite())
            .filter(|s| {
                !narrowed
                    || scope
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).is_some_and(|l| l == v))
            })
            .cloned()
            .collect())
    }

    /// The sum of a metric's samples for this HPA. No sample is an error, not zero: a
    /// series that went missing must not scale a target to nothing.
    async fn total(
        &self,
        metric: &MetricIdentifier,
        scope: &[(&str, &str)],
    ) -> Result<i64, String> {
        let values: Vec<f64> = self
            .samples(metric, scope)
            .await?
            .iter()
            .map(|s| s.value)
            .collect();
        if values.is_empty() {
            let scoped: Vec<String> = scope
                .iter()
                .map(|(k, v)| format!("{k}={}", promql::equals(v)))
                .collect();
            let query = promql::query_for(&metric.name, metric.selector.as_ref(), &scoped)?;
            return Err(format!("no samples for {query:?} in Prometheus"));
        }
        Ok((values.iter().sum::<f64>() * 1000.0) as i64)
    }

    /// Measures metric `m` and proposes a replica count from it.
    pub(crate) async fn measure(&self, m: &MetricSpec) -> Measured {
        let t = self.tunables;
        let failed = |name: String, failure, e: String| Measured {
            name,
            proposal: Err(e),
            status: None,
            failure,
        };
        match m.type_.as_str() {
            "Resource" | "ContainerResource" => {
                let (resource, container, target) = match (&m.resource, &m.container_resource) {
                    (Some(r), _) if m.type_ == "Resource" => (r.name.as_str(), None, &r.target),
                    (_, Some(c)) => (c.name.as_str(), Some(c.container.as_str()), &c.target),
                    _ => {
                        return failed(
                            m.type_.clone(),
                            "FailedGetResourceMetric",
                            "the metric source is missing".into(),
                        );
                    }
                };
                let (failure, what) = if container.is_some() {
                    ("FailedGetContainerResourceMetric", "container resource")
                } else {
                    ("FailedGetResourceMetric", "resource")
                };
                let utilization = target.average_utilization;
                let name = match utilization {
                    Some(_) => format!("{resource} {what} utilization (percentage of request)"),
                    None => format!("{resource} {what}"),
                };
                let metrics = match self.resource_metrics(resource, container).await {
                    Ok(m) => m,
                    Err(e) => return failed(name, failure, e),
                };
                let proposal = match (utilization, milli(target.average_value.as_ref())) {
                    (Some(u), _) => hpa::resource_utilization_replicas(
                        self.current,
                        u,
                        resource,
                        container,
                        self.pods,
                        metrics,
                        self.now,
                        t,
                    ),
                    (None, Some(v)) => hpa::average_value_replicas(
                        self.current,
                        v,
                        resource == "cpu",
                        self.pods,
                        metrics,
                        self.now,
                        t,
                    ),
                    (None, None) => {
                        Err("the target has neither averageUtilization nor averageValue".into())
                    }
                };
                let status = proposal.as_ref().ok().map(|p| {
                    let current = MetricValueStatus {
                        average_utilization: p.utilization,
                        average_value: Some(quantity(p.average)),
                        value: None,
                    };
                    match container {
                        Some(c) => MetricStatus {
                            type_: m.type_.clone(),
                            container_resource: Some(ContainerResourceMetricStatus {
                                name: resource.into(),
                                container: c.into(),
                                current,
                            }),
                            ..Default::default()
                        },
                        None => MetricStatus {
                            type_: m.type_.clone(),
                            resource: Some(ResourceMetricStatus {
                                name: resource.into(),
                                current,
                            }),
                            ..Default::default()
                        },
                    }
                });
                Measured {
                    name,
                    proposal,
                    status,
                    failure,
                }
            }
            "Pods" => {
                let failure = "FailedGetPodsMetric";
                let Some(source) = &m.pods else {
                    return failed(
                        "pods metric".into(),
                        failure,
                        "the metric source is missing".into(),
                    );
                };
                let name = format!("pods metric {}", source.metric.name);
                let names: Vec<&str> = self
                    .pods
                    .iter()
                    .filter_map(|p| p.metadata.name.as_deref())
                    .collect();
                let samples = match self
                    .samples(&source.metric, &[("namespace", self.namespace)])
                    .await
                {
                    Ok(s) => s,
                    Err(e) => return failed(name, failure, e),
                };
                let mut metrics = PodMetrics::new();
                for s in &samples {
                    let in_namespace = s
                        .labels
                        .get("namespace")
                        .is_none_or(|n| n == self.namespace);
                    if let (Some(pod), true) = (s.labels.get("pod"), in_namespace)
                        && names.contains(&pod.as_str())
                    {
                        let e = metrics.entry(pod.clone()).or_insert(PodMetric {
                            value: 0,
                            timestamp: self.now,
                            window: SignedDuration::ZERO,
                        });
                        e.value = e.value.saturating_add((s.value * 1000.0) as i64);
                    }
                }
                let proposal = match milli(source.target.average_value.as_ref()) {
                    Some(v) => hpa::average_value_replicas(
                        self.current,
                        v,
                        false,
                        self.pods,
                        metrics,
                        self.now,
                        t,
                    ),
                    None => Err("a Pods metric needs an averageValue target".into()),
                };
                let status = proposal.as_ref().ok().map(|p| MetricStatus {
                    type_: "Pods".into(),
                    pods: Some(PodsMetricStatus {
                        metric: source.metric.clone(),
                        current: MetricValueStatus {
                            average_value: Some(quantity(p.average)),
                            ..Default::default()
                        },
                    }),
                    ..Default::default()
                });
                Measured {
                    name,
                    proposal,
                    status,
                    failure,
                }
            }
            "Object" | "External" => {
                let object = m.type_ == "Object";
                let failure = if object {
                    "FailedGetObjectMetric"
                } else {
                    "FailedGetExternalMetric"
                };
                let kind;
                let (metric, target, scope, name): (
                    &MetricIdentifier,
                    _,
                    Vec<(&str, &str)>,
                    String,
                ) = match (&m.object, &m.external) {
                    (Some(o), _) if object => {
                        kind = o.described_object.kind.to_lowercase();
                        (
                            &o.metric,
                            &o.target,
                            vec![
                                ("namespace", self.namespace),
                                (kind.as_str(), o.described_object.name.as_str()),
                            ],
                            format!("{} metric {}", o.described_object.kind, o.metric.name),
                        )
                    }
                    (_, Some(e)) if !object => (
                        &e.metric,
                        &e.target,
                        Vec::new(),
                        format!("external metric {}", e.metric.name),
                    ),
                    _ => {
                        return failed(
                            m.type_.clone(),
                            failure,
                            "the metric source is missing".into(),
                        );
                    }
                };
                let value = self.total(metric, &scope).await;
                let value = match value {
                    Ok(v) => v,
                    Err(e) => return failed(name, failure, e),
                };
                let average = target.type_ == "AverageValue";
                let proposal = match (
                    average,
                    milli(target.value.as_ref()),
                    milli(target.average_value.as_ref()),
                ) {
                    (false, Some(v), _) => {
                        hpa::value_replicas(self.current, value, v, hpa::ready_pods(self.pods), t)
                    }
                    (true, _, Some(v)) => hpa::per_replica_replicas(self.current, value, v, t),
                    _ => Err(format!(
                        "the target of type {} has no matching value",
                        target.type_
                    )),
                };
                let status = proposal.as_ref().ok().map(|p| {
                    let current = if average {
                        MetricValueStatus {
                            average_value: Some(quantity(p.average)),
                            ..Default::default()
                        }
                    } else {
                        MetricValueStatus {
                            value: Some(quantity(value)),
                            ..Default::default()
                        }
                    };
                    match (&m.object, &m.external) {
                        (Some(o), _) if object => MetricStatus {
                            type_: "Object".into(),
                            object: Some(ObjectMetricStatus {
                                described_object: o.described_object.clone(),
                                metric: o.metric.clone(),
                                current,
                            }),
                            ..Default::default()
                        },
                        _ => MetricStatus {
                            type_: "External".into(),
                            external: Some(ExternalMetricStatus {
                                metric: metric.clone(),
                                current,
                            }),
                            ..Default::default()
                        },
                    }
                });
                Measured {
                    name,
                    proposal,
                    status,
                    failure,
                }
            }
            other => failed(
                other.to_string(),
                "InvalidMetricSourceType",
                format!("unknown metric source type {other:?}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(quantity(1500).0, "1500m");
        assert_eq!(quantity(2000).0, "2");
        assert_eq!(milli(Some(&K8sQuantity("250m".into()))), Some(250));
    }
}
