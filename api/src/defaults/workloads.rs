//! Workload defaults (apps/v1, batch/v1 and the core/v1 ReplicationController and
//! PodTemplate): replica counts, update strategies, history limits, and the pod
//! template's own defaults.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy, ReplicaSet,
    RollingUpdateDaemonSet, RollingUpdateDeployment, RollingUpdateStatefulSetStrategy, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{pod_spec, set, set_str, storage};

/// Kubernetes' default `revisionHistoryLimit` of Deployments, StatefulSets and
/// DaemonSets.
const REVISION_HISTORY_LIMIT: i32 = 10;

/// Template defaults, plus the workload's labels taken from the template when it has
/// none (apps/v1).
fn template(meta: &mut ObjectMeta, template: &mut PodTemplateSpec) {
    if let Some(spec) = &mut template.spec {
        pod_spec(spec);
    }
    if meta.labels.as_ref().is_none_or(|l| l.is_empty()) {
        meta.labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
    }
}

/// The pod spec defaults of a Job's template, but for `restartPolicy`: validation
/// requires the user to choose OnFailure or Never, so it is left alone here rather than
/// defaulted to Always and refused.
fn job_pod_spec(spec: &mut PodSpec) {
    let restart = spec.restart_policy.take();
    pod_spec(spec);
    spec.restart_policy = restart;
}

pub(super) fn replica_set(rs: &mut ReplicaSet) {
    if let Some(spec) = &mut rs.spec {
        set(&mut spec.replicas, 1);
        if let Some(t) = &mut spec.template {
            template(&mut rs.metadata, t);
        }
    }
}

pub(super) fn deployment(d: &mut Deployment) {
    let Some(spec) = &mut d.spec else { return };
    set(&mut spec.replicas, 1);
    set(&mut spec.revision_history_limit, REVISION_HISTORY_LIMIT);
    set(&mut spec.progress_deadline_seconds, 600);
    let strategy = spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    set_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDeployment::default);
        set(&mut ru.max_unavailable, IntOrString::String("25%".into()));
        set(&mut ru.max_surge, IntOrString::String("25%".into()));
    }
    template(&mut d.metadata, &mut spec.template);
}

pub(super) fn job(j: &mut Job) {
    let Some(spec) = &mut j.spec else { return };
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    set(&mut spec.parallelism, 1);
    set(&mut spec.backoff_limit, 6);
    set_str(&mut spec.completion_mode, "NonIndexed");
    set(&mut spec.suspend, false);
    if let Some(ps) = &mut spec.template.spec {
        job_pod_spec(ps);
    }
    if j.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
        j.metadata.labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone());
    }
}

/// apps/v1 `SetDefaults_StatefulSet`: one replica, ordered pod management, rolling
/// updates from partition 0, claims retained, and the claim templates defaulted as
/// claims are.
pub(super) fn stateful_set(s: &mut StatefulSet) {
    let Some(spec) = &mut s.spec else { return };
    set(&mut spec.replicas, 1);
    set_str(&mut spec.pod_management_policy, "OrderedReady");
    set(&mut spec.revision_history_limit, REVISION_HISTORY_LIMIT);
    let strategy = spec
        .update_strategy
        .get_or_insert_with(StatefulSetUpdateStrategy::default);
    set_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
        set(&mut ru.partition, 0);
    }
    let retention = spec
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
    set_str(&mut retention.when_deleted, "Retain");
    set_str(&mut retention.when_scaled, "Retain");
    for claim in spec.volume_claim_templates.iter_mut().flatten() {
        storage::persistent_volume_claim(claim);
    }
    if let Some(ps) = &mut spec.template.spec {
        pod_spec(ps);
    }
}

/// apps/v1 `SetDefaults_DaemonSet`: rolling updates of one node at a time, no surge.
pub(super) fn daemon_set(d: &mut DaemonSet) {
    let Some(spec) = &mut d.spec else { return };
    set(&mut spec.revision_history_limit, REVISION_HISTORY_LIMIT);
    let strategy = spec
        .update_strategy
        .get_or_insert_with(DaemonSetUpdateStrategy::default);
    set_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDaemonSet::default);
        set(&mut ru.max_unavailable, IntOrString::Int(1));
        set(&mut ru.max_surge, IntOrString::Int(0));
    }
    if let Some(ps) = &mut spec.template.spec {
        pod_spec(ps);
    }
}

/// batch/v1 `SetDefaults_CronJob`. The job template gets the pod spec defaults only:
/// Kubernetes defaults a Job's own fields (completions, backoffLimit…) when the
/// CronJob controller creates the Job, not in the template.
pub(super) fn cron_job(c: &mut CronJob) {
    let Some(spec) = &mut c.spec else { return };
    set_str(&mut spec.concurrency_policy, "Allow");
    set(&mut spec.suspend, false);
    set(&mut spec.successful_jobs_history_limit, 3);
    set(&mut spec.failed_jobs_history_limit, 1);
    if let Some(ps) = spec
        .job_template
        .spec
        .as_mut()
        .and_then(|j| j.template.spec.as_mut())
    {
        job_pod_spec(ps);
    }
}

/// core/v1 `SetDefaults_ReplicationController`: one replica, and the selector and the
/// labels taken from the template's labels when they are empty.
pub(super) fn replication_controller(rc: &mut ReplicationController) {
    let Some(spec) = &mut rc.spec else { return };
    set(&mut spec.replicas, 1);
    let Some(t) = &mut spec.template else { return };
    if let Some(ps) = &mut t.spec {
        pod_spec(ps);
    }
    let labels = t.metadata.as_ref().and_then(|m| m.labels.clone());
    if labels.as_ref().is_some_and(|l| !l.is_empty()) {
        if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
            spec.selector.clone_from(&labels);
        }
        if rc.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            rc.metadata.labels = labels;
        }
    }
}
