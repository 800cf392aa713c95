//! The CronJob decision, as kube-controller-manager's CronJob controller (v2) makes
//! it: the Jobs it owns sorted into active and finished, the most recent scheduled
//! time not yet run (in the CronJob's `timeZone`, from its last scheduled time or its
//! creation, no earlier than `startingDeadlineSeconds` ago), a Job for it unless one
//! runs and `concurrencyPolicy: Forbid` (`Replace` deletes the running ones first),
//! finished Jobs beyond the history limits deleted, and when to look again. Pure; the
//! actor carries it out.
//!
//! A Job is named `NAME-MINUTES` (the scheduled time in minutes since the epoch), so
//! each scheduled time makes at most one Job whatever happens between the writes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::common::{controller_of, controller_ref};

/// The annotation holding the time a Job was scheduled for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Missed times beyond which the CronJob warns (Kubernetes' 100).
const TOO_MANY_MISSED: usize = 100;

/// What to do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// The Job to create.
    pub create: Option<Job>,
    /// Jobs to delete: running ones a `Replace` ends, finished ones beyond the
    /// history limits.
    pub delete: Vec<String>,
    /// The status.
    pub status: CronJobStatus,
    /// Events to record: (type, reason, message).
    pub events: Vec<(&'static str, &'static str, String)>,
    /// When to decide again though nothing changes (the next scheduled time).
    pub requeue_after: Option<Duration>,
}

/// A parsed schedule.
#[derive(Debug)]
pub enum Schedule {
    /// Five cron fields or a descriptor (`@hourly`).
    Cron(Box<croner::Cron>),
    /// `@every DURATION`.
    Every(SignedDuration),
}

impl Schedule {
    /// Parses a schedule as the API server accepted it.
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        if let Some(d) = spec.trim().strip_prefix("@every ") {
            let d = rk8s_api::duration::parse_duration(d.trim()).map_err(|e| e.to_string())?;
            let d = SignedDuration::try_from(d).map_err(|e| e.to_string())?;
            if d < SignedDuration::from_secs(1) {
                return Err("@every needs at least one second".to_string());
            }
            return Ok(Schedule::Every(d));
        }
        // robfig/cron (Kubernetes' parser) takes a day of month or week on either
        // side as "or", as Vixie cron; so does croner by default.
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .build();
        parser
            .parse(spec)
            .map(|c| Schedule::Cron(Box::new(c)))
            .map_err(|e| e.to_string())
    }

    /// The first scheduled time strictly after `t`.
    pub fn next(&self, t: &Zoned) -> Option<Zoned> {
        match self {
            Schedule::Cron(c) => c.find_next_occurrence(t, false).ok(),
            Schedule::Every(d) => {
                // robfig's constant delay: whole seconds after `t`.
                let whole = t.timestamp().as_second();
                let from = Timestamp::from_second(whole).ok()?;
                from.checked_add(*d)
                    .ok()
                    .map(|ts| ts.to_zoned(t.time_zone().clone()))
            }
        }
    }

    /// The last scheduled time at or before `now` and after `earliest`, with how
    /// many were missed in between (counted up to one more than [`TOO_MANY_MISSED`]).
    fn most_recent(&self, earliest: &Zoned, now: &Zoned) -> (Option<Zoned>, usize) {
        let Some(first) = self.next(earliest).filter(|t| t <= now) else {
            return (None, 0);
        };
        let mut missed = 1;
        let mut t = first.clone();
        while missed <= TOO_MANY_MISSED {
            match self.next(&t).filter(|n| n <= now) {
                Some(n) => {
                    t = n;
                    missed += 1;
                }
                None => return (Some(t), missed),
            }
        }
        // Far behind: the last time before now, found from now backwards.
        let last = match self {
            Schedule::Cron(c) => c.find_previous_occurrence(now, true).ok(),
            Schedule::Every(d) => {
                let steps = now.duration_since(&first).as_secs() / d.as_secs().max(1);
                let at = first
                    .timestamp()
                    .checked_add(SignedDuration::from_secs(steps.saturating_mul(d.as_secs())));
                at.ok().map(|ts| ts.to_zoned(now.time_zone().clone()))
            }
        };
        (last.or(Some(t)), missed)
    }
}

/// The time zone a CronJob's schedule is read in: its `timeZone`, or this host's (as
/// kube-controller-manager reads it in its own).
pub fn time_zone(cj: &CronJob) -> Result<TimeZone, String> {
    match cj.spec.as_ref().and_then(|s| s.time_zone.as_deref()) {
        None => Ok(TimeZone::system()),
        Some("UTC") => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|_| format!("unknown time zone {name}")),
    }
}

/// The name of the Job for the time `t`.
pub fn job_name(cj: &CronJob, t: Timestamp) -> String {
    format!(
        "{}-{}",
        cj.metadata.name.as_deref().unwrap_or_default(),
        t.as_second().div_euclid(60)
    )
}

/// How a Job ended, if it has: `Some(true)` complete, `Some(false)` failed.
pub fn finished(job: &Job) -> Option<bool> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some(true),
            "Failed" => Some(false),
            _ => None,
        })
}

fn reference(meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    }
}

