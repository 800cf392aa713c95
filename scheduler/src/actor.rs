//! The scheduler as an actor (actix), run on the Raft leader only. It follows every
//! pod and node through the control plane's shared informers (one watch per kind
//! for the scheduler and every controller), keeps the [`Cache`] and the [`SchedulingQueue`], and schedules in batches
//! between watch events. A pod is assumed on its node at once and bound through
//! `pods/binding` in the background (several bindings in flight), so the next pod
//! never waits for a round trip. A failed binding forgets the assumption and backs
//! the pod off; a pod no node fits gets a `FailedScheduling` event at each attempt
//! (counted on one Event by the process's event correlator, `rk8s_events`)
//! and a `PodScheduled=False` condition, and waits for a cluster change.
//!
//! It runs under `rk8s_supervision`: killed, with bindings in flight or not, it is
//! started again from nothing and rebuilds its cache and queue from a fresh list
//! (an assumed pod whose binding was lost is pending again in the store).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use rk8s_events as events;
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;

use crate::cache::Cache;
use crate::core::{FitError, Scheduler};
use crate::framework::PodInfo;
use crate::metrics::SchedulerMetrics;
use crate::profile::{DEFAULT_SCHEDULER, Profile};
use crate::queue::{Lengths, SchedulingQueue};

/// Most bindings in flight at once.
pub const MAX_BINDINGS_IN_FLIGHT: usize = 128;
/// Most pods scheduled per turn before the actor looks at its mailbox again.
const BATCH: usize = 128;

/// Counters of what the scheduler did (for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Pods bound.
    pub scheduled: u64,
    /// Attempts that found no node.
    pub unschedulable: u64,
    /// Bindings that failed.
    pub bind_errors: u64,
    /// What the queue holds now.
    pub queue: Lengths,
}

/// Asks for the [`Stats`].
#[derive(Message)]
#[rtype(result = "Stats")]
pub struct GetStats;

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

#[derive(Message)]
#[rtype(result = "()")]
struct Bound {
    info: Arc<PodInfo>,
    node: String,
    profile: String,
    result: Result<(), kube::Error>,
    /// When the attempt began.
    started: Instant,
}

/// The scheduler actor.
pub struct SchedulerActor {
    client: kube::Client,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    claims: Informer<PersistentVolumeClaim>,
    volumes: Informer<PersistentVolume>,
    classes: Informer<StorageClass>,
    profiles: HashMap<String, Profile>,
    algorithm: Scheduler,
    cache: Cache,
    queue: SchedulingQueue,
    in_flight: usize,
    tick_pending: bool,
    nodes_synced: bool,
    /// The last FailedScheduling message per pod (repeats are not re-sent).
    reported: HashMap<String, String>,
    stats: Stats,
    metrics: Option<SchedulerMetrics>,
    me: Handle<Self>,
}

impl SchedulerActor {
    /// A scheduler with `profiles`, following pods and nodes through `informers` and
    /// writing through `client`; `me` is its handle.
    pub fn new(
        client: kube::Client,
        informers: &Informers,
        profiles: Vec<Profile>,
        me: Handle<Self>,
    ) -> Self {
        SchedulerActor {
            client,
            pods: informers.get(),
            nodes: informers.get(),
            claims: informers.get(),
            volumes: informers.get(),
            classes: informers.get(),
            profiles: profiles.into_iter().map(|p| (p.name.clone(), p)).collect(),
            algorithm: Scheduler::default(),
            cache: Cache::default(),
            queue: SchedulingQueue::default(),
            in_flight: 0,
            tick_pending: false,
            nodes_synced: false,
            reported: HashMap::new(),
            stats: Stats::default(),
            metrics: None,
            me,
        }
    }

    /// Records attempts, their latency and the queues in `metrics`.
    pub fn with_metrics(mut self, metrics: SchedulerMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn attempt(&self, result: &str, profile: &str, started: Instant) {
        if let Some(m) = &self.metrics {
            m.attempt(result, profile, started.elapsed().as_secs_f64());
        }
    }

    fn profile_of(&self, pod: &Pod) -> Option<&Profile> {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_SCHEDULER);
        self.profiles.get(name)
    }

    fn wake(&mut self, ctx: &mut Context<Self>) {
        if !self.tick_pending && self.nodes_synced {
            self.tick_pending = true;
            ctx.notify(Tick);
        }
    }

