//! Policy kinds: PodDisruptionBudgets (policy/v1), PriorityClasses (scheduling/v1),
//! LimitRanges and ResourceQuotas (core/v1).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use k8s_openapi::api::core::v1::{LimitRange, LimitRangeItem, ResourceQuota};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::{Errors, meta, workloads};
use crate::names;
use crate::path::FieldPath;
use crate::quantity::Quantity;

/// The highest priority a user-defined PriorityClass may have
/// (`HighestUserDefinablePriority`); higher ones are the system's.
const HIGHEST_USER_PRIORITY: i32 = 1_000_000_000;
/// The PriorityClasses Kubernetes creates, with their values.
const SYSTEM_PRIORITY_CLASSES: &[(&str, i32)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

pub(super) fn pod_disruption_budget(errs: &mut Errors, pdb: &PodDisruptionBudget) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &pdb.spec else { return };
    if spec.min_available.is_some() && spec.max_unavailable.is_some() {
        errs.invalid(
            &path,
            "",
            "minAvailable and maxUnavailable cannot be both set",
        );
    }
    for (field, value) in [
        ("minAvailable", &spec.min_available),
        ("maxUnavailable", &spec.max_unavailable),
    ] {
        if let Some(v) = value {
            workloads::int_or_percent(errs, &path.key(field), v, Some(100));
        }
    }
    if let Some(s) = &spec.selector {
        meta::label_selector(errs, &path.key("selector"), s);
    }
    errs.opt_one_of(
        &path.key("unhealthyPodEvictionPolicy"),
        spec.unhealthy_pod_eviction_policy.as_ref(),
        &["IfHealthyBudget", "AlwaysAllow"],
    );
}

pub(super) fn priority_class(errs: &mut Errors, pc: &PriorityClass) {
    let name = pc.metadata.name.as_deref().unwrap_or_default();
    if name.starts_with("system-") {
        let problem = match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, value)) if *value != pc.value => {
                Some(format!("value of {name} PriorityClass must be {value}"))
            }
            Some(_) if pc.global_default == Some(true) => Some(format!(
                "globalDefault of {name} PriorityClass must be false"
            )),
            Some(_) => None,
        };
        if let Some(p) = problem {
            errs.forbidden(
                &FieldPath::root().key("metadata").key("name"),
                format!("priority class names with 'system-' prefix are reserved for system use only. error: {p}"),
            );
        }
    } else if pc.value > HIGHEST_USER_PRIORITY {
        errs.forbidden(
            &FieldPath::root().key("value"),
            format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        );
    }
    errs.opt_one_of(
        &FieldPath::root().key("preemptionPolicy"),
        pc.preemption_policy.as_ref(),
        &["PreemptLowerPriority", "Never"],
    );
}

/// A resource name: standard, or qualified by a domain (`example.com/device`).
fn resource_name(errs: &mut Errors, path: &FieldPath, name: &str) {
    errs.syntax(path, name, names::qualified_name(name));
}

/// Parses a list of quantities, reporting bad names and values under `path`.
fn quantities(
    errs: &mut Errors,
    path: &FieldPath,
    list: Option<&BTreeMap<String, K8sQuantity>>,
) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    for (name, q) in list.into_iter().flatten() {
        let p = path.key(name.clone());
        resource_name(errs, &p, name);
        if let Some(v) = errs.quantity(&p, q) {
            if v.signum() < 0 {
                errs.invalid(&p, &q.0, "must be greater than or equal to 0");
            }
            out.insert(name.clone(), v);
        }
    }
    out
}

