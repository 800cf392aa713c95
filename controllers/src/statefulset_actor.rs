//! StatefulSets as actors: [`StatefulSetSupervisor`] and [`StatefulSetActor`] are the
//! [`OwnerSupervisor`] and [`OwnerActor`] of [`StatefulSet`], deciding with
//! [`crate::statefulset::reconcile`].
//!
//! A decision is carried out in kube-controller-manager's order: the template's
//! history first when the spec changed (as a DaemonSet's, [`history`]), adoption and
//! release, pods deleted (the claims of those scaled away given to them first when
//! `whenScaled: Delete`, so the garbage collector takes both), then each new pod's
//! claims — made once, kept across the pod's deletions — and the pod, of the current
//! or the update revision; then the status, whose `observedGeneration` is written only
//! once the history holds the generation's template. Events in Kubernetes' words
//! (`create Pod web-0 in StatefulSet web successful`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};

use crate::common::{controller_ref, object_name, replace_status};
use crate::history::{self, History, Owned};
use crate::owner::{Decided, Done, Owner, View, claim};
use crate::owner_actor::OwnerActor;
use crate::owner_supervisor::OwnerSupervisor;
use crate::statefulset::{
    Decision, NewPod, claims_for, pod_for, pod_name, reconcile, template_hash, update_revision,
};

/// Watches StatefulSets and pods and runs one [`StatefulSetActor`] per StatefulSet.
pub type StatefulSetSupervisor = OwnerSupervisor<StatefulSet>;

/// One StatefulSet's actor.
pub type StatefulSetActor = OwnerActor<StatefulSet>;

/// Old revisions kept when the StatefulSet says not (Kubernetes' default).
const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// A StatefulSet's decision, and what else to write.
pub struct Plan {
    decision: Decision,
    status_changed: bool,
    /// The spec changed since the status was written: the history first.
    history: bool,
}

impl Owner for StatefulSet {
    const KIND: &'static str = "StatefulSet";

    type Owned = Pod;
    type Plan = Plan;

    fn selector(&self) -> Option<rk8s_api::selector::Selector> {
        crate::statefulset::selector(self)
    }

    fn decide(&self, view: &View<'_, Pod>) -> Decided<Plan> {
        let decision = reconcile(self, view.owned, view.satisfied, view.now);
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
        set: Arc<StatefulSet>,
        pods: HashMap<String, Arc<Pod>>,
        plan: Plan,
    ) -> BoxFuture<'static, Done> {
        Box::pin(async move { carry_out(&client, &set, &pods, plan).await })
    }
}

fn set_ref(set: &StatefulSet) -> rk8s_events::Involved {
    rk8s_events::Involved::of("apps/v1", "StatefulSet", &set.metadata)
}

async fn event(client: &kube::Client, set: &StatefulSet, type_: &str, reason: &str, m: &str) {
    rk8s_events::record(client, set_ref(set), type_, reason, m).await;
}

/// Makes the history hold the set's current template (see [`history`]). The set's
/// pods name their revision whole (`NAME-HASH`).
async fn sync_history(
    client: &kube::Client,
    set: &StatefulSet,
    pods: &HashMap<String, Arc<Pod>>,
) -> Result<History, kube::Error> {
    let prefix = format!("{}-", set.metadata.name.as_deref().unwrap_or_default());
    let live: HashSet<String> = pods
        .values()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(history::HASH_LABEL))
        .filter_map(|r| r.strip_prefix(&prefix).map(str::to_string))
        .collect();
    let spec = set.spec.clone().unwrap_or_default();
    let limit = spec.revision_history_limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    let owner = Owned {
        meta: &set.metadata,
        reference: controller_ref("apps/v1", "StatefulSet", &set.metadata),
        selector: crate::statefulset::selector(set).map(|s| s.to_string()),
        collisions: set.status.as_ref().and_then(|s| s.collision_count),
    };
    history::sync(
        client,
        owner,
        &spec.template,
        &template_hash(set),
        &live,
        limit,
    )
    .await
}

/// The template of the revision `revision`: the set's own for its update revision,
/// else the ControllerRevision's.
async fn template_of(
    client: &kube::Client,
    set: &StatefulSet,
    revision: &str,
) -> Result<PodTemplateSpec, String> {
    if revision == update_revision(set) {
        return Ok(set.spec.clone().unwrap_or_default().template);
    }
    let ns = set.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    let found = api
        .get(revision)
        .await
        .map_err(|e| format!("revision {revision}: {e}"))?;
    history::template_of(&found).ok_or_else(|| format!("revision {revision} holds no template"))
}

/// Makes the claims of the pod `pod` that are missing (one that exists is kept, as
/// it is: it holds the pod's data).
async fn make_claims(client: &kube::Client, set: &StatefulSet, pod: &str) -> Result<(), String> {
    let ns = set.metadata.namespace.as_deref().unwrap_or("default");
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    for claim in claims_for(set, pod) {
        let name = claim.metadata.name.clone().unwrap_or_default();
        match api.get_opt(&name).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => return Err(format!("claim {name}: {e}")),
        }
        let created = api.create(&PostParams::default(), &claim).await;
        rk8s_supervision::wrote();
        match created {
            Ok(_) => {
                let m = format!("create Claim {name} Pod {pod} in StatefulSet {set_name} success");
                event(client, set, "Normal", "SuccessfulCreate", &m).await;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                let m = format!(
                    "create Claim {name} for Pod {pod} in StatefulSet {set_name} failed error: {e}"
                );
                event(client, set, "Warning", "FailedCreate", &m).await;
                return Err(m);
            }
        }
    }
    Ok(())
}

