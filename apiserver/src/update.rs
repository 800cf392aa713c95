//! PUT and PATCH of an object or its `status` or `scale`: each attempt of the
//! read-modify-write turns the current object into the asked one and runs it through
//! admission (webhooks included, so an attempt may wait), retried when another writer
//! wins the race.

use std::sync::Mutex;

use rk8s_api::AnyObject;
use serde_json::Value;

use crate::admission;
use crate::auth::check_access;
use crate::call::Call;
use crate::decode::{
    Brought, Duplicate, FieldValidation, decode_value, field_validation, parse_body, reworded,
};
use crate::handlers::{Body, Handlers, Reply, dry_run, node_of};
use crate::registry::{Change, Updated, parse_resource_version};
use crate::request::Verb;
use crate::status::{ApiError, ApiResult};
use crate::webhooks::Attempt;
use crate::webhooks::matching::Operation;

/// What an update asks for, the same on every attempt.
struct Asked<'a> {
    c: &'a Call<'a>,
    /// The body of a PUT (a patch is applied to each attempt's current object).
    body: Option<Value>,
    duplicates: Vec<Duplicate>,
    mode: FieldValidation,
    dry: bool,
    name: String,
    pod_security: crate::pod_security::Context,
    /// Which part of the object the write changes.
    part: admission::Part,
    /// The last attempt's warnings.
    warnings: Mutex<Vec<String>>,
}

impl Handlers {
    /// PUT or PATCH of an object or its `status` or `scale`.
    pub async fn update(&self, c: &Call<'_>) -> ApiResult<Reply> {
        let req = c.req;
        let sub = req.subresource.as_deref();
        let Some(part) = admission::Part::of(&req.kind, sub) else {
            return Err(ApiError::no_route());
        };
        // A namespace's finalizers are replaced, never patched (kube's `FinalizeREST`
        // is an `Updater` alone).
        if part == admission::Part::Finalize && c.req.verb == Verb::Patch {
            return Err(ApiError::method_not_allowed("patch", "namespaces/finalize"));
        }
        // Custom resources have no patch strategy: kube-apiserver takes no strategic
        // merge patch of them.
        if c.req.verb == Verb::Patch
            && req.kind.custom
            && c.content_type
                .split(';')
                .next()
                .is_some_and(|t| t.trim() == "application/strategic-merge-patch+json")
        {
            return Err(ApiError::unsupported_media_type(
                &c.content_type,
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                ],
            ));
        }
        let mode = field_validation(c.query)?;
        let (body, duplicates) = if c.req.verb == Verb::Patch {
            (None, Vec::new())
        } else {
            let parsed = parse_body(&c.content_type, &c.body, mode)
                .map_err(|e| reworded(e, Brought::Body(&c.req.kind)))?;
            (Some(parsed.value), parsed.duplicates)
        };
        let asked = Asked {
            c,
            body,
            duplicates,
            mode,
            dry: dry_run(c.query)?,
            name: req.name().to_string(),
            pod_security: crate::pod_security::Context::read(&self.registry, req, None).await?,
            part,
            warnings: Mutex::default(),
        };
        let outcome = self
            .registry
            .update_waiting(
                &req.kind,
                req.namespace.as_deref(),
                &asked.name,
                |current| self.attempt(&asked, current),
            )
            .await;
        // An apply of an object that does not exist creates it.
        let outcome = match outcome {
            Err(e)
                if e.code == http::StatusCode::NOT_FOUND
                    && sub.is_none()
                    && crate::apply::is_apply(&c.content_type) =>
            {
                return self.create(&crate::apply::create_call(c)?).await;
            }
            other => other,
        };
        let obj = match outcome? {
            Updated::Replaced(o) | Updated::Unchanged(o) | Updated::Deleted(o, _) => o,
        };
        let warnings = std::mem::take(
            &mut *asked
                .warnings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        Ok(match sub {
            Some("scale") => Reply {
                code: http::StatusCode::OK,
                body: Body::Value(self.scale_of(&obj)?),
                warnings,
            },
            _ => Reply::object(http::StatusCode::OK, obj, warnings),
        })
    }

