//! Admission, the step of a write between authorization and the store, as
//! kube-apiserver runs it: mutating admission (the fields the server owns, from the
//! kind's strategy, then Kubernetes' defaults), then validating admission
//! (NodeRestriction for node credentials, then the object's validation and, for an
//! update, what may not change).
//!
//! A write's pipeline: decode ([`crate::decode`]) → authenticate and authorize
//! ([`crate::auth`]) → [`mutate_create`] / [`mutate_update`] → [`validate`] → store
//! ([`crate::registry`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use rk8s_api::AnyObject;
use rk8s_api::defaults::apply_defaults;
use rk8s_api::validation::validate as validate_object;

use crate::auth::Identity;
use crate::custom::CustomKinds;
use crate::status::{ApiError, ApiResult};
use crate::strategy;

pub use crate::strategy::Part;

/// Mutating admission of a new object: identity, generation, cleared status, defaults
/// (for a custom object: unknown fields pruned, then its schema's defaults; for a CRD:
/// the status that says whether its names are accepted and it is served). Returns
/// warnings for pruned fields.
pub fn mutate_create(obj: &mut AnyObject, custom: &CustomKinds) -> ApiResult<Vec<String>> {
    strategy::prepare_create(obj);
    apply_defaults(obj);
    crate::custom::admission::mutate_definition(obj, None, custom);
    crate::custom::admission::mutate(obj, custom)
}

/// Mutating admission of an update of `part` of `current` to `new`.
pub fn mutate_update(
    new: &mut AnyObject,
    current: &AnyObject,
    part: Part,
    custom: &CustomKinds,
) -> ApiResult<Vec<String>> {
    prepare_update(new, current, part);
    apply_defaults(new);
    if part == Part::Main {
        crate::custom::admission::mutate_definition(new, Some(current), custom);
    }
    crate::custom::admission::mutate(new, custom)
}

/// The object's namespace still the request's: a mutating webhook may not move it
/// (kube's `EnsureObjectNamespaceMatchesRequestNamespace`).
fn same_namespace(obj: &AnyObject, namespace: Option<&str>) -> ApiResult<()> {
    if obj.kind().is_namespaced() && obj.namespace() != namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// After mutating webhooks patched a new object: kube-apiserver prepares an object for
/// the store (`BeforeCreate`) after mutating admission, so what the server owns is set
/// again (status, generation; identity and creation time kept) and the object must
/// still be in the request's namespace.
pub fn after_webhooks_create(obj: &mut AnyObject, namespace: Option<&str>) -> ApiResult<()> {
    same_namespace(obj, namespace)?;
    let meta = obj.metadata();
    let (uid, created) = (meta.uid.clone(), meta.creation_timestamp.clone());
    strategy::prepare_create(obj);
    let meta = obj.metadata_mut();
    meta.uid = uid;
    meta.creation_timestamp = created;
    Ok(())
}

/// After mutating webhooks patched an update of `part` of `current`: the update
/// prepared again (`BeforeUpdate`: generation, what a `status` write may not touch),
/// the object still at the request's namespace and name.
pub fn after_webhooks_update(
    new: &mut AnyObject,
    current: &AnyObject,
    part: Part,
) -> ApiResult<()> {
    same_namespace(new, current.namespace())?;
    if new.name() != current.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            new.name(),
            current.name()
        )));
    }
    prepare_update(new, current, part);
    Ok(())
}

/// What an update of `part` may change: kube's `PrepareForUpdate` of the kind's
/// strategy for that subresource.
fn prepare_update(new: &mut AnyObject, current: &AnyObject, part: Part) {
    match part {
        Part::Status | Part::Approval => strategy::prepare_status_update(new, current),
        Part::Main => {
            strategy::prepare_update(new, current);
            strategy::namespace::keep_finalizers(new, current);
        }
        Part::Finalize => strategy::prepare_update(new, current),
        Part::EphemeralContainers => strategy::ephemeral::prepare_update(new, current),
    }
    crate::certificates::prepare_update(new, current, part);
}

/// Validating admission of `new` (replacing `old`, for an update) written by
/// `identity`: NodeRestriction for a node's own Node (`assigned_cidr`: the podCIDR
/// its join gave it), then validation.
pub fn validate(
    identity: &Identity,
    new: &AnyObject,
    old: Option<&AnyObject>,
    part: Part,
    assigned_cidr: Option<&str>,
    custom: &CustomKinds,
) -> ApiResult<()> {
    if let (Identity::Node(node), AnyObject::Node(n)) = (identity, new) {
        let old = match old {
            Some(AnyObject::Node(o)) => Some(o.as_ref()),
            _ => None,
        };
        crate::node_restriction::admit_node(node, old, n, assigned_cidr)?;
    }
    let mut errors = validate_object(new);
    errors.extend(crate::custom::admission::validate(new, custom));
    errors.extend(crate::custom::admission::validate_definition(new, old));
    errors.extend(crate::certificates::validate(new, old, part));
    match (old, part) {
        (None, _) => {
            errors.extend(strategy::ephemeral::validate_create(new));
            errors.extend(rk8s_api::validation::namespace_finalizers(new));
        }
        (Some(_), Part::Finalize) => {
            errors.extend(rk8s_api::validation::namespace_finalizers(new));
        }
        (Some(old), Part::EphemeralContainers) => {
            errors.extend(strategy::ephemeral::validate_update(new, old));
        }
        (Some(old), _) => errors.extend(strategy::validate_update(new, old)),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&new.kind(), new.name(), &errors))
    }
}

/// NamespaceLifecycle on a create of `kind` `name` in `namespace` (the stored one; a
/// subresource's create too: a binding, an eviction, a token): refused while it
/// terminates, in kube's words.
pub fn namespace_lifecycle(
    namespace: &AnyObject,
    kind: &rk8s_api::ObjectKind,
    name: &str,
) -> ApiResult<()> {
    if !strategy::namespace::is_terminating(namespace) {
        return Ok(());
    }
    let ns = namespace.name();
    let mut e = ApiError::forbidden(format!(
        "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
        crate::status::qualified(kind, name)
    ));
    e.details = Some(Box::new(StatusDetails {
        group: Some(kind.group.to_string()),
        kind: Some(kind.plural.to_string()),
        name: Some(name.to_string()),
        causes: Some(vec![StatusCause {
            reason: Some("NamespaceTerminating".into()),
            message: Some(format!("namespace {ns} is being terminated")),
            field: Some("metadata.namespace".into()),
        }]),
        ..StatusDetails::default()
    }));
    Err(e)
}
