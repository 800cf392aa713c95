//! HorizontalPodAutoscalers as actors: an [`HpaSupervisor`] watches HPAs and runs one
//! [`HpaActor`] per HPA in the registry. Every sync period (15 s by default) the
//! supervisor starts a round that syncs every HPA, and an HPA also syncs at once when
//! it changes: the actor reads its target's `scale` subresource and pods, the pods'
//! metrics ([`crate::hpa_metrics`], read once per round for all HPAs:
//! [`crate::hpa_batch`]), decides with [`crate::hpa`],
//! rescales through the `scale` subresource, and writes the status (current and
//! desired replicas, current metrics, last scale time, the conditions AbleToScale,
//! ScalingActive and ScalingLimited) and events, worded as kube-controller-manager
//! words them.
//!
//! The recommendations and scale events that stabilization and the policies look back
//! on live in the actor, as in kube-controller-manager's memory: a killed actor loses
//! them, as a restarted kube-controller-manager does, and so does a new leader.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, MetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use rk8s_api::selector::{SelectorExt, parse_label_selector};
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::{Actors, Handle};

use crate::common::object_name;
use crate::hpa::{self, History, Proposal, Tunables};
use crate::hpa_batch::Batches;
use crate::hpa_metrics::Measuring;
use crate::promql::Prometheus;
use rk8s_events::{Involved, record};

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
/// The kind HPA actors are registered under (`NAMESPACE/NAME`).
pub const KIND: &str = "HorizontalPodAutoscaler";

/// A newer version of the HPA, from the watch (or resent after a restart).
#[derive(Message)]
#[rtype(result = "()")]
struct Update(Box<HorizontalPodAutoscaler>);

/// Sync the HPA now.
#[derive(Message)]
#[rtype(result = "()")]
struct Resync;

/// An HPA's actor restarted and lost what it was sent: send it again.
#[derive(Message)]
#[rtype(result = "()")]
struct Restarted(String);

/// Scale from zero's activity floor ([`hpa::with_activity_floor`]): at least
/// `replicas` until `until`, sent by the activation controller while the target
/// has Ingress traffic (kept in memory: lost with leadership, sent again within
/// seconds).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ActivityFloor {
    /// At least this many replicas.
    pub replicas: i32,
    /// Until then.
    pub until: Timestamp,
}

/// An activity floor (at least so many replicas until then) shared by the actor
/// and its sync under way.
type SharedFloor = Arc<std::sync::Mutex<Option<(i32, Timestamp)>>>;

/// One HPA's actor.
pub struct HpaActor {
    client: kube::Client,
    config: Arc<HpaConfig>,
    batches: Arc<Batches>,
    pods: Informer<Pod>,
    hpa: HorizontalPodAutoscaler,
    history: History,
    /// The activity floor, shared with the sync under way: read after the scale
    /// (a floor sent meanwhile applies to this sync).
    floor: SharedFloor,
    busy: bool,
    me: Handle<Self>,
}

impl Actor for HpaActor {
    type Context = Context<Self>;

    /// Syncs at once; then with every round of the supervisor.
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.notify(Resync);
    }
}

impl Handler<Update> for HpaActor {
    type Result = ();

    fn handle(&mut self, msg: Update, ctx: &mut Self::Context) {
        self.me.received();
        let changed = msg.0.metadata.generation != self.hpa.metadata.generation;
        self.hpa = *msg.0;
        if changed {
            ctx.notify(Resync);
        }
    }
}

impl Handler<ActivityFloor> for HpaActor {
    type Result = ();

    fn handle(&mut self, msg: ActivityFloor, _: &mut Self::Context) {
        *self
            .floor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((msg.replicas, msg.until));
    }
}

impl Handler<Resync> for HpaActor {
    type Result = ();

    fn handle(&mut self, _: Resync, ctx: &mut Self::Context) {
        if self.busy {
            return;
        }
        self.busy = true;
        let started = std::time::Instant::now();
        let work = self.me.reconcile(sync(
            self.client.clone(),
            self.config.clone(),
            self.batches.clone(),
            self.pods.clone(),
            self.hpa.clone(),
            (self.history.clone(), self.floor.clone()),
        ));
        ctx.spawn(
            work.into_actor(self)
                .map(move |(history, failed), act, _ctx| {
                    crate::metrics::reconciled(KIND, started.elapsed(), failed);
                    act.history = history;
                    act.busy = false;
                }),
        );
    }
}

/// The conditions of the status, set as Kubernetes sets them (the transition time
/// moves only when the status changes).
struct Conditions(Vec<HorizontalPodAutoscalerCondition>);

