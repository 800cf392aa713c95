//! The EndpointSliceMirroring controller as an actor: it follows Services, Endpoints
//! and the EndpointSlices it manages through the shared informers, marks the Endpoints
//! a change touches (an Endpoints and its Service share their `ns/name` key), and every
//! [`BATCH`] carries out what [`crate::endpoint_slice_mirroring::reconcile`] decides
//! for each marked key: slices created (named by the API server from `NAME-`),
//! replaced with their resourceVersion, deleted with a uid precondition. The mirrored
//! slices of an Endpoints that is gone, whose Service is gone or got a selector, or
//! that got the skip-mirror label are deleted, also when that happened while no
//! controller ran; an Endpoints being deleted gets no writes. A key whose writes fail
//! is looked at again after [`RETRY`], doubled at each failure up to [`MAX_RETRY`].
//! Only slices labelled `endpointslice.kubernetes.io/managed-by:
//! endpointslicemirroring-controller.k8s.io` are touched. The cache handling (what was
//! written filed before the watch brings it, tombstones, stale events ignored) is the
//! EndpointSlice controller's ([`crate::endpoint_slices_actor`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;

use crate::common::object_name;
use crate::endpoint_slice_mirroring::{Changes, ours, reconcile};
use crate::endpoint_slices::service_name;
use crate::endpoint_slices_actor::{Outcome, TOMBSTONES, Written, older, write};

/// How often marked Endpoints are mirrored.
pub const BATCH: Duration = Duration::from_millis(100);
/// How long a key whose writes failed waits before it is looked at again (the first
/// time; doubled at each failure in a row).
pub const RETRY: Duration = Duration::from_secs(1);
/// The longest wait between attempts at a key whose writes keep failing.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

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
    /// The mirrored slices by their Endpoints' key, then slice name.
    slices: BTreeMap<String, BTreeMap<String, Arc<EndpointSlice>>>,
    /// Which key's slices each cached slice (`ns/name`) is filed under.
    filed: BTreeMap<String, String>,
    /// The uids of slices the watch saw deleted lately, oldest first.
    tombstones: VecDeque<String>,
    /// Failures in a row, by key.
    failures: BTreeMap<String, u32>,
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
            slices: BTreeMap::new(),
            filed: BTreeMap::new(),
            tombstones: VecDeque::new(),
            failures: BTreeMap::new(),
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
        let (Some(ns), Some(name)) = (
            slice.metadata.namespace.clone(),
            slice.metadata.name.clone(),
        ) else {
            return;
        };
        let id = format!("{ns}/{name}");
        // Where this controller filed it (its Endpoints then), whatever it is now.
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

    /// Forgets the cached slice `name` of the key `key`.
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

    /// The writes each marked key needs.
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
        let work = self.me.reconcile(async move {
            let mut written = Vec::new();
            for (key, ns, changes) in work {
                let (outcomes, failed) =
                    write(&Api::namespaced(client.clone(), &ns), changes).await;
                if failed {
                    tracing::debug!(endpoints = %key, "mirroring endpoint slices failed");
                }
                written.push((key, outcomes, failed));
            }
            written
        });
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