fn limit_range_item(errs: &mut Errors, path: &FieldPath, item: &LimitRangeItem) {
    let max = quantities(errs, &path.key("max"), item.max.as_ref());
    let min = quantities(errs, &path.key("min"), item.min.as_ref());
    let default = quantities(errs, &path.key("default"), item.default.as_ref());
    let default_request = quantities(
        errs,
        &path.key("defaultRequest"),
        item.default_request.as_ref(),
    );
    let ratio = quantities(
        errs,
        &path.key("maxLimitRequestRatio"),
        item.max_limit_request_ratio.as_ref(),
    );
    if item.type_ == "Pod" {
        for (field, set) in [
            ("default", !default.is_empty()),
            ("defaultRequest", !default_request.is_empty()),
        ] {
            if set {
                errs.forbidden(
                    &path.key(field),
                    "may not be specified when `type` is 'Pod'",
                );
            }
        }
    }
    let keys: BTreeSet<&String> = max
        .keys()
        .chain(min.keys())
        .chain(default.keys())
        .chain(default_request.keys())
        .collect();
    for key in keys {
        let (mx, mn, d, dr) = (
            max.get(key),
            min.get(key),
            default.get(key),
            default_request.get(key),
        );
        let at = |field: &str| path.key(field).key(key.clone());
        if let (Some(mn), Some(mx)) = (mn, mx)
            && mn > mx
        {
            errs.invalid(
                &at("min"),
                mn,
                format!("min value {mn} is greater than max value {mx}"),
            );
        }
        if let Some(dr) = dr {
            if let Some(mn) = mn.filter(|mn| *mn > dr) {
                errs.invalid(
                    &at("defaultRequest"),
                    dr,
                    format!("min value {mn} is greater than default request value {dr}"),
                );
            }
            if let Some(mx) = mx.filter(|mx| dr > *mx) {
                errs.invalid(
                    &at("defaultRequest"),
                    dr,
                    format!("default request value {dr} is greater than max value {mx}"),
                );
            }
        }
        if let Some(d) = d {
            if let Some(mn) = mn.filter(|mn| *mn > d) {
                errs.invalid(
                    &at("default"),
                    d,
                    format!("min value {mn} is greater than default value {d}"),
                );
            }
            if let Some(mx) = mx.filter(|mx| d > *mx) {
                errs.invalid(
                    &at("default"),
                    d,
                    format!("default value {d} is greater than max value {mx}"),
                );
            }
        }
        if let (Some(dr), Some(d)) = (dr, d)
            && dr > d
        {
            errs.invalid(
                &at("defaultRequest"),
                dr,
                format!("default request value {dr} is greater than default limit value {d}"),
            );
        }
    }
    for (key, r) in &ratio {
        if *r < Quantity::from_i64(1) {
            errs.invalid(
                &path.key("maxLimitRequestRatio").key(key.clone()),
                r,
                format!("ratio {r} is less than 1"),
            );
        }
    }
}

pub(super) fn limit_range(errs: &mut Errors, lr: &LimitRange) {
    let path = FieldPath::root().key("spec").key("limits");
    let Some(spec) = &lr.spec else { return };
    let mut types = HashSet::new();
    for (i, item) in spec.limits.iter().enumerate() {
        let p = path.index(i);
        if item.type_.is_empty() {
            errs.required(&p.key("type"));
        } else if !types.insert(item.type_.clone()) {
            errs.duplicate(&p.key("type"), &item.type_);
        }
        limit_range_item(errs, &p, item);
    }
}

const QUOTA_SCOPES: &[&str] = &[
    "BestEffort",
    "CrossNamespacePodAffinity",
    "NotBestEffort",
    "NotTerminating",
    "PriorityClass",
    "Terminating",
    "VolumeAttributesClass",
];

pub(super) fn resource_quota(errs: &mut Errors, rq: &ResourceQuota) {
    let path = FieldPath::root().key("spec");
    let Some(spec) = &rq.spec else { return };
    quantities(errs, &path.key("hard"), spec.hard.as_ref());
    for (i, scope) in spec.scopes.iter().flatten().enumerate() {
        errs.one_of(&path.key("scopes").index(i), scope, QUOTA_SCOPES);
    }
    if let Some(sel) = &spec.scope_selector {
        for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
            let p = path.key("scopeSelector").key("matchExpressions").index(i);
            errs.one_of(&p.key("scopeName"), &expr.scope_name, QUOTA_SCOPES);
            errs.one_of(
                &p.key("operator"),
                &expr.operator,
                &["In", "NotIn", "Exists", "DoesNotExist"],
            );
        }
    }
}
