//! The EndpointSliceMirroring controller as an actor: it follows Services, Endpoints
//! and the EndpointSlices it manages through the shared informers, marks the Endpoints
//! a change touches (an Endpoints and its Service share their `ns/name` key), and every
//! [`BATCH`] carries out what [`crate::endpoint_slice_mirroring::reconcile`] decides
//! for each marked key: slices created (named by the API server from `NAME-`),
//! replaced with their resourceVersion, deleted with a uid precondition. The mirrored
//! slices of an Endpoints that is gone, whose Service is gone or got a selector, or
//! that got the skip-mirror label are deleted, also when that happened while no
//! controller ran; an Endpoints being deleted gets no writes. A key whose writes fail
//! is looked at again after [`crate::slice_cache::RETRY`], doubled at each failure up to a
//! minute.
//! Only slices labelled `endpointslice.kubernetes.io/managed-by:
//! endpointslicemirroring-controller.k8s.io` are touched. The cache handling (what was
//! written filed before the watch brings it, tombstones, stale events ignored) is the
//! EndpointSlice controller's too ([`crate::slice_cache`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;

use crate::common::object_name;
use crate::endpoint_slice_mirroring::{Changes, ours, reconcile};
use crate::slice_cache::{SliceCache, Written, write_batch};

/// How often marked Endpoints are mirrored.
pub const BATCH: Duration = Duration::from_millis(100);
/// Mirrors the Endpoints of selector-less Services into EndpointSlices.
pub struct EndpointSliceMirroringController {
    client: kube::Client,
    informers: (
        Informer<Service>,
        Informer<Endpoints>,
        Informer<EndpointSlice>,
    ),
    services: BTreeMap<String, Arc<Service>>,
    endpoints: BTreeMap<String, Arc<Endpoints>>,
    /// The mirrored slices, by their Endpoints' key.
    cache: SliceCache,
    dirty: BTreeSet<String>,
    synced: [bool; 3],
    busy: bool,
    me: Handle<Self>,
}

impl EndpointSliceMirroringController {
    /// A controller following its kinds through `informers` and writing through
    /// `client`; `me` is its handle.
    pub fn new(client: kube::Client, informers: &Informers, me: Handle<Self>) -> Self {
        EndpointSliceMirroringController {
            client,
            informers: (informers.get(), informers.get(), informers.get()),
            services: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            cache: SliceCache::default(),
            dirty: BTreeSet::new(),
            synced: [false; 3],
            busy: false,
            me,
        }
    }

    fn namespace(key: &str) -> &str {
        key.split_once('/').map_or("default", |(ns, _)| ns)
    }

    fn slice_event(&mut self, slice: Arc<EndpointSlice>, deleted: bool) {
        self.cache.event(slice, deleted, ours, &mut self.dirty);
    }

    /// The writes each marked key needs.
    fn plan(&mut self) -> Vec<(String, String, Changes)> {
        let mut work = Vec::new();
        for key in std::mem::take(&mut self.dirty) {
            let ns = Self::namespace(&key).to_string();
            let existing = self.cache.of(&key);
            let service = self.services.get(&key).map(|s| s.as_ref());
            let changes = match self.endpoints.get(&key) {
                // Being deleted: no more writes (its slices go with it).
                Some(e) if e.metadata.deletion_timestamp.is_some() => continue,
                Some(endpoints) => reconcile(endpoints, service, &existing),
                // The Endpoints is gone: so are its slices.
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

    /// Writes the marked keys' slices (one batch at a time).
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
            .reconcile(write_batch(client, work, "mirroring endpoint slices"));
        ctx.spawn(work.into_actor(self).map(move |written, _act, ctx| {
            let failed = written.iter().any(|(_, _, failed)| *failed);
            crate::metrics::reconciled("EndpointSliceMirroring", started.elapsed(), failed);
            ctx.notify(Written(written));
        }));
    }
}

impl Actor for EndpointSliceMirroringController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.informers.0.subscribe(ctx.address().recipient());
        self.informers.1.subscribe(ctx.address().recipient());
        self.informers.2.subscribe(ctx.address().recipient());
        ctx.run_interval(BATCH, |act, ctx| act.flush(ctx));
        tracing::info!("endpointslice mirroring controller started");
    }
}

impl Handler<Written> for EndpointSliceMirroringController {
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

impl Handler<Notice<Service>> for EndpointSliceMirroringController {
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

impl Handler<Notice<Endpoints>> for EndpointSliceMirroringController {
    type Result = ();

    fn handle(&mut self, notice: Notice<Endpoints>, _ctx: &mut Self::Context) {
        let listed = notice.for_each(|e, deleted| {
            let key = object_name(&e.metadata);
            self.dirty.insert(key.clone());
            if deleted {
                self.endpoints.remove(&key);
            } else {
                self.endpoints.insert(key, e);
            }
        });
        if listed {
            self.synced[1] = true;
        }
    }
}

impl Handler<Notice<EndpointSlice>> for EndpointSliceMirroringController {
    type Result = ();

    fn handle(&mut self, notice: Notice<EndpointSlice>, _ctx: &mut Self::Context) {
        if notice.for_each(|s, deleted| self.slice_event(s, deleted)) {
            self.synced[2] = true;
        }
    }
}
