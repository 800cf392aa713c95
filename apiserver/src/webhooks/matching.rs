//! Which webhooks a request goes to: a webhook's `rules` (operations, groups,
//! versions, resources with `res/sub`, `*/sub` and `res/*`, scope), then its
//! `namespaceSelector` and `objectSelector`, as kube-apiserver's generic webhook
//! dispatcher decides (`admission/plugin/webhook/predicates`).

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, RuleWithOperations, ValidatingWebhook, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use rk8s_api::selector::{SelectorExt, label_selector};
use rk8s_api::{AnyObject, ObjectKind};

/// A write's operation, as a webhook's rules name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A create (POST, or an apply of a missing object).
    Create,
    /// An update or patch (also of `status`).
    Update,
    /// A delete.
    Delete,
}

impl Operation {
    /// The name in rules and in the AdmissionReview (`CREATE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }

    /// The options kind the AdmissionReview's `options` holds.
    pub fn options_kind(self) -> &'static str {
        match self {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
        }
    }
}

/// What both kinds of webhook have, borrowed from either.
#[derive(Clone, Copy, Debug)]
pub struct Hook<'a> {
    /// The webhook's name (`policy.example.com`).
    pub name: &'a str,
    /// Where it is served.
    pub client: &'a WebhookClientConfig,
    /// Which requests it wants.
    pub rules: &'a [RuleWithOperations],
    /// `Fail` (the default) or `Ignore`.
    pub failure_policy: Option<&'a str>,
    /// Which namespaces' objects it sees.
    pub namespace_selector: Option<&'a LabelSelector>,
    /// Which objects (by labels) it sees.
    pub object_selector: Option<&'a LabelSelector>,
    /// `None`, `NoneOnDryRun`, `Some`, `Unknown`.
    pub side_effects: &'a str,
    /// Seconds to wait for its answer (default 10, at most 30).
    pub timeout_seconds: Option<i32>,
    /// The AdmissionReview versions it understands, preferred first.
    pub review_versions: &'a [String],
}

/// `Hook` from a webhook of either kind: their common fields have the same names.
macro_rules! hook_from {
    ($webhook:ty) => {
        impl<'a> From<&'a $webhook> for Hook<'a> {
            fn from(w: &'a $webhook) -> Self {
                Hook {
                    name: &w.name,
                    client: &w.client_config,
                    rules: w.rules.as_deref().unwrap_or_default(),
                    failure_policy: w.failure_policy.as_deref(),
                    namespace_selector: w.namespace_selector.as_ref(),
                    object_selector: w.object_selector.as_ref(),
                    side_effects: &w.side_effects,
                    timeout_seconds: w.timeout_seconds,
                    review_versions: &w.admission_review_versions,
                }
            }
        }
    };
}

hook_from!(MutatingWebhook);
hook_from!(ValidatingWebhook);

impl Hook<'_> {
    /// Whether a failure to call it fails the request (`failurePolicy: Fail`, the
    /// v1 default).
    pub fn fails_closed(&self) -> bool {
        self.failure_policy != Some("Ignore")
    }

    /// Whether it may see a dry run: only webhooks without side effects (or whose
    /// side effects they skip on dry runs) are called for one.
    pub fn supports_dry_run(&self) -> bool {
        matches!(self.side_effects, "None" | "NoneOnDryRun")
    }

    /// Whether one of its rules covers `operation` on `kind` (its `subresource`).
    pub fn matches_rules(
        &self,
        operation: Operation,
        kind: &ObjectKind,
        subresource: Option<&str>,
    ) -> bool {
        self.rules
            .iter()
            .any(|r| rule_matches(r, operation, kind, subresource))
    }
}

fn any_or(list: Option<&[String]>, value: &str) -> bool {
    list.unwrap_or_default()
        .iter()
        .any(|v| v == "*" || v == value)
}

/// kube's `rules.Matcher`: every part of the rule must match.
pub fn rule_matches(
    rule: &RuleWithOperations,
    operation: Operation,
    kind: &ObjectKind,
    subresource: Option<&str>,
) -> bool {
    let scope_ok = match rule.scope.as_deref() {
        None | Some("*") => true,
        Some("Cluster") => !kind.is_namespaced(),
        Some("Namespaced") => kind.is_namespaced(),
        Some(_) => false,
    };
    scope_ok
        && any_or(rule.operations.as_deref(), operation.as_str())
        && any_or(rule.api_groups.as_deref(), kind.group)
        && any_or(rule.api_versions.as_deref(), kind.version)
        && rule
            .resources
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|r| resource_matches(r, kind.plural, subresource.unwrap_or_default()))
}

/// `pods` matches the resource itself, `pods/status` one subresource, `pods/*` the
/// resource and all its subresources, `*` every resource (not subresources), `*/*`
/// everything, `*/status` that subresource of every resource.
fn resource_matches(pattern: &str, resource: &str, sub: &str) -> bool {
    let (res, pat_sub) = pattern.split_once('/').unwrap_or((pattern, ""));
    let res_ok = res == "*" || res == resource;
    let sub_ok = pat_sub == sub || pat_sub == "*";
    res_ok && sub_ok
}

/// Whether `labels` satisfy `selector` (an absent selector, or an empty one,
/// selects everything; one that does not parse selects nothing, as kube treats a
/// selector its validation would have refused).
pub fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = selector else { return true };
    match label_selector(sel) {
        Ok(s) => s.matches(labels),
        Err(_) => false,
    }
}

/// Whether a selector needs the namespace's labels (it has any requirement).
pub fn needs_labels(selector: Option<&LabelSelector>) -> bool {
    selector.is_some_and(|s| {
        s.match_labels.as_ref().is_some_and(|m| !m.is_empty())
            || s.match_expressions.as_ref().is_some_and(|e| !e.is_empty())
    })
}

/// The object's labels (none for a missing object).
pub fn labels(obj: Option<&AnyObject>) -> BTreeMap<String, String> {
    obj.and_then(|o| o.metadata().labels.clone())
        .unwrap_or_default()
}

/// `objectSelector`: the new object's or the old object's labels match (kube calls a
/// webhook when either does, so a label removed in an update still reaches it).
pub fn object_selected(hook: &Hook<'_>, obj: Option<&AnyObject>, old: Option<&AnyObject>) -> bool {
    if !needs_labels(hook.object_selector) {
        return true;
    }
    [obj, old]
        .into_iter()
        .flatten()
        .any(|o| selects(hook.object_selector, &labels(Some(o))))
}
