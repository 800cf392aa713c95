//! Workloads: ReplicaSets, Deployments, StatefulSets, DaemonSets, Jobs, CronJobs,
//! ReplicationControllers and PodTemplates — replicas, selectors, update strategies,
//! schedules and their pod templates.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaimVolumeSource, PodTemplate, PodTemplateSpec, ReplicationController, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_core::SelectorExt;

use super::{Errors, cron, meta, pod, storage};
use crate::names;
use crate::path::FieldPath;
use crate::selector;

/// Checks a selector and that the template's labels match it.
fn selector_and_template(
    errs: &mut Errors,
    spec: &FieldPath,
    selector: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
    restart_policies: &[&str],
) {
    let labels = template
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    match selector {
        None => errs.required(&spec.key("selector")),
        Some(sel) => match selector::label_selector(sel) {
            Err(problems) => {
                for (field, problem) in problems {
                    errs.message(
                        &spec.key("selector").join(&FieldPath::parse(&field)),
                        problem,
                    );
                }
            }
            Ok(s) if s.selects_all() => errs.invalid(
                &spec.key("selector"),
                "{}",
                "empty selector is invalid for this kind: it would select every pod",
            ),
            Ok(s) if template.is_some() && !s.matches(&labels) => errs.invalid(
                &spec.key("template").key("metadata").key("labels"),
                kube_core::Selector::from_iter(labels.clone()),
                format!("`selector` does not match template `labels` (selector: {s})"),
            ),
            Ok(_) => {}
        },
    }
    let tpath = spec.key("template");
    match template {
        None => errs.required(&tpath),
        Some(t) => {
            meta::labels(
                errs,
                &tpath.key("metadata").key("labels"),
                t.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            );
            match &t.spec {
                None => errs.required(&tpath.key("spec")),
                Some(ps) => {
                    pod::template_spec(errs, &tpath.key("spec"), ps);
                    let policy = ps.restart_policy.as_deref().unwrap_or("Always");
                    errs.one_of(
                        &tpath.key("spec").key("restartPolicy"),
                        policy,
                        restart_policies,
                    );
                }
            }
        }
    }
}

pub(super) fn replica_set(errs: &mut Errors, rs: &ReplicaSet) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &rs.spec else {
        return errs.required(&path);
    };
    errs.at_least(&path.key("replicas"), spec.replicas, 0);
    errs.at_least(&path.key("minReadySeconds"), spec.min_ready_seconds, 0);
    selector_and_template(
        errs,
        &path,
        Some(&spec.selector),
        spec.template.as_ref(),
        &["Always"],
    );
}

/// `maxSurge` / `maxUnavailable`: a count ≥ 0 or a percentage.
pub(super) fn int_or_percent(
    errs: &mut Errors,
    path: &FieldPath,
    v: &IntOrString,
    max_percent: Option<i64>,
) -> bool {
    match v {
        IntOrString::Int(n) => {
            errs.at_least(path, Some(i64::from(*n)), 0);
            *n == 0
        }
        IntOrString::String(s) => match s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
            None => {
                errs.invalid(path, s, "must be an integer or percentage (e.g. '5%')");
                false
            }
            Some(n) => {
                errs.at_least(path, Some(n), 0);
                if let Some(max) = max_percent
                    && n > max
                {
                    errs.invalid(path, s, format!("must not be greater than {max}%"));
                }
                n == 0
            }
        },
    }
}

pub(super) fn deployment(errs: &mut Errors, d: &Deployment) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &d.spec else {
        return errs.required(&path);
    };
    errs.at_least(&path.key("replicas"), spec.replicas, 0);
    errs.at_least(&path.key("minReadySeconds"), spec.min_ready_seconds, 0);
    errs.at_least(
        &path.key("revisionHistoryLimit"),
        spec.revision_history_limit,
        0,
    );
    if let Some(deadline) = spec.progress_deadline_seconds {
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if deadline <= min_ready {
            errs.invalid(
                &path.key("progressDeadlineSeconds"),
                deadline,
                "must be greater than minReadySeconds",
            );
        }
    }
    if let Some(strategy) = &spec.strategy {
        let p = path.key("strategy");
        let kind = strategy.type_.as_deref().unwrap_or("RollingUpdate");
        errs.one_of(&p.key("type"), kind, &["Recreate", "RollingUpdate"]);
        match (&strategy.rolling_update, kind) {
            (Some(_), "Recreate") => errs.forbidden(
                &p.key("rollingUpdate"),
                "may not be specified when strategy `type` is 'Recreate'",
            ),
            (Some(ru), _) => {
                let rp = p.key("rollingUpdate");
                let surge_zero = ru
                    .max_surge
                    .as_ref()
                    .is_some_and(|v| int_or_percent(errs, &rp.key("maxSurge"), v, None));
                let unavailable_zero = ru
                    .max_unavailable
                    .as_ref()
                    .is_some_and(|v| int_or_percent(errs, &rp.key("maxUnavailable"), v, Some(100)));
                if surge_zero && unavailable_zero {
                    errs.invalid(
                        &rp.key("maxUnavailable"),
                        0,
                        "may not be 0 when `maxSurge` is 0",
                    );
                }
            }
            (None, _) => {}
        }
    }
    selector_and_template(
        errs,
        &path,
        Some(&spec.selector),
        Some(&spec.template),
        &["Always"],
    );
}

