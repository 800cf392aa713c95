//! Dynamic admission: the `MutatingWebhookConfiguration`s and
//! `ValidatingWebhookConfiguration`s (`admissionregistration.k8s.io/v1`), as
//! kube-apiserver's MutatingAdmissionWebhook and ValidatingAdmissionWebhook plugins
//! run them. Mutating webhooks are called one after another (configurations by name,
//! webhooks in their order), each seeing the previous one's patches; validating
//! webhooks are called together once the object is final. A webhook is called when
//! its rules, `namespaceSelector` and `objectSelector` match; a failure to call it
//! fails the request under `failurePolicy: Fail` (the default) and is logged under
//! `Ignore`; a dry run reaches only webhooks without side effects.
//!
//! Not done: `matchConditions` (CEL) — a webhook that has them is called for every
//! request its rules match (a superset); `reinvocationPolicy: IfNeeded` (each
//! mutating webhook is called once); requests on the `scale`, `binding`, `eviction`
//! and `token` subresources do not reach webhooks.

pub mod call;
pub mod matching;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use futures_util::future::join_all;
use rk8s_api::{AnyObject, ObjectKind};
use serde_json::{Value, json};

use crate::auth::Identity;
use crate::handlers::Handlers;
use crate::status::{ApiError, ApiResult};
use call::{CallError, call, review, review_version};
use matching::{Hook, Operation, labels, needs_labels, object_selected, selects};

/// A request as the webhooks see it.
pub struct Attempt<'a> {
    /// What it does.
    pub operation: Operation,
    /// The kind written.
    pub kind: ObjectKind,
    /// The subresource (`status`), if any.
    pub subresource: Option<&'a str>,
    /// The object's namespace.
    pub namespace: Option<&'a str>,
    /// The object's name.
    pub name: &'a str,
    /// Who asks.
    pub identity: &'a Identity,
    /// Whether nothing will be stored (`dryRun=All`).
    pub dry_run: bool,
    /// The object before the write (updates and deletes).
    pub old: Option<&'a AnyObject>,
}

/// What the mutating webhooks did.
#[derive(Debug, Default)]
pub struct Mutated {
    /// Their warnings.
    pub warnings: Vec<String>,
    /// Whether one of them patched the object.
    pub patched: bool,
}

/// The most a warning from a webhook keeps, and the most all of a request's
/// warnings from webhooks take (kube's limits for `Warning` headers: a longer one is
/// cut, more are dropped).
const MAX_WARNING_CHARS: usize = 256;
const MAX_WARNINGS_BYTES: usize = 4096;

/// `new` warnings added to `warnings`, within the limits.
fn add_warnings(warnings: &mut Vec<String>, new: Vec<String>) {
    let mut total: usize = warnings.iter().map(String::len).sum();
    for w in new {
        let w: String = w.chars().take(MAX_WARNING_CHARS).collect();
        if total + w.len() > MAX_WARNINGS_BYTES {
            break;
        }
        total += w.len();
        warnings.push(w);
    }
}

/// Kinds whose writes never reach webhooks, so a webhook cannot lock itself in (as
/// kube-apiserver exempts them).
fn exempt(kind: &ObjectKind) -> bool {
    kind.group == "admissionregistration.k8s.io"
        || matches!(kind.group, "authentication.k8s.io" | "authorization.k8s.io")
}

