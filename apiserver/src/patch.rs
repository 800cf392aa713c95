//! PATCH bodies over HTTP: the patch logic lives in [`rk8s_api::patch`]; this module
//! applies it under the server's request size limit and answers its errors with the
//! status kube-apiserver answers. Apply patches go to [`crate::apply`].

use http::StatusCode;
use rk8s_api::patch::{self as api_patch, Limits, PatchError, PatchType};
use serde_json::Value;

use crate::request::Query;
use crate::status::{ApiError, ApiResult};

/// The patch formats the server takes: [`rk8s_api::patch`]'s and server-side apply.
pub const PATCH_TYPES: &[&str] = &[
    api_patch::PATCH_TYPES[0],
    api_patch::PATCH_TYPES[1],
    api_patch::PATCH_TYPES[2],
    crate::apply::APPLY_PATCH,
];

/// Applies the body of a PATCH request to `target`: a server-side apply for
/// [`crate::apply::APPLY_PATCH`] (options `fieldManager` and `force` from `query`),
/// else a patch of `content_type` (see [`apply`]). On error `target` is to be dropped.
pub fn apply_request(
    content_type: &str,
    target: &mut Value,
    body: &[u8],
    query: &Query,
    subresource: Option<&str>,
) -> ApiResult<()> {
    if crate::apply::is_apply(content_type) {
        *target = crate::apply::apply_patch(target, body, query, subresource)?;
        return Ok(());
    }
    crate::apply::check_patch_options(query)?;
    apply(content_type, target, body)
}

/// Applies a patch of `content_type` to `target`; on error `target` may be partly
/// patched and is to be dropped.
pub fn apply(content_type: &str, target: &mut Value, body: &[u8]) -> ApiResult<()> {
    let limits = Limits {
        // A patch may not make an object larger than a request could carry.
        max_object_bytes: crate::decode::MAX_BODY,
        ..Limits::default()
    };
    PatchType::from_content_type(content_type)
        .and_then(|kind| api_patch::apply(kind, target, body, &limits))
        .map_err(to_api_error)
}

/// The status kube-apiserver answers for each patch error
/// (`staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go`).
fn to_api_error(e: PatchError) -> ApiError {
    match e {
        PatchError::UnsupportedMediaType { content_type } => {
            ApiError::unsupported_media_type(&content_type, PATCH_TYPES)
        }
        PatchError::BadRequest(message) => ApiError::bad_request(message),
        e @ (PatchError::Invalid(_)
        | PatchError::CopyLimitExceeded { .. }
        | PatchError::TooDeep { .. }) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e.to_string())
        }
        // `errors.NewRequestEntityTooLargeError` prefixes its message so.
        e @ (PatchError::TooManyOperations { .. } | PatchError::TooLarge { .. }) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("Request entity too large: {e}"),
        ),
        // kube-apiserver passes these strategic merge errors through untyped: a 500
        // with no reason (`StatusReasonUnknown`).
        PatchError::BadDirective(message) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "", message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(content_type: &str, body: &[u8]) -> u16 {
        let mut t = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}});
        apply(content_type, &mut t, body).unwrap_err().code.as_u16()
    }

    #[test]
    fn patch_errors_answer_kube_apiserver_statuses() {
        let json = "application/json-patch+json";
        assert_eq!(code("application/apply-patch+yaml", b"{}"), 415);
        assert_eq!(code("application/merge-patch+json", b"[1]"), 400);
        assert_eq!(
            code(
                json,
                br#"[{"op": "test", "path": "/spec/replicas", "value": 2}]"#
            ),
            422
        );
        let many = json!(vec![
            json!({"op": "test", "path": "/spec/replicas", "value": 1});
            10_001
        ]);
        let mut t = json!({"spec": {"replicas": 1}});
        let e = apply(json, &mut t, many.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.code, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.reason, "RequestEntityTooLarge");
        assert_eq!(
            e.message,
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
        let big = json!({"metadata": {"annotations": {"a": "x".repeat(crate::decode::MAX_BODY)}}});
        assert_eq!(
            code("application/merge-patch+json", big.to_string().as_bytes()),
            413
        );
        assert_eq!(
            code(
                "application/strategic-merge-patch+json",
                br#"{"metadata": {"$patch": "explode"}}"#
            ),
            500
        );
    }

    #[test]
    fn an_apply_patch_goes_to_server_side_apply() {
        let mut t = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let q = Query::parse(Some("fieldManager=me"));
        let body = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n";
        apply_request("application/apply-patch+yaml", &mut t, body, &q, None).unwrap();
        assert_eq!(t["data"]["a"], "b");
        assert_eq!(t["metadata"]["managedFields"][0]["manager"], "me");
        let e = apply_request(
            "application/merge-patch+json",
            &mut t,
            b"{}",
            &Query::parse(Some("force=true")),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code.as_u16(), 422);
    }

    #[test]
    fn copy_bomb_is_invalid() {
        let mut ops = vec![json!({"op": "add", "path": "/metadata/annotations",
                                  "value": {"a": "x".repeat(1000)}})];
        for n in 0..30 {
            ops.push(json!({"op": "copy", "from": "/metadata/annotations",
                            "path": format!("/metadata/annotations/c{n}")}));
        }
        let mut t = json!({"metadata": {"name": "web"}});
        let e = apply(
            "application/json-patch+json",
            &mut t,
            json!(ops).to_string().as_bytes(),
        )
        .unwrap_err();
        assert_eq!((e.code.as_u16(), e.reason), (422, "Invalid"));
        assert!(
            e.message.starts_with("Unable to complete the copy"),
            "{}",
            e.message
        );
    }
}