    /// One attempt: `current` made into what the caller asks, admitted.
    async fn attempt(&self, asked: &Asked<'_>, current: AnyObject) -> ApiResult<Change> {
        let (c, name, part) = (asked.c, asked.name.as_str(), asked.part);
        let req = c.req;
        let kind = req.kind;
        let sub = req.subresource.as_deref();
        check_access(&c.access, c.identity, req, name, node_of(&current))?;
        let current_rv = current.metadata().resource_version.clone();
        // The new state the caller asks for, in the shape of the subresource.
        let shown = match sub {
            Some("scale") => self.scale_of(&current)?,
            _ => current.to_value(),
        };
        let wanted = match &asked.body {
            Some(b) => b.clone(),
            None => {
                let mut patched = shown;
                crate::patch::apply_request(&c.content_type, &mut patched, &c.body, c.query, sub)?;
                patched
            }
        };
        let mut warnings = Vec::new();
        let mut new = match sub {
            Some("scale") => self.with_replicas(&current, &wanted)?,
            _ => {
                let decoded = decode_value(&kind, &wanted, &asked.duplicates, asked.mode);
                let (new, w) = decoded.map_err(|e| match &asked.body {
                    Some(_) => reworded(e, Brought::Body(&kind)),
                    None if crate::apply::is_apply(&c.content_type) => e,
                    None => reworded(e, Brought::Patch(&wanted)),
                })?;
                warnings = w;
                new
            }
        };
        let asked_rv = match sub {
            Some("scale") => scale_rv(&c.body, &asked.body),
            _ => new.metadata().resource_version.clone(),
        };
        if let Some(rv) = asked_rv.filter(|rv| !rv.is_empty())
            && Some(&rv) != current_rv.as_ref()
        {
            parse_resource_version(&rv)?;
            return Err(ApiError::modified(&kind, name));
        }
        let meta = new.metadata();
        if let Some(other) = meta.name.as_deref().filter(|n| !n.is_empty() && *n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({other}) does not match the name on the URL ({name})"
            )));
        }
        if kind.is_namespaced()
            && meta
                .namespace
                .as_deref()
                .is_some_and(|n| !n.is_empty() && Some(n) != req.namespace.as_deref())
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        new.metadata_mut().resource_version = current_rv;
        admission::mutate_update(&mut new, &current, part, &self.custom)?;
        if sub.is_none() {
            crate::limit_ranger::admit(&self.listers.limit_ranges, &mut new, true)?;
            crate::priority::admit(&self.listers.priority_classes, &mut new, Some(&current))?;
            // kube's plugin runs on updates too: a removed default toleration comes back.
            let seconds = self.default_tolerations.get().copied().unwrap_or_default();
            crate::default_tolerations::admit(&mut new, seconds);
        }
        // Webhooks see what the plugins made of the object (not `scale` writes).
        let webhooks = Attempt {
            operation: Operation::Update,
            kind,
            subresource: sub,
            namespace: req.namespace.as_deref(),
            name,
            identity: c.identity,
            dry_run: asked.dry,
            old: Some(&current),
        };
        if sub != Some("scale") {
            let mutated = self.mutating_webhooks(&webhooks, &mut new).await?;
            warnings.extend(mutated.warnings);
            if mutated.patched {
                admission::after_webhooks_update(&mut new, &current, part)?;
            }
        }
        admission::validate(c.identity, &new, Some(&current), part, None, &self.custom)?;
        // CertificateApproval: approving needs `approve` on the request's signer.
        if part == admission::Part::Approval
            && let Some((signers, refusal)) = crate::certificates::approval_signers(&new)
        {
            let mut allowed = false;
            for name in &signers {
                let approve = crate::rbac::authorizer::Attributes {
                    verb: "approve",
                    namespace: None,
                    target: crate::rbac::authorizer::Target::Resource {
                        group: crate::certificates::GROUP,
                        resource: "signers",
                        subresource: None,
                        name: Some(name),
                    },
                };
                allowed = allowed || self.may(c.identity, &approve)?;
            }
            if !allowed {
                return Err(refusal);
            }
        }
        let decision = asked.pod_security.admit(&new, Some(&current))?;
        crate::audit::annotate(&decision.audit_annotations);
        warnings.extend(decision.warnings);
        self.confirm_no_escalation(c.identity, &new)?;
        if sub != Some("scale") {
            warnings.extend(self.validating_webhooks(&webhooks, Some(&new)).await?);
        }
        *asked
            .warnings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = warnings;
        crate::apply::record_write(c, Some(&current), &mut new, sub)?;
        // Unchanged, unless stored under an older encryption key: then written again
        // (kube's stale transformation), so a replace of everything moves it all.
        if new == current && !self.stale(&current).await? {
            return Ok(Change::Unchanged);
        }
        // The last finalizer gone: the object goes, but a pod only once its node has
        // confirmed (or it never needed to: grace period 0).
        let meta = new.metadata();
        if meta.deletion_timestamp.is_some()
            && meta.finalizers.as_ref().is_none_or(Vec::is_empty)
            && (!matches!(new, AnyObject::Pod(_)) || meta.deletion_grace_period_seconds == Some(0))
            && crate::strategy::namespace::may_go_on_update(&new)
        {
            if asked.dry {
                return Ok(Change::DryRun(new));
            }
            // A namespace's content goes with it, in the same transaction.
            if matches!(new, AnyObject::Namespace(_)) {
                return Ok(Change::DeleteWith(current, self.sweep_ops(name)));
            }
            return Ok(Change::Delete(current));
        }
        if sub.is_none() {
            // Last, as kube-apiserver runs it, once nothing else can refuse the write:
            // only what grows is charged.
            let quotas = &self.listers.resource_quotas;
            crate::resource_quota::admit(&self.registry, quotas, &new, Some(&current), asked.dry)
                .await?;
        }
        if asked.dry {
            return Ok(Change::DryRun(new));
        }
        Ok(Change::Replace(new))
    }
}

impl Handlers {
    /// Whether `current` is stored with another encryption key or provider than a
    /// write uses now.
    async fn stale(&self, current: &AnyObject) -> ApiResult<bool> {
        let revision = current
            .metadata()
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse().ok())
            .unwrap_or(0);
        self.registry
            .store()
            .is_stale(current.storage_key().as_bytes(), revision)
            .await
            .map_err(|e| crate::status::store_error(&current.kind(), current.name(), e))
    }
}

/// The resourceVersion a `Scale` body carries.
fn scale_rv(raw: &[u8], body: &Option<Value>) -> Option<String> {
    let v = match body {
        Some(b) => b.clone(),
        None => serde_json::from_slice::<Value>(raw).ok()?,
    };
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
}
