//! Workloads: replication controllers, deployments, replica sets, daemon sets,
//! stateful sets and their controller revisions, jobs and cron jobs.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ReplicationController;
use serde_json::Value;

use super::format::{
    age, bool_text, containers_and_images, format_label_selector, format_labels, human_duration,
    selector_text, since,
};
use super::{AGE, Column, NAME, col, wide};

const CONTAINERS: Column = wide("Containers", "string");
const IMAGES: Column = wide("Images", "string");
const SELECTOR: Column = wide("Selector", "string");

/// `kubectl get replicationcontrollers`.
pub(super) const REPLICATION_CONTROLLER: &[Column] = &[
    NAME,
    col("Desired", "integer"),
    col("Current", "integer"),
    col("Ready", "integer"),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
/// `kubectl get replicasets`.
pub(super) const REPLICA_SET: &[Column] = REPLICATION_CONTROLLER;
/// `kubectl get deployments` (kube declares the counts as strings).
pub(super) const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "string"),
    col("Up-to-date", "string"),
    col("Available", "string"),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
/// `kubectl get daemonsets`.
pub(super) const DAEMON_SET: &[Column] = &[
    NAME,
    col("Desired", "integer"),
    col("Current", "integer"),
    col("Ready", "integer"),
    col("Up-to-date", "integer"),
    col("Available", "integer"),
    col("Node Selector", "string"),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
/// `kubectl get statefulsets`.
pub(super) const STATEFUL_SET: &[Column] = &[NAME, col("Ready", "string"), AGE, CONTAINERS, IMAGES];
/// `kubectl get controllerrevisions`.
pub(super) const CONTROLLER_REVISION: &[Column] = &[
    NAME,
    col("Controller", "string"),
    col("Revision", "string"),
    AGE,
];
/// `kubectl get jobs`.
pub(super) const JOB: &[Column] = &[
    NAME,
    col("Status", "string"),
    col("Completions", "string"),
    col("Duration", "string"),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
/// `kubectl get cronjobs`.
pub(super) const CRON_JOB: &[Column] = &[
    NAME,
    col("Schedule", "string"),
    col("Timezone", "string"),
    col("Suspend", "boolean"),
    col("Active", "integer"),
    col("Last Schedule", "string"),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Value {
    meta.name.clone().unwrap_or_default().into()
}

pub(super) fn replication_controller(rc: &ReplicationController, now: Timestamp) -> Vec<Value> {
    let spec = rc.spec.clone().unwrap_or_default();
    let status = rc.status.clone().unwrap_or_default();
    let (names, images) =
        containers_and_images(spec.template.as_ref().and_then(|t| t.spec.as_ref()));
    vec![
        name(&rc.metadata),
        // One replica is the default (kube's defaulting), here and below.
        spec.replicas.unwrap_or(1).into(),
        status.replicas.into(),
        status.ready_replicas.unwrap_or(0).into(),
        age(rc.metadata.creation_timestamp.as_ref(), now).into(),
        names.into(),
        images.into(),
        format_labels(spec.selector.as_ref()).into(),
    ]
}

pub(super) fn replica_set(rs: &ReplicaSet, now: Timestamp) -> Vec<Value> {
    let spec = rs.spec.clone().unwrap_or_default();
    let status = rs.status.clone().unwrap_or_default();
    let (names, images) =
        containers_and_images(spec.template.as_ref().and_then(|t| t.spec.as_ref()));
    vec![
        name(&rs.metadata),
        spec.replicas.unwrap_or(1).into(),
        status.replicas.into(),
        status.ready_replicas.unwrap_or(0).into(),
        age(rs.metadata.creation_timestamp.as_ref(), now).into(),
        names.into(),
        images.into(),
        format_label_selector(Some(&spec.selector)).into(),
    ]
}

pub(super) fn deployment(d: &Deployment, now: Timestamp) -> Vec<Value> {
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    let (names, images) = containers_and_images(spec.template.spec.as_ref());
    // kube's deployment printer writes the selector without `<none>`.
    let selector = selector_text(&spec.selector).unwrap_or_else(|| "<invalid>".into());
    vec![
        name(&d.metadata),
        format!(
            "{}/{}",
            status.ready_replicas.unwrap_or(0),
            spec.replicas.unwrap_or(1)
        )
        .into(),
        status.updated_replicas.unwrap_or(0).into(),
        status.available_replicas.unwrap_or(0).into(),
        age(d.metadata.creation_timestamp.as_ref(), now).into(),
        names.into(),
        images.into(),
        selector.into(),
    ]
}

pub(super) fn daemon_set(ds: &DaemonSet, now: Timestamp) -> Vec<Value> {
    let spec = ds.spec.clone().unwrap_or_default();
    let status = ds.status.clone().unwrap_or_default();
    let pod_spec = spec.template.spec.as_ref();
    let (names, images) = containers_and_images(pod_spec);
    vec![
        name(&ds.metadata),
        status.desired_number_scheduled.into(),
        status.current_number_scheduled.into(),
        status.number_ready.into(),
        status.updated_number_scheduled.unwrap_or(0).into(),
        status.number_available.unwrap_or(0).into(),
        format_labels(pod_spec.and_then(|s| s.node_selector.as_ref())).into(),
        age(ds.metadata.creation_timestamp.as_ref(), now).into(),
        names.into(),
        images.into(),
        format_label_selector(Some(&spec.selector)).into(),
    ]
}

pub(super) fn stateful_set(ss: &StatefulSet, now: Timestamp) -> Vec<Value> {
    let spec = ss.spec.clone().unwrap_or_default();
    let status = ss.status.clone().unwrap_or_default();
    let (names, images) = containers_and_images(spec.template.spec.as_ref());
    vec![
        name(&ss.metadata),
        format!(
            "{}/{}",
            status.ready_replicas.unwrap_or(0),
            spec.replicas.unwrap_or(1)
        )
        .into(),
        age(ss.metadata.creation_timestamp.as_ref(), now).into(),
        names.into(),
        images.into(),
    ]
}

/// The CONTROLLER of a revision: `kind.group/name` of its controlling owner,
/// lowercased (`daemonset.apps/fluentd`), `<none>` without one.
pub(super) fn controller_revision(cr: &ControllerRevision, now: Timestamp) -> Vec<Value> {
    let controller = cr
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map_or_else(
            || "<none>".to_string(),
            |o| {
                let group = o.api_version.rsplit_once('/').map_or("", |(g, _)| g);
                match (o.kind.as_str(), group) {
                    ("", "") => o.name.clone(),
                    (kind, "") => format!("{}/{}", kind.to_lowercase(), o.name),
                    (kind, group) => format!("{}.{group}/{}", kind, o.name).to_lowercase(),
                }
            },
        );
    vec![
        name(&cr.metadata),
        controller.into(),
        cr.revision.into(),
        age(cr.metadata.creation_timestamp.as_ref(), now).into(),
    ]
}

/// A job's row: `Complete`, `Failed`, `Terminating`, `Suspended`, `FailureTarget` or
/// `Running`; completions as `2/3` (or `0/1 of 4` for parallel work queues); how long
/// it ran.
pub(super) fn job(j: &Job, now: Timestamp) -> Vec<Value> {
    let spec = j.spec.clone().unwrap_or_default();
    let status = j.status.clone().unwrap_or_default();
    let succeeded = status.succeeded.unwrap_or(0);
    let completions = match (spec.completions, spec.parallelism.unwrap_or(0)) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
        (None, _) => format!("{succeeded}/1"),
    };
    let duration = match (&status.start_time, &status.completion_time) {
        (None, _) => String::new(),
        (Some(start), None) => since(start.0, now),
        (Some(start), Some(end)) => human_duration(end.0.as_second() - start.0.as_second()),
    };
    let has = |ty: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == ty)
            .is_some_and(|c| c.status == "True")
    };
    let state = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if j.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers_and_images(spec.template.spec.as_ref());
    vec![
        name(&j.metadata),
        state.into(),
        completions.into(),
        duration.into(),
        age(j.metadata.creation_timestamp.as_ref(), now).into(),
        names.into(),
        images.into(),
        format_label_selector(spec.selector.as_ref()).into(),
    ]
}

pub(super) fn cron_job(cj: &CronJob, now: Timestamp) -> Vec<Value> {
    let spec = cj.spec.clone().unwrap_or_default();
    let status = cj.status.clone().unwrap_or_default();
    let job_spec = spec.job_template.spec.clone().unwrap_or_default();
    let (names, images) = containers_and_images(job_spec.template.spec.as_ref());
    let last = status
        .last_schedule_time
        .as_ref()
        .map_or_else(|| "<none>".to_string(), |t| since(t.0, now));
    vec![
        name(&cj.metadata),
        spec.schedule.into(),
        spec.time_zone.unwrap_or_else(|| "<none>".into()).into(),
        bool_text(spec.suspend).into(),
        status.active.as_ref().map_or(0, |a| a.len()).into(),
        last.into(),
        age(cj.metadata.creation_timestamp.as_ref(), now).into(),
        names.into(),
        images.into(),
        format_label_selector(job_spec.selector.as_ref()).into(),
    ]
}
