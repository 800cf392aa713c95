//! Server-side apply and managedFields over HTTP: `PATCH` with
//! `application/apply-patch+yaml` and `?fieldManager=&force=`, and the managedFields
//! every create, update and patch keeps. The logic is [`rk8s_api::apply`]; this module
//! reads the request's options, answers kube-apiserver's statuses, and hands the
//! verbs what to store.

use bytes::Bytes;
use http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ManagedFieldsEntry, StatusCause, StatusDetails,
};
use rk8s_api::AnyObject;
use rk8s_api::apply::{self as ssa, ApplyError, ApplyRequest, Conflicts, ListTypes};
use serde_json::Value;

use crate::call::Call;
use crate::decode::{FieldValidation, parse_body};
use crate::request::{Query, Verb};
use crate::status::{ApiError, ApiResult};

/// The media type of an apply patch.
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The manager of a write that names none and comes without a user agent.
pub const UNKNOWN_MANAGER: &str = "unknown";

/// Whether a `Content-Type` is the apply patch's.
pub fn is_apply(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or("").trim() == APPLY_PATCH
}

/// kube-apiserver's 422 for bad write options (`errors.NewInvalid` on
/// `PatchOptions.meta.k8s.io`, `CreateOptions`, `UpdateOptions`).
fn invalid_options(options: &str, field: &str, reason: &str, detail: &str) -> ApiError {
    let message = format!("{field}: {detail}");
    ApiError {
        details: Some(Box::new(StatusDetails {
            group: Some("meta.k8s.io".to_string()),
            kind: Some(options.to_string()),
            causes: Some(vec![StatusCause {
                field: Some(field.to_string()),
                message: Some(detail.to_string()),
                reason: Some(reason.to_string()),
            }]),
            ..StatusDetails::default()
        })),
        ..ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{options}.meta.k8s.io \"\" is invalid: {message}"),
        )
    }
}

/// The `fieldManager` of a request, checked as kube-apiserver checks it
/// (`ValidateFieldManager`): at most 128 bytes, printable characters only.
fn field_manager(query: &Query, options: &str) -> ApiResult<Option<String>> {
    let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    if manager.len() > ssa::MAX_MANAGER_LEN {
        return Err(invalid_options(
            options,
            "fieldManager",
            "FieldValueTooLong",
            &format!(
                "Too long: may not be more than {} bytes",
                ssa::MAX_MANAGER_LEN
            ),
        ));
    }
    if let Some(c) = manager.chars().find(|c| c.is_control()) {
        return Err(invalid_options(
            options,
            "fieldManager",
            "FieldValueInvalid",
            &format!(
                "Invalid value: {manager:?}: invalid character U+{:04X}",
                u32::from(c)
            ),
        ));
    }
    Ok(Some(manager.to_string()))
}

/// Checks the options of a non-apply patch: `force` belongs to apply alone.
pub fn check_patch_options(query: &Query) -> ApiResult<()> {
    field_manager(query, "PatchOptions")?;
    if query.get("force").is_some() {
        return Err(invalid_options(
            "PatchOptions",
            "force",
            "FieldValueForbidden",
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    Ok(())
}

/// kube-apiserver's 409 for apply conflicts: the message lists them, the causes hold
/// one `FieldManagerConflict` per field (`errors.NewApplyConflict`).
pub fn conflict_error(conflicts: &Conflicts) -> ApiError {
    let causes = conflicts
        .causes()
        .into_iter()
        .map(|c| StatusCause {
            field: Some(c.field),
            message: Some(c.message),
            reason: Some(c.reason.to_string()),
        })
        .collect();
    ApiError {
        details: Some(Box::new(StatusDetails {
            causes: Some(causes),
            ..StatusDetails::default()
        })),
        ..ApiError::new(StatusCode::CONFLICT, "Conflict", conflicts.to_string())
    }
}

/// Applies the apply patch `body` to `live` (the object, `{}` when there is none):
/// the object to store, its managedFields set.
pub fn apply_patch(
    live: &Value,
    body: &[u8],
    query: &Query,
    subresource: Option<&str>,
) -> ApiResult<Value> {
    let Some(manager) = field_manager(query, "PatchOptions")? else {
        return Err(invalid_options(
            "PatchOptions",
            "fieldManager",
            "FieldValueRequired",
            "Required value: is required for apply patch",
        ));
    };
    let force = match query.get("force") {
        None | Some("") | Some("false") | Some("0") | Some("False") => false,
        Some(v) if rk8s_http::query::is_true(v) => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "force: invalid value {other:?}: must be true or false"
            )));
        }
    };
    // YAML holds JSON: one parser reads both.
    let applied = parse_body("application/yaml", body, FieldValidation::Ignore)?.value;
    undeclared(&applied)?;
    let managed: Vec<ManagedFieldsEntry> = live
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    let now = crate::strategy::now();
    let out = ssa::apply(
        list_types(&applied),
        &ApplyRequest {
            live,
            applied: &applied,
            manager: &manager,
            subresource: subresource.unwrap_or(""),
            force,
            managed: &managed,
            now: &now,
        },
    )
    .map_err(|e| match e {
        ApplyError::Conflicts(c) => conflict_error(&c),
        other => ApiError::bad_request(other.to_string()),
    })?;
    // As for every patch: no object larger than a request could carry.
    let size = serde_json::to_vec(&out.object).map_or(usize::MAX, |b| b.len());
    if size > crate::decode::MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!(
                "Request entity too large: the patched object is larger than the limit of {} bytes",
                crate::decode::MAX_BODY
            ),
        ));
    }
    Ok(out.object)
}

