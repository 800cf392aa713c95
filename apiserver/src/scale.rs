//! The `scale` subresource (autoscaling/v1 `Scale`) of every kind that has one: where
//! each keeps its desired and current replicas and its selector, read and written
//! through those paths so that one implementation serves Deployments, ReplicaSets,
//! StatefulSets, ReplicationControllers and custom resources alike.

use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec, ScaleStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use rk8s_api::{AnyObject, ObjectKind};
use serde_json::Value;

use crate::status::{ApiError, ApiResult};

/// Where an object keeps what its `scale` subresource shows, as JSON pointers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    /// Desired replicas (`/spec/replicas`).
    pub spec_replicas: String,
    /// Current replicas (`/status/replicas`).
    pub status_replicas: String,
    /// The selector of the pods counted, a `LabelSelector`, a map of labels or the
    /// selector's text (`/spec/selector`); `None` if the kind has none.
    pub selector: Option<String>,
}

impl ScalePaths {
    /// The paths of a built-in kind with a `scale` subresource.
    pub fn of(kind: &ObjectKind) -> Option<Self> {
        kind.has_scale().then(|| ScalePaths {
            spec_replicas: "/spec/replicas".into(),
            status_replicas: "/status/replicas".into(),
            selector: Some("/spec/selector".into()),
        })
    }
}

/// The selector at `value` as text (`app=web,tier in (a,b)`): a `LabelSelector`, a
/// map of labels (ReplicationController) or already text (custom resources).
fn selector_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map)
            if map.contains_key("matchLabels") || map.contains_key("matchExpressions") =>
        {
            serde_json::from_value::<LabelSelector>(value.clone())
                .ok()
                .and_then(|s| rk8s_api::selector::label_selector(&s).ok())
                .map(|s| s.to_string())
                .unwrap_or_default()
        }
        Value::Object(map) => {
            let mut pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            pairs.sort();
            pairs.join(",")
        }
        _ => String::new(),
    }
}

/// The `Scale` of an object whose kind keeps its replicas at `paths`.
pub fn scale_of(obj: &Value, paths: &ScalePaths) -> ApiResult<Value> {
    let int = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
    };
    let meta: ObjectMeta = obj
        .get("metadata")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| ApiError::internal(format!("metadata does not decode: {e}")))?
        .unwrap_or_default();
    let scale = Scale {
        metadata: ObjectMeta {
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            resource_version: meta.resource_version,
            creation_timestamp: meta.creation_timestamp,
            ..ObjectMeta::default()
        },
        spec: Some(ScaleSpec {
            replicas: Some(int(&paths.spec_replicas).unwrap_or(1)),
        }),
        status: Some(ScaleStatus {
            replicas: int(&paths.status_replicas).unwrap_or(0),
            selector: paths
                .selector
                .as_deref()
                .map(|p| obj.pointer(p).map(selector_text).unwrap_or_default()),
        }),
    };
    serde_json::to_value(&scale).map_err(|e| ApiError::internal(e.to_string()))
}

/// The replicas a `Scale` body asks for.
pub fn requested_replicas(scale: &Value) -> ApiResult<i32> {
    let scale: Scale = serde_json::from_value(scale.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid Scale: {e}")))?;
    Ok(scale.spec.and_then(|s| s.replicas).unwrap_or(0))
}

/// `obj` with the replicas at `paths` set to `replicas` (objects missing on the way
/// are created).
pub fn set_replicas(obj: &mut Value, paths: &ScalePaths, replicas: i32) -> ApiResult<()> {
    let mut at = obj;
    let mut keys = paths.spec_replicas.split('/').skip(1).peekable();
    while let Some(key) = keys.next() {
        let Value::Object(map) = at else {
            return Err(ApiError::bad_request(format!(
                "{} is not an object",
                paths.spec_replicas
            )));
        };
        if keys.peek().is_none() {
            map.insert(key.to_string(), Value::from(replicas));
            return Ok(());
        }
        at = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

/// `current` with the replicas at `paths` set from a `Scale` body.
pub fn with_replicas(
    current: &AnyObject,
    scale: &Value,
    paths: &ScalePaths,
) -> ApiResult<AnyObject> {
    let kind = current.kind();
    let mut value = current.to_value();
    set_replicas(&mut value, paths, requested_replicas(scale)?)?;
    match AnyObject::from_value(&kind, value) {
        Some(Ok(obj)) => Ok(obj),
        _ => Err(ApiError::internal("the scaled object does not decode")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scale_reads_replicas_and_selectors_of_every_shape() {
        let paths = ScalePaths::of(&rk8s_api::object::kind_named("StatefulSet").unwrap()).unwrap();
        let sts = json!({"metadata": {"name": "db", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "db"}}},
            "status": {"replicas": 2}});
        let s = scale_of(&sts, &paths).unwrap();
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=db");
        let rc = json!({"metadata": {"name": "rc"}, "spec": {"selector": {"b": "2", "a": "1"}}});
        assert_eq!(
            scale_of(&rc, &paths).unwrap()["status"]["selector"],
            "a=1,b=2"
        );
    }

    #[test]
    fn set_replicas_creates_missing_objects_on_the_way() {
        let paths = ScalePaths {
            spec_replicas: "/spec/size".into(),
            status_replicas: "/status/size".into(),
            selector: None,
        };
        let mut v = json!({"metadata": {"name": "x"}});
        set_replicas(&mut v, &paths, 4).unwrap();
        assert_eq!(v["spec"]["size"], 4);
        let mut bad = json!({"spec": 1});
        assert!(set_replicas(&mut bad, &paths, 4).is_err());
    }
}
