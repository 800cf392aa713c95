//! Jobs as actors: [`JobSupervisor`] and [`JobActor`] are the [`OwnerSupervisor`]
//! and [`OwnerActor`] of [`Job`]; the supervisor also takes the tracking finalizer off
//! pods whose Job is gone (deleted in the background, or orphaned).
//!
//! A Job decides with [`crate::job::reconcile`] and carries the decision out in the
//! order that keeps counts exact across crashes — a kill between any two of these
//! writes included: the status (with the newly finished pods uncounted) first, then
//! the finalizers of those pods, then pod deletions and creations. Its actor wakes
//! itself for the active deadline.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::common::{controller_ref, replace_status};
use crate::job::{Decision, TRACKING_FINALIZER, reconcile};
use crate::owner::{
    Decided, Done, Owner, View, create_pod, create_pods, delete_pods, pod_from_template,
    slow_start_batches,
};
use crate::owner_actor::OwnerActor;
use crate::owner_supervisor::OwnerSupervisor;

/// A Job's decision, and whether its status changed.
pub struct Plan {
    decision: Decision,
    status_changed: bool,
    /// Its `ttlSecondsAfterFinished` has passed: the Job goes.
    expired: bool,
}

impl Owner for Job {
    const KIND: &'static str = "Job";

    type Owned = Pod;
    type Plan = Plan;

    fn selector(&self) -> Option<rk8s_api::selector::Selector> {
        crate::job::selector(self)
    }

    fn decide(&self, view: &View<'_, Pod>) -> Decided<Plan> {
        let mut decision = reconcile(self, view.owned, view.satisfied, view.now);
        let status_changed = self.status.as_ref() != Some(&decision.status);
        let expiry =
            crate::job::ttl_expiry(self).filter(|_| self.metadata.deletion_timestamp.is_none());
        let expired = expiry.is_some_and(|at| at <= view.now);
        if let Some(at) = expiry.filter(|_| !expired) {
            let wait =
                std::time::Duration::try_from(at.duration_since(view.now)).unwrap_or_default();
            decision.requeue_after = Some(decision.requeue_after.map_or(wait, |w| w.min(wait)));
        }
        let nothing = decision.create == 0
            && decision.delete.is_empty()
            && decision.untrack.is_empty()
            && decision.events.is_empty()
            && !status_changed
            && !expired;
        Decided {
            create: decision.create,
            delete: decision.delete.clone(),
            requeue_after: decision.requeue_after,
            plan: (!nothing).then_some(Plan {
                decision,
                status_changed,
                expired,
            }),
        }
    }

    fn carry_out(
        client: kube::Client,
        job: Arc<Job>,
        pods: HashMap<String, Arc<Pod>>,
        plan: Plan,
    ) -> BoxFuture<'static, Done> {
        Box::pin(async move {
            if plan.expired {
                expire(&client, &job).await;
                return Done::default();
            }
            carry_out(&client, &job, &pods, plan.decision, plan.status_changed).await
        })
    }

    fn is_stray(pod: &Pod) -> bool {
        pod.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == TRACKING_FINALIZER)
    }

    fn release_stray(client: kube::Client, pod: Pod) -> BoxFuture<'static, ()> {
        Box::pin(async move { untrack(&client, &pod).await })
    }
}

/// Watches Jobs and pods and runs one [`JobActor`] per Job.
pub type JobSupervisor = OwnerSupervisor<Job>;

/// One Job's actor.
pub type JobActor = OwnerActor<Job>;

/// Takes the tracking finalizer off `pod` (with its resourceVersion: a pod changed
/// since is looked at again).
async fn untrack(client: &kube::Client, pod: &Pod) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let finalizers: Vec<&String> = pod
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != TRACKING_FINALIZER)
        .collect();
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers, "resourceVersion": pod.metadata.resource_version}});
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let patched = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    rk8s_supervision::wrote();
    match patched {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), "untracking: {e}"),
    }
}

/// Deletes a Job whose `ttlSecondsAfterFinished` passed, as Kubernetes' TTL
/// controller does: in the foreground (its pods first), on condition that it is
/// still the Job decided on (its resourceVersion: a Job changed since — its TTL
/// raised — is looked at again).
async fn expire(client: &kube::Client, job: &Job) {
    let ns = job.metadata.namespace.as_deref().unwrap_or("default");
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let params = kube::api::DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Foreground),
        preconditions: Some(kube::api::Preconditions {
            uid: job.metadata.uid.clone(),
            resource_version: job.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    let deleted = api.delete(name, &params).await;
    rk8s_supervision::wrote();
    match deleted {
        Ok(_) => {
            tracing::info!(job = %format!("{ns}/{name}"), "deleted: ttlSecondsAfterFinished passed")
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => tracing::warn!(job = %format!("{ns}/{name}"), "deleting after its TTL: {e}"),
    }
}

fn job_ref(job: &Job) -> rk8s_events::Involved {
    rk8s_events::Involved::of("batch/v1", "Job", &job.metadata)
}

/// Carries out a decision; returns what it did.
async fn carry_out(
    client: &kube::Client,
    job: &Job,
    pods: &HashMap<String, Arc<Pod>>,
    decision: Decision,
    status_changed: bool,
) -> Done {
    let ns = job.metadata.namespace.as_deref().unwrap_or("default");
    // Finished pods are recorded as uncounted before their finalizers go.
    if status_changed {
        let mut job = job.clone();
        job.status = Some(decision.status.clone());
        if let Err(e) = replace_status(client, &job).await {
            tracing::debug!(job = %format!("{ns}/{}", job.metadata.name.as_deref().unwrap_or_default()), "writing status: {e}");
            // Nothing else done: the next decision (the Job as it is now) does it.
            return Done::default();
        }
    }
    for name in &decision.untrack {
        if let Some(pod) = pods.get(name) {
            untrack(client, pod).await;
        }
    }
    let about = job_ref(job);
    for (type_, reason, message) in &decision.events {
        rk8s_events::record(client, about.clone(), type_, reason, message).await;
    }
    let deleted = delete_pods(client, ns, pods, &decision.delete, &about).await;
    if decision.create == 0 {
        return Done::default().with_deleted(deleted);
    }
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let name = job.metadata.name.as_deref().unwrap_or("job");
    let owner = controller_ref("batch/v1", "Job", &job.metadata);
    let tracked = |mut pod: Pod| {
        pod.metadata.finalizers = Some(vec![TRACKING_FINALIZER.to_string()]);
        pod
    };
    let done = if decision.indexes.is_empty() {
        let pod = tracked(pod_from_template(template, ns, name, owner));
        create_pods(client, &pod, decision.create, &about).await
    } else {
        // An Indexed Job's pods, one per index, named `JOB-INDEX-xxxxx`.
        let pods: Vec<Pod> = decision
            .indexes
            .iter()
            .map(|&index| {
                let t = crate::job_index::template_for(template.clone(), name, index);
                tracked(pod_from_template(
                    t,
                    ns,
                    &format!("{name}-{index}"),
                    owner.clone(),
                ))
            })
            .collect();
        slow_start_batches(pods.len(), |i| create_pod(client, &pods[i], &about)).await
    };
    done.with_deleted(deleted)
}