/// kube-apiserver's refusal of an applied configuration of a built-in kind that has
/// fields its kind does not declare, whatever `fieldValidation` says (smd's typed
/// conversion fails; kube answers 500 without a reason, kubernetes/kubernetes#122480):
/// `failed to create typed patch object (default/web; /v1, Kind=ConfigMap): .foo:
/// field not declared in schema`. Custom kinds are pruned by their schema instead.
fn undeclared(applied: &Value) -> ApiResult<()> {
    let field = |name: &str| {
        applied
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (api_version, kind_name) = (field("apiVersion"), field("kind"));
    let Some(kind) = rk8s_api::object::kind_for(api_version, kind_name) else {
        return Ok(());
    };
    let Some(Ok(typed)) = AnyObject::from_value_ref(&kind, applied) else {
        return Ok(());
    };
    let mut unknown = Vec::new();
    let root = rk8s_api::FieldPath::root();
    rk8s_api::path::unknown_fields(applied, &typed.to_value(), &root, &mut unknown);
    if unknown.is_empty() {
        return Ok(());
    }
    let paths: Vec<rk8s_api::FieldPath> = unknown.into_iter().map(|(p, _)| p).collect();
    let meta = |name: &str| {
        applied
            .get("metadata")
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    Err(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "",
        format!(
            "failed to create typed patch object ({}/{}; {}/{}, Kind={kind_name}): {}",
            meta("namespace"),
            meta("name"),
            kind.group,
            kind.version,
            ssa::typed::not_declared(&paths, applied, list_types(applied))
        ),
    ))
}

/// The list types of the object `v`'s kind: built in, or those of a custom resource.
fn list_types(v: &Value) -> &'static dyn ListTypes {
    let field = |name: &str| v.get(name).and_then(Value::as_str).unwrap_or_default();
    ssa::list_types_for(field("apiVersion"), field("kind"))
}

/// The create an apply of an object that does not exist makes: `c` with the applied
/// object (its name the URL's) as a JSON body.
pub fn create_call<'a>(c: &Call<'a>) -> ApiResult<Call<'a>> {
    let name = c.req.name().to_string();
    let mut object = apply_patch(
        &Value::Object(Default::default()),
        &c.body,
        c.query,
        c.req.subresource.as_deref(),
    )?;
    let meta = object
        .as_object_mut()
        .and_then(|o| {
            o.entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()))
                .as_object_mut()
        })
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    match meta.get("name").and_then(Value::as_str) {
        None | Some("") => {
            meta.insert("name".to_string(), Value::String(name));
        }
        Some(n) if n == name => {}
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
    }
    let body = serde_json::to_vec(&object).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Call {
        identity: c.identity,
        access: c.access.clone(),
        req: c.req,
        query: c.query,
        body: Bytes::from(body),
        content_type: "application/json".to_string(),
        user_agent: c.user_agent.clone(),
    })
}

