//! Admission webhook configurations (admissionregistration/v1
//! `ValidateValidatingWebhookConfiguration`, `…Mutating…`): names, rules, policies,
//! and where the webhook is called.

use std::collections::HashSet;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{Errors, meta};
use crate::names;
use crate::path::FieldPath;

const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];

/// The fields both kinds of webhook have.
struct Webhook<'a> {
    name: &'a str,
    rules: &'a [RuleWithOperations],
    failure_policy: Option<&'a String>,
    match_policy: Option<&'a String>,
    side_effects: &'a str,
    timeout_seconds: Option<i32>,
    namespace_selector: Option<&'a LabelSelector>,
    object_selector: Option<&'a LabelSelector>,
    admission_review_versions: &'a [String],
    client_config: &'a WebhookClientConfig,
}

fn rule(errs: &mut Errors, path: &FieldPath, r: &RuleWithOperations) {
    let ops = r.operations.as_deref().unwrap_or_default();
    if ops.is_empty() {
        errs.required(&path.key("operations"));
    }
    for (i, op) in ops.iter().enumerate() {
        errs.one_of(&path.key("operations").index(i), op, OPERATIONS);
    }
    if ops.len() > 1 && ops.iter().any(|o| o == "*") {
        errs.invalid(
            &path.key("operations"),
            ops.join(", "),
            "if '*' is present, must not specify other operations",
        );
    }
    for (field, list) in [
        ("apiGroups", &r.api_groups),
        ("apiVersions", &r.api_versions),
        ("resources", &r.resources),
    ] {
        if list.as_deref().unwrap_or_default().is_empty() {
            errs.required(&path.key(field));
        }
    }
    errs.opt_one_of(
        &path.key("scope"),
        r.scope.as_ref(),
        &["*", "Cluster", "Namespaced"],
    );
}

fn client_config(errs: &mut Errors, path: &FieldPath, cc: &WebhookClientConfig) {
    let url = cc.url.as_deref().filter(|u| !u.is_empty());
    match (url, &cc.service) {
        (Some(_), Some(_)) | (None, None) => errs.message(
            path,
            "required value: exactly one of url or service is required",
        ),
        (Some(u), None) => {
            let p = path.key("url");
            let Some(rest) = u
                .split_once("://")
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("https"))
                .map(|(_, rest)| rest)
            else {
                return errs.invalid(&p, u, "'https' is the only allowed URL scheme");
            };
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if authority.is_empty() {
                errs.invalid(&p, u, "host must be specified");
            }
            if authority.contains('@') {
                errs.invalid(&p, u, "user information is not permitted in the URL");
            }
            if rest.contains('#') {
                errs.invalid(&p, u, "fragments are not permitted in the URL");
            }
            if rest.contains('?') {
                errs.invalid(&p, u, "query parameters are not permitted in the URL");
            }
        }
        (None, Some(svc)) => {
            let p = path.key("service");
            if svc.name.is_empty() {
                errs.message(&p.key("name"), "required value: service name is required");
            }
            if svc.namespace.is_empty() {
                errs.message(
                    &p.key("namespace"),
                    "required value: service namespace is required",
                );
            }
            if let Some(port) = svc.port {
                errs.port(&p.key("port"), port);
            }
            if let Some(path_) = svc.path.as_deref().filter(|s| !s.is_empty())
                && !path_.starts_with('/')
            {
                errs.invalid(&p.key("path"), path_, "must start with a '/'");
            }
        }
    }
}

