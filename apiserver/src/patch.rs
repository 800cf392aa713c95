//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and Kubernetes'
//! strategic merge patch, which merges lists of named things (containers, ports, env,
//! volumes, ...) by key instead of replacing them, for the fields `kubectl apply` and
//! `kubectl edit` send.

use serde_json::{Map, Value};

use crate::status::{ApiError, ApiResult};

/// The patch formats the server takes.
pub const PATCH_TYPES: &[&str] = &[
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
];

/// Applies a patch of `content_type` to `target`.
pub fn apply(content_type: &str, target: &mut Value, body: &[u8]) -> ApiResult<()> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let parse = || -> ApiResult<Value> {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))
    };
    match media.as_str() {
        "application/merge-patch+json" => {
            let patch = parse()?;
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(target, &patch);
            Ok(())
        }
        "application/json-patch+json" => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(target, &patch).map_err(|e| {
                ApiError::new_invalid_patch(format!("the JSON patch does not apply: {e}"))
            })
        }
        "application/strategic-merge-patch+json" => {
            let patch = parse()?;
            match patch {
                Value::Object(p) => strategic_merge(target, &p, ""),
                _ => Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                )),
            }
        }
        other => Err(ApiError::unsupported_media_type(other, PATCH_TYPES)),
    }
}

impl ApiError {
    fn new_invalid_patch(message: String) -> Self {
        ApiError {
            code: http::StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message,
            details: None,
        }
    }
}

/// How a list field merges: by which key of its elements (`None`: a set of scalars).
fn merge_key(path: &str) -> Option<Option<&'static str>> {
    // Paths are the field names from the object root, list elements left out:
    // `spec.template.spec.containers`. Every pod spec can sit at `spec` (Pod),
    // `spec.template.spec` (workloads) or `spec.jobTemplate.spec.template.spec`.
    let last = path.rsplit('.').next().unwrap_or(path);
    let parent = path.rsplit('.').nth(1).unwrap_or("");
    let key = match (parent, last) {
        (_, "containers" | "initContainers" | "ephemeralContainers") => "name",
        (_, "volumes" | "imagePullSecrets" | "env" | "resourceClaims") => "name",
        ("containers" | "initContainers" | "ephemeralContainers", "ports") => "containerPort",
        ("containers" | "initContainers" | "ephemeralContainers", "volumeMounts") => "mountPath",
        ("containers" | "initContainers" | "ephemeralContainers", "volumeDevices") => "devicePath",
        ("spec", "ports") => "port",
        (_, "hostAliases") => "ip",
        (_, "ownerReferences") => "uid",
        (_, "conditions") => "type",
        (_, "topologySpreadConstraints") => "topologyKey",
        (_, "finalizers") => return Some(None),
        _ => return None,
    };
    Some(Some(key))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn strategic_merge(target: &mut Value, patch: &Map<String, Value>, path: &str) -> ApiResult<()> {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        replacement.remove("$patch");
        *target = Value::Object(replacement);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(obj) = target else {
        return Ok(());
    };
    if let Some(retain) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        obj.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (obj.get_mut(field), value) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        let field_path = join(path, key);
        match value {
            Value::Null => {
                obj.remove(key);
            }
            Value::Object(p) => {
                if p.get("$patch").and_then(Value::as_str) == Some("delete") {
                    obj.remove(key);
                    continue;
                }
                let slot = obj.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, p, &field_path)?;
            }
            Value::Array(items) => match merge_key(&field_path) {
                Some(k) => {
                    let slot = obj.entry(key.clone()).or_insert(Value::Array(Vec::new()));
                    merge_list(slot, items, k, &field_path)?;
                }
                None => {
                    obj.insert(key.clone(), value.clone());
                }
            },
            scalar => {
                obj.insert(key.clone(), scalar.clone());
            }
        }
    }
    Ok(())
}