/// Sets the managedFields of `new`, written by a create (`old` `None`), update or
/// non-apply patch: the fields it changed become the request's `fieldManager`'s. An
/// apply has set them already.
pub fn record_write(
    c: &Call<'_>,
    old: Option<&AnyObject>,
    new: &mut AnyObject,
    subresource: Option<&str>,
) -> ApiResult<()> {
    if c.req.verb == Verb::Patch && is_apply(&c.content_type) {
        return Ok(());
    }
    // The create an apply makes (see `create_call`) has its managedFields.
    if c.req.verb == Verb::Patch && old.is_none() {
        return Ok(());
    }
    let options = match (old, c.req.verb) {
        (None, _) => "CreateOptions",
        (Some(_), Verb::Patch) => "PatchOptions",
        _ => "UpdateOptions",
    };
    // kube-apiserver names a write without `fieldManager` after its user agent's
    // first word.
    let manager = field_manager(c.query, options)?.unwrap_or_else(|| {
        c.user_agent
            .as_deref()
            .map(ssa::manager_from_user_agent)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| UNKNOWN_MANAGER.to_string())
    });
    let plain = |v: &mut Value| {
        if let Some(Value::Object(meta)) = v.get_mut("metadata") {
            meta.remove("managedFields");
        }
    };
    let old_value = old.map(AnyObject::to_value).unwrap_or_default();
    let new_value = new.to_value();
    let prior = ssa::prior_managed_fields(&old_value, &new_value);
    let (mut old_plain, mut new_plain) = (old_value, new_value);
    plain(&mut old_plain);
    plain(&mut new_plain);
    if old_plain.is_null() {
        old_plain = Value::Object(Default::default());
    }
    let entries = ssa::update_managed_fields(
        list_types(&new_plain),
        &old_plain,
        &new_plain,
        &manager,
        subresource.unwrap_or(""),
        &prior,
        &crate::strategy::now(),
    );
    new.metadata_mut().managed_fields = (!entries.is_empty()).then_some(entries);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query(q: &str) -> Query {
        Query::parse(Some(q))
    }

    #[test]
    fn an_apply_without_a_field_manager_is_refused_with_kube_apiserver_words() {
        let e = apply_patch(&json!({}), b"{}", &query(""), None).unwrap_err();
        assert_eq!(e.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            e.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
        let details = e.to_status().details.unwrap();
        assert_eq!(details.kind.as_deref(), Some("PatchOptions"));
        let cause = &details.causes.unwrap()[0];
        assert_eq!(cause.reason.as_deref(), Some("FieldValueRequired"));
        assert_eq!(cause.field.as_deref(), Some("fieldManager"));
    }

    #[test]
    fn force_is_refused_on_other_patches() {
        let e = check_patch_options(&query("force=true")).unwrap_err();
        assert_eq!(e.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(check_patch_options(&query("fieldManager=x")).is_ok());
    }

    #[test]
    fn a_conflict_answers_409_with_one_cause_per_field() {
        let live = apply_patch(
            &json!({}),
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1'}\n",
            &query("fieldManager=one"),
            None,
        )
        .unwrap();
        let body = br#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}}"#;
        let e = apply_patch(&live, body, &query("fieldManager=two"), None).unwrap_err();
        assert_eq!(e.code, StatusCode::CONFLICT);
        assert_eq!(e.reason, "Conflict");
        assert_eq!(
            e.message,
            r#"Apply failed with 1 conflict: conflict with "one": .data.a"#
        );
        let causes = e.to_status().details.unwrap().causes.unwrap();
        assert_eq!(causes[0].reason.as_deref(), Some("FieldManagerConflict"));
        assert_eq!(causes[0].field.as_deref(), Some(".data.a"));
        let forced = apply_patch(&live, body, &query("fieldManager=two&force=true"), None).unwrap();
        assert_eq!(forced["data"]["a"], "2");
    }

    #[test]
    fn an_apply_may_not_make_an_object_larger_than_a_request() {
        let half = "x".repeat(crate::decode::MAX_BODY / 2 + 10);
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"a": half}});
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"b": half}});
        let e = apply_patch(
            &live,
            body.to_string().as_bytes(),
            &query("fieldManager=me"),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn only_the_apply_media_type_is_apply() {
        assert!(is_apply("application/apply-patch+yaml; charset=utf-8"));
        assert!(!is_apply("application/merge-patch+json"));
    }
}