impl Handlers {
    /// Calls the mutating webhooks that match, applying each one's patch to `obj`;
    /// returns their warnings and whether one patched, or the first refusal.
    pub async fn mutating_webhooks(
        &self,
        a: &Attempt<'_>,
        obj: &mut AnyObject,
    ) -> ApiResult<Mutated> {
        let mut mutated = Mutated::default();
        if exempt(&a.kind) {
            return Ok(mutated);
        }
        let mut configs = self.listers.mutating_webhooks.list(None);
        configs.sort_by(|x, y| x.name().cmp(y.name()));
        let mut namespace_labels = None;
        for config in &configs {
            let AnyObject::MutatingWebhookConfiguration(config) = config.as_ref() else {
                continue;
            };
            for webhook in config.webhooks.iter().flatten() {
                let hook = Hook::from(webhook);
                if !self
                    .wants(&hook, a, Some(obj), &mut namespace_labels)
                    .await?
                {
                    continue;
                }
                let Some(answer) = self.ask(&hook, a, Some(obj)).await? else {
                    continue;
                };
                add_warnings(&mut mutated.warnings, answer.warnings);
                if !answer.allowed {
                    return Err(denied(hook.name, answer.status.as_ref()));
                }
                if let Some(patch) = answer.patch {
                    *obj = patched(&hook, obj, &patch)?;
                    mutated.patched = true;
                }
            }
        }
        Ok(mutated)
    }

    /// Calls the validating webhooks that match, together; returns their warnings, or
    /// a refusal (the first in configuration order).
    pub async fn validating_webhooks(
        &self,
        a: &Attempt<'_>,
        obj: Option<&AnyObject>,
    ) -> ApiResult<Vec<String>> {
        if exempt(&a.kind) {
            return Ok(Vec::new());
        }
        let mut configs = self.listers.validating_webhooks.list(None);
        configs.sort_by(|x, y| x.name().cmp(y.name()));
        let mut namespace_labels = None;
        let mut hooks = Vec::new();
        for config in &configs {
            let AnyObject::ValidatingWebhookConfiguration(config) = config.as_ref() else {
                continue;
            };
            for webhook in config.webhooks.iter().flatten() {
                let hook = Hook::from(webhook);
                if self.wants(&hook, a, obj, &mut namespace_labels).await? {
                    hooks.push(hook);
                }
            }
        }
        let answers = join_all(hooks.iter().map(|h| self.ask(h, a, obj))).await;
        let mut warnings = Vec::new();
        for (hook, answer) in hooks.iter().zip(answers) {
            let Some(answer) = answer? else { continue };
            add_warnings(&mut warnings, answer.warnings);
            if !answer.allowed {
                return Err(denied(hook.name, answer.status.as_ref()));
            }
        }
        Ok(warnings)
    }

    /// Whether `hook` is called for this request: its rules, then its selectors
    /// (the namespace's labels read once, when a selector needs them).
    async fn wants(
        &self,
        hook: &Hook<'_>,
        a: &Attempt<'_>,
        obj: Option<&AnyObject>,
        namespace_labels: &mut Option<BTreeMap<String, String>>,
    ) -> ApiResult<bool> {
        if !hook.matches_rules(a.operation, &a.kind, a.subresource)
            || !object_selected(hook, obj, a.old)
        {
            return Ok(false);
        }
        if !needs_labels(hook.namespace_selector) {
            return Ok(true);
        }
        // A Namespace is matched by its own labels; other cluster-scoped objects are
        // not filtered by namespace.
        if a.kind.kind == "Namespace" {
            return Ok(selects(hook.namespace_selector, &labels(obj.or(a.old))));
        }
        let Some(ns) = a.namespace else {
            return Ok(true);
        };
        if namespace_labels.is_none() {
            let kind = rk8s_api::object::kind_named("Namespace").ok_or_else(ApiError::no_route)?;
            let found = self.registry.find_locally(&kind, None, ns).await?;
            *namespace_labels = Some(labels(found.as_ref()));
        }
        Ok(selects(
            hook.namespace_selector,
            namespace_labels.as_ref().unwrap_or(&BTreeMap::new()),
        ))
    }

