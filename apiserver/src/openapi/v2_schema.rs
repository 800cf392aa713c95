//! Schemas said in Swagger 2.0's words, as kube-apiserver publishes them at
//! `/openapi/v2`. schemars writes JSON Schema (draft 7) and custom resources carry
//! OpenAPI v3; kubectl reads v2 through kube-openapi's `pkg/util/proto`, which
//! rejects the whole document for one definition it cannot read (a reference with a
//! type, an array without items, two types) and sees only `$ref`, `type`,
//! `properties`, `items` and `additionalProperties` of the rest.

use serde_json::{Map, Value};

/// Rewrites `schema` and everything under it for Swagger 2.0:
///
/// - `allOf` of one bare `$ref` (how schemars gives a reference a description) becomes
///   that `$ref` beside the description, as kube-openapi writes v2 references;
/// - any other `allOf`, and `oneOf`, `anyOf`, `not`, are dropped;
/// - `nullable` drops the type, items and properties, and a nullable property is no
///   longer required; `x-kubernetes-preserve-unknown-fields` drops items and
///   properties (and `type: object`); an array left without items loses its type
///   (kube-apiserver's `ToStructuralOpenAPIV2`, which publishes custom resources);
/// - a list of types without `null` in it is the one type left, if one is.
pub fn to_v2(schema: &mut Value) {
    let Value::Object(m) = schema else {
        return;
    };
    drop_nullable_from_required(m);
    collapse_single_ref(m);
    for junctor in ["allOf", "oneOf", "anyOf", "not"] {
        m.remove(junctor);
    }
    if m.remove("nullable") == Some(Value::Bool(true)) {
        for key in ["type", "items", "properties"] {
            m.remove(key);
        }
    }
    if m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        m.remove("items");
        m.remove("properties");
        if m.get("type").and_then(Value::as_str) == Some("object") {
            m.remove("type");
        }
    }
    if let Some(Value::Array(types)) = m.get("type") {
        let named: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        match <[Value; 1]>::try_from(named) {
            Ok([one]) => m.insert("type".into(), one),
            Err(_) => m.remove("type"),
        };
    }
    if m.get("type").and_then(Value::as_str) == Some("array") && !m.contains_key("items") {
        m.remove("type");
    }
    if let Some(Value::Object(props)) = m.get_mut("properties") {
        props.values_mut().for_each(to_v2);
    }
    if let Some(items) = m.get_mut("items") {
        match items {
            Value::Array(each) => each.iter_mut().for_each(to_v2),
            one => to_v2(one),
        }
    }
    if let Some(extra @ Value::Object(_)) = m.get_mut("additionalProperties") {
        to_v2(extra);
    }
}

fn nullable(v: &Value) -> bool {
    v.get("nullable") == Some(&Value::Bool(true))
}

/// A nullable property may be absent as well as null; a map of nullable values
/// requires nothing (kube-apiserver does the same).
fn drop_nullable_from_required(m: &mut Map<String, Value>) {
    let nullable_map = m.get("additionalProperties").is_some_and(nullable);
    let nullable_props: Vec<String> = m
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, v)| nullable(v))
        .map(|(k, _)| k.clone())
        .collect();
    if let Some(Value::Array(required)) = m.get_mut("required") {
        required.retain(|name| {
            !nullable_map
                && !name
                    .as_str()
                    .is_some_and(|n| nullable_props.iter().any(|p| p == n))
        });
        if required.is_empty() {
            m.remove("required");
        }
    }
}

/// `{"allOf": [{"$ref": R}], …}` → `{"$ref": R, …}` when nothing else says what the
/// value is (kubectl refuses a reference with a type or properties).
fn collapse_single_ref(m: &mut Map<String, Value>) {
    let bare_ref = match m.get("allOf") {
        Some(Value::Array(all)) if all.len() == 1 => all[0]
            .as_object()
            .filter(|r| r.len() == 1)
            .and_then(|r| r.get("$ref"))
            .cloned(),
        _ => None,
    };
    let described_only = ![
        "$ref",
        "type",
        "properties",
        "items",
        "additionalProperties",
    ]
    .iter()
    .any(|k| m.contains_key(*k));
    if let Some(reference) = bare_ref.filter(|_| described_only) {
        m.remove("allOf");
        m.insert("$ref".into(), reference);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_described_reference_loses_its_all_of() {
        let mut s = json!({"properties": {"spec": {
            "allOf": [{"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"}],
            "description": "Specification of the desired behavior of the pod."
        }}});
        to_v2(&mut s);
        assert_eq!(
            s["properties"]["spec"],
            json!({"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec",
                   "description": "Specification of the desired behavior of the pod."})
        );
    }

    #[test]
    fn custom_resource_schemas_lose_what_v2_cannot_say() {
        let mut s = json!({
            "type": "object",
            "required": ["name", "note"],
            "properties": {
                "name": {"type": "string"},
                "note": {"type": "string", "nullable": true},
                "port": {"x-kubernetes-int-or-string": true,
                         "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"a": {"type": "string"}}},
                "list": {"type": "array", "x-kubernetes-preserve-unknown-fields": true,
                         "items": {"type": "string"}},
                "either": {"type": ["string", "null"]},
            }
        });
        to_v2(&mut s);
        assert_eq!(s["required"], json!(["name"]));
        let p = &s["properties"];
        assert_eq!(p["note"], json!({}));
        assert_eq!(p["port"], json!({"x-kubernetes-int-or-string": true}));
        assert_eq!(
            p["raw"],
            json!({"x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(
            p["list"],
            json!({"x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(p["either"], json!({"type": "string"}));
    }
}