/// The Job of `cj` for the scheduled time `at`: its template's metadata and spec,
/// the scheduled time annotated, controlled by the CronJob.
pub fn job_for(cj: &CronJob, at: &Zoned) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP.to_string(),
        at.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, at.timestamp())),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref("batch/v1", "CronJob", &cj.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// When a Job started, for the history's order (its creation if it has no start).
fn started(job: &Job) -> Option<Timestamp> {
    job.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(job.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// Decides for `cj` and the Jobs it controls (`jobs` may hold others: they are left
/// out) at `now`.
pub fn reconcile(cj: &CronJob, jobs: &[Arc<Job>], now: Timestamp) -> Decision {
    let mut d = Decision::default();
    let uid = cj.metadata.uid.as_deref().unwrap_or_default();
    let spec = cj.spec.clone().unwrap_or_default();
    let old = cj.status.clone().unwrap_or_default();
    let mut owned: Vec<&Job> = jobs
        .iter()
        .map(|j| j.as_ref())
        .filter(|j| controller_of(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    owned.sort_by_key(|j| (started(j), j.metadata.name.clone()));
    let name = |j: &Job| j.metadata.name.clone().unwrap_or_default();

    // Active and finished Jobs; the status follows them.
    let was_active: BTreeSet<String> = old
        .active
        .iter()
        .flatten()
        .filter_map(|r| r.name.clone())
        .collect();
    let mut status = old.clone();
    let mut active = Vec::new();
    let (mut succeeded, mut failed) = (Vec::new(), Vec::new());
    for job in &owned {
        if job.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match finished(job) {
            None => {
                // A Job already listed keeps its reference as written.
                let listed = old
                    .active
                    .iter()
                    .flatten()
                    .find(|r| r.uid == job.metadata.uid)
                    .cloned();
                active.push(listed.unwrap_or_else(|| reference(&job.metadata)));
            }
            Some(ok) => {
                if was_active.contains(&name(job)) {
                    let how = if ok { "Complete" } else { "Failed" };
                    d.events.push((
                        "Normal",
                        "SawCompletedJob",
                        format!("Saw completed job: {}, condition: {how}", name(job)),
                    ));
                }
                if ok {
                    let done = job.status.as_ref().and_then(|s| s.completion_time.clone());
                    if done.as_ref().map(|t| t.0)
                        > status.last_successful_time.as_ref().map(|t| t.0)
                    {
                        status.last_successful_time = done;
                    }
                    succeeded.push(*job);
                } else {
                    failed.push(*job);
                }
            }
        }
    }
    for gone in was_active.iter().filter(|n| {
        !owned
            .iter()
            .any(|j| j.metadata.name.as_deref() == Some(n.as_str()))
    }) {
        d.events.push((
            "Warning",
            "MissingJob",
            format!("Active job went missing: {gone}"),
        ));
    }

    // History beyond the limits, oldest first.
    let limit =
        |l: Option<i32>, default: usize| l.map_or(default, |n| usize::try_from(n).unwrap_or(0));
    for (done, keep) in [
        (&succeeded, limit(spec.successful_jobs_history_limit, 3)),
        (&failed, limit(spec.failed_jobs_history_limit, 1)),
    ] {
        let excess = done.len().saturating_sub(keep);
        d.delete.extend(done.iter().take(excess).map(|j| name(j)));
    }

    let finish = |mut d: Decision, status: CronJobStatus, active: Vec<ObjectReference>| {
        d.status = CronJobStatus {
            active: (!active.is_empty()).then_some(active),
            ..status
        };
        d
    };
    if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
        return finish(d, status, active);
    }
    let tz = match time_zone(cj) {
        Ok(tz) => tz,
        Err(e) => {
            d.events.push(("Warning", "UnknownTimeZone", e));
            return finish(d, status, active);
        }
    };
    let schedule = match Schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            d.events.push((
                "Warning",
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            ));
            return finish(d, status, active);
        }
    };
    let now_z = now.to_zoned(tz.clone());
    let mut earliest = status
        .last_schedule_time
        .as_ref()
        .or(cj.metadata.creation_timestamp.as_ref())
        .map_or(now, |t| t.0);
    if let Some(deadline) = spec.starting_deadline_seconds {
        let window = now - SignedDuration::from_secs(deadline);
        earliest = earliest.max(window);
    }
    let wait_for_next = |d: &mut Decision| {
        d.requeue_after = schedule
            .next(&now_z)
            .map(|next| Duration::try_from(next.duration_since(&now_z)).unwrap_or_default());
    };
    let (scheduled, missed) = schedule.most_recent(&earliest.to_zoned(tz), &now_z);
    let Some(scheduled) = scheduled else {
        wait_for_next(&mut d);
        return finish(d, status, active);
    };
    if missed > TOO_MANY_MISSED {
        d.events.push((
            "Warning",
            "TooManyMissedTimes",
            format!(
                "too many missed start times: > {TOO_MANY_MISSED}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
            ),
        ));
    }
    wait_for_next(&mut d);
    let job = job_for(cj, &scheduled);
    let at = Time(scheduled.timestamp());
    let made = owned.iter().any(|j| j.metadata.name == job.metadata.name);
    if made || status.last_schedule_time.as_ref() == Some(&at) {
        // Run already (a kill between the Job and the status): noted, not again.
        status.last_schedule_time = Some(at);
        return finish(d, status, active);
    }
    match spec.concurrency_policy.as_deref().unwrap_or("Allow") {
        "Forbid" if !active.is_empty() => {
            d.events.push((
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return finish(d, status, active);
        }
        "Replace" => {
            d.delete.extend(active.drain(..).filter_map(|r| r.name));
        }
        _ => {}
    }
    active.push(reference(&job.metadata));
    status.last_schedule_time = Some(at);
    d.create = Some(job);
    finish(d, status, active)
}

#[cfg(test)]
#[path = "cronjob_tests.rs"]
mod tests;