    /// Calls `hook`; `None` when a failure is ignored (`failurePolicy: Ignore`).
    async fn ask(
        &self,
        hook: &Hook<'_>,
        a: &Attempt<'_>,
        obj: Option<&AnyObject>,
    ) -> ApiResult<Option<call::Answer>> {
        if a.dry_run && !hook.supports_dry_run() {
            return Err(ApiError::bad_request(format!(
                "admission webhook {:?} does not support dry run",
                hook.name
            )));
        }
        let uid = uuid::Uuid::new_v4().to_string();
        let result = match review_version(hook) {
            Ok(version) => {
                let body = review(version, request(a, obj, &uid));
                call(&self.registry, hook, &body, &uid).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(answer) => Ok(Some(answer)),
            Err(e) if hook.fails_closed() => Err(failed(&e)),
            Err(e) => {
                tracing::warn!("{e} (failurePolicy Ignore: the request goes on)");
                Ok(None)
            }
        }
    }
}

/// The AdmissionReview's `request`.
fn request(a: &Attempt<'_>, obj: Option<&AnyObject>, uid: &str) -> Value {
    let kind = json!({"group": a.kind.group, "version": a.kind.version, "kind": a.kind.kind});
    let resource =
        json!({"group": a.kind.group, "version": a.kind.version, "resource": a.kind.plural});
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": a.name,
        "operation": a.operation.as_str(),
        "userInfo": crate::routes::reviews::user_info(a.identity),
        "object": obj.map(AnyObject::to_value),
        "oldObject": a.old.map(AnyObject::to_value),
        "dryRun": a.dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": a.operation.options_kind()},
    });
    if let Some(fields) = request.as_object_mut() {
        if let Some(ns) = a.namespace {
            fields.insert("namespace".into(), ns.into());
        }
        if let Some(sub) = a.subresource {
            fields.insert("subResource".into(), sub.into());
            fields.insert("requestSubResource".into(), sub.into());
        }
    }
    request
}

/// `obj` with a webhook's JSON patch applied, decoded again as its kind (and
/// defaulted, as kube-apiserver decodes a patched object).
fn patched(hook: &Hook<'_>, obj: &AnyObject, patch: &[u8]) -> ApiResult<AnyObject> {
    let kind = obj.kind();
    let mut value = obj.to_value();
    let limits = rk8s_api::patch::Limits::default();
    rk8s_api::patch::apply(rk8s_api::patch::PatchType::Json, &mut value, patch, &limits)
        .map_err(|e| failed(&bad_patch(hook, &e.to_string())))?;
    let mut new = AnyObject::from_value(&kind, value)
        .ok_or_else(ApiError::no_route)?
        .map_err(|e| failed(&bad_patch(hook, &format!("at {}: {}", e.path(), e.inner()))))?;
    rk8s_api::defaults::apply_defaults(&mut new);
    Ok(new)
}

fn bad_patch(hook: &Hook<'_>, why: &str) -> CallError {
    CallError {
        webhook: hook.name.to_string(),
        reason: format!("the patch does not apply: {why}"),
    }
}

/// A call that failed under `failurePolicy: Fail`: 500, kube's wording.
fn failed(e: &CallError) -> ApiError {
    ApiError::internal(format!("Internal error occurred: {e}"))
}

/// kube's `ToStatusErr`: the webhook's status, at least 400, its message after
/// `admission webhook "NAME" denied the request`.
pub fn denied(webhook: &str, status: Option<&Value>) -> ApiError {
    let field = |f: &str| {
        status
            .and_then(|s| s.get(f))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let code = status
        .and_then(|s| s.get("code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .and_then(|c| http::StatusCode::from_u16(c).ok())
        .unwrap_or(http::StatusCode::BAD_REQUEST);
    let denied_by = format!("admission webhook {webhook:?} denied the request");
    let message = match (field("message"), field("reason")) {
        (m, _) if !m.is_empty() => format!("{denied_by}: {m}"),
        (_, r) if !r.is_empty() => format!("{denied_by}: {r}"),
        _ => format!("{denied_by} without explanation"),
    };
    ApiError::new(code, known_reason(field("reason")), message)
}

/// A webhook's `reason`, when it is one of Kubernetes' `StatusReason`s.
fn known_reason(reason: &str) -> &'static str {
    const REASONS: &[&str] = &[
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    REASONS.iter().copied().find(|r| *r == reason).unwrap_or("")
}
