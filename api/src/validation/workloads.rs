//! ReplicaSets, Deployments and Jobs: replicas, selectors and their pod templates.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_core::SelectorExt;

use super::{Errors, meta, pod};
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
                    pod::pod_spec(errs, &tpath.key("spec"), ps);
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
fn int_or_percent(
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
    let Some(spec) = &j.spec else {
        return errs.required(&path);
    };
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
    // Indexed Jobs (a completion index per pod) are not run by rk8s' Job controller:
    // refused here rather than run without their indexes.
    let mode = spec.completion_mode.as_deref().unwrap_or("NonIndexed");
    if mode == "Indexed" {
        errs.message(
            &path.key("completionMode"),
            "unsupported value \"Indexed\": rk8s runs NonIndexed Jobs only",
        );
    } else {
        errs.one_of(&path.key("completionMode"), mode, &["NonIndexed"]);
    }
    match &spec.selector {
        // The API server generates the selector of a Job (from its uid) unless the
        // user asks for a manual one.
        Some(sel) => selector_and_template(
            errs,
            &path,
            Some(sel),
            Some(&spec.template),
            &["OnFailure", "Never"],
        ),
        None => {
            let tpath = path.key("template");
            match &spec.template.spec {
                None => errs.required(&tpath.key("spec")),
                Some(ps) => {
                    pod::pod_spec(errs, &tpath.key("spec"), ps);
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