    fn pod_event(&mut self, pod: Arc<Pod>, ctx: &mut Context<Self>) {
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let finished = matches!(phase, Some("Succeeded" | "Failed"));
        match pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            Some(node) if !node.is_empty() => {
                self.queue.remove(&key);
                self.reported.remove(&key);
                if finished {
                    // A finished pod holds no resources.
                    self.cache.remove_pod(&key);
                    self.queue.cluster_changed(Instant::now());
                } else {
                    self.cache.add_bound_pod(pod, &node);
                }
            }
            _ if pod.metadata.deletion_timestamp.is_some() || finished => {
                self.queue.remove(&key);
            }
            _ => {
                if self.profile_of(&pod).is_some() && !self.cache.is_placed(&key) {
                    self.queue.add(Arc::new(PodInfo::new(pod)), Instant::now());
                    self.wake(ctx);
                }
            }
        }
    }

    fn pod_deleted(&mut self, pod: &Pod) {
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        self.queue.remove(&key);
        self.reported.remove(&key);
        if self.cache.is_placed(&key) {
            self.cache.remove_pod(&key);
            // Room was freed.
            self.queue.cluster_changed(Instant::now());
        }
    }

    /// Schedules up to a batch of pods.
    fn schedule_batch(&mut self, ctx: &mut Context<Self>) {
        let started = Instant::now();
        for _ in 0..BATCH {
            if self.in_flight >= MAX_BINDINGS_IN_FLIGHT {
                return;
            }
            let Some(queued) = self.queue.pop() else {
                return;
            };
            self.schedule_one(queued.info, ctx);
            if started.elapsed() > Duration::from_millis(50) {
                break;
            }
        }
        if self.queue.maybe_active() {
            self.wake(ctx);
        }
    }

    /// `info` with what its claims need of its node as they are now.
    fn with_volumes(&self, info: Arc<PodInfo>) -> Arc<PodInfo> {
        if !crate::plugins::volumes::has_claims(&info.pod) {
            return info;
        }
        let ns = info.namespace.clone();
        let needs = crate::plugins::volumes::needs(
            &info.pod,
            |name| self.claims.get(&format!("{ns}/{name}")),
            &self.volumes.list(),
            |name| self.classes.get(name),
        );
        let mut info = (*info).clone();
        info.volumes = Some(Arc::new(needs));
        Arc::new(info)
    }

    fn schedule_one(&mut self, info: Arc<PodInfo>, ctx: &mut Context<Self>) {
        let Some(profile) = self.profile_of(&info.pod).cloned() else {
            self.queue.remove(&info.key);
            return;
        };
        let info = self.with_volumes(info);
        let started = Instant::now();
        match self
            .algorithm
            .schedule_and_assume(&profile, info.clone(), &mut self.cache)
        {
            Ok(decision) => {
                self.in_flight += 1;
                let client = self.client.clone();
                let node = decision.node.clone();
                let profile_name = profile.name.clone();
                let work = self.me.reconcile(async move {
                    let result = bind(&client, &info, &node).await;
                    Bound {
                        info,
                        node,
                        profile: profile_name,
                        result,
                        started,
                    }
                });
                ctx.spawn(work.into_actor(self).map(|bound, _act, ctx| {
                    ctx.notify(bound);
                }));
            }
            Err(fit) => {
                self.stats.unschedulable += 1;
                self.attempt("unschedulable", &profile.name, started);
                self.queue.unschedulable(&info.key, Instant::now());
                self.report_unschedulable(&info, &fit, &profile.name, ctx);
            }
        }
    }

    fn report_unschedulable(
        &mut self,
        info: &PodInfo,
        fit: &FitError,
        profile: &str,
        ctx: &mut Context<Self>,
    ) {
        let message = fit.message();
        // Every attempt reports its event, as kube-scheduler does: the event correlator
        // counts a repeat on the Event already written. The pod's condition is written
        // only when its message changes.
        let changed = self.reported.get(&info.key) != Some(&message);
        if changed {
            self.reported.insert(info.key.clone(), message.clone());
            tracing::info!(pod = %info.key, "{message}");
        }
        let client = self.client.clone();
        let pod = info.pod.clone();
        let profile = profile.to_string();
        let work = self.me.reconcile(async move {
            event(
                &client,
                &pod,
                "Warning",
                "FailedScheduling",
                &message,
                &profile,
            )
            .await;
            if changed && let Err(e) = unschedulable(&client, &pod, &message).await {
                tracing::debug!("reporting an unschedulable pod: {e}");
            }
        });
        ctx.spawn(work.into_actor(self));
    }
}

async fn bind(client: &kube::Client, info: &PodInfo, node: &str) -> Result<(), kube::Error> {
    let name = info.pod.metadata.name.as_deref().unwrap_or_default();
    // The claims that wait for this pod learn its node first (Kubernetes' PreBind):
    // their volumes are bound or made there.
    let waiting = info.volumes.iter().flat_map(|v| v.waiting.iter());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &info.namespace);
    for w in waiting {
        let patch = serde_json::json!({"metadata": {"annotations": {
            crate::plugins::volumes::SELECTED_NODE: node}}});
        claims
            .patch(&w.claim, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        rk8s_supervision::wrote();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &info.namespace);
    let binding = serde_json::json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": info.namespace, "uid": info.pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let bound = pods
        .create_subresource::<_, serde_json::Value>(
            "binding",
            name,
            &PostParams::default(),
            &binding,
        )
        .await;
    rk8s_supervision::wrote();
    bound.map(|_| ())
}

