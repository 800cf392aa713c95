//! `metadata`: names, namespaces, labels, annotations, owner references.

use std::collections::BTreeMap;

use super::Errors;
use crate::names;
use crate::object::AnyObject;
use crate::path::FieldPath;

/// Kubernetes' limit on the total size of an object's annotations.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Kinds whose names must be RFC 1123 labels rather than subdomains.
const LABEL_NAMED_KINDS: &[&str] = &["Namespace", "Service"];

/// Kinds whose names need only be URL path segments (Kubernetes' `ValidateRBACName`).
const PATH_SEGMENT_NAMED_KINDS: &[&str] =
    &["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"];

/// The longest name of a CronJob: its Jobs are named after it with an 11-character
/// suffix, and must still be RFC 1035 labels (63 characters).
const MAX_CRON_JOB_NAME: usize = 52;

pub(super) fn object_meta(errs: &mut Errors, obj: &AnyObject) {
    let path = FieldPath::root().key("metadata");
    let meta = obj.metadata();
    let kind = obj.kind();
    match (&meta.name, &meta.generate_name) {
        (Some(name), _) if !name.is_empty() => {
            let problems = if LABEL_NAMED_KINDS.contains(&kind.kind) {
                names::dns1123_label(name)
            } else if PATH_SEGMENT_NAMED_KINDS.contains(&kind.kind)
                && kind.group == "rbac.authorization.k8s.io"
            {
                path_segment_name(name)
            } else if kind.kind == "CronJob" && name.len() > MAX_CRON_JOB_NAME {
                vec![format!(
                    "must be no more than {MAX_CRON_JOB_NAME} characters"
                )]
            } else {
                names::dns1123_subdomain(name)
            };
            errs.syntax(&path.key("name"), name, problems);
        }
        (_, Some(prefix)) if !prefix.is_empty() => {}
        _ => errs.message(
            &path.key("name"),
            "Required value: name or generateName is required",
        ),
    }
    match (&meta.namespace, kind.is_namespaced()) {
        (Some(ns), true) => errs.syntax(&path.key("namespace"), ns, names::dns1123_label(ns)),
        (None, true) => errs.required(&path.key("namespace")),
        (Some(ns), false) if !ns.is_empty() => errs.forbidden(
            &path.key("namespace"),
            format!("not allowed on a cluster-scoped kind ({})", kind.kind),
        ),
        _ => {}
    }
    labels(errs, &path.key("labels"), meta.labels.as_ref());
    if let Some(annotations) = &meta.annotations {
        let p = path.key("annotations");
        let mut size = 0;
        for (k, v) in annotations {
            errs.syntax(
                &p.key(k.clone()),
                k,
                names::qualified_name(&k.to_lowercase()),
            );
            size += k.len() + v.len();
        }
        if size > MAX_ANNOTATIONS_BYTES {
            errs.message(
                &p,
                format!("too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes (has {size})"),
            );
        }
    }
    for (i, f) in meta.finalizers.iter().flatten().enumerate() {
        errs.syntax(
            &path.key("finalizers").index(i),
            f,
            names::qualified_name(f),
        );
    }
    let mut controllers = 0;
    for (i, r) in meta.owner_references.iter().flatten().enumerate() {
        let p = path.key("ownerReferences").index(i);
        for (field, value) in [
            ("apiVersion", &r.api_version),
            ("kind", &r.kind),
            ("name", &r.name),
            ("uid", &r.uid),
        ] {
            if value.is_empty() {
                errs.required(&p.key(field));
            }
        }
        if r.controller == Some(true) {
            controllers += 1;
            if controllers > 1 {
                errs.message(
                    &p.key("controller"),
                    "only one reference can have `controller` set to true",
                );
            }
        }
    }
}

/// Label keys and values (also used for selectors and node selectors).
pub(super) fn labels(
    errs: &mut Errors,
    path: &FieldPath,
    labels: Option<&BTreeMap<String, String>>,
) {
    for (k, v) in labels.into_iter().flatten() {
        let p = path.key(k.clone());
        errs.syntax(&p, k, names::qualified_name(k));
        errs.syntax(&p, v, names::label_value(v));
    }
}

/// A label selector's keys, values and operators, reported under `path`.
pub(super) fn label_selector(
    errs: &mut Errors,
    path: &FieldPath,
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) {
    if let Err(problems) = crate::selector::label_selector(selector) {
        for (field, problem) in problems {
            errs.message(&path.join(&FieldPath::parse(&field)), problem);
        }
    }
}

/// A name that is one segment of a URL path (`ValidatePathSegmentName`): RBAC
/// objects and role references may be named `system:controller:foo`.
pub(super) fn path_segment_name(name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    match name {
        "." => errs.push("may not be '.'".to_string()),
        ".." => errs.push("may not be '..'".to_string()),
        _ => {}
    }
    for bad in ['/', '%'] {
        if name.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}
