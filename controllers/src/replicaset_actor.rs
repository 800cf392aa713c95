//! ReplicaSets as actors: [`ReplicaSetSupervisor`] and [`ReplicaSetActor`] are the
//! [`OwnerSupervisor`] and [`OwnerActor`] of [`ReplicaSet`], which decides with
//! [`crate::replicaset::reconcile`] and carries the decision out: adoption and
//! release by patching `ownerReferences` (with the pod's resourceVersion), pods
//! created from the template and deleted (uid precondition), events, and the status
//! subresource (with the `ReplicaFailure` condition of a failed creation).

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::common::{controller_ref, object_name, replace_status};
use crate::owner::{
    Decided, Done, Owner, View, claim, create_pods, delete_pods, pod_from_template,
};
use crate::owner_actor::OwnerActor;
use crate::owner_supervisor::OwnerSupervisor;
use crate::replicaset::{Decision, reconcile, with_failure};

/// Watches ReplicaSets and pods and runs one [`ReplicaSetActor`] per ReplicaSet.
pub type ReplicaSetSupervisor = OwnerSupervisor<ReplicaSet>;

/// One ReplicaSet's actor.
pub type ReplicaSetActor = OwnerActor<ReplicaSet>;

/// A ReplicaSet's decision, and the status to write if it changed.
pub struct Plan {
    pub(crate) decision: Decision,
    pub(crate) status: Option<ReplicaSetStatus>,
}

impl Owner for ReplicaSet {
    const KIND: &'static str = "ReplicaSet";

    type Owned = Pod;
    type Plan = Plan;

    fn selector(&self) -> Option<rk8s_api::selector::Selector> {
        crate::replicaset::selector(self)
    }

    fn decide(&self, view: &View<'_, Pod>) -> Decided<Plan> {
        let decision = reconcile(self, view.owned, view.satisfied, view.now);
        let status = with_failure(decision.status.clone(), view.failure, view.now);
        let status_changed = self.status.as_ref() != Some(&status);
        let nothing = decision.adopt.is_empty()
            && decision.release.is_empty()
            && decision.create == 0
            && decision.delete.is_empty()
            && !status_changed;
        Decided {
            create: decision.create,
            delete: decision.delete.clone(),
            requeue_after: None,
            plan: (!nothing).then(|| Plan {
                decision,
                status: status_changed.then_some(status),
            }),
        }
    }

    fn carry_out(
        client: kube::Client,
        rs: Arc<ReplicaSet>,
        pods: HashMap<String, Arc<Pod>>,
        plan: Plan,
    ) -> BoxFuture<'static, Done> {
        Box::pin(async move { carry_out(&client, &rs, &pods, &plan.decision, plan.status).await })
    }
}

/// Carries out a decision; returns what it did.
async fn carry_out(
    client: &kube::Client,
    rs: &ReplicaSet,
    pods: &HashMap<String, Arc<Pod>>,
    decision: &Decision,
    status: Option<ReplicaSetStatus>,
) -> Done {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone());
    let owner = controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
    let done = carry_out_pods(
        client,
        &rs.metadata,
        owner,
        rs_ref(rs),
        template,
        pods,
        decision,
    )
    .await;
    if let Some(status) = status {
        let mut rs = rs.clone();
        rs.status = Some(status);
        if let Err(e) = replace_status(client, &rs).await {
            tracing::debug!(rs = %object_name(&rs.metadata), "writing status: {e}");
        }
    }
    done
}

/// Carries out the pods' part of a replicas decision for the owner `meta` (a
/// ReplicaSet, or a ReplicationController): adoption and release, pods made from
/// `template` controlled by `owner`, deletions, each with its event about `about`.
/// Returns what it did.
pub(crate) async fn carry_out_pods(
    client: &kube::Client,
    meta: &ObjectMeta,
    owner: OwnerReference,
    about: rk8s_events::Involved,
    template: Option<PodTemplateSpec>,
    pods: &HashMap<String, Arc<Pod>>,
    decision: &Decision,
) -> Done {
    let ns = meta.namespace.as_deref().unwrap_or("default");
    claim(client, ns, pods, &decision.adopt, &decision.release, &owner).await;
    let mut done = Done::default();
    if decision.create > 0 {
        let name = meta.name.as_deref().unwrap_or("rs");
        let pod = pod_from_template(template.unwrap_or_default(), ns, name, owner.clone());
        done = create_pods(client, &pod, decision.create, &about).await;
    }
    done.with_deleted(delete_pods(client, ns, pods, &decision.delete, &about).await)
}

fn rs_ref(rs: &ReplicaSet) -> rk8s_events::Involved {
    rk8s_events::Involved::of("apps/v1", "ReplicaSet", &rs.metadata)
}
