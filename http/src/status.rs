//! Errors as the Kubernetes API returns them: a `Status` object whose `code` is the
//! HTTP status and whose `reason` clients switch on (`NotFound`, `Conflict`, ...).

use http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use rk8s_api::ObjectKind;
use rk8s_api::validation::{FieldError, Reason};

/// An error answer: HTTP status, Kubernetes reason, message and optional details.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub code: StatusCode,
    /// Kubernetes' `StatusReason` (`NotFound`, `AlreadyExists`, ...).
    pub reason: &'static str,
    /// What a user reads.
    pub message: String,
    /// Which object, and for `Invalid`, one cause per field.
    pub details: Option<Box<StatusDetails>>,
}

/// `Result` with an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

fn details(kind: &ObjectKind, name: &str) -> Option<Box<StatusDetails>> {
    Some(Box::new(StatusDetails {
        group: Some(kind.group.to_string()),
        kind: Some(kind.plural.to_string()),
        name: Some(name.to_string()),
        ..StatusDetails::default()
    }))
}

/// `pods "web"`, `deployments.apps "web"`: how Kubernetes names an object in messages.
pub fn qualified(kind: &ObjectKind, name: &str) -> String {
    if kind.group.is_empty() {
        format!("{} \"{name}\"", kind.plural)
    } else {
        format!("{}.{} \"{name}\"", kind.plural, kind.group)
    }
}

impl ApiError {
    /// An error with this status code, Kubernetes reason and message.
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 401: no valid credentials.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// 403: the caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 404 for an object.
    pub fn not_found(kind: &ObjectKind, name: &str) -> Self {
        ApiError {
            details: details(kind, name),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} not found", qualified(kind, name)),
            )
        }
    }

    /// 404 for a path the server does not serve.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 405: the resource does not support this verb.
    pub fn method_not_allowed(verb: &str, what: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource: {verb} on {what}"
            ),
        )
    }

    /// 409: an object of this name exists.
    pub fn already_exists(kind: &ObjectKind, name: &str) -> Self {
        ApiError {
            details: details(kind, name),
            ..Self::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} already exists", qualified(kind, name)),
            )
        }
    }

    /// 409: the object changed since the caller read it.
    pub fn conflict(kind: &ObjectKind, name: &str, why: &str) -> Self {
        ApiError {
            details: details(kind, name),
            ..Self::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {}: {why}",
                    qualified(kind, name)
                ),
            )
        }
    }

    /// 409 for a stale `resourceVersion`.
    pub fn modified(kind: &ObjectKind, name: &str) -> Self {
        Self::conflict(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 410: the resource version asked for has been compacted.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 415: a body or patch type the server does not take.
    pub fn unsupported_media_type(content_type: &str, supported: &[&str]) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type:?}); accepted media types include: {}",
                supported.join(", ")
            ),
        )
    }

    /// 422 with one cause per invalid field, worded as kube-apiserver's
    /// `errors.NewInvalid`: `Deployment.apps "web" is invalid: spec.replicas: Invalid
    /// value: -1: must be greater than or equal to 0` (several errors in brackets), the
    /// details naming the kind (kubectl prints `The Deployment "web" is invalid:`) and
    /// each cause its field and the message without it.
    pub fn invalid(kind: &ObjectKind, name: &str, errors: &[FieldError]) -> Self {
        let causes = errors
            .iter()
            .map(|e| StatusCause {
                field: (!e.path.is_root()).then(|| e.path.to_string()),
                message: Some(e.kubernetes_message_without_field()),
                reason: Some(
                    match e.reason {
                        Reason::Required => "FieldValueRequired",
                        Reason::Duplicate(_) => "FieldValueDuplicate",
                        Reason::NotSupported { .. } => "FieldValueNotSupported",
                        Reason::Forbidden(_) => "FieldValueForbidden",
                        Reason::Invalid { .. } | Reason::Message(_) => "FieldValueInvalid",
                    }
                    .to_string(),
                ),
            })
            .collect();
        let list: Vec<String> = errors.iter().map(FieldError::kubernetes_message).collect();
        let message = match list.len() {
            1 => list[0].clone(),
            _ => format!("[{}]", list.join(", ")),
        };
        let group_kind = if kind.group.is_empty() {
            kind.kind.to_string()
        } else {
            format!("{}.{}", kind.kind, kind.group)
        };
        ApiError {
            details: Some(Box::new(StatusDetails {
                group: Some(kind.group.to_string()),
                kind: Some(kind.kind.to_string()),
                name: Some(name.to_string()),
                causes: Some(causes),
                ..StatusDetails::default()
            })),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!("{group_kind} {name:?} is invalid: {message}"),
            )
        }
    }

    /// 429.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// 504.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", message)
    }

    /// The `Status` object sent as the body.
    pub fn to_status(&self) -> Status {
        Status {
            code: Some(i32::from(self.code.as_u16())),
            details: self.details.as_deref().cloned(),
            message: Some(self.message.clone()),
            // kube's `StatusReasonUnknown` is empty, and left out.
            reason: (!self.reason.is_empty()).then(|| self.reason.to_string()),
            status: Some("Failure".to_string()),
            metadata: Default::default(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.code.as_u16(),
            self.reason,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// A `Status` saying a request succeeded (the answer to a collection delete).
pub fn success() -> Status {
    Status {
        status: Some("Success".to_string()),
        ..Status::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk8s_api::FieldPath;
    use rk8s_api::object::kind_named;

    #[test]
    fn invalid_lists_one_cause_per_field() {
        let pod = kind_named("Pod").unwrap();
        let errs = vec![
            FieldError {
                path: FieldPath::root().key("spec").key("containers"),
                reason: Reason::Required,
            },
            FieldError {
                path: FieldPath::root().key("metadata").key("name"),
                reason: Reason::Duplicate("a".into()),
            },
        ];
        let e = ApiError::invalid(&pod, "web", &errs);
        assert_eq!(e.code, StatusCode::UNPROCESSABLE_ENTITY);
        let s = e.to_status();
        let causes = s.details.unwrap().causes.unwrap();
        assert_eq!(causes.len(), 2);
        assert_eq!(causes[0].field.as_deref(), Some("spec.containers"));
        assert_eq!(causes[0].reason.as_deref(), Some("FieldValueRequired"));
        assert_eq!(causes[0].message.as_deref(), Some("Required value"));
        assert_eq!(
            s.message.unwrap(),
            "Pod \"web\" is invalid: [spec.containers: Required value, metadata.name: Duplicate value: \"a\"]"
        );
        let d = kind_named("Deployment").unwrap();
        let e = ApiError::invalid(&d, "web", &errs[..1]).to_status();
        assert_eq!(
            e.message.unwrap(),
            "Deployment.apps \"web\" is invalid: spec.containers: Required value"
        );
        assert_eq!(e.details.unwrap().kind.as_deref(), Some("Deployment"));
    }
}
