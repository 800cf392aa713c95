//! The Job decision: given a Job and its pods, how many pods to create or which to
//! delete, which finished pods to stop tracking, and the status to report. Pure; the
//! actor carries it out.
//!
//! Finished pods are counted the way Kubernetes counts them since 1.26, so that no
//! success or failure is lost or counted twice whatever dies in between: every pod
//! is created with the `batch.kubernetes.io/job-tracking` finalizer; a finished pod's
//! uid first goes into `status.uncountedTerminatedPods` (written before anything
//! else), then its finalizer is taken off, and only a pod whose finalizer is gone
//! moves from the uncounted list into `succeeded` or `failed`.

use std::borrow::Borrow;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rk8s_api::selector::Selector;

use crate::common::{is_active, is_ready};
use crate::job_index;
use crate::replicaset::{BURST, deletion_order};

/// The finalizer that keeps a Job's finished pod until it is counted.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// What to do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// Pods to create from the template.
    pub create: usize,
    /// For an Indexed Job, the completion indexes of the pods to create (as many as
    /// `create`).
    pub indexes: Vec<usize>,
    /// Active pods to delete (excess, suspended, or the Job has ended).
    pub delete: Vec<String>,
    /// Pods to take the tracking finalizer off, once the status is written.
    pub untrack: Vec<String>,
    /// The status to write (when it differs from the current one).
    pub status: JobStatus,
    /// Events to record: (type, reason, message).
    pub events: Vec<(&'static str, &'static str, String)>,
    /// When to decide again though nothing changes (the active deadline).
    pub requeue_after: Option<Duration>,
}

/// When a finished Job with `ttlSecondsAfterFinished` is to be deleted (Kubernetes'
/// TTL-after-finished controller): that long after its `Complete` or `Failed`
/// condition was set.
pub fn ttl_expiry(job: &Job) -> Option<jiff::Timestamp> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let ended = job
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.status == "True" && matches!(c.type_.as_str(), "Complete" | "Failed"))?;
    let at = ended
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| job.status.as_ref()?.completion_time.as_ref().map(|t| t.0))?;
    at.checked_add(jiff::SignedDuration::from_secs(i64::from(ttl.max(0))))
        .ok()
}

/// The Job's selector, if it has a valid one.
pub fn selector(job: &Job) -> Option<Selector> {
    rk8s_api::selector::label_selector(job.spec.as_ref()?.selector.as_ref()?).ok()
}

fn tracked(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// Whether a job's pod has finished, and how: `Some(true)` succeeded, `Some(false)`
/// failed. A pod being deleted before it succeeded counts as failed (and is replaced
/// at once: Kubernetes' `podReplacementPolicy: TerminatingOrFailed`).
fn outcome(pod: &Pod) -> Option<bool> {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => Some(true),
        Some("Failed") => Some(false),
        _ if pod.metadata.deletion_timestamp.is_some() => Some(false),
        _ => None,
    }
}

