//! The service load balancer controller as an actor: it follows Services, Nodes and
//! EndpointSlices through the shared informers and, [`BATCH`] after any change,
//! decides every Service's load balancer status afresh ([`crate::service_lb::decide`]:
//! a node's readiness or a Service's port can change several Services' ingress) and
//! writes those that changed through `services/status`, with their resourceVersion;
//! a write refused on a stale view is decided again [`RETRY`] later. A slice counts
//! as a change only when its Service is a balanced `externalTrafficPolicy: Local`
//! load balancer (whose ingress lists the nodes with a ready endpoint).

use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;

use crate::common::replace_statuses;
use crate::service_lb::{balanced, decide, local, service_of};

/// How long after a change the statuses are decided.
pub const BATCH: Duration = Duration::from_millis(100);
/// How long a failed write waits before everything is decided again.
pub const RETRY: Duration = Duration::from_secs(1);

/// Keeps the ingress of every `type: LoadBalancer` Service without a class.
pub struct ServiceLbController {
    client: kube::Client,
    services: Informer<Service>,
    nodes: Informer<Node>,
    slices: Informer<EndpointSlice>,
    dirty: bool,
    busy: bool,
    me: Handle<Self>,
}

impl ServiceLbController {
    /// A controller following Services, Nodes and EndpointSlices through `informers`
    /// and writing through `client`; `me` is its handle.
    pub fn new(client: kube::Client, informers: &Informers, me: Handle<Self>) -> Self {
        ServiceLbController {
            client,
            services: informers.get(),
            nodes: informers.get(),
            slices: informers.get(),
            dirty: true,
            busy: false,
            me,
        }
    }

    /// Decides every status and writes those that changed (one batch at a time).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.busy
            || !self.dirty
            || !self.services.listed()
            || !self.nodes.listed()
            || !self.slices.listed()
        {
            return;
        }
        self.dirty = false;
        let work = decide(
            &self.services.list(),
            &self.nodes.list(),
            &self.slices.list(),
        );
        if work.is_empty() {
            return;
        }
        self.busy = true;
        let client = self.client.clone();
        let write = self
            .me
            .reconcile(async move { replace_statuses(&client, "Service", &work).await });
        ctx.spawn(write.into_actor(self).map(|failed, act, ctx| {
            act.busy = false;
            if failed {
                ctx.run_later(RETRY, |act, _| act.dirty = true);
            }
        }));
    }
}

impl Actor for ServiceLbController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.services.subscribe(ctx.address().recipient());
        self.nodes.subscribe(ctx.address().recipient());
        self.slices.subscribe(ctx.address().recipient());
        ctx.run_interval(BATCH, |act, ctx| act.flush(ctx));
        tracing::info!("service load balancer controller started");
    }
}

impl Handler<Notice<Service>> for ServiceLbController {
    type Result = ();

    fn handle(&mut self, _: Notice<Service>, _: &mut Self::Context) {
        self.me.received();
        self.dirty = true;
    }
}

impl Handler<Notice<Node>> for ServiceLbController {
    type Result = ();

    fn handle(&mut self, _: Notice<Node>, _: &mut Self::Context) {
        self.me.received();
        self.dirty = true;
    }
}

impl Handler<Notice<EndpointSlice>> for ServiceLbController {
    type Result = ();

    fn handle(&mut self, notice: Notice<EndpointSlice>, _: &mut Self::Context) {
        self.me.received();
        let services = &self.services;
        let mut counts = false;
        let listed = notice.for_each(|slice, _| {
            counts |= service_of(&slice)
                .and_then(|key| services.get(&key))
                .is_some_and(|svc| balanced(&svc) && local(&svc));
        });
        if listed || counts {
            self.dirty = true;
        }
    }
}