pub(super) fn job(errs: &mut Errors, j: &Job) {
    let path = FieldPath::root().key("spec");
    match &j.spec {
        Some(spec) => job_spec(errs, &path, spec),
        None => errs.required(&path),
    }
}

/// A Job's spec (also a CronJob's job template).
fn job_spec(errs: &mut Errors, path: &FieldPath, spec: &JobSpec) {
    errs.at_least(&path.key("parallelism"), spec.parallelism, 0);
    errs.at_least(&path.key("completions"), spec.completions, 0);
    errs.at_least(&path.key("backoffLimit"), spec.backoff_limit, 0);
    errs.at_least(
        &path.key("activeDeadlineSeconds"),
        spec.active_deadline_seconds,
        1,
    );
    errs.at_least(
        &path.key("ttlSecondsAfterFinished"),
        spec.ttl_seconds_after_finished,
        0,
    );
    let mode = spec.completion_mode.as_deref().unwrap_or("NonIndexed");
    errs.one_of(
        &path.key("completionMode"),
        mode,
        &["NonIndexed", "Indexed"],
    );
    if mode == "Indexed" {
        // Kubernetes' bounds of an Indexed Job (`completedIndexes` and the pods'
        // indexes stay this small).
        const MAX_INDEXED: i32 = 100_000;
        match spec.completions {
            None => errs.required(&path.key("completions")),
            Some(c) if c > MAX_INDEXED => errs.invalid(
                &path.key("completions"),
                c,
                format!(
                    "must be less than or equal to {MAX_INDEXED} when completion mode is Indexed"
                ),
            ),
            Some(_) => {}
        }
        if let Some(p) = spec.parallelism.filter(|p| *p > MAX_INDEXED) {
            errs.invalid(
                &path.key("parallelism"),
                p,
                format!(
                    "must be less than or equal to {MAX_INDEXED} when completion mode is Indexed"
                ),
            );
        }
    }
    match &spec.selector {
        // The API server generates the selector of a Job (from its uid) unless the
        // user asks for a manual one.
        Some(sel) => selector_and_template(
            errs,
            path,
            Some(sel),
            Some(&spec.template),
            &["OnFailure", "Never"],
        ),
        None => {
            let tpath = path.key("template");
            match &spec.template.spec {
                None => errs.required(&tpath.key("spec")),
                Some(ps) => {
                    pod::template_spec(errs, &tpath.key("spec"), ps);
                    let policy = ps.restart_policy.as_deref().unwrap_or("");
                    errs.one_of(
                        &tpath.key("spec").key("restartPolicy"),
                        policy,
                        &["OnFailure", "Never"],
                    );
                }
            }
            meta::labels(
                errs,
                &tpath.key("metadata").key("labels"),
                spec.template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.as_ref()),
            );
        }
    }
}