fn condition_is(status: &JobStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Sets a condition, keeping its transition time when its status does not change.
fn set_condition(
    status: &mut JobStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let value = if value { "True" } else { "False" };
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != value {
            c.status = value.to_string();
            c.last_transition_time = Some(Time(now));
        }
        c.last_probe_time = Some(Time(now));
        c.reason = Some(reason.to_string());
        c.message = Some(message.to_string());
        return;
    }
    conditions.push(JobCondition {
        type_: type_.to_string(),
        status: value.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
}

fn positive(n: usize) -> Option<i32> {
    (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX))
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Decides for `job` given its pods. `act` is false while earlier creations and
/// deletions have not been seen yet (expectations): then no pod is created or deleted
/// for the counts' sake.
pub fn reconcile<P: Borrow<Pod>>(
    job: &Job,
    pods: &[P],
    act: bool,
    now: jiff::Timestamp,
) -> Decision {
    let pods: Vec<&Pod> = pods.iter().map(Borrow::<Pod>::borrow).collect();
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut decision = Decision::default();
    let uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
    let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();

    // A Job being deleted lets its pods go.
    if job.metadata.deletion_timestamp.is_some() {
        decision.untrack = pods
            .iter()
            .copied()
            .filter(|p| tracked(p))
            .map(name)
            .collect();
        decision.status = old;
        return decision;
    }

    // Counting: uncounted pods whose finalizer is gone move into the counters…
    let mut uncounted = status.uncounted_terminated_pods.take().unwrap_or_default();
    let still_tracked = |u: &String| pods.iter().copied().any(|p| &uid(p) == u && tracked(p));
    let mut succeeded = usize::try_from(status.succeeded.unwrap_or(0)).unwrap_or(0);
    let mut failed = usize::try_from(status.failed.unwrap_or(0)).unwrap_or(0);
    for (list, counter) in [
        (&mut uncounted.succeeded, &mut succeeded),
        (&mut uncounted.failed, &mut failed),
    ] {
        let all = list.take().unwrap_or_default();
        let (keep, done): (Vec<String>, Vec<String>) = all.into_iter().partition(still_tracked);
        *counter += done.len();
        *list = (!keep.is_empty()).then_some(keep);
    }
    // …and finished pods still tracked go into the uncounted lists, their finalizer
    // taken off once that is written.
    for pod in pods.iter().copied().filter(|p| tracked(p)) {
        let Some(ok) = outcome(pod) else { continue };
        let list = if ok {
            &mut uncounted.succeeded
        } else {
            &mut uncounted.failed
        };
        let list = list.get_or_insert_with(Vec::new);
        if !list.contains(&uid(pod)) {
            list.push(uid(pod));
        }
        decision.untrack.push(name(pod));
    }
    let pending_succeeded = uncounted.succeeded.as_ref().map_or(0, Vec::len);
    let pending_failed = uncounted.failed.as_ref().map_or(0, Vec::len);
    let mut all_succeeded = succeeded + pending_succeeded;
    let all_failed = failed + pending_failed;
    // An Indexed Job counts the indexes that succeeded, each once.
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let indexes = usize::try_from(spec.completions.unwrap_or(0)).unwrap_or(0);
    let mut completed = std::collections::BTreeSet::new();
    if indexed {
        completed = job_index::parse(old.completed_indexes.as_deref(), indexes);
        for pod in pods.iter().copied().filter(|p| outcome(p) == Some(true)) {
            completed.extend(job_index::index_of(pod, indexes));
        }
        status.completed_indexes = Some(job_index::format(&completed)).filter(|s| !s.is_empty());
        all_succeeded = completed.len();
        succeeded = completed.len();
    }
    status.succeeded = positive(succeeded);
    status.failed = positive(failed);
    let settled = pending_succeeded == 0 && pending_failed == 0;
    status.uncounted_terminated_pods = Some(uncounted);

    let mut active: Vec<&Pod> = pods.iter().copied().filter(|p| is_active(p)).collect();
    let terminating = pods
        .iter()
        .copied()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && outcome(p) != Some(true))
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Failed")
            )
        })
        .count();
    let suspended = spec.suspend == Some(true);
    let ended = condition_is(&old, "Complete") || condition_is(&old, "Failed");

    // Suspension: no pods, and the clock stops.
    if !ended {
        if suspended {
            status.start_time = None;
            if !condition_is(&old, "Suspended") {
                set_condition(
                    &mut status,
                    "Suspended",
                    true,
                    "JobSuspended",
                    "Job suspended",
                    now,
                );
                decision
                    .events
                    .push(("Normal", "Suspended", "Job suspended".into()));
            }
        } else {
            if condition_is(&old, "Suspended") {
                set_condition(
                    &mut status,
                    "Suspended",
                    false,
                    "JobResumed",
                    "Job resumed",
                    now,
                );
                decision
                    .events
                    .push(("Normal", "Resumed", "Job resumed".into()));
            }
            if status.start_time.is_none() {
                status.start_time = Some(Time(now));
            }
        }
    }

    // Has it ended, or is it about to (once its pods are gone and counted)?
    let restarts: usize = if spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure")
    {
        active
            .iter()
            .flat_map(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
            })
            .map(|c| usize::try_from(c.restart_count).unwrap_or(0))
            .sum()
    } else {
        0
    };
    let backoff_limit = usize::try_from(spec.backoff_limit.unwrap_or(6)).unwrap_or(0);
    let mut failure: Option<(&'static str, &'static str)> = None;
    if all_failed + restarts > backoff_limit {
        failure = Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ));
    }
    if let (Some(deadline), Some(start)) = (spec.active_deadline_seconds, &status.start_time)
        && !suspended
    {
        let deadline = jiff::SignedDuration::from_secs(deadline);
        let elapsed = now.duration_since(start.0);
        if elapsed >= deadline {
            failure = failure.or(Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )));
        } else {
            decision.requeue_after = Duration::try_from(deadline - elapsed).ok();
        }
    }
    let completions = spec.completions.map(|c| usize::try_from(c).unwrap_or(0));
    let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
    let complete = match completions {
        Some(c) => all_succeeded >= c,
        None => all_succeeded > 0 && active.is_empty(),
    };
    if condition_is(&old, "FailureTarget") {
        failure = failure.or(Some(("BackoffLimitExceeded", "")));
    }

    let want = if ended || suspended {
        0
    } else if let Some((reason, message)) = failure {
        if !condition_is(&old, "FailureTarget") {
            set_condition(&mut status, "FailureTarget", true, reason, message, now);
            decision
                .events
                .push(("Warning", reason, message.to_string()));
        }
        0
    } else if complete {
        if !condition_is(&old, "SuccessCriteriaMet") {
            set_condition(
                &mut status,
                "SuccessCriteriaMet",
                true,
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            );
        }
        0
    } else {
        match completions {
            Some(c) => parallelism.min(c.saturating_sub(all_succeeded)),
            // A work queue: once one pod has succeeded, no new ones start.
            None if all_succeeded > 0 => active.len().min(parallelism),
            None => parallelism,
        }
    };

    // The terminal condition comes once every pod is gone and counted.
    if !ended && active.is_empty() && settled && terminating == 0 {
        if let Some(c) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "FailureTarget" && c.status == "True")
            .cloned()
        {
            let (reason, message) = (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            );
            set_condition(&mut status, "Failed", true, &reason, &message, now);
        } else if condition_is(&status, "SuccessCriteriaMet") {
            set_condition(
                &mut status,
                "Complete",
                true,
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            );
            status.completion_time = Some(Time(now));
            decision
                .events
                .push(("Normal", "Completed", "Job completed".into()));
        }
    }
    if condition_is(&status, "Complete") || condition_is(&status, "Failed") {
        decision.requeue_after = None;
    }

    // Pods to start or stop (an Indexed Job's by index: one pod per index that has
    // not succeeded).
    if indexed && want > 0 {
        let (bad, _) = job_index::plan(&active, &completed, indexes, 0);
        let valid = active.len() - bad.len();
        if act {
            decision.delete = bad;
        }
        if valid > want && act {
            let mut valid_pods: Vec<&Pod> = active
                .iter()
                .copied()
                .filter(|p| !decision.delete.contains(&name(p)))
                .collect();
            valid_pods.sort_by(|a, b| deletion_order(a, b));
            decision
                .delete
                .extend(valid_pods[..valid - want].iter().map(|p| name(p)));
        } else if valid < want && act {
            let room = (want - valid).min(BURST);
            decision.indexes = job_index::plan(&active, &completed, indexes, room).1;
            decision.create = decision.indexes.len();
        }
    } else if active.len() > want && (act || want == 0) {
        active.sort_by(|a, b| deletion_order(a, b));
        decision.delete = active[..active.len() - want]
            .iter()
            .map(|p| name(p))
            .collect();
    } else if active.len() < want && act {
        decision.create = (want - active.len()).min(BURST);
    }

    let remaining = active.len() - decision.delete.len().min(active.len());
    status.active = positive(remaining);
    status.ready = Some(count(active.iter().filter(|p| is_ready(p)).count()));
    status.terminating = Some(count(terminating));
    decision.status = status;
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(spec: serde_json::Value) -> Job {
        let mut spec = spec;
        spec["template"] = json!({"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}});
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "default", "uid": "job-uid"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn pod(n: usize, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("j-{n}"), "namespace": "default", "uid": format!("u{n}"),
                         "finalizers": [TRACKING_FINALIZER],
                         "creationTimestamp": format!("2026-01-01T00:00:{:02}Z", n % 60)},
            "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    /// Plays the decision against the Job and pods as the actor and a node would:
    /// status written, finalizers removed, pods created (Pending) and deleted.
    fn apply(job: &mut Job, pods: &mut Vec<Pod>, d: &Decision, next: &mut usize) {
        job.status = Some(d.status.clone());
        for name in &d.untrack {
            if let Some(p) = pods
                .iter_mut()
                .find(|p| p.metadata.name.as_ref() == Some(name))
            {
                p.metadata.finalizers = None;
            }
        }
        pods.retain(|p| !d.delete.contains(p.metadata.name.as_ref().unwrap()));
        for _ in 0..d.create {
            pods.push(pod(*next, "Running"));
            *next += 1;
        }
    }

    /// Decides and applies until the decision no longer changes anything (at most
    /// three passes: uncounted, untracked, counted); returns the last decision.
    fn settle(job: &mut Job, pods: &mut Vec<Pod>, next: &mut usize) -> Decision {
        let mut d = reconcile(job, pods, true, now());
        for _ in 0..3 {
            apply(job, pods, &d, next);
            d = reconcile(job, pods, true, now());
        }
        d
    }

    fn conditions(job: &Job) -> Vec<(String, String)> {
        job.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    }

    #[test]
    fn a_job_runs_parallel_pods_until_its_completions_succeed() {
        let mut j = job(json!({"completions": 3, "parallelism": 2, "backoffLimit": 6}));
        let mut pods = Vec::new();
        let mut next = 0;
        let d = reconcile(&j, &pods, true, now());
        assert_eq!(d.create, 2);
        assert!(d.status.start_time.is_some());
        apply(&mut j, &mut pods, &d, &mut next);
        // Both succeed: counted in three steps, never twice.
        for p in &mut pods {
            p.status.as_mut().unwrap().phase = Some("Succeeded".into());
        }
        let d = reconcile(&j, &pods, true, now());
        assert_eq!(d.untrack, ["j-0", "j-1"]);
        assert_eq!(
            d.status
                .uncounted_terminated_pods
                .as_ref()
                .unwrap()
                .succeeded,
            Some(vec!["u0".into(), "u1".into()])
        );
        assert_eq!(d.status.succeeded, None);
        assert_eq!(d.create, 1, "only the last completion is left to run");
        apply(&mut j, &mut pods, &d, &mut next);
        let d = reconcile(&j, &pods, true, now());
        assert_eq!(d.status.succeeded, Some(2));
        assert_eq!(d.create, 0);
        assert!(d.untrack.is_empty());
        apply(&mut j, &mut pods, &d, &mut next);
        pods[2].status.as_mut().unwrap().phase = Some("Succeeded".into());
        let d = settle(&mut j, &mut pods, &mut next);
        assert_eq!(d.status.succeeded, Some(3));
        assert!(d.status.completion_time.is_some());
        assert!(conditions(&j).contains(&("Complete".into(), "True".into())));
        assert_eq!(d.create, 0);
    }

    #[test]
    fn failures_beyond_the_backoff_limit_fail_the_job_and_stop_its_pods() {
        let mut j = job(json!({"completions": 5, "parallelism": 2, "backoffLimit": 1}));
        let mut pods = vec![pod(0, "Failed"), pod(1, "Running")];
        let mut next = 2;
        let d = reconcile(&j, &pods, true, now());
        assert_eq!(d.create, 1, "one failure is within the limit: replaced");
        apply(&mut j, &mut pods, &d, &mut next);
        pods[2].status.as_mut().unwrap().phase = Some("Failed".into());
        let d = reconcile(&j, &pods, true, now());
        assert_eq!(d.create, 0);
        assert_eq!(d.delete, ["j-1"], "the running pod is stopped");
        assert_eq!(
            d.events[0],
            (
                "Warning",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".to_string()
            )
        );
        assert!(
            !conditions(&Job {
                status: Some(d.status.clone()),
                ..j.clone()
            })
            .contains(&("Failed".into(), "True".into()))
        );
        apply(&mut j, &mut pods, &d, &mut next);
        let d = settle(&mut j, &mut pods, &mut next);
        assert_eq!(d.status.failed, Some(2));
        let c = conditions(&j);
        assert!(c.contains(&("FailureTarget".into(), "True".into())));
        assert!(c.contains(&("Failed".into(), "True".into())), "{c:?}");
        assert_eq!(d.create, 0);
        assert!(d.delete.is_empty());
    }

    #[test]
    fn the_active_deadline_ends_the_job() {
        let mut j = job(json!({"completions": 1, "activeDeadlineSeconds": 30}));
        let start = now() - jiff::SignedDuration::from_secs(10);
        j.status = Some(JobStatus {
            start_time: Some(Time(start)),
            ..Default::default()
        });
        let pods = vec![pod(0, "Running")];
        let d = reconcile(&j, &pods, true, now());
        assert_eq!(d.requeue_after, Some(Duration::from_secs(20)));
        assert!(d.delete.is_empty());
        let later = now() + jiff::SignedDuration::from_secs(25);
        let d = reconcile(&j, &pods, true, later);
        assert_eq!(d.delete, ["j-0"]);
        assert_eq!(d.events[0].1, "DeadlineExceeded");
    }

    #[test]
    fn suspension_stops_pods_and_the_clock() {
        let mut j = job(json!({"completions": 2, "parallelism": 2, "suspend": true}));
        let pods = vec![pod(0, "Running")];
        let d = reconcile(&j, &pods, true, now());
        assert_eq!(d.delete, ["j-0"]);
        assert_eq!(d.create, 0);
        assert!(d.status.start_time.is_none());
        j.status = Some(d.status);
        j.spec.as_mut().unwrap().suspend = Some(false);
        let d = reconcile::<Pod>(&j, &[], true, now());
        assert_eq!(d.create, 2);
        assert_eq!(d.events[0].1, "Resumed");
    }

    #[test]
    fn a_work_queue_finishes_when_one_succeeded_and_the_rest_are_done() {
        let mut j = job(json!({"parallelism": 3}));
        let mut pods = vec![pod(0, "Succeeded"), pod(1, "Running"), pod(2, "Running")];
        let mut next = 3;
        let d = reconcile(&j, &pods, true, now());
        assert_eq!(
            (d.create, d.delete.len()),
            (0, 0),
            "no new pods after a success"
        );
        apply(&mut j, &mut pods, &d, &mut next);
        pods[1].status.as_mut().unwrap().phase = Some("Succeeded".into());
        pods[2].status.as_mut().unwrap().phase = Some("Succeeded".into());
        let d = settle(&mut j, &mut pods, &mut next);
        assert_eq!(d.status.succeeded, Some(3));
        assert!(conditions(&j).contains(&("Complete".into(), "True".into())));
    }

    #[test]
    fn unseen_creations_hold_new_ones_and_a_deleted_job_lets_its_pods_go() {
        let j = job(json!({"completions": 4, "parallelism": 4}));
        let d = reconcile(&j, &[pod(0, "Running")], false, now());
        assert_eq!(d.create, 0);
        let mut gone = j.clone();
        gone.metadata.deletion_timestamp = Some(Time(now()));
        let d = reconcile(
            &gone,
            &[pod(0, "Running"), pod(1, "Succeeded")],
            true,
            now(),
        );
        assert_eq!(d.untrack, ["j-0", "j-1"]);
        assert_eq!((d.create, d.delete.len()), (0, 0));
    }

    #[test]
    fn a_pod_deleted_before_it_finished_counts_as_failed_and_is_replaced() {
        let mut j = job(json!({"completions": 1, "backoffLimit": 3}));
        let mut p = pod(0, "Running");
        p.metadata.deletion_timestamp = Some(Time(now()));
        let d = reconcile(&j, &[p.clone()], true, now());
        assert_eq!(d.create, 1);
        assert_eq!(d.untrack, ["j-0"]);
        j.status = Some(d.status);
        p.metadata.finalizers = None;
        let d = reconcile(&j, &[p], true, now());
        assert_eq!(d.status.failed, Some(1));
    }

    #[test]
    fn a_finished_job_expires_its_ttl_after_its_end() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "j"},
            "spec": {"template": {}, "ttlSecondsAfterFinished": 30},
            "status": {"conditions": [
                {"type": "Complete", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .unwrap();
        assert_eq!(
            ttl_expiry(&job),
            Some("2026-01-01T00:00:30Z".parse().unwrap())
        );
        let mut running = job.clone();
        running.status = None;
        assert_eq!(ttl_expiry(&running), None);
        let mut no_ttl = job;
        no_ttl.spec.as_mut().unwrap().ttl_seconds_after_finished = None;
        assert_eq!(ttl_expiry(&no_ttl), None);
    }

    /// Pod `n` of index `index` of an Indexed Job.
    fn indexed_pod(n: usize, index: usize, phase: &str) -> Pod {
        let mut p = pod(n, phase);
        p.metadata.annotations =
            Some([(job_index::INDEX_KEY.to_string(), index.to_string())].into());
        p
    }

    #[test]
    fn an_indexed_job_runs_each_index_until_it_succeeds() {
        let mut j = job(json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}));
        let d = reconcile::<Pod>(&j, &[], true, now());
        assert_eq!((d.create, d.indexes.clone()), (2, vec![0, 1]));
        // Index 0 succeeded, 1 failed: 1 and 2 are run (the lowest first).
        let pods = [indexed_pod(0, 0, "Succeeded"), indexed_pod(1, 1, "Failed")];
        let d = reconcile(&j, &pods, true, now());
        assert_eq!(d.indexes, [1, 2]);
        assert_eq!(d.status.completed_indexes.as_deref(), Some("0"));
        assert_eq!((d.status.succeeded, d.status.failed), (Some(1), None));
        j.status = Some(d.status);
        // A second pod of index 2 goes; index 0's pods are never run again.
        let pods = [
            indexed_pod(2, 1, "Running"),
            indexed_pod(3, 2, "Running"),
            indexed_pod(4, 2, "Pending"),
        ];
        let d = reconcile(&j, &pods, true, now());
        assert_eq!((d.delete.clone(), d.create), (vec!["j-4".to_string()], 0));
        // Both succeed (index 2 twice, counted once): complete with every index.
        let pods = [
            indexed_pod(2, 1, "Succeeded"),
            indexed_pod(3, 2, "Succeeded"),
            indexed_pod(5, 2, "Succeeded"),
        ];
        let d = reconcile(&j, &pods, true, now());
        assert_eq!(d.status.completed_indexes.as_deref(), Some("0-2"));
        assert_eq!(d.status.succeeded, Some(3));
        assert!(
            conditions(&Job {
                status: Some(d.status.clone()),
                ..j.clone()
            })
            .contains(&("SuccessCriteriaMet".to_string(), "True".to_string()))
        );
        assert_eq!(d.create, 0);
    }
}
