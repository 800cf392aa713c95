//! The EndpointSlice controller as an actor: it follows Services, pods, Nodes (for
//! their zones) and the EndpointSlices it manages through the shared informers, marks
//! the Services a change touches, and every [`BATCH`] carries out what
//! [`crate::endpoint_slices::reconcile`] decides for each marked Service: slices
//! created (named by the API server from `NAME-`), replaced with their
//! resourceVersion, deleted with a uid precondition. The slices of a Service that is
//! gone or no longer has a selector are deleted, as the Endpoints controller deletes
//! its Endpoints, also when the Service went while no controller ran; a Service being
//! deleted gets no writes. A Service whose writes fail is looked at again after
//! [`RETRY`], doubled at each failure up to [`MAX_RETRY`]. Only slices labelled
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io` are
//! touched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;

use crate::common::object_name;
use crate::endpoint_slices::{Changes, ZONE, ours, reconcile, service_name};
use crate::endpoints::selects;

/// How often marked Services are written.
pub const BATCH: Duration = Duration::from_millis(100);
/// How long a Service whose writes failed waits before it is looked at again (the
/// first time; doubled at each failure in a row).
pub const RETRY: Duration = Duration::from_secs(1);
/// The longest wait between attempts at a Service whose writes keep failing.
pub const MAX_RETRY: Duration = Duration::from_secs(60);
/// How many deletions seen by the watch are remembered (so that a write's answer
/// arriving after the slice's deletion does not bring it back).
pub(crate) const TOMBSTONES: usize = 1024;

/// What became of one slice the controller wrote.
pub(crate) enum Outcome {
    /// Created or replaced: the API server's copy.
    Applied(Arc<EndpointSlice>),
    /// Deleted (or already gone).
    Deleted(String),
}

/// The outcomes of one batch, by Service key; `failed` when one of its writes failed.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Written(pub(crate) Vec<(String, Vec<Outcome>, bool)>);

/// Keeps the EndpointSlices of every selector Service.
pub struct EndpointSliceController {
    client: kube::Client,
    informers: (
        Informer<Service>,
        Informer<Pod>,
        Informer<EndpointSlice>,
        Informer<Node>,
    ),
    services: BTreeMap<String, Arc<Service>>,
    /// Pods by namespace, then name.
    pods: BTreeMap<String, BTreeMap<String, Arc<Pod>>>,
    /// The managed slices by their Service's key, then slice name.
    slices: BTreeMap<String, BTreeMap<String, Arc<EndpointSlice>>>,
    /// Which Service's slices each cached slice (`ns/name`) is filed under.
    filed: BTreeMap<String, String>,
    /// The uids of slices the watch saw deleted lately, oldest first.
    tombstones: std::collections::VecDeque<String>,
    /// Failures in a row, by Service key.
    failures: BTreeMap<String, u32>,
    /// Each Node's zone label.
    zones: BTreeMap<String, String>,
    dirty: BTreeSet<String>,
    synced: [bool; 4],
    busy: bool,
    me: Handle<Self>,
}

/// Whether resourceVersion `a` is older than `b` (both numbers, as the store's are).
pub(crate) fn older(a: Option<&String>, b: Option<&String>) -> bool {
    let number = |v: Option<&String>| v.and_then(|v| v.parse::<u64>().ok());
    matches!((number(a), number(b)), (Some(a), Some(b)) if a < b)
}

impl EndpointSliceController {
    /// A controller following its kinds through `informers` and writing through
    /// `client`; `me` is its handle.
    pub fn new(client: kube::Client, informers: &Informers, me: Handle<Self>) -> Self {
        EndpointSliceController {
            client,
            informers: (
                informers.get(),
                informers.get(),
                informers.get(),
                informers.get(),
            ),
            services: BTreeMap::new(),
            pods: BTreeMap::new(),
            slices: BTreeMap::new(),
            filed: BTreeMap::new(),
            tombstones: std::collections::VecDeque::new(),
            failures: BTreeMap::new(),
            zones: BTreeMap::new(),
            dirty: BTreeSet::new(),
            synced: [false; 4],
            busy: false,
            me,
        }
    }

    fn namespace(key: &str) -> &str {
        key.split_once('/').map_or("default", |(ns, _)| ns)
    }

    /// Marks the Services of `pod`'s namespace that select it (only that namespace's
    /// are looked at).
    fn touch_pod(&mut self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let prefix = format!("{ns}/");
        let in_namespace = self
            .services
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix));
        for (key, s) in in_namespace {
            if selects(s, pod) {
                self.dirty.insert(key.clone());
            }
        }
    }

    fn pod_event(&mut self, pod: Arc<Pod>, deleted: bool) {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let pods = self.pods.entry(ns).or_default();
        let before = if deleted {
            pods.remove(&name)
        } else {
            pods.insert(name, pod.clone())
        };
        if let Some(before) = before {
            self.touch_pod(&before);
        }
        self.touch_pod(&pod);
    }

    /// Records a Node's zone; when it changed, marks the Services of the pods on it.
    fn node_event(&mut self, node: &Node, deleted: bool) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let zone = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE))
            .filter(|_| !deleted)
            .cloned();
        let before = match &zone {
            Some(z) => self.zones.insert(name.clone(), z.clone()),
            None => self.zones.remove(&name),
        };
        // Before everything is listed, the first plan looks at every Service anyway.
        if before == zone || !self.synced.iter().all(|s| *s) {
            return;
        }
        let on_node: Vec<Arc<Pod>> = self
            .pods
            .values()
            .flat_map(|p| p.values())
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name))
            .cloned()
            .collect();
        for pod in on_node {
            self.touch_pod(&pod);
        }
    }

    fn slice_event(&mut self, slice: Arc<EndpointSlice>, deleted: bool) {
        let (Some(ns), Some(name)) = (
            slice.metadata.namespace.clone(),
            slice.metadata.name.clone(),
        ) else {
            return;
        };
        let id = format!("{ns}/{name}");
        // Where this controller filed it (its Service then), whatever it is now.
        let before = self.filed.get(&id).cloned();
        let now = service_name(&slice)
            .filter(|_| ours(&slice) && !deleted)
            .map(|service| format!("{ns}/{service}"));
        if deleted && let Some(uid) = slice.metadata.uid.clone() {
            self.tombstones.push_back(uid);
            if self.tombstones.len() > TOMBSTONES {
                self.tombstones.pop_front();
            }
        }
        if let Some(now) = &now {
            // An event older than what this controller wrote itself brings nothing.
            let cached = self
                .slices
                .get(now)
                .and_then(|s| s.get(&name))
                .and_then(|s| s.metadata.resource_version.as_ref());
            if before.as_ref() == Some(now)
                && older(slice.metadata.resource_version.as_ref(), cached)
            {
                return;
            }
        }
        if let Some(before) = &before {
            self.unfile(before, &name);
            self.dirty.insert(before.clone());
        }
        if let Some(now) = now {
            self.slices
                .entry(now.clone())
                .or_default()
                .insert(name, slice);
            self.filed.insert(id, now.clone());
            // Someone else's change, or the echo of ours (which then writes nothing).
            self.dirty.insert(now);
        }
    }

    /// Forgets the cached slice `name` of the Service `key`.
    fn unfile(&mut self, key: &str, name: &str) {
        if let Some(slices) = self.slices.get_mut(key) {
            slices.remove(name);
            if slices.is_empty() {
                self.slices.remove(key);
            }
        }
        self.filed
            .remove(&format!("{}/{name}", Self::namespace(key)));
    }

    /// The writes each marked Service needs.
    fn plan(&mut self) -> Vec<(String, String, Changes)> {
        let mut work = Vec::new();
        for key in std::mem::take(&mut self.dirty) {
            let ns = Self::namespace(&key).to_string();
            let existing: Vec<&EndpointSlice> = self
                .slices
                .get(&key)
                .into_iter()
                .flat_map(|s| s.values())
                .map(|s| s.as_ref())
                .collect();
            let changes = match self.services.get(&key) {
                // Being deleted: no more writes (its slices go with it).
                Some(service) if service.metadata.deletion_timestamp.is_some() => continue,
                Some(service) => {
                    let pods = self.pods.get(&ns).into_iter().flat_map(|p| p.values());
                    let zones = &self.zones;
                    reconcile(
                        service,
                        pods.map(|p| p.as_ref()),
                        |node| zones.get(node).cloned(),
                        &existing,
                    )
                }
                // The Service is gone: so are its slices.
                None => Changes {
                    delete: existing.iter().map(|s| (*s).clone()).collect(),
                    ..Default::default()
                },
            };
            if !changes.is_empty() {
                work.push((key, ns, changes));
            }
        }
        work
    }

    /// Writes the marked Services' slices (one batch at a time).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.busy || !self.synced.iter().all(|s| *s) || self.dirty.is_empty() {
            return;
        }
        let work = self.plan();
        if work.is_empty() {
            return;
        }
        self.busy = true;
        let client = self.client.clone();
        let started = std::time::Instant::now();
        let work = self.me.reconcile(async move {
            let mut written = Vec::new();
            for (key, ns, changes) in work {
                let (outcomes, failed) =
                    write(&Api::namespaced(client.clone(), &ns), changes).await;
                if failed {
                    tracing::debug!(service = %key, "writing endpoint slices failed");
                }
                written.push((key, outcomes, failed));
            }
            written
        });
        ctx.spawn(work.into_actor(self).map(move |written, _act, ctx| {
            let failed = written.iter().any(|(_, _, failed)| *failed);
            crate::metrics::reconciled("EndpointSlice", started.elapsed(), failed);
            ctx.notify(Written(written));
        }));
    }
}

/// Carries one Service's changes out; what became of each slice, and whether a write
/// failed.
pub(crate) async fn write(api: &Api<EndpointSlice>, changes: Changes) -> (Vec<Outcome>, bool) {
    let mut outcomes = Vec::new();
    let mut failed = false;
    let post = PostParams::default();
    for slice in changes.create {
        match api.create(&post, &slice).await {
            Ok(s) => outcomes.push(Outcome::Applied(Arc::new(s))),
            Err(e) => {
                tracing::debug!("creating an endpoint slice: {e}");
                failed = true;
            }
        }
        rk8s_supervision::wrote();
    }
    for slice in changes.update {
        let name = slice.metadata.name.clone().unwrap_or_default();
        match api.replace(&name, &post, &slice).await {
            Ok(s) => outcomes.push(Outcome::Applied(Arc::new(s))),
            // Gone meanwhile: forgotten, and the Service looked at again.
            Err(kube::Error::Api(s)) if s.code == 404 => {
                outcomes.push(Outcome::Deleted(name));
                failed = true;
            }
            Err(e) => {
                tracing::debug!(slice = %name, "replacing an endpoint slice: {e}");
                failed = true;
            }
        }
        rk8s_supervision::wrote();
    }
    for slice in changes.delete {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: slice.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => outcomes.push(Outcome::Deleted(name)),
            Err(kube::Error::Api(s)) if s.code == 404 => outcomes.push(Outcome::Deleted(name)),
            Err(e) => {
                tracing::debug!(slice = %name, "deleting an endpoint slice: {e}");
                failed = true;
            }
        }
        rk8s_supervision::wrote();
    }
    (outcomes, failed)
}

impl Actor for EndpointSliceController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.informers.0.subscribe(ctx.address().recipient());
        self.informers.1.subscribe(ctx.address().recipient());
        self.informers.2.subscribe(ctx.address().recipient());
        self.informers.3.subscribe(ctx.address().recipient());
        ctx.run_interval(BATCH, |act, ctx| act.flush(ctx));
        tracing::info!("endpointslice controller started");
    }
}

impl Handler<Written> for EndpointSliceController {
    type Result = ();

    fn handle(&mut self, msg: Written, ctx: &mut Self::Context) {
        self.busy = false;
        for (key, outcomes, failed) in msg.0 {
            // What was written is known now, before the watch brings it: the next
            // batch must not create the same slices again.
            for outcome in outcomes {
                match outcome {
                    Outcome::Applied(s) => {
                        let Some(name) = s.metadata.name.clone() else {
                            continue;
                        };
                        // Deleted since (the watch said so first): not brought back.
                        let uid = s.metadata.uid.as_ref();
                        if uid.is_some_and(|u| self.tombstones.contains(u)) {
                            continue;
                        }
                        let slices = self.slices.entry(key.clone()).or_default();
                        let cached = slices
                            .get(&name)
                            .and_then(|c| c.metadata.resource_version.as_ref());
                        if !older(s.metadata.resource_version.as_ref(), cached) {
                            slices.insert(name.clone(), s);
                            let ns = Self::namespace(&key);
                            self.filed.insert(format!("{ns}/{name}"), key.clone());
                        }
                    }
                    Outcome::Deleted(name) => self.unfile(&key, &name),
                }
            }
            if !failed {
                self.failures.remove(&key);
                continue;
            }
            // A conflict or an outage: look again later, with what the watches have
            // brought by then; longer at each failure in a row.
            let n = self.failures.entry(key.clone()).or_default();
            *n = n.saturating_add(1);
            let wait = RETRY.saturating_mul(1u32 << (*n - 1).min(6)).min(MAX_RETRY);
            ctx.run_later(wait, move |act, _| {
                act.dirty.insert(key);
            });
        }
    }
}

impl Handler<Notice<Service>> for EndpointSliceController {
    type Result = ();

    fn handle(&mut self, notice: Notice<Service>, _ctx: &mut Self::Context) {
        let listed = notice.for_each(|s, deleted| {
            let key = object_name(&s.metadata);
            self.dirty.insert(key.clone());
            if deleted {
                self.services.remove(&key);
            } else {
                self.services.insert(key, s);
            }
        });
        if listed {
            self.synced[0] = true;
        }
    }
}

impl Handler<Notice<Pod>> for EndpointSliceController {
    type Result = ();

    fn handle(&mut self, notice: Notice<Pod>, _ctx: &mut Self::Context) {
        if notice.for_each(|p, deleted| self.pod_event(p, deleted)) {
            self.synced[1] = true;
        }
    }
}

impl Handler<Notice<EndpointSlice>> for EndpointSliceController {
    type Result = ();

    fn handle(&mut self, notice: Notice<EndpointSlice>, _ctx: &mut Self::Context) {
        if notice.for_each(|s, deleted| self.slice_event(s, deleted)) {
            self.synced[2] = true;
        }
    }
}

impl Handler<Notice<Node>> for EndpointSliceController {
    type Result = ();

    fn handle(&mut self, notice: Notice<Node>, _ctx: &mut Self::Context) {
        if notice.for_each(|n, deleted| self.node_event(&n, deleted)) {
            self.synced[3] = true;
        }
    }
}