/// apps/v1 `ValidateStatefulSetSpec`.
pub(super) fn stateful_set(errs: &mut Errors, s: &StatefulSet) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &s.spec else {
        return errs.required(&path);
    };
    match spec.pod_management_policy.as_deref().unwrap_or_default() {
        "" => errs.required(&path.key("podManagementPolicy")),
        "OrderedReady" | "Parallel" => {}
        other => errs.invalid(
            &path.key("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        ),
    }
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let sp = path.key("updateStrategy");
    match strategy.type_.as_deref().unwrap_or_default() {
        "" => errs.required(&sp),
        "OnDelete" if strategy.rolling_update.is_some() => errs.invalid(
            &sp.key("rollingUpdate"),
            "",
            "only allowed for updateStrategy 'RollingUpdate'",
        ),
        "OnDelete" => {}
        "RollingUpdate" => {
            if let Some(ru) = &strategy.rolling_update {
                let rp = sp.key("rollingUpdate");
                errs.at_least(&rp.key("partition"), ru.partition, 0);
                if let Some(mu) = &ru.max_unavailable
                    && int_or_percent(errs, &rp.key("maxUnavailable"), mu, Some(100))
                {
                    errs.invalid(&rp.key("maxUnavailable"), 0, "must be greater than 0");
                }
            }
        }
        other => errs.invalid(&sp, other, "must be 'RollingUpdate' or 'OnDelete'"),
    }
    if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
        let p = path.key("persistentVolumeClaimRetentionPolicy");
        errs.opt_one_of(
            &p.key("whenDeleted"),
            policy.when_deleted.as_ref(),
            &["Retain", "Delete"],
        );
        errs.opt_one_of(
            &p.key("whenScaled"),
            policy.when_scaled.as_ref(),
            &["Retain", "Delete"],
        );
    }
    if let Some(o) = &spec.ordinals {
        errs.at_least(&path.key("ordinals").key("start"), o.start, 0);
    }
    errs.at_least(&path.key("replicas"), spec.replicas, 0);
    errs.at_least(&path.key("minReadySeconds"), spec.min_ready_seconds, 0);
    errs.at_least(
        &path.key("revisionHistoryLimit"),
        spec.revision_history_limit,
        0,
    );
    if let Some(name) = spec.service_name.as_deref().filter(|n| !n.is_empty()) {
        errs.syntax(&path.key("serviceName"), name, names::dns1123_label(name));
    }
    let claims = spec.volume_claim_templates.as_deref().unwrap_or_default();
    for (i, claim) in claims.iter().enumerate() {
        let p = path.key("volumeClaimTemplates").index(i);
        match claim.metadata.name.as_deref() {
            None | Some("") => errs.required(&p.key("metadata").key("name")),
            Some(n) => errs.syntax(&p.key("metadata").key("name"), n, names::dns1123_label(n)),
        }
        match &claim.spec {
            Some(cs) => storage::claim_spec(errs, &p.key("spec"), cs),
            None => errs.required(&p.key("spec")),
        }
    }
    // Containers may mount the claims of the templates as volumes.
    let mut template = spec.template.clone();
    if let Some(ps) = &mut template.spec {
        let volumes = ps.volumes.get_or_insert_with(Vec::new);
        for claim in claims {
            let name = claim.metadata.name.clone().unwrap_or_default();
            if !name.is_empty() && !volumes.iter().any(|v| v.name == name) {
                volumes.push(claim_volume(name));
            }
        }
    }
    selector_and_template(
        errs,
        &path,
        Some(&spec.selector),
        Some(&template),
        &["Always"],
    );
    no_active_deadline(errs, &path, &spec.template, "must not be specified");
}

/// The volume a StatefulSet's pod gets for one of its claim templates.
fn claim_volume(name: String) -> Volume {
    Volume {
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: name.clone(),
            read_only: None,
        }),
        name,
        ..Volume::default()
    }
}

/// A controller's pods run until replaced: no `activeDeadlineSeconds`.
fn no_active_deadline(errs: &mut Errors, path: &FieldPath, t: &PodTemplateSpec, detail: &str) {
    if let Some(d) = t.spec.as_ref().and_then(|s| s.active_deadline_seconds) {
        errs.invalid(
            &path
                .key("template")
                .key("spec")
                .key("activeDeadlineSeconds"),
            d,
            detail,
        );
    }
}

/// apps/v1 `ValidateDaemonSetSpec`.
pub(super) fn daemon_set(errs: &mut Errors, d: &DaemonSet) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &d.spec else {
        return errs.required(&path);
    };
    selector_and_template(
        errs,
        &path,
        Some(&spec.selector),
        Some(&spec.template),
        &["Always"],
    );
    no_active_deadline(
        errs,
        &path,
        &spec.template,
        "activeDeadlineSeconds in DaemonSet is not Supported",
    );
    errs.at_least(&path.key("minReadySeconds"), spec.min_ready_seconds, 0);
    errs.at_least(
        &path.key("revisionHistoryLimit"),
        spec.revision_history_limit,
        0,
    );
    let Some(strategy) = &spec.update_strategy else {
        return;
    };
    let sp = path.key("updateStrategy");
    let kind = strategy.type_.as_deref().unwrap_or("RollingUpdate");
    errs.one_of(&sp.key("type"), kind, &["OnDelete", "RollingUpdate"]);
    if kind != "RollingUpdate" {
        return;
    }
    let Some(ru) = &strategy.rolling_update else {
        return errs.required(&sp.key("rollingUpdate"));
    };
    let rp = sp.key("rollingUpdate");
    let unavailable_zero = ru
        .max_unavailable
        .as_ref()
        .is_some_and(|v| int_or_percent(errs, &rp.key("maxUnavailable"), v, Some(100)));
    let surge_zero = ru
        .max_surge
        .as_ref()
        .is_none_or(|v| int_or_percent(errs, &rp.key("maxSurge"), v, Some(100)));
    if unavailable_zero && surge_zero {
        errs.invalid(
            &rp.key("maxUnavailable"),
            0,
            "may not be 0 when `maxSurge` is 0",
        );
    }
}

