//! ReplicaSets as actors. The [`ReplicaSetSupervisor`] (an
//! [`OwnerSupervisor`](crate::pod_owner::OwnerSupervisor)) watches ReplicaSets and
//! pods and runs one supervised [`ReplicaSetActor`] per ReplicaSet, routing each pod
//! event to the actor it concerns.
//!
//! A ReplicaSetActor decides with [`crate::replicaset::reconcile`] and carries the
//! decision out: adoption and release by patching `ownerReferences` (with the pod's
//! resourceVersion), pods created from the template and deleted (uid precondition),
//! expectations so a stale view never acts twice, events, and the status subresource.
//! Killed, it is restarted and resynchronised from the supervisor's index, which the
//! watch keeps; killed, the supervisor re-lists.

use std::collections::HashMap;

use actix::prelude::*;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::chaos::{Actors, Tracker};
use crate::common::{Expectations, Stop, adopt, controller_ref, replace_status};
use crate::pod_owner::{
    OwnerSupervisor, PodOwner, Sync, create_pods, delete_pods, pod_from_template,
};
use crate::replicaset::{Decision, reconcile, with_failure};

impl PodOwner for ReplicaSet {
    const KIND: &'static str = "ReplicaSet";

    fn selector(&self) -> Option<rk8s_api::selector::Selector> {
        crate::replicaset::selector(self)
    }
}

/// Watches ReplicaSets and pods and runs one [`ReplicaSetActor`] per ReplicaSet.
pub type ReplicaSetSupervisor = OwnerSupervisor<ReplicaSet, ReplicaSetActor>;

impl ReplicaSetSupervisor {
    /// The ReplicaSet controller, talking to the API through `client`.
    pub fn replicasets(client: kube::Client, registry: Actors, tracker: Tracker) -> Self {
        OwnerSupervisor::new(client, ReplicaSetActor::new, registry, tracker)
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Done {
    failure: Option<String>,
}

/// One ReplicaSet's actor.
pub struct ReplicaSetActor {
    client: kube::Client,
    tracker: Tracker,
    latest: Option<Sync<ReplicaSet>>,
    busy: bool,
    stopping: bool,
    expected: Expectations,
    failure: Option<String>,
}

impl ReplicaSetActor {
    fn new(client: kube::Client, tracker: Tracker) -> Self {
        ReplicaSetActor {
            client,
            tracker,
            latest: None,
            busy: false,
            stopping: false,
            expected: Expectations::default(),
            failure: None,
        }
    }

    fn step(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.stopping {
            return;
        }
        let Some(sync) = self.latest.as_ref() else {
            return;
        };
        let now = jiff::Timestamp::now();
        let decision = reconcile(&sync.owner, &sync.pods, self.expected.satisfied(), now);
        let mut status = decision.status.clone();
        status = with_failure(status, self.failure.as_deref(), now);
        let status_changed = sync.owner.status.as_ref() != Some(&status);
        let nothing = decision.adopt.is_empty()
            && decision.release.is_empty()
            && decision.create == 0
            && decision.delete.is_empty()
            && !status_changed;
        if nothing {
            return;
        }
        if decision.create > 0 || !decision.delete.is_empty() {
            self.expected
                .expect(decision.create, decision.delete.iter().cloned());
        }
        self.busy = true;
        let rs = sync.owner.clone();
        let pods = sync.pods_by_name();
        let client = self.client.clone();
        let fut = async move {
            let started = std::time::Instant::now();
            let failure = carry_out(
                &client,
                &rs,
                &pods,
                &decision,
                status_changed.then_some(status),
            )
            .await;
            crate::metrics::reconciled("ReplicaSet", started.elapsed(), failure.is_some());
            Done { failure }
        };
        ctx.spawn(fut.into_actor(self).map(|done, _act, ctx| ctx.notify(done)));
    }
}

fn key(rs: &ReplicaSet) -> String {
    format!(
        "{}/{}",
        rs.metadata.namespace.as_deref().unwrap_or("default"),
        rs.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Carries out a decision; returns the message of a failed creation, if any.
async fn carry_out(
    client: &kube::Client,
    rs: &ReplicaSet,
    pods: &HashMap<String, Pod>,
    decision: &Decision,
    status: Option<k8s_openapi::api::apps::v1::ReplicaSetStatus>,
) -> Option<String> {
    let ns = rs.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let owner = controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
    for name in &decision.adopt {
        let Some(pod) = pods.get(name) else { continue };
        if let Err(e) = adopt(&api, &pod.metadata, &owner).await {
            tracing::debug!(rs = %key(rs), pod = %name, "adopting: {e}");
        }
    }
    for name in &decision.release {
        let Some(pod) = pods.get(name) else { continue };
        let refs: Vec<_> = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .filter(|r| r.uid != owner.uid)
            .cloned()
            .collect();
        let patch = serde_json::json!({"metadata": {
            "ownerReferences": refs, "resourceVersion": pod.metadata.resource_version}});
        if let Err(e) = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(rs = %key(rs), pod = %name, "releasing: {e}");
        }
    }
    let mut failure = None;
    if decision.create > 0 {
        let template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        let pod = pod_from_template(
            template,
            ns,
            rs.metadata.name.as_deref().unwrap_or("rs"),
            owner.clone(),
        );
        failure = create_pods(client, &pod, decision.create, rs_ref(rs)).await;
    }
    delete_pods(client, ns, pods, &decision.delete, rs_ref(rs)).await;
    if let Some(status) = status {
        let mut rs = rs.clone();
        rs.status = Some(status);
        if let Err(e) = replace_status(client, &rs).await {
            tracing::debug!(rs = %key(&rs), "writing status: {e}");
        }
    }
    failure
}

fn rs_ref(rs: &ReplicaSet) -> crate::events::Involved {
    crate::events::Involved::of("apps/v1", "ReplicaSet", &rs.metadata)
}

impl Actor for ReplicaSetActor {
    type Context = Context<Self>;
}

impl Supervised for ReplicaSetActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // The supervisor's next sync brings the state; expectations start afresh.
        self.tracker.restarted();
        self.busy = false;
        self.expected.clear();
    }
}

impl Handler<Sync<ReplicaSet>> for ReplicaSetActor {
    type Result = ();

    fn handle(&mut self, msg: Sync<ReplicaSet>, ctx: &mut Self::Context) {
        msg.observe(&mut self.expected, &self.tracker);
        self.latest = Some(msg);
        self.step(ctx);
    }
}

impl Handler<Done> for ReplicaSetActor {
    type Result = ();

    fn handle(&mut self, msg: Done, ctx: &mut Self::Context) {
        self.busy = false;
        self.failure = msg.failure;
        if self.failure.is_some() {
            // Creations that failed will never be seen.
            self.expected.clear();
        }
        self.step(ctx);
    }
}

impl Handler<Stop> for ReplicaSetActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        self.stopping = true;
        ctx.stop();
    }
}

crate::common::crash_on_request!(ReplicaSetActor);