impl Conditions {
    /// Sets a condition; whether its status or reason changed. (Its warning events are
    /// recorded at every sync, as Kubernetes records them: the event correlator,
    /// `rk8s_events`, counts a repeat on the Event already written.)
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

/// One sync of one HPA; returns the history to keep and whether it failed.
async fn sync(
    client: kube::Client,
    config: Arc<HpaConfig>,
    batches: Arc<Batches>,
    pods: Informer<Pod>,
    mut hpa: HorizontalPodAutoscaler,
    (mut history, floor): (History, SharedFloor),
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
            // Every sync, as Kubernetes' HPA: the event correlator counts the repeats.
            conditions.set("AbleToScale", "False", "FailedGetScale", &message);
            record(&client, about, "Warning", "FailedGetScale", &e).await;
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
        // From the shared pod informer, as kube-controller-manager reads pods, not a
        // list per sync.
        let ready = pods.wait_until_listed(Duration::from_secs(30)).await;
        let pods: Vec<Pod> = match (ready, parse_label_selector(&selector)) {
            (true, Ok(selects)) => pods
                .list_in(&namespace)
                .iter()
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
            batches: &batches,
            tunables: &config.tunables,
            namespace: &namespace,
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
                conditions.set("ScalingActive", "False", reason, &message);
                record(&client, about.clone(), "Warning", reason, &e).await;
                let computing = "FailedComputeMetricsReplicas";
                record(&client, about, "Warning", computing, &e).await;
                status.current_replicas = scale.status.as_ref().map(|s| s.replicas);
                status.conditions = Some(conditions.0);
                write_status(&client, &mut hpa, status, &key).await;
                return (history, true);
            }
            Ok((replicas, metric)) => {
                // Read now, after the scale: a floor sent since the sync began counts.
                let floor = *floor
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let replicas = hpa::with_activity_floor(current, replicas, floor, now);
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
            Ok(api) => {
                let patched = api
                    .patch_scale(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                rk8s_supervision::wrote();
                patched.map(|_| ()).map_err(|e| e.to_string())
            }
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
    batches: Arc<Batches>,
    hpa_informer: Informer<HorizontalPodAutoscaler>,
    pods: Informer<Pod>,
    /// The HPAs by `NAMESPACE/NAME`.
    hpas: HashMap<String, HorizontalPodAutoscaler>,
    registry: Actors,
    me: Handle<Self>,
}

impl HpaSupervisor {
    /// A supervisor following HPAs and pods through `informers`, writing through
    /// `client`, running its actors in `registry`; `me` is its handle.
    pub fn new(
        client: kube::Client,
        informers: &Informers,
        config: HpaConfig,
        registry: Actors,
        me: Handle<Self>,
    ) -> Self {
        let batches = Batches::new(
            client.clone(),
            config.prometheus.clone(),
            config.sync_period,
        );
        HpaSupervisor {
            client,
            config: Arc::new(config),
            batches: Arc::new(batches),
            hpa_informer: informers.get(),
            pods: informers.get(),
            hpas: HashMap::new(),
            registry,
            me,
        }
    }

    fn apply(&mut self, hpa: HorizontalPodAutoscaler) {
        let key = object_name(&hpa.metadata);
        self.hpas.insert(key.clone(), hpa.clone());
        if let Some(actor) = self.registry.get::<HpaActor>(KIND, &key) {
            actor.do_send(Update(Box::new(hpa)));
            return;
        }
        let (client, config) = (self.client.clone(), self.config.clone());
        let batches = self.batches.clone();
        let (pods, parent, name) = (self.pods.clone(), self.me.clone(), key.clone());
        self.registry.start(KIND, &key, move |me| {
            if me.restarts() > 0 {
                parent.do_send(Restarted(name.clone()));
            }
            HpaActor {
                client: client.clone(),
                config: config.clone(),
                batches: batches.clone(),
                pods: pods.clone(),
                hpa: hpa.clone(),
                history: History::default(),
                floor: Arc::default(),
                busy: false,
                me,
            }
        });
    }

    fn remove(&mut self, hpa: &HorizontalPodAutoscaler) {
        let key = object_name(&hpa.metadata);
        self.hpas.remove(&key);
        self.registry.stop(KIND, &key);
    }
}

impl Actor for HpaSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.hpa_informer.subscribe(ctx.address().recipient());
        // One round per period: every HPA syncs together, so their metrics are read
        // once for all of them (`crate::hpa_batch`).
        ctx.run_interval(self.config.sync_period, |act, _| {
            for name in act.registry.names(KIND) {
                if let Some(actor) = act.registry.get::<HpaActor>(KIND, &name) {
                    actor.do_send(Resync);
                }
            }
        });
        tracing::info!(
            sync_period = ?self.config.sync_period,
            prometheus = self.config.prometheus.is_some(),
            "horizontal pod autoscaler controller started"
        );
    }
}

impl Handler<Notice<HorizontalPodAutoscaler>> for HpaSupervisor {
    type Result = ();

    fn handle(&mut self, notice: Notice<HorizontalPodAutoscaler>, _ctx: &mut Self::Context) {
        match notice {
            Notice::Listed(all) => {
                self.hpas.clear();
                all.iter()
                    .for_each(|h| self.apply(HorizontalPodAutoscaler::clone(h)));
                // HPAs gone while this supervisor was down: their actors go too.
                for name in self.registry.names(KIND) {
                    if !self.hpas.contains_key(&name) {
                        self.registry.stop(KIND, &name);
                    }
                }
            }
            Notice::Applied(h) => self.apply(HorizontalPodAutoscaler::clone(&h)),
            Notice::Deleted(h) => self.remove(&h),
        }
    }
}

impl Handler<Restarted> for HpaSupervisor {
    type Result = ();

    fn handle(&mut self, Restarted(name): Restarted, _ctx: &mut Self::Context) {
        self.me.received();
        if let (Some(hpa), Some(actor)) = (
            self.hpas.get(&name),
            self.registry.get::<HpaActor>(KIND, &name),
        ) {
            actor.do_send(Update(Box::new(hpa.clone())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_kubernetes_writes_them() {
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
