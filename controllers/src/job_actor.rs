//! Jobs as actors. The [`JobSupervisor`] (an
//! [`OwnerSupervisor`](crate::pod_owner::OwnerSupervisor)) watches Jobs and pods and
//! runs one supervised [`JobActor`] per Job; it also takes the tracking finalizer off
//! pods whose Job is gone (deleted in the background, or orphaned).
//!
//! A JobActor decides with [`crate::job::reconcile`] and carries the decision out in
//! the order that keeps counts exact across crashes: the status (with the newly
//! finished pods uncounted) first, then the finalizers of those pods, then pod
//! deletions and creations. It wakes itself for the active deadline.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::chaos::{Actors, Tracker};
use crate::common::{Expectations, Stop, controller_ref, replace_status};
use crate::job::{Decision, TRACKING_FINALIZER, reconcile};
use crate::pod_owner::{
    OwnerSupervisor, PodOwner, Sync, create_pods, delete_pods, pod_from_template,
};

impl PodOwner for Job {
    const KIND: &'static str = "Job";

    fn selector(&self) -> Option<rk8s_api::selector::Selector> {
        crate::job::selector(self)
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
pub type JobSupervisor = OwnerSupervisor<Job, JobActor>;

impl JobSupervisor {
    /// The Job controller, talking to the API through `client`.
    pub fn jobs(client: kube::Client, registry: Actors, tracker: Tracker) -> Self {
        OwnerSupervisor::new(client, JobActor::new, registry, tracker)
    }
}

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
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), "untracking: {e}"),
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Done {
    failure: Option<String>,
}

/// One Job's actor.
pub struct JobActor {
    client: kube::Client,
    tracker: Tracker,
    latest: Option<Sync<Job>>,
    busy: bool,
    stopping: bool,
    expected: Expectations,
    wake: Option<SpawnHandle>,
    /// Whether `latest` came after the last decision (a decision made twice on one
    /// view would record its events twice).
    fresh: bool,
}

impl JobActor {
    fn new(client: kube::Client, tracker: Tracker) -> Self {
        JobActor {
            client,
            tracker,
            latest: None,
            busy: false,
            stopping: false,
            expected: Expectations::default(),
            wake: None,
            fresh: false,
        }
    }

    fn step(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.stopping {
            return;
        }
        let Some(sync) = self.latest.as_ref() else {
            return;
        };
        self.fresh = false;
        let decision = reconcile(
            &sync.owner,
            &sync.pods,
            self.expected.satisfied(),
            jiff::Timestamp::now(),
        );
        if let Some(handle) = self.wake.take() {
            ctx.cancel_future(handle);
        }
        if let Some(after) = decision.requeue_after {
            let after = after + Duration::from_millis(100);
            self.wake = Some(ctx.run_later(after, |act, ctx| act.step(ctx)));
        }
        let status_changed = sync.owner.status.as_ref() != Some(&decision.status);
        if decision.create == 0
            && decision.delete.is_empty()
            && decision.untrack.is_empty()
            && decision.events.is_empty()
            && !status_changed
        {
            return;
        }
        if decision.create > 0 || !decision.delete.is_empty() {
            self.expected
                .expect(decision.create, decision.delete.iter().cloned());
        }
        self.busy = true;
        let job = sync.owner.clone();
        let pods = sync.pods_by_name();
        let client = self.client.clone();
        let fut = async move {
            let started = std::time::Instant::now();
            let failure = carry_out(&client, &job, &pods, decision, status_changed).await;
            crate::metrics::reconciled("Job", started.elapsed(), failure.is_some());
            Done { failure }
        };
        ctx.spawn(fut.into_actor(self).map(|done, _act, ctx| ctx.notify(done)));
    }
}

fn job_ref(job: &Job) -> crate::events::Involved {
    crate::events::Involved::of("batch/v1", "Job", &job.metadata)
}

/// Carries out a decision; returns the message of a failed creation, if any.
async fn carry_out(
    client: &kube::Client,
    job: &Job,
    pods: &HashMap<String, Pod>,
    decision: Decision,
    status_changed: bool,
) -> Option<String> {
    let ns = job.metadata.namespace.as_deref().unwrap_or("default");
    // Finished pods are recorded as uncounted before their finalizers go.
    if status_changed {
        let mut job = job.clone();
        job.status = Some(decision.status.clone());
        if let Err(e) = replace_status(client, &job).await {
            tracing::debug!(job = %format!("{ns}/{}", job.metadata.name.as_deref().unwrap_or_default()), "writing status: {e}");
            return None;
        }
    }
    for name in &decision.untrack {
        if let Some(pod) = pods.get(name) {
            untrack(client, pod).await;
        }
    }
    for (type_, reason, message) in &decision.events {
        crate::events::record(client, job_ref(job), type_, reason, message).await;
    }
    delete_pods(client, ns, pods, &decision.delete, job_ref(job)).await;
    if decision.create == 0 {
        return None;
    }
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let name = job.metadata.name.as_deref().unwrap_or("job");
    let owner = controller_ref("batch/v1", "Job", &job.metadata);
    let mut pod = pod_from_template(template, ns, name, owner);
    pod.metadata.finalizers = Some(vec![TRACKING_FINALIZER.to_string()]);
    create_pods(client, &pod, decision.create, job_ref(job)).await
}

impl Actor for JobActor {
    type Context = Context<Self>;
}

impl Supervised for JobActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // The supervisor's next sync brings the state; expectations start afresh.
        self.tracker.restarted();
        self.busy = false;
        self.wake = None;
        self.expected.clear();
    }
}

impl Handler<Sync<Job>> for JobActor {
    type Result = ();

    fn handle(&mut self, msg: Sync<Job>, ctx: &mut Self::Context) {
        msg.observe(&mut self.expected, &self.tracker);
        self.latest = Some(msg);
        self.fresh = true;
        self.step(ctx);
    }
}

impl Handler<Done> for JobActor {
    type Result = ();

    fn handle(&mut self, msg: Done, ctx: &mut Self::Context) {
        self.busy = false;
        if msg.failure.is_some() {
            // Creations that failed will never be seen.
            self.expected.clear();
        }
        if self.fresh {
            self.step(ctx);
        }
    }
}

impl Handler<Stop> for JobActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        self.stopping = true;
        ctx.stop();
    }
}

crate::common::crash_on_request!(JobActor);
