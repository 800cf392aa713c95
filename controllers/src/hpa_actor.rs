//! HorizontalPodAutoscalers as actors: an [`HpaSupervisor`] watches HPAs and runs one
//! [`HpaActor`] per HPA. Every sync period (15 s by default, and at once when the HPA
//! changes) the actor reads its target's `scale` subresource and pods, the pods'
//! metrics (the resource metrics API for Resource and ContainerResource metrics;
//! Prometheus for Pods, Object and External ones, see [`crate::promql`]), decides with
//! [`crate::hpa`], rescales through the `scale` subresource, and writes the status
//! (current and desired replicas, current metrics, last scale time, the conditions
//! AbleToScale, ScalingActive and ScalingLimited) and events, worded as
//! kube-controller-manager words them.
//!
//! The recommendations and scale events that stabilization and the policies look back
//! on live in the actor, as in kube-controller-manager's memory: a killed actor keeps
//! them (its supervisor restarts the same value), a new leader starts without.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, ExternalMetricStatus, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerCondition, MetricIdentifier, MetricSpec, MetricStatus,
    MetricValueStatus, ObjectMetricStatus, PodsMetricStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use rk8s_api::metrics::{MetricsList, PodMetrics as PodMetricsObject};
use rk8s_api::selector::{SelectorExt, parse_label_selector};

use crate::chaos::{Actors, Tracker};
use crate::common::{Stop, object_name};
use crate::events::{Involved, record};
use crate::hpa::{self, History, PodMetric, PodMetrics, Proposal, Tunables};
use crate::promql::{self, Prometheus};

/// How the HPAs run (kube-controller-manager's `--horizontal-pod-autoscaler-*`).
#[derive(Clone, Debug)]
pub struct HpaConfig {
    /// Time between syncs of one HPA.
    pub sync_period: Duration,
    /// Tolerance and the start-up periods of pods.
    pub tunables: Tunables,
    /// The Prometheus that Pods, Object and External metrics are read from.
    pub prometheus: Option<Prometheus>,
}

impl Default for HpaConfig {
    fn default() -> Self {
        HpaConfig {
            sync_period: Duration::from_secs(15),
            tunables: Tunables::default(),
            prometheus: None,
        }
    }
}

const API_VERSION: &str = "autoscaling/v2";
const KIND: &str = "HorizontalPodAutoscaler";

/// A newer version of the HPA, from the watch.
#[derive(Message)]
#[rtype(result = "()")]
struct Update(Box<HorizontalPodAutoscaler>);

#[derive(Message)]
#[rtype(result = "()")]
struct Sync;

/// The pods as the supervisor's reflector keeps them (a new one after its restart).
#[derive(Message)]
#[rtype(result = "()")]
struct Pods(Store<Pod>);

#[derive(Message)]
#[rtype(result = "()")]
struct Synced(History);

/// One HPA's actor.
pub struct HpaActor {
    client: kube::Client,
    config: Arc<HpaConfig>,
    pods: Store<Pod>,
    hpa: HorizontalPodAutoscaler,
    history: History,
    busy: bool,
    tracker: Tracker,
}

impl Actor for HpaActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.config.sync_period, |_, ctx| ctx.notify(Sync));
        ctx.notify(Sync);
    }
}

impl Supervised for HpaActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.tracker.restarted();
        self.busy = false;
    }
}

impl Handler<Update> for HpaActor {
    type Result = ();

    fn handle(&mut self, msg: Update, ctx: &mut Self::Context) {
        self.tracker.received();
        let changed = msg.0.metadata.generation != self.hpa.metadata.generation;
        self.hpa = *msg.0;
        if changed {
            ctx.notify(Sync);
        }
    }
}

impl Handler<Pods> for HpaActor {
    type Result = ();

    fn handle(&mut self, msg: Pods, _ctx: &mut Self::Context) {
        self.pods = msg.0;
    }
}

impl Handler<Sync> for HpaActor {
    type Result = ();

    fn handle(&mut self, _: Sync, ctx: &mut Self::Context) {
        if self.busy {
            return;
        }
        self.busy = true;
        let started = std::time::Instant::now();
        let fut = sync(
            self.client.clone(),
            self.config.clone(),
            self.pods.clone(),
            self.hpa.clone(),
            self.history.clone(),
        );
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(history, failed), _act, ctx| {
                    crate::metrics::reconciled(KIND, started.elapsed(), failed);
                    ctx.notify(Synced(history));
                }),
        );
    }
}

