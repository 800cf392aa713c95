//! Errors as the Kubernetes API returns them ([`rk8s_http::status`]), and what the
//! store's errors become.

use rk8s_api::ObjectKind;
use rk8s_raftstore::Error as StoreError;

pub use rk8s_http::status::{ApiError, ApiResult, qualified, success};

/// A store error met while working on an object of `kind` named `name`.
pub fn store_error(kind: &ObjectKind, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { .. } => ApiError::modified(kind, name),
        StoreError::Compacted {
            requested,
            compact_revision,
        } => ApiError::gone(format!(
            "too old resource version: {requested} ({compact_revision})"
        )),
        StoreError::FutureRevision { requested, current } => ApiError::timeout(format!(
            "Too large resource version: {requested}, current: {current}"
        )),
        StoreError::NotLeader { .. } => {
            ApiError::unavailable(format!("the store has no leader yet, try again: {e}"))
        }
        StoreError::Timeout(_) => ApiError::timeout(e.to_string()),
        StoreError::Unavailable(_) => ApiError::unavailable(e.to_string()),
        StoreError::Transform { .. } => ApiError::internal(format!("Internal error occurred: {e}")),
        other => ApiError::internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use rk8s_api::object::kind_named;

    #[test]
    fn store_errors_map_to_kubernetes_codes() {
        let d = kind_named("Deployment").unwrap();
        let conflict = StoreError::Conflict {
            key: "k".into(),
            expected: 3,
            actual: 4,
            revision: 9,
        };
        let e = store_error(&d, "web", conflict);
        assert_eq!(e.code, StatusCode::CONFLICT);
        assert!(
            e.message.contains("deployments.apps \"web\""),
            "{}",
            e.message
        );
        let gone = StoreError::Compacted {
            requested: 2,
            compact_revision: 5,
        };
        assert_eq!(store_error(&d, "", gone).code, StatusCode::GONE);
        let no_leader = StoreError::NotLeader { leader: None };
        assert_eq!(
            store_error(&d, "", no_leader).code,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
