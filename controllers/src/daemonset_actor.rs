//! DaemonSets as actors: [`DaemonSetSupervisor`] and [`DaemonSetActor`] are the
//! [`OwnerSupervisor`] and [`OwnerActor`] of [`DaemonSet`] (which follows the nodes
//! too), deciding with [`crate::daemonset::reconcile`].
//!
//! A decision is carried out in kube-controller-manager's order: the template's
//! history first when the spec changed (its ControllerRevision made, or raised by a
//! rollback, old ones trimmed; a name taken by another template counts a collision
//! and decides again with the next hash), then adoption and release, deletions,
//! a pod per node lacking one, and the status — whose `observedGeneration` is
//! written only once the history holds the generation's template, so a kill between
//! the writes makes the history again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;

use crate::common::{controller_ref, object_name, replace_status};
use crate::daemonset::{Decision, HASH_LABEL, pod_for_node, reconcile, template_hash};
use crate::history::{self, History, Owned};
use crate::owner::{
    Decided, Done, Owner, View, claim, create_pod, delete_pods, pod_from_template,
    slow_start_batches,
};
use crate::owner_actor::OwnerActor;
use crate::owner_supervisor::OwnerSupervisor;

/// Watches DaemonSets, pods and nodes and runs one [`DaemonSetActor`] per DaemonSet.
pub type DaemonSetSupervisor = OwnerSupervisor<DaemonSet>;

/// One DaemonSet's actor.
pub type DaemonSetActor = OwnerActor<DaemonSet>;

/// Old revisions kept when the DaemonSet says not (Kubernetes' default).
const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// A DaemonSet's decision, and what else to write.
pub struct Plan {
    decision: Decision,
    status_changed: bool,
    /// The spec changed since the status was written: the history first.
    history: bool,
}

impl Owner for DaemonSet {
    const KIND: &'static str = "DaemonSet";
    const NODES: bool = true;

    type Owned = Pod;
    type Plan = Plan;

    fn selector(&self) -> Option<rk8s_api::selector::Selector> {
        crate::daemonset::selector(self)
    }

    fn decide(&self, view: &View<'_, Pod>) -> Decided<Plan> {
        let decision = reconcile(self, view.nodes, view.owned, view.satisfied, view.now);
        let status_changed = self.status.as_ref() != Some(&decision.status);
        let history =
            self.status.as_ref().and_then(|s| s.observed_generation) != self.metadata.generation;
        let nothing = decision.adopt.is_empty()
            && decision.release.is_empty()
            && decision.create.is_empty()
            && decision.delete.is_empty()
            && !status_changed
            && !history;
        Decided {
            create: decision.create.len(),
            delete: decision.delete.clone(),
            requeue_after: decision.requeue_after,
            plan: (!nothing).then_some(Plan {
                decision,
                status_changed,
                history,
            }),
        }
    }

    fn carry_out(
        client: kube::Client,
        ds: Arc<DaemonSet>,
        pods: HashMap<String, Arc<Pod>>,
        plan: Plan,
    ) -> BoxFuture<'static, Done> {
        Box::pin(async move { carry_out(&client, &ds, &pods, plan).await })
    }
}

fn ds_ref(ds: &DaemonSet) -> rk8s_events::Involved {
    rk8s_events::Involved::of("apps/v1", "DaemonSet", &ds.metadata)
}

/// Makes the history hold the DaemonSet's current template (see [`history`]).
async fn sync_history(
    client: &kube::Client,
    ds: &DaemonSet,
    pods: &HashMap<String, Arc<Pod>>,
) -> Result<History, kube::Error> {
    let live: HashSet<String> = pods
        .values()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(HASH_LABEL).cloned())
        .collect();
    let spec = ds.spec.clone().unwrap_or_default();
    let limit = spec.revision_history_limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    let owner = Owned {
        meta: &ds.metadata,
        reference: controller_ref("apps/v1", "DaemonSet", &ds.metadata),
        selector: crate::daemonset::selector(ds).map(|s| s.to_string()),
        collisions: ds.status.as_ref().and_then(|s| s.collision_count),
    };
    history::sync(
        client,
        owner,
        &spec.template,
        &template_hash(ds),
        &live,
        limit,
    )
    .await
}

/// Carries out a decision; returns what it did.
async fn carry_out(
    client: &kube::Client,
    ds: &DaemonSet,
    pods: &HashMap<String, Arc<Pod>>,
    plan: Plan,
) -> Done {
    let ns = ds.metadata.namespace.as_deref().unwrap_or("default");
    let key = object_name(&ds.metadata);
    let Plan {
        decision,
        mut status_changed,
        history,
    } = plan;
    let mut status = decision.status;
    if history {
        match sync_history(client, ds, pods).await {
            Ok(History::Held) => {}
            Ok(History::Collided(count)) => {
                // The next decision hashes with the new count; nothing else is done
                // with a hash that names another template.
                let mut ds = ds.clone();
                let mut status = ds.status.clone().unwrap_or_default();
                status.collision_count = Some(count);
                ds.status = Some(status);
                if let Err(e) = replace_status(client, &ds).await {
                    tracing::debug!(ds = %key, "writing the collision count: {e}");
                }
                // Nothing was made: what the decision expected will not be seen.
                return Done::failed(format!(
                    "the revision name of the template is taken: collision count {count}"
                ));
            }
            Err(e) => {
                // The status keeps the old generation: the history is made again.
                tracing::debug!(ds = %key, "making the history: {e}");
                status.observed_generation = ds.status.as_ref().and_then(|s| s.observed_generation);
                status_changed = ds.status.as_ref() != Some(&status);
            }
        }
    }
    let owner = controller_ref("apps/v1", "DaemonSet", &ds.metadata);
    claim(client, ns, pods, &decision.adopt, &decision.release, &owner).await;
    let about = ds_ref(ds);
    let deleted = delete_pods(client, ns, pods, &decision.delete, &about).await;
    let hash = template_hash(ds);
    let name = ds.metadata.name.as_deref().unwrap_or("ds");
    let new_pods: Vec<Pod> = decision
        .create
        .iter()
        .map(|node| pod_from_template(pod_for_node(ds, node, &hash), ns, name, owner.clone()))
        .collect();
    // In slow-start batches, as kube-controller-manager's DaemonSet controller:
    // a template every node refuses costs one creation per pass, not one per node.
    let created =
        slow_start_batches(new_pods.len(), |i| create_pod(client, &new_pods[i], &about)).await;
    if status_changed {
        let mut ds = ds.clone();
        ds.status = Some(status);
        if let Err(e) = replace_status(client, &ds).await {
            tracing::debug!(ds = %key, "writing status: {e}");
        }
    }
    created.with_deleted(deleted)
}