impl Handler<Synced> for HpaActor {
    type Result = ();

    fn handle(&mut self, msg: Synced, _ctx: &mut Self::Context) {
        self.history = msg.0;
        self.busy = false;
    }
}

impl Handler<Stop> for HpaActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// The conditions of the status, set as Kubernetes sets them (the transition time
/// moves only when the status changes).
struct Conditions(Vec<HorizontalPodAutoscalerCondition>);

impl Conditions {
    /// Sets a condition; whether its status or reason changed (warnings are recorded
    /// as events only then: rk8s has no event aggregation to fold a warning repeated
    /// every sync).
    fn set(&mut self, type_: &str, status: &str, reason: &str, message: impl Into<String>) -> bool {
        let now = Some(Time(Timestamp::now()));
        let message = Some(message.into());
        match self.0.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                let changed = c.status != status || c.reason.as_deref() != Some(reason);
                if c.status != status {
                    c.last_transition_time = now;
                }
                c.status = status.into();
                c.reason = Some(reason.into());
                c.message = message;
                changed
            }
            None => {
                self.0.push(HorizontalPodAutoscalerCondition {
                    type_: type_.into(),
                    status: status.into(),
                    reason: Some(reason.into()),
                    message,
                    last_transition_time: now,
                });
                true
            }
        }
    }

    fn apply(&mut self, type_: &str, c: &hpa::Condition) {
        self.set(type_, c.status, c.reason, c.message.clone());
    }
}

/// A milli-value as a quantity (`1500m`, `2`).
fn quantity(milli: i64) -> K8sQuantity {
    if milli % 1000 == 0 {
        K8sQuantity((milli / 1000).to_string())
    } else {
        K8sQuantity(format!("{milli}m"))
    }
}

fn milli(q: Option<&K8sQuantity>) -> Option<i64> {
    q.and_then(|q| rk8s_api::Quantity::try_from(q).ok())
        .map(|q| q.milli_value())
}

/// The API resource of a scale target reference.
fn target_resource(api_version: Option<&str>, kind: &str) -> Result<ApiResource, String> {
    let group = api_version
        .and_then(|v| v.rsplit_once('/'))
        .map_or("", |(g, _)| g);
    let found = rk8s_api::object::kinds()
        .into_iter()
        .find(|k| k.kind == kind && (api_version.is_none() || k.group == group))
        .filter(|k| matches!(k.plural, "deployments" | "replicasets"))
        .ok_or_else(|| {
            format!(
                "{kind} in {} has no scale subresource here",
                api_version.unwrap_or("?")
            )
        })?;
    Ok(ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(found.group, found.version, found.kind),
        found.plural,
    ))
}

/// One metric's outcome: its name for messages, the proposal, its status, and the
/// condition reason if it failed.
struct Measured {
    name: String,
    proposal: Result<Proposal, String>,
    status: Option<MetricStatus>,
    failure: &'static str,
}

/// What a sync measures its metrics with.
struct Measuring<'a> {
    client: &'a kube::Client,
    config: &'a HpaConfig,
    namespace: &'a str,
    selector: &'a str,
    pods: &'a [Pod],
    current: i32,
    now: Timestamp,
}

