//! The disruption controller as an actor: it follows PodDisruptionBudgets, pods and
//! the controllers whose replicas budgets count (ReplicaSets, Deployments,
//! ReplicationControllers, StatefulSets) through the shared informers, marks the
//! budgets a change touches, and every [`BATCH`] writes the status
//! ([`crate::disruption::status`]) of each marked budget whose status changed — with
//! its resourceVersion, so an eviction that spent a disruption meanwhile is not
//! overwritten (the budget is looked at again).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use rk8s_informers::{Informer, Informers, Kind, Notice};
use rk8s_supervision::Handle;

use crate::common::{controller_of, object_name, replace_statuses};
use crate::disruption::{selected, status};

/// How often marked budgets are written.
pub const BATCH: Duration = Duration::from_millis(100);

/// The controllers whose replicas a budget counts.
struct Controllers {
    sets: Informer<ReplicaSet>,
    deployments: Informer<Deployment>,
    legacy: Informer<ReplicationController>,
    stateful: Informer<StatefulSet>,
}

impl Controllers {
    /// The replicas the controller `owner` of a pod in `ns` asks for, and the uid they
    /// count under (a ReplicaSet's Deployment's, if it has one).
    fn scale_of(&self, owner: &OwnerReference, ns: &str) -> Option<(String, i32)> {
        let key = format!("{ns}/{}", owner.name);
        let same = |uid: &Option<String>| uid.as_deref() == Some(owner.uid.as_str());
        match owner.kind.as_str() {
            "ReplicaSet" => {
                let rs = self.sets.get(&key).filter(|rs| same(&rs.metadata.uid))?;
                match controller_of(&rs.metadata).filter(|d| d.kind == "Deployment") {
                    Some(d) => self.scale_of(d, ns),
                    None => Some((owner.uid.clone(), rs.spec.as_ref()?.replicas.unwrap_or(1))),
                }
            }
            "Deployment" => {
                let d = self
                    .deployments
                    .get(&key)
                    .filter(|d| same(&d.metadata.uid))?;
                Some((owner.uid.clone(), d.spec.as_ref()?.replicas.unwrap_or(1)))
            }
            "ReplicationController" => {
                let rc = self.legacy.get(&key).filter(|r| same(&r.metadata.uid))?;
                Some((owner.uid.clone(), rc.spec.as_ref()?.replicas.unwrap_or(1)))
            }
            "StatefulSet" => {
                let s = self.stateful.get(&key).filter(|s| same(&s.metadata.uid))?;
                Some((owner.uid.clone(), s.spec.as_ref()?.replicas.unwrap_or(1)))
            }
            _ => None,
        }
    }
}

/// Keeps every PodDisruptionBudget's status.
pub struct DisruptionController {
    client: kube::Client,
    budgets_informer: Informer<PodDisruptionBudget>,
    pods_informer: Informer<Pod>,
    controllers: Arc<Controllers>,
    budgets: BTreeMap<String, Arc<PodDisruptionBudget>>,
    dirty: BTreeSet<String>,
    busy: bool,
    me: Handle<Self>,
}

fn namespace_of(key: &str) -> &str {
    key.split_once('/').map_or("default", |(ns, _)| ns)
}

impl DisruptionController {
    /// A controller following its kinds through `informers` and writing through
    /// `client`; `me` is its handle.
    pub fn new(client: kube::Client, informers: &Informers, me: Handle<Self>) -> Self {
        DisruptionController {
            client,
            budgets_informer: informers.get(),
            pods_informer: informers.get(),
            controllers: Arc::new(Controllers {
                sets: informers.get(),
                deployments: informers.get(),
                legacy: informers.get(),
                stateful: informers.get(),
            }),
            budgets: BTreeMap::new(),
            dirty: BTreeSet::new(),
            busy: false,
            me,
        }
    }

    /// Marks the budgets of namespace `ns`.
    fn touch_namespace(&mut self, ns: &str) {
        let keys = self
            .budgets
            .keys()
            .filter(|k| namespace_of(k) == ns)
            .cloned()
            .collect::<Vec<_>>();
        self.dirty.extend(keys);
    }

