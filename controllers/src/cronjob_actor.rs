//! CronJobs as actors: [`CronJobSupervisor`] and [`CronJobActor`] are the
//! [`OwnerSupervisor`] and [`OwnerActor`] of [`CronJob`], which owns Jobs (and adopts
//! none), deciding with [`crate::cronjob::reconcile`] and waking itself at the next
//! scheduled time.
//!
//! A decision is carried out as kube-controller-manager does: Jobs a `Replace` ends
//! and finished ones beyond the history limits deleted (in the background, their
//! pods following), the new Job created, then the status with its
//! `lastScheduleTime`. A kill between the Job and the status is harmless: the Job's
//! name is its scheduled time, and the next decision sees it made.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::Api;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};

use crate::common::{object_name, replace_status};
use crate::cronjob::{Decision, reconcile};
use crate::owner::{Decided, Done, Owner, View};
use crate::owner_actor::OwnerActor;
use crate::owner_supervisor::OwnerSupervisor;

/// Watches CronJobs and Jobs and runs one [`CronJobActor`] per CronJob.
pub type CronJobSupervisor = OwnerSupervisor<CronJob>;

/// One CronJob's actor.
pub type CronJobActor = OwnerActor<CronJob>;

/// A CronJob's decision, and whether its status changed.
pub struct Plan {
    decision: Decision,
    status_changed: bool,
}

impl Owner for CronJob {
    const KIND: &'static str = "CronJob";

    type Owned = Job;
    type Plan = Plan;

    fn selector(&self) -> Option<rk8s_api::selector::Selector> {
        // Kubernetes' CronJob controller adopts no Job.
        None
    }

    fn decide(&self, view: &View<'_, Job>) -> Decided<Plan> {
        let decision = reconcile(self, view.owned, view.now);
        if !view.satisfied {
            // A Job created or deleted is not seen yet: deciding now would make it
            // again, or write a status without it.
            return Decided {
                plan: None,
                create: 0,
                delete: Vec::new(),
                requeue_after: decision.requeue_after,
            };
        }
        let status_changed = self.status.as_ref() != Some(&decision.status);
        let nothing = decision.create.is_none()
            && decision.delete.is_empty()
            && decision.events.is_empty()
            && !status_changed;
        Decided {
            create: usize::from(decision.create.is_some()),
            delete: decision.delete.clone(),
            requeue_after: decision.requeue_after,
            plan: (!nothing).then_some(Plan {
                decision,
                status_changed,
            }),
        }
    }

    fn carry_out(
        client: kube::Client,
        cj: Arc<CronJob>,
        _jobs: HashMap<String, Arc<Job>>,
        plan: Plan,
    ) -> BoxFuture<'static, Done> {
        Box::pin(async move { carry_out(&client, &cj, plan).await })
    }
}

fn cj_ref(cj: &CronJob) -> rk8s_events::Involved {
    rk8s_events::Involved::of("batch/v1", "CronJob", &cj.metadata)
}

/// Carries out a decision; returns what it did.
async fn carry_out(client: &kube::Client, cj: &CronJob, plan: Plan) -> Done {
    let ns = cj.metadata.namespace.as_deref().unwrap_or("default");
    let key = object_name(&cj.metadata);
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let Plan {
        decision,
        mut status_changed,
    } = plan;
    for (type_, reason, message) in &decision.events {
        rk8s_events::record(client, cj_ref(cj), type_, reason, message).await;
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let mut done = Done::default();
    for name in &decision.delete {
        let deleted = jobs.delete(name, &params).await;
        rk8s_supervision::wrote();
        match deleted {
            Ok(_) => {
                let message = format!("Deleted job {name}");
                rk8s_events::record(client, cj_ref(cj), "Normal", "SuccessfulDelete", &message)
                    .await;
                done.deleted.push(name.clone());
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(cronjob = %key, job = %name, "deleting: {e}"),
        }
    }
    let mut status = decision.status;
    if let Some(job) = &decision.create {
        let name = job.metadata.name.clone().unwrap_or_default();
        let created = jobs.create(&PostParams::default(), job).await;
        rk8s_supervision::wrote();
        match created {
            Ok(made) => {
                // The status refers to the Job as it was made (its uid).
                for r in status.active.iter_mut().flatten() {
                    if r.name.as_deref() == Some(name.as_str()) {
                        r.uid = made.metadata.uid.clone();
                        r.resource_version = made.metadata.resource_version.clone();
                    }
                }
                let message = format!("Created job {name}");
                rk8s_events::record(client, cj_ref(cj), "Normal", "SuccessfulCreate", &message)
                    .await;
                done.created += 1;
            }
            // Made already: the next decision sees it.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                let message = format!("Error creating job: {}", crate::common::error_message(&e));
                rk8s_events::record(client, cj_ref(cj), "Warning", "FailedCreate", &message).await;
                // Not run: the time is not noted as scheduled, and is tried again.
                status.last_schedule_time = cj
                    .status
                    .as_ref()
                    .and_then(|s| s.last_schedule_time.clone());
                status
                    .active
                    .iter_mut()
                    .for_each(|a| a.retain(|r| r.name.as_deref() != Some(name.as_str())));
                if status.active.as_ref().is_some_and(Vec::is_empty) {
                    status.active = None;
                }
                status_changed = cj.status.as_ref() != Some(&status);
                done.failure = Some(message);
            }
        }
    }
    if status_changed {
        let mut cj = cj.clone();
        cj.status = Some(status);
        if let Err(e) = replace_status(client, &cj).await {
            tracing::debug!(cronjob = %key, "writing status: {e}");
        }
    }
    done
}
