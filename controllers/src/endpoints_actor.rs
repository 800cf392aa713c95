//! The Endpoints controller as an actor: it follows Services, pods and Endpoints
//! through the shared informers,
//! marks the Services a change touches, and every [`BATCH`] writes the Endpoints of
//! each marked Service that has a selector ([`crate::endpoints`]): created, replaced
//! with its resourceVersion when it differs, deleted with its Service. Endpoints it
//! wrote carry Kubernetes' `endpoints.kubernetes.io/last-change-trigger-time`; those
//! whose Service went while no controller ran are deleted once the watches are synced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use rk8s_informers::{Informer, Informers, Notice};
use rk8s_supervision::Handle;

use crate::common::object_name;
use crate::endpoints::{endpoints, managed, selects, up_to_date};

/// How often marked Services are written.
pub const BATCH: Duration = Duration::from_millis(100);
/// How long a failed write waits before it is tried again.
pub const RETRY: Duration = Duration::from_secs(1);
/// The annotation Kubernetes' controller sets on the Endpoints it writes.
pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

#[derive(Message)]
#[rtype(result = "()")]
struct Written(Vec<(String, Result<Option<Endpoints>, ()>)>);

/// Keeps every selector Service's Endpoints.
pub struct EndpointsController {
    client: kube::Client,
    informers: (Informer<Service>, Informer<Pod>, Informer<Endpoints>),
    services: BTreeMap<String, Arc<Service>>,
    pods: BTreeMap<String, BTreeMap<String, Arc<Pod>>>,
    current: BTreeMap<String, Arc<Endpoints>>,
    dirty: BTreeSet<String>,
    synced: [bool; 3],
    busy: bool,
    me: Handle<Self>,
}

impl EndpointsController {
    /// A controller following its kinds through `informers` and writing through
    /// `client`; `me` is its handle.
    pub fn new(client: kube::Client, informers: &Informers, me: Handle<Self>) -> Self {
        EndpointsController {
            client,
            informers: (informers.get(), informers.get(), informers.get()),
            services: BTreeMap::new(),
            pods: BTreeMap::new(),
            current: BTreeMap::new(),
            dirty: BTreeSet::new(),
            synced: [false; 3],
            busy: false,
            me,
        }
    }

    fn namespace(key: &str) -> &str {
        key.split_once('/').map_or("default", |(ns, _)| ns)
    }

    /// Marks the Services of `pod`'s namespace that select it (before or after).
    fn touch_pod(&mut self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        for (key, s) in &self.services {
            if Self::namespace(key) == ns && selects(s, pod) {
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

    /// Writes the marked Services' Endpoints (one batch at a time).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.busy || !self.synced.iter().all(|s| *s) || self.dirty.is_empty() {
            return;
        }
        self.busy = true;
        let mut work = Vec::new();
        for key in std::mem::take(&mut self.dirty) {
            let ns = Self::namespace(&key).to_string();
            let want = self.services.get(&key).filter(|s| managed(s)).map(|s| {
                let pods = self.pods.get(&ns).into_iter().flat_map(|p| p.values());
                endpoints(s, pods.map(|p| p.as_ref()))
            });
            let current = self.current.get(&key).cloned();
            let ours = current
                .as_ref()
                .and_then(|e| e.metadata.annotations.as_ref())
                .is_some_and(|a| a.contains_key(TRIGGER_TIME));
            match (want, current) {
                (Some(want), Some(current)) if up_to_date(&current, &want) => {}
                (Some(want), current) => work.push((key, ns, Some(want), current)),
                // The Service is gone: the Endpoints this controller wrote go with it
                // (a Service without a selector keeps what its user wrote).
                (None, Some(current)) if ours && !self.services.contains_key(&key) => {
                    work.push((key, ns, None, Some(current)))
                }
                (None, _) => {}
            }
        }
        let client = self.client.clone();
        let started = std::time::Instant::now();
        let work = self.me.reconcile(async move {
            let mut written = Vec::new();
            for (key, ns, want, current) in work {
                let api: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
                let name = key
                    .split_once('/')
                    .map_or(key.as_str(), |(_, n)| n)
                    .to_string();
                let result = match (want, current) {
                    (Some(mut want), current) => {
                        want.metadata.annotations = Some(BTreeMap::from([(
                            TRIGGER_TIME.to_string(),
                            jiff::Timestamp::now().to_string(),
                        )]));
                        match current {
                            Some(c) => {
                                want.metadata.resource_version =
                                    c.metadata.resource_version.clone();
                                api.replace(&name, &PostParams::default(), &want).await
                            }
                            None => api.create(&PostParams::default(), &want).await,
                        }
                        .map(Some)
                    }
                    (None, Some(current)) => {
                        let params = DeleteParams {
                            preconditions: Some(Preconditions {
                                uid: current.metadata.uid.clone(),
                                resource_version: None,
                            }),
                            ..Default::default()
                        };
                        api.delete(&name, &params).await.map(|_| None)
                    }
                    (None, None) => Ok(None),
                };
                rk8s_supervision::wrote();
                match result {
                    Ok(e) => written.push((key, Ok(e))),
                    Err(e) => {
                        tracing::debug!(service = %key, "writing endpoints: {e}");
                        written.push((key, Err(())));
                    }
                }
            }
            written
        });
        ctx.spawn(work.into_actor(self).map(move |written, _act, ctx| {
            crate::metrics::reconciled("Endpoints", started.elapsed(), false);
            ctx.notify(Written(written));
        }));
    }
}

impl Actor for EndpointsController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.informers.0.subscribe(ctx.address().recipient());
        self.informers.1.subscribe(ctx.address().recipient());
        self.informers.2.subscribe(ctx.address().recipient());
        ctx.run_interval(BATCH, |act, ctx| act.flush(ctx));
        tracing::info!("endpoints controller started");
    }
}

impl Handler<Written> for EndpointsController {
    type Result = ();

    fn handle(&mut self, msg: Written, ctx: &mut Self::Context) {
        self.busy = false;
        for (key, written) in msg.0 {
            match written {
                Ok(Some(e)) => {
                    self.current.insert(key, Arc::new(e));
                }
                Ok(None) => {
                    self.current.remove(&key);
                }
                // A conflict or an outage: look again in a second, with what the
                // watches have brought by then.
                Err(()) => {
                    ctx.run_later(RETRY, move |act, _| {
                        act.dirty.insert(key);
                    });
                }
            }
        }
    }
}

impl Handler<Notice<Service>> for EndpointsController {
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

impl Handler<Notice<Pod>> for EndpointsController {
    type Result = ();

    fn handle(&mut self, notice: Notice<Pod>, _ctx: &mut Self::Context) {
        if notice.for_each(|p, deleted| self.pod_event(p, deleted)) {
            self.synced[1] = true;
        }
    }
}

impl Handler<Notice<Endpoints>> for EndpointsController {
    type Result = ();

    fn handle(&mut self, notice: Notice<Endpoints>, _ctx: &mut Self::Context) {
        let listed = notice.for_each(|ep, deleted| {
            let key = object_name(&ep.metadata);
            let served = self.services.contains_key(&key);
            // Ours without a Service: a leftover to delete; gone under a Service: to
            // write again.
            if deleted == served {
                self.dirty.insert(key.clone());
            }
            if deleted {
                self.current.remove(&key);
            } else {
                self.current.insert(key, ep);
            }
        });
        if listed {
            self.synced[2] = true;
        }
    }
}