impl Measuring<'_> {
    /// Each pod's use of `resource` (one container's, if given) from the resource
    /// metrics API.
    async fn resource_metrics(
        &self,
        resource: &str,
        container: Option<&str>,
    ) -> Result<PodMetrics, String> {
        let path = format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods?{}",
            self.namespace,
            form_urlencoded::Serializer::new(String::new())
                .append_pair("labelSelector", self.selector)
                .finish()
        );
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let list: MetricsList<PodMetricsObject> = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("unable to get metrics for resource {resource}: {e}"))?;
        let mut out = PodMetrics::new();
        for m in list.items {
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

    fn prometheus(&self) -> Result<&Prometheus, String> {
        self.config.prometheus.as_ref().ok_or_else(|| {
            "no Prometheus to read the metric from: start rk8s-server with --prometheus-url".into()
        })
    }

    /// The sum of a query's samples. No sample is an error, not zero: a series that
    /// went missing must not scale a target to nothing.
    async fn total(&self, query: &str) -> Result<i64, String> {
        let values: Vec<f64> = self
            .prometheus()?
            .query(query)
            .await?
            .iter()
            .map(|s| s.value)
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() {
            return Err(format!("no samples for {query:?} in Prometheus"));
        }
        Ok((values.iter().sum::<f64>() * 1000.0) as i64)
    }

    async fn measure(&self, m: &MetricSpec) -> Measured {
        let t = &self.config.tunables;
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
                let query = promql::query_for(
                    &source.metric.name,
                    source.metric.selector.as_ref(),
                    &[
                        format!("namespace={}", promql::equals(self.namespace)),
                        format!(
                            "pod=~{}",
                            promql::equals(&promql::any_of(names.iter().copied()))
                        ),
                    ],
                );
                let samples = match query {
                    Ok(q) => match self.prometheus() {
                        Ok(p) => p.query(&q).await,
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                };
                let samples = match samples {
                    Ok(s) => s,
                    Err(e) => return failed(name, failure, e),
                };
                let mut metrics = PodMetrics::new();
                for s in samples.iter().filter(|s| s.value.is_finite()) {
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
                let (metric, target, scope, name): (&MetricIdentifier, _, Vec<String>, String) =
                    match (&m.object, &m.external) {
                        (Some(o), _) if object => (
                            &o.metric,
                            &o.target,
                            vec![
                                format!("namespace={}", promql::equals(self.namespace)),
                                format!(
                                    "{}={}",
                                    o.described_object.kind.to_lowercase(),
                                    promql::equals(&o.described_object.name)
                                ),
                            ],
                            format!("{} metric {}", o.described_object.kind, o.metric.name),
                        ),
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
                let value = match promql::query_for(&metric.name, metric.selector.as_ref(), &scope)
                {
                    Ok(q) => self.total(&q).await,
                    Err(e) => Err(e),
                };
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

/// One sync of one HPA; returns the history to keep and whether it failed.
async fn sync(
    client: kube::Client,
    config: Arc<HpaConfig>,
    pods: Store<Pod>,
    mut hpa: HorizontalPodAutoscaler,
    mut history: History,
) -> (History, bool) {
    let Some(spec) = hpa.spec.clone() else {
        return (history, false);
    };
    let now = Timestamp::now();
    let namespace = hpa
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let about = Involved::of(API_VERSION, KIND, &hpa.metadata);
    let mut status = hpa.status.clone().unwrap_or_default();
    let mut conditions = Conditions(status.conditions.take().unwrap_or_default());
    let key = object_name(&hpa.metadata);
    let target = &spec.scale_target_ref;
    let resource = target_resource(target.api_version.as_deref(), &target.kind);
    let api =
        resource.map(|r| Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &r));
    let scale: Result<Scale, String> = match &api {
        Ok(api) => api.get_scale(&target.name).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    let scale = match scale {
        Ok(s) => s,
        Err(e) => {
            let message =
                format!("the HPA controller was unable to get the target's current scale: {e}");
            if conditions.set("AbleToScale", "False", "FailedGetScale", &message) {
                record(&client, about, "Warning", "FailedGetScale", &e).await;
            }
            status.conditions = Some(conditions.0);
            write_status(&client, &mut hpa, status, &key).await;
            return (history, true);
        }
    };
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let selector = scale
        .status
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let (min, max) = (spec.min_replicas.unwrap_or(1), spec.max_replicas);
    let mut failed = false;
    let (desired, reason) = if current == 0 && min != 0 {
        conditions.set(
            "ScalingActive",
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
        (0, String::new())
    } else if current > max {
        (
            max,
            "Current number of replicas above Spec.MaxReplicas".to_string(),
        )
    } else if current < min {
        (
            min,
            "Current number of replicas below Spec.MinReplicas".to_string(),
        )
    } else {
        // From the supervisor's reflector (an informer, as kube-controller-manager
        // reads pods), not a list per sync.
        let ready = tokio::time::timeout(Duration::from_secs(30), pods.wait_until_ready()).await;
        let pods: Vec<Pod> = match (ready, parse_label_selector(&selector)) {
            (Ok(Ok(())), Ok(selects)) => pods
                .state()
                .iter()
                .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
                .filter(|p| selects.matches(p.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())))
                .map(|p| Pod::clone(p))
                .collect(),
            (_, Err(e)) => {
                tracing::debug!(hpa = %key, "the target's selector: {e}");
                Vec::new()
            }
            _ => {
                tracing::debug!(hpa = %key, "the pods are not listed yet");
                Vec::new()
            }
        };
        let cx = Measuring {
            client: &client,
            config: &config,
            namespace: &namespace,
            selector: &selector,
            pods: &pods,
            current,
            now,
        };
        let mut measured = Vec::new();
        for m in spec.metrics.iter().flatten() {
            measured.push(cx.measure(m).await);
        }
        let statuses: Vec<MetricStatus> =
            measured.iter().filter_map(|m| m.status.clone()).collect();
        status.current_metrics = (!statuses.is_empty()).then_some(statuses);
        let proposals: Vec<(String, Result<Proposal, String>)> = measured
            .iter()
            .map(|m| (m.name.clone(), m.proposal.clone()))
            .collect();
        match hpa::combine(current, &proposals) {
            Err(e) => {
                let reason = measured
                    .iter()
                    .find(|m| m.proposal.is_err())
                    .map_or("FailedGetResourceMetric", |m| m.failure);
                let message = format!("the HPA was unable to compute the replica count: {e}");
                if conditions.set("ScalingActive", "False", reason, &message) {
                    record(&client, about.clone(), "Warning", reason, &e).await;
                    let computing = "FailedComputeMetricsReplicas";
                    record(&client, about, "Warning", computing, &e).await;
                }
                status.current_replicas = scale.status.as_ref().map(|s| s.replicas);
                status.conditions = Some(conditions.0);
                write_status(&client, &mut hpa, status, &key).await;
                return (history, true);
            }
            Ok((replicas, metric)) => {
                if proposals.iter().any(|(_, p)| p.is_err()) {
                    failed = true;
                }
                conditions.set(
                    "ScalingActive",
                    "True",
                    "ValidMetricFound",
                    format!(
                        "the HPA was able to successfully calculate a replica count from {metric}"
                    ),
                );
                let n =
                    history.normalize(spec.behavior.as_ref(), (min, max), current, replicas, now);
                conditions.apply("AbleToScale", &n.able_to_scale);
                conditions.apply("ScalingLimited", &n.scaling_limited);
                let reason = if n.replicas > current {
                    format!("{metric} above target")
                } else {
                    "All metrics below target".to_string()
                };
                (n.replicas, reason)
            }
        }
    };
    if desired != current {
        let patch = serde_json::json!({"spec": {"replicas": desired}});
        let rescaled = match &api {
            Ok(api) => api
                .patch_scale(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        match rescaled {
            Ok(()) => {
                conditions.set(
                    "AbleToScale",
                    "True",
                    "SucceededRescale",
                    format!("the HPA controller was able to update the target scale to {desired}"),
                );
                let message = format!("New size: {desired}; reason: {reason}");
                tracing::info!(hpa = %key, from = current, to = desired, "{reason}");
                record(&client, about, "Normal", "SuccessfulRescale", &message).await;
                history.record_scale(spec.behavior.as_ref(), current, desired, now);
                status.last_scale_time = Some(Time(now));
            }
            Err(e) => {
                conditions.set(
                    "AbleToScale",
                    "False",
                    "FailedUpdateScale",
                    format!("the HPA controller was unable to update the target scale: {e}"),
                );
                let message = format!("New size: {desired}; reason: {reason}; error: {e}");
                record(&client, about, "Warning", "FailedRescale", &message).await;
                failed = true;
            }
        }
    }
    status.current_replicas = scale.status.as_ref().map(|s| s.replicas);
    status.desired_replicas = desired;
    status.observed_generation = hpa.metadata.generation;
    status.conditions = Some(conditions.0);
    write_status(&client, &mut hpa, status, &key).await;
    (history, failed)
}

async fn write_status(
    client: &kube::Client,
    hpa: &mut HorizontalPodAutoscaler,
    status: k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerStatus,
    key: &str,
) {
    if hpa.status.as_ref() == Some(&status) {
        return;
    }
    hpa.status = Some(status);
    if let Err(e) = crate::common::replace_status(client, hpa).await {
        tracing::debug!(hpa = %key, "writing the status: {e}");
    }
}

/// Watches HPAs; runs one actor per HPA.
pub struct HpaSupervisor {
    client: kube::Client,
    config: Arc<HpaConfig>,
    pods: Store<Pod>,
    actors: HashMap<String, (Addr<HpaActor>, Tracker)>,
    registry: Actors,
    tracker: Tracker,
}

impl HpaSupervisor {
    /// A supervisor talking to the API through `client`, listing its actors in
    /// `registry`; `tracker` counts its own restarts.
    pub fn new(
        client: kube::Client,
        config: HpaConfig,
        registry: Actors,
        tracker: Tracker,
    ) -> Self {
        HpaSupervisor {
            client,
            config: Arc::new(config),
            // Replaced by a filled one when the supervisor starts.
            pods: reflector::store().0,
            actors: HashMap::new(),
            registry,
            tracker,
        }
    }

    fn apply(&mut self, hpa: HorizontalPodAutoscaler) {
        let key = object_name(&hpa.metadata);
        if let Some((addr, tracker)) = self.actors.get(&key) {
            tracker.sent();
            addr.do_send(Update(Box::new(hpa)));
            return;
        }
        let (client, config) = (self.client.clone(), self.config.clone());
        let pods = self.pods.clone();
        let tracker = Tracker::default();
        let t = tracker.clone();
        let addr = Supervisor::start(move |_| HpaActor {
            client,
            config,
            pods,
            hpa,
            history: History::default(),
            busy: false,
            tracker: t,
        });
        self.registry.add(KIND, &key, &addr, &tracker);
        self.actors.insert(key, (addr, tracker));
    }

    fn remove(&mut self, hpa: &HorizontalPodAutoscaler) {
        let key = object_name(&hpa.metadata);
        if let Some((addr, _)) = self.actors.remove(&key) {
            addr.do_send(Stop);
            self.registry.remove(KIND, &key);
        }
    }
}

impl Actor for HpaSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let hpas = watcher::watcher(
            Api::<HorizontalPodAutoscaler>::all(self.client.clone()),
            Default::default(),
        )
        .default_backoff();
        ctx.add_stream(hpas);
        let (reader, writer) = reflector::store();
        let pods = reflector::reflector(
            writer,
            watcher::watcher(Api::<Pod>::all(self.client.clone()), Default::default()),
        )
        .default_backoff();
        ctx.add_stream(pods);
        for (addr, _) in self.actors.values() {
            addr.do_send(Pods(reader.clone()));
        }
        self.pods = reader;
        tracing::info!(
            sync_period = ?self.config.sync_period,
            prometheus = self.config.prometheus.is_some(),
            "horizontal pod autoscaler controller started"
        );
    }
}

impl Supervised for HpaSupervisor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.tracker.restarted();
    }
}

impl StreamHandler<Result<Event<HorizontalPodAutoscaler>, watcher::Error>> for HpaSupervisor {
    fn handle(
        &mut self,
        event: Result<Event<HorizontalPodAutoscaler>, watcher::Error>,
        _ctx: &mut Self::Context,
    ) {
        match event {
            Ok(Event::InitApply(h) | Event::Apply(h)) => self.apply(h),
            Ok(Event::Delete(h)) => self.remove(&h),
            Ok(Event::Init | Event::InitDone) => {}
            Err(e) => tracing::warn!("watching horizontal pod autoscalers: {e}"),
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl StreamHandler<Result<Event<Pod>, watcher::Error>> for HpaSupervisor {
    fn handle(&mut self, event: Result<Event<Pod>, watcher::Error>, _ctx: &mut Self::Context) {
        if let Err(e) = event {
            tracing::warn!("watching pods: {e}");
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

crate::common::crash_on_request!(HpaActor, HpaSupervisor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_targets_read_as_kubernetes_writes_them() {
        assert_eq!(quantity(1500).0, "1500m");
        assert_eq!(quantity(2000).0, "2");
        assert_eq!(milli(Some(&K8sQuantity("250m".into()))), Some(250));
        let r = target_resource(Some("apps/v1"), "Deployment").unwrap();
        assert_eq!(
            (r.plural.as_str(), r.group.as_str()),
            ("deployments", "apps")
        );
        assert!(target_resource(Some("v1"), "Pod").is_err());
    }

    #[test]
    fn a_condition_reports_a_change_of_status_or_reason_only() {
        let mut c = Conditions(Vec::new());
        assert!(c.set("ScalingActive", "False", "FailedGetPodsMetric", "no data"));
        let since = c.0[0].last_transition_time.clone();
        assert!(!c.set(
            "ScalingActive",
            "False",
            "FailedGetPodsMetric",
            "no data again"
        ));
        assert_eq!(c.0[0].message.as_deref(), Some("no data again"));
        assert!(c.set("ScalingActive", "False", "FailedGetExternalMetric", "x"));
        assert_eq!(c.0[0].last_transition_time, since);
        assert!(c.set("ScalingActive", "True", "ValidMetricFound", "ok"));
        assert_eq!(c.0.len(), 1);
    }
}
