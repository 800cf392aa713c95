//! The EndpointSlice controller as an actor: it follows Services, pods, Nodes (for
//! their zones) and the EndpointSlices it manages through the shared informers, marks
//! the Services a change touches, and every [`BATCH`] carries out what
//! [`crate::endpoint_slices::reconcile`] decides for each marked Service: slices
//! created (named by the API server from `NAME-`), replaced with their
//! resourceVersion, deleted with a uid precondition. The slices of a Service that is
//! gone or no longer has a selector are deleted, as the Endpoints controller deletes
//! its Endpoints, also when the Service went while no controller ran; a Service being
//! deleted gets no writes. A Service whose writes fail is looked at again after
//! [`crate::slice_cache::RETRY`], doubled at each failure up to a minute. Only slices labelled
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io` are
//! touched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;

use crate::common::object_name;
use crate::endpoint_slices::{Changes, ZONE, ours, reconcile};
use crate::endpoints::selects;
use crate::slice_cache::{SliceCache, Written, write_batch};

/// How often marked Services are written.
pub const BATCH: Duration = Duration::from_millis(100);
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
    /// The managed slices, by their Service's key.
    cache: SliceCache,
    /// Each Node's zone label.
    zones: BTreeMap<String, String>,
    dirty: BTreeSet<String>,
    synced: [bool; 4],
    busy: bool,
    me: Handle<Self>,
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
            cache: SliceCache::default(),
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
        self.cache.event(slice, deleted, ours, &mut self.dirty);
    }

    /// The writes each marked Service needs.
    fn plan(&mut self) -> Vec<(String, String, Changes)> {
        let mut work = Vec::new();
        for key in std::mem::take(&mut self.dirty) {
            let ns = Self::namespace(&key).to_string();
            let existing = self.cache.of(&key);
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
        let work = self
            .me
            .reconcile(write_batch(client, work, "writing endpoint slices"));
        ctx.spawn(work.into_actor(self).map(move |written, _act, ctx| {
            let failed = written.iter().any(|(_, _, failed)| *failed);
            crate::metrics::reconciled("EndpointSlice", started.elapsed(), failed);
            ctx.notify(Written(written));
        }));
    }
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
            // A conflict or an outage: looked at again later, with what the watches
            // have brought by then.
            if let Some(wait) = self.cache.written(&key, outcomes, failed) {
                ctx.run_later(wait, move |act, _| {
                    act.dirty.insert(key);
                });
            }
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