fn webhook(errs: &mut Errors, path: &FieldPath, w: &Webhook<'_>) {
    let name_path = path.key("name");
    if w.name.is_empty() {
        errs.required(&name_path);
    } else {
        let problems = names::dns1123_subdomain(w.name);
        if problems.is_empty() && w.name.split('.').count() < 3 {
            errs.invalid(
                &name_path,
                w.name,
                "should be a domain with at least three segments separated by dots",
            );
        }
        errs.syntax(&name_path, w.name, problems);
    }
    for (i, r) in w.rules.iter().enumerate() {
        rule(errs, &path.key("rules").index(i), r);
    }
    errs.opt_one_of(
        &path.key("failurePolicy"),
        w.failure_policy,
        &["Fail", "Ignore"],
    );
    errs.opt_one_of(
        &path.key("matchPolicy"),
        w.match_policy,
        &["Equivalent", "Exact"],
    );
    if w.side_effects.is_empty() {
        errs.message(
            &path.key("sideEffects"),
            "required value: must specify one of None, NoneOnDryRun",
        );
    } else {
        errs.one_of(
            &path.key("sideEffects"),
            w.side_effects,
            &["None", "NoneOnDryRun"],
        );
    }
    if let Some(t) = w.timeout_seconds
        && !(1..=30).contains(&t)
    {
        errs.invalid(
            &path.key("timeoutSeconds"),
            t,
            "the timeout value must be between 1 and 30 seconds",
        );
    }
    for (field, sel) in [
        ("namespaceSelector", w.namespace_selector),
        ("objectSelector", w.object_selector),
    ] {
        if let Some(s) = sel {
            meta::label_selector(errs, &path.key(field), s);
        }
    }
    let vp = path.key("admissionReviewVersions");
    if w.admission_review_versions.is_empty() {
        errs.message(&vp, "required value: must specify one of v1, v1beta1");
    } else {
        let mut seen = HashSet::new();
        for (i, v) in w.admission_review_versions.iter().enumerate() {
            if !seen.insert(v) {
                errs.invalid(&vp.index(i), v, "duplicate version");
            }
        }
        let accepted = w
            .admission_review_versions
            .iter()
            .any(|v| REVIEW_VERSIONS.contains(&v.as_str()));
        if !accepted {
            errs.invalid(
                &vp,
                w.admission_review_versions.join(", "),
                "must include at least one of v1, v1beta1",
            );
        }
    }
    client_config(errs, &path.key("clientConfig"), w.client_config);
}

/// Webhook names are unique within a configuration.
fn unique_name(errs: &mut Errors, seen: &mut HashSet<String>, path: &FieldPath, name: &str) {
    if !name.is_empty() && !seen.insert(name.to_string()) {
        errs.duplicate(&path.key("name"), name);
    }
}

pub(super) fn validating(errs: &mut Errors, c: &ValidatingWebhookConfiguration) {
    let mut seen = HashSet::new();
    for (i, w) in c.webhooks.iter().flatten().enumerate() {
        let p = FieldPath::root().key("webhooks").index(i);
        unique_name(errs, &mut seen, &p, &w.name);
        webhook(
            errs,
            &p,
            &Webhook {
                name: &w.name,
                rules: w.rules.as_deref().unwrap_or_default(),
                failure_policy: w.failure_policy.as_ref(),
                match_policy: w.match_policy.as_ref(),
                side_effects: &w.side_effects,
                timeout_seconds: w.timeout_seconds,
                namespace_selector: w.namespace_selector.as_ref(),
                object_selector: w.object_selector.as_ref(),
                admission_review_versions: &w.admission_review_versions,
                client_config: &w.client_config,
            },
        );
    }
}

pub(super) fn mutating(errs: &mut Errors, c: &MutatingWebhookConfiguration) {
    let mut seen = HashSet::new();
    for (i, w) in c.webhooks.iter().flatten().enumerate() {
        let p = FieldPath::root().key("webhooks").index(i);
        unique_name(errs, &mut seen, &p, &w.name);
        webhook(
            errs,
            &p,
            &Webhook {
                name: &w.name,
                rules: w.rules.as_deref().unwrap_or_default(),
                failure_policy: w.failure_policy.as_ref(),
                match_policy: w.match_policy.as_ref(),
                side_effects: &w.side_effects,
                timeout_seconds: w.timeout_seconds,
                namespace_selector: w.namespace_selector.as_ref(),
                object_selector: w.object_selector.as_ref(),
                admission_review_versions: &w.admission_review_versions,
                client_config: &w.client_config,
            },
        );
        errs.opt_one_of(
            &p.key("reinvocationPolicy"),
            w.reinvocation_policy.as_ref(),
            &["IfNeeded", "Never"],
        );
    }
}
