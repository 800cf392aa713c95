//! The Ingress status controller as an actor: it follows Ingresses, IngressClasses
//! and Nodes through the shared informers and, [`BATCH`] after any change, decides
//! every Ingress's status afresh ([`crate::ingress_status::decide`]) and writes those
//! that changed through `ingresses/status`, with their resourceVersion; a write
//! refused on a stale view is decided again [`RETRY`] later.

use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;

use crate::common::replace_statuses;
use crate::ingress_status::decide;

/// How long after a change the statuses are decided.
pub const BATCH: Duration = Duration::from_millis(100);
/// How long a failed write waits before everything is decided again.
pub const RETRY: Duration = Duration::from_secs(1);

/// Keeps the load balancer status of the Ingresses the nodes serve.
pub struct IngressStatusController {
    client: kube::Client,
    ingresses: Informer<Ingress>,
    classes: Informer<IngressClass>,
    nodes: Informer<Node>,
    dirty: bool,
    busy: bool,
    me: Handle<Self>,
}

impl IngressStatusController {
    /// A controller following Ingresses, IngressClasses and Nodes through
    /// `informers` and writing through `client`; `me` is its handle.
    pub fn new(client: kube::Client, informers: &Informers, me: Handle<Self>) -> Self {
        IngressStatusController {
            client,
            ingresses: informers.get(),
            classes: informers.get(),
            nodes: informers.get(),
            dirty: true,
            busy: false,
            me,
        }
    }

    /// Decides every status and writes those that changed (one batch at a time).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.busy
            || !self.dirty
            || !self.ingresses.listed()
            || !self.classes.listed()
            || !self.nodes.listed()
        {
            return;
        }
        self.dirty = false;
        let work = decide(
            &self.ingresses.list(),
            &self.classes.list(),
            &self.nodes.list(),
        );
        if work.is_empty() {
            return;
        }
        self.busy = true;
        let client = self.client.clone();
        let write = self
            .me
            .reconcile(async move { replace_statuses(&client, "Ingress", &work).await });
        ctx.spawn(write.into_actor(self).map(|failed, act, ctx| {
            act.busy = false;
            if failed {
                ctx.run_later(RETRY, |act, _| act.dirty = true);
            }
        }));
    }
}

impl Actor for IngressStatusController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.ingresses.subscribe(ctx.address().recipient());
        self.classes.subscribe(ctx.address().recipient());
        self.nodes.subscribe(ctx.address().recipient());
        ctx.run_interval(BATCH, |act, ctx| act.flush(ctx));
        tracing::info!("ingress status controller started");
    }
}

impl Handler<Notice<Ingress>> for IngressStatusController {
    type Result = ();

    fn handle(&mut self, _: Notice<Ingress>, _: &mut Self::Context) {
        self.me.received();
        self.dirty = true;
    }
}

impl Handler<Notice<IngressClass>> for IngressStatusController {
    type Result = ();

    fn handle(&mut self, _: Notice<IngressClass>, _: &mut Self::Context) {
        self.me.received();
        self.dirty = true;
    }
}

impl Handler<Notice<Node>> for IngressStatusController {
    type Result = ();

    fn handle(&mut self, _: Notice<Node>, _: &mut Self::Context) {
        self.me.received();
        self.dirty = true;
    }
}