    /// Marks the budgets of `pod`'s namespace that select it.
    fn touch_pod(&mut self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let touched: Vec<String> = self
            .budgets
            .iter()
            .filter(|(k, b)| namespace_of(k) == ns && !selected(b, std::iter::once(pod)).is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        self.dirty.extend(touched);
    }

    fn synced(&self) -> bool {
        let c = &self.controllers;
        self.budgets_informer.listed()
            && self.pods_informer.listed()
            && c.sets.listed()
            && c.deployments.listed()
            && c.legacy.listed()
            && c.stateful.listed()
    }

    /// Writes the marked budgets' statuses (one batch at a time).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.dirty.is_empty() || !self.synced() {
            return;
        }
        let now = jiff::Timestamp::now();
        let dirty = std::mem::take(&mut self.dirty);
        // The pods of the namespaces concerned, read from the shared cache (no copy
        // of every pod is kept here: most clusters have few budgets).
        let namespaces: BTreeSet<&str> = dirty.iter().map(|k| namespace_of(k)).collect();
        let pods: BTreeMap<String, Vec<Arc<Pod>>> = namespaces
            .iter()
            .map(|ns| (ns.to_string(), self.pods_informer.list_in(ns)))
            .collect();
        let mut work = Vec::new();
        for key in dirty {
            let Some(budget) = self.budgets.get(&key) else {
                continue;
            };
            let ns = namespace_of(&key);
            let in_ns = pods.get(ns).into_iter().flatten().map(|p| p.as_ref());
            let chosen = selected(budget, in_ns);
            let controllers = self.controllers.clone();
            let scale_of = move |o: &OwnerReference, ns: &str| controllers.scale_of(o, ns);
            let (new, recheck) = status(budget, &chosen, &scale_of, now);
            if let Some(after) = recheck {
                let key = key.clone();
                ctx.run_later(after + Duration::from_millis(100), move |act, _| {
                    act.dirty.insert(key);
                });
            }
            if budget.status.as_ref() != Some(&new) {
                let mut budget = PodDisruptionBudget::clone(budget);
                budget.status = Some(new);
                work.push(budget);
            }
        }
        if work.is_empty() {
            return;
        }
        self.busy = true;
        let client = self.client.clone();
        let write = self.me.reconcile(async move {
            replace_statuses(&client, "PodDisruptionBudget", &work).await
        });
        ctx.spawn(
            write
                .into_actor(self)
                .map(|_failed, act, _| act.busy = false),
        );
    }
}

impl Actor for DisruptionController {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.budgets_informer.subscribe(ctx.address().recipient());
        self.pods_informer.subscribe(ctx.address().recipient());
        let c = self.controllers.clone();
        c.sets.subscribe(ctx.address().recipient());
        c.deployments.subscribe(ctx.address().recipient());
        c.legacy.subscribe(ctx.address().recipient());
        c.stateful.subscribe(ctx.address().recipient());
        ctx.run_interval(BATCH, |act, ctx| act.flush(ctx));
        // A write refused (an eviction spent a disruption meanwhile) is made again.
        ctx.run_interval(Duration::from_secs(30), |act, _| {
            act.dirty.extend(act.budgets.keys().cloned());
        });
        tracing::info!("disruption controller started");
    }
}

impl Handler<Notice<PodDisruptionBudget>> for DisruptionController {
    type Result = ();

    fn handle(&mut self, notice: Notice<PodDisruptionBudget>, _: &mut Self::Context) {
        notice.for_each(|b, deleted| {
            let key = object_name(&b.metadata);
            if deleted {
                self.budgets.remove(&key);
            } else {
                self.budgets.insert(key.clone(), b);
                self.dirty.insert(key);
            }
        });
    }
}

impl Handler<Notice<Pod>> for DisruptionController {
    type Result = ();

    fn handle(&mut self, notice: Notice<Pod>, _: &mut Self::Context) {
        // A pod whose labels stop matching is caught by the periodic look.
        notice.for_each(|p, _| self.touch_pod(&p));
    }
}

/// A controller's replicas changed: the budgets of its namespace look again.
fn controller_changed<K: Kind>(act: &mut DisruptionController, notice: Notice<K>) {
    notice.for_each(|o, _| {
        let ns = o
            .meta()
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        act.touch_namespace(&ns);
    });
}

impl Handler<Notice<ReplicaSet>> for DisruptionController {
    type Result = ();

    fn handle(&mut self, notice: Notice<ReplicaSet>, _: &mut Self::Context) {
        controller_changed(self, notice);
    }
}

impl Handler<Notice<Deployment>> for DisruptionController {
    type Result = ();

    fn handle(&mut self, notice: Notice<Deployment>, _: &mut Self::Context) {
        controller_changed(self, notice);
    }
}

impl Handler<Notice<ReplicationController>> for DisruptionController {
    type Result = ();

    fn handle(&mut self, notice: Notice<ReplicationController>, _: &mut Self::Context) {
        controller_changed(self, notice);
    }
}

impl Handler<Notice<StatefulSet>> for DisruptionController {
    type Result = ();

    fn handle(&mut self, notice: Notice<StatefulSet>, _: &mut Self::Context) {
        controller_changed(self, notice);
    }
}