/// Records an event about `pod` from the scheduler `component` (its profile's name),
/// through the process's event correlator.
async fn event(
    client: &kube::Client,
    pod: &Pod,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let about = events::Involved::of("v1", "Pod", &pod.metadata);
    let from = events::Source {
        component,
        host: None,
    };
    events::record_from(client, &from, &about, type_, reason, message).await;
}

/// Sets the pod's `PodScheduled` condition to `False`, `Unschedulable`, `message`.
async fn unschedulable(client: &kube::Client, pod: &Pod, message: &str) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let now = jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastTransitionTime": now,
    }]}});
    let patched = pods
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await;
    rk8s_supervision::wrote();
    patched.map(|_| ())
}

impl Actor for SchedulerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.pods.subscribe(ctx.address().recipient());
        self.nodes.subscribe(ctx.address().recipient());
        self.claims.subscribe(ctx.address().recipient());
        self.volumes.subscribe(ctx.address().recipient());
        self.classes.subscribe(ctx.address().recipient());
        ctx.run_interval(Duration::from_millis(100), |act, ctx| {
            act.queue.flush(Instant::now());
            if let Some(m) = &act.metrics {
                m.pending(&act.queue.lengths());
            }
            if act.queue.maybe_active() {
                act.wake(ctx);
            }
        });
        tracing::info!(
            profiles = ?self.profiles.keys().collect::<Vec<_>>(),
            "scheduler started"
        );
    }
}

impl Handler<Notice<Pod>> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, notice: Notice<Pod>, ctx: &mut Self::Context) {
        notice.for_each(|pod, deleted| match deleted {
            true => self.pod_deleted(&pod),
            false => self.pod_event(pod, ctx),
        });
    }
}

impl Handler<Notice<Node>> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, notice: Notice<Node>, ctx: &mut Self::Context) {
        match notice {
            Notice::Listed(all) => {
                for node in all.iter() {
                    self.cache.upsert_node(node.clone());
                }
                self.nodes_synced = true;
                self.queue.cluster_changed(Instant::now());
                self.wake(ctx);
            }
            Notice::Applied(node) => {
                self.cache.upsert_node(node);
                self.queue.cluster_changed(Instant::now());
                self.wake(ctx);
            }
            Notice::Deleted(node) => {
                self.cache
                    .remove_node(node.metadata.name.as_deref().unwrap_or_default());
            }
        }
    }
}

/// A claim, volume or class changed: pods waiting for one may fit now.
macro_rules! volumes_changed {
    ($($kind:ty),*) => {$(
        impl Handler<Notice<$kind>> for SchedulerActor {
            type Result = ();

            fn handle(&mut self, _: Notice<$kind>, ctx: &mut Self::Context) {
                self.queue.cluster_changed(Instant::now());
                self.wake(ctx);
            }
        }
    )*};
}

volumes_changed!(PersistentVolumeClaim, PersistentVolume, StorageClass);

impl Handler<Tick> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Self::Context) {
        self.tick_pending = false;
        self.schedule_batch(ctx);
    }
}

impl Handler<Bound> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: Bound, ctx: &mut Self::Context) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let key = msg.info.key.clone();
        match msg.result {
            Ok(()) => {
                self.stats.scheduled += 1;
                self.attempt("scheduled", &msg.profile, msg.started);
                self.queue.remove(&key);
                self.reported.remove(&key);
                let client = self.client.clone();
                let pod = msg.info.pod.clone();
                let message = format!("Successfully assigned {key} to {}", msg.node);
                let profile = msg.profile;
                let work = self.me.reconcile(async move {
                    event(&client, &pod, "Normal", "Scheduled", &message, &profile).await;
                });
                ctx.spawn(work.into_actor(self));
            }
            Err(e) => {
                self.stats.bind_errors += 1;
                self.attempt("error", &msg.profile, msg.started);
                self.cache.forget(&key);
                if let Some(profile) = self.profiles.get(&msg.profile) {
                    profile.unreserve(&msg.info, &msg.node);
                }
                match &e {
                    // Gone, or bound by someone else: the watch tells the rest.
                    kube::Error::Api(s) if s.code == 404 || s.code == 409 => {
                        self.queue.remove(&key);
                    }
                    _ => {
                        tracing::warn!(pod = %key, node = %msg.node, "binding failed: {e}");
                        self.queue.back_off(&key, Instant::now());
                    }
                }
            }
        }
        self.wake(ctx);
    }
}

impl Handler<GetStats> for SchedulerActor {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _ctx: &mut Self::Context) -> Self::Result {
        self.me.received();
        let mut stats = self.stats;
        stats.queue = self.queue.lengths();
        MessageResult(stats)
    }
}