/// Makes the pod `new` (its claims first); returns the message of a failure.
async fn make_pod(
    client: &kube::Client,
    set: &StatefulSet,
    new: &NewPod,
    owner: &OwnerReference,
) -> Result<(), String> {
    let ns = set.metadata.namespace.as_deref().unwrap_or("default");
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    let name = pod_name(set, new.ordinal);
    make_claims(client, set, &name).await?;
    let template = template_of(client, set, &new.revision).await?;
    let pod = pod_for(set, template, new.ordinal, &new.revision, owner.clone());
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created = api.create(&PostParams::default(), &pod).await;
    rk8s_supervision::wrote();
    match created {
        Ok(_) => {
            let m = format!("create Pod {name} in StatefulSet {set_name} successful");
            event(client, set, "Normal", "SuccessfulCreate", &m).await;
            Ok(())
        }
        // Still there (being deleted, behind the view): made again once it is gone.
        Err(kube::Error::Api(s)) if s.code == 409 => Err(format!("pod {name} exists still")),
        Err(e) => {
            let m = format!(
                "create Pod {name} in StatefulSet {set_name} failed error: {}",
                crate::common::error_message(&e)
            );
            event(client, set, "Warning", "FailedCreate", &m).await;
            Err(m)
        }
    }
}

/// Makes the pod `pod` an owner of its claims (they go with it).
async fn give_claims(client: &kube::Client, set: &StatefulSet, pod: &Pod) {
    let ns = set.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let mut owner = controller_ref("v1", "Pod", &pod.metadata);
    owner.controller = None;
    owner.block_owner_deletion = None;
    for claim in claims_for(set, name) {
        let claim_name = claim.metadata.name.unwrap_or_default();
        let Ok(Some(there)) = api.get_opt(&claim_name).await else {
            continue;
        };
        let mut refs = there.metadata.owner_references.clone().unwrap_or_default();
        if refs.iter().any(|r| r.uid == owner.uid) {
            continue;
        }
        refs.push(owner.clone());
        let given = crate::common::set_owner_references(&api, &there.metadata, refs).await;
        if let Err(e) = given {
            tracing::debug!(claim = %claim_name, "giving to its pod: {e}");
        }
    }
}

/// Deletes the pods `names` (each with a uid precondition); returns those deleted.
async fn delete(
    client: &kube::Client,
    set: &StatefulSet,
    pods: &HashMap<String, Arc<Pod>>,
    names: &[String],
) -> Vec<String> {
    let ns = set.metadata.namespace.as_deref().unwrap_or("default");
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut done = Vec::with_capacity(names.len());
    for name in names {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pods.get(name).and_then(|p| p.metadata.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let deleted = api.delete(name, &params).await;
        rk8s_supervision::wrote();
        match deleted {
            Ok(_) => {
                let m = format!("delete Pod {name} in StatefulSet {set_name} successful");
                event(client, set, "Normal", "SuccessfulDelete", &m).await;
                done.push(name.clone());
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                let m = format!(
                    "delete Pod {name} in StatefulSet {set_name} failed error: {}",
                    crate::common::error_message(&e)
                );
                event(client, set, "Warning", "FailedDelete", &m).await;
            }
        }
    }
    done
}

/// Carries out a decision; returns what it did.
async fn carry_out(
    client: &kube::Client,
    set: &StatefulSet,
    pods: &HashMap<String, Arc<Pod>>,
    plan: Plan,
) -> Done {
    let ns = set.metadata.namespace.as_deref().unwrap_or("default");
    let key = object_name(&set.metadata);
    let Plan {
        decision,
        mut status_changed,
        history,
    } = plan;
    let mut status = decision.status;
    if history {
        match sync_history(client, set, pods).await {
            Ok(History::Held) => {}
            Ok(History::Collided(count)) => {
                // The next decision names the update revision with the new count.
                let mut set = set.clone();
                let mut status = set.status.clone().unwrap_or_default();
                status.collision_count = Some(count);
                set.status = Some(status);
                if let Err(e) = replace_status(client, &set).await {
                    tracing::debug!(sts = %key, "writing the collision count: {e}");
                }
                // Nothing was made: what the decision expected will not be seen.
                return Done::failed(format!(
                    "the revision name of the template is taken: collision count {count}"
                ));
            }
            Err(e) => {
                // Nothing is made of a revision that is not in the history yet.
                tracing::debug!(sts = %key, "making the history: {e}");
                status.observed_generation =
                    set.status.as_ref().and_then(|s| s.observed_generation);
                status_changed = set.status.as_ref() != Some(&status);
                if status_changed {
                    let mut set = set.clone();
                    set.status = Some(status);
                    let _ = replace_status(client, &set).await;
                }
                return Done::failed(format!("making the history: {e}"));
            }
        }
    }
    let owner = controller_ref("apps/v1", "StatefulSet", &set.metadata);
    claim(client, ns, pods, &decision.adopt, &decision.release, &owner).await;
    for name in &decision.scaled_down {
        if let Some(pod) = pods.get(name) {
            give_claims(client, set, pod).await;
        }
    }
    let mut done = Done {
        deleted: delete(client, set, pods, &decision.delete).await,
        ..Done::default()
    };
    for new in &decision.create {
        match make_pod(client, set, new, &owner).await {
            Ok(()) => done.created += 1,
            Err(e) => {
                done.failure.get_or_insert(e);
            }
        }
    }
    if status_changed {
        let mut set = set.clone();
        set.status = Some(status);
        if let Err(e) = replace_status(client, &set).await {
            tracing::debug!(sts = %key, "writing status: {e}");
        }
    }
    done
}