/// batch/v1 `ValidateCronJobSpec`.
pub(super) fn cron_job(errs: &mut Errors, c: &CronJob) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &c.spec else {
        return errs.required(&path);
    };
    let sched = &spec.schedule;
    if sched.is_empty() {
        errs.required(&path.key("schedule"));
    } else {
        if let Err(e) = cron::schedule(sched) {
            errs.invalid(&path.key("schedule"), sched, e);
        }
        if sched.contains("TZ") {
            errs.invalid(
                &path.key("schedule"),
                sched,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            );
        }
    }
    if let Some(tz) = &spec.time_zone {
        let p = path.key("timeZone");
        if tz.is_empty() {
            errs.invalid(&p, tz, "timeZone must be nil or non-empty string");
        } else if tz.eq_ignore_ascii_case("local") {
            errs.invalid(
                &p,
                tz,
                "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
            );
        } else if let Err(e) = cron::time_zone(tz) {
            errs.invalid(&p, tz, e);
        }
    }
    match spec.concurrency_policy.as_deref().unwrap_or_default() {
        "" => errs.required(&path.key("concurrencyPolicy")),
        policy => errs.one_of(
            &path.key("concurrencyPolicy"),
            policy,
            &["Allow", "Forbid", "Replace"],
        ),
    }
    errs.at_least(
        &path.key("startingDeadlineSeconds"),
        spec.starting_deadline_seconds,
        0,
    );
    errs.at_least(
        &path.key("successfulJobsHistoryLimit"),
        spec.successful_jobs_history_limit,
        0,
    );
    errs.at_least(
        &path.key("failedJobsHistoryLimit"),
        spec.failed_jobs_history_limit,
        0,
    );
    let jp = path.key("jobTemplate");
    match &spec.job_template.spec {
        None => errs.required(&jp.key("spec")),
        Some(js) => {
            if js.manual_selector == Some(true) {
                errs.one_of(
                    &jp.key("spec").key("manualSelector"),
                    "true",
                    &["nil", "false"],
                );
            }
            job_spec(errs, &jp.key("spec"), js);
        }
    }
}

/// core/v1 `ValidateReplicationControllerSpec`.
pub(super) fn replication_controller(errs: &mut Errors, rc: &ReplicationController) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &rc.spec else {
        return errs.required(&path);
    };
    errs.at_least(&path.key("replicas"), spec.replicas, 0);
    errs.at_least(&path.key("minReadySeconds"), spec.min_ready_seconds, 0);
    let selector = spec.selector.clone().unwrap_or_default();
    if selector.is_empty() {
        errs.required(&path.key("selector"));
    }
    meta::labels(errs, &path.key("selector"), Some(&selector));
    let tpath = path.key("template");
    let Some(t) = &spec.template else {
        return errs.required(&tpath);
    };
    let labels = t
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if !selector.is_empty() && !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
        errs.invalid(
            &tpath.key("metadata").key("labels"),
            kube_core::Selector::from_iter(labels.clone()),
            "`selector` does not match template `labels`",
        );
    }
    pod_template(errs, &tpath, t);
    if let Some(ps) = &t.spec {
        let policy = ps.restart_policy.as_deref().unwrap_or("Always");
        errs.one_of(&tpath.key("spec").key("restartPolicy"), policy, &["Always"]);
        if ps.active_deadline_seconds.is_some() {
            errs.forbidden(
                &tpath.key("spec").key("activeDeadlineSeconds"),
                "activeDeadlineSeconds in ReplicationController is not Supported",
            );
        }
    }
}

/// A pod template's labels and pod spec (core/v1 `ValidatePodTemplateSpec`).
fn pod_template(errs: &mut Errors, path: &FieldPath, t: &PodTemplateSpec) {
    meta::labels(
        errs,
        &path.key("metadata").key("labels"),
        t.metadata.as_ref().and_then(|m| m.labels.as_ref()),
    );
    match &t.spec {
        None => errs.required(&path.key("spec")),
        Some(ps) => pod::template_spec(errs, &path.key("spec"), ps),
    }
}

/// A PodTemplate object.
pub(super) fn pod_template_object(errs: &mut Errors, t: &PodTemplate) {
    let path = FieldPath::root().key("template");
    match &t.template {
        None => errs.required(&path),
        Some(t) => pod_template(errs, &path, t),
    }
}