fn merge_list(target: &mut Value, items: &[Value], key: Option<&str>, path: &str) -> ApiResult<()> {
    if !target.is_array() {
        *target = Value::Array(Vec::new());
    }
    let Value::Array(list) = target else {
        return Ok(());
    };
    // `[{"$patch": "replace"}, ...]` replaces the whole list with the rest.
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *list = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        return Ok(());
    }
    let Some(key) = key else {
        // A set of scalars (finalizers): add what is missing.
        for item in items {
            if !list.contains(item) {
                list.push(item.clone());
            }
        }
        return Ok(());
    };
    for item in items {
        let Value::Object(fields) = item else {
            return Err(ApiError::bad_request(format!(
                "{path}: list elements must be objects with a {key:?} field"
            )));
        };
        let Some(id) = fields.get(key) else {
            return Err(ApiError::bad_request(format!(
                "{path}: an element has no merge key {key:?}"
            )));
        };
        let pos = list.iter().position(|e| e.get(key) == Some(id));
        if fields.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(p) = pos {
                list.remove(p);
            }
            continue;
        }
        match pos {
            Some(p) => strategic_merge(&mut list[p], fields, path)?,
            None => {
                let mut new = Value::Object(Map::new());
                strategic_merge(&mut new, fields, path)?;
                list.push(new);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(target: Value, patch: Value) -> Value {
        let mut t = target;
        apply(
            "application/strategic-merge-patch+json",
            &mut t,
            patch.to_string().as_bytes(),
        )
        .unwrap();
        t
    }

    #[test]
    fn containers_merge_by_name() {
        let target = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
            {"name": "c", "image": "c:1"}
        ]}}}});
        let out = smp(target, patch);
        assert_eq!(
            out,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                {"name": "c", "image": "c:1"}
            ]}}}})
        );
    }

    #[test]
    fn directives_retain_delete_and_replace() {
        let target = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
            "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                     "ports": [{"port": 80, "name": "http"}], "args": ["a", "b"]}
        });
        let patch = json!({
            "metadata": {"labels": {"b": null, "c": "3"}, "$deleteFromPrimitiveList/finalizers": ["x"]},
            "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                     "ports": [{"port": 80, "name": "web"}, {"port": 443}], "args": ["c"]}
        });
        let out = smp(target, patch);
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "name": "web"}, {"port": 443}])
        );
        // Lists without a merge key are replaced.
        assert_eq!(out["spec"]["args"], json!(["c"]));
        let replaced = smp(
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
            json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "z"}]}}),
        );
        assert_eq!(replaced, json!({"spec": {"containers": [{"name": "z"}]}}));
    }

    #[test]
    fn merge_and_json_patches() {
        let mut t = json!({"spec": {"replicas": 1, "paused": true}});
        apply(
            "application/merge-patch+json",
            &mut t,
            br#"{"spec": {"replicas": 3, "paused": null}}"#,
        )
        .unwrap();
        assert_eq!(t, json!({"spec": {"replicas": 3}}));
        apply(
            "application/json-patch+json",
            &mut t,
            br#"[{"op": "replace", "path": "/spec/replicas", "value": 5}]"#,
        )
        .unwrap();
        assert_eq!(t, json!({"spec": {"replicas": 5}}));
        let e = apply(
            "application/json-patch+json",
            &mut t,
            br#"[{"op": "test", "path": "/spec/replicas", "value": 1}]"#,
        )
        .unwrap_err();
        assert_eq!(e.code.as_u16(), 422);
        let e = apply("application/apply-patch+yaml", &mut t, b"{}").unwrap_err();
        assert_eq!(e.code.as_u16(), 415);
        let e = apply("application/merge-patch+json", &mut t, b"[1]").unwrap_err();
        assert_eq!(e.code.as_u16(), 400);
        let e = apply(
            "application/strategic-merge-patch+json",
            &mut t,
            b"{\"spec\": {\"containers\": [1]}}",
        )
        .unwrap_err();
        assert_eq!(e.code.as_u16(), 400);
    }
}
