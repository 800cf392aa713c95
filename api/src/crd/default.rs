//! Structural defaulting of custom objects, as apiextensions-apiserver's
//! `schema/defaulting` does it: a field with a `default` that is absent (or `null` and not
//! `nullable`) gets a copy of the default, recursing into objects, array items and
//! `additionalProperties`; then `null`s of non-nullable fields without a default are
//! dropped (`PruneNonNullableNullsWithoutDefaults`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use super::CompiledVersion;

impl CompiledVersion {
    /// Applies this version's defaults to `obj` (see [`default`]).
    pub fn default(&self, obj: &mut Value) {
        default(obj, &self.schema);
    }
}

/// Applies the defaults of `schema` to `value` in place, then drops `null`s that the
/// schema neither admits (`nullable`) nor defaults.
pub fn default(value: &mut Value, schema: &JSONSchemaProps) {
    apply_defaults(value, schema);
    prune_nulls(value, schema);
}

fn is_non_nullable_null(value: &Value, schema: &JSONSchemaProps) -> bool {
    value.is_null() && schema.nullable != Some(true)
}

fn items(schema: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &schema.items {
        Some(JSONSchemaPropsOrArray::Schema(s)) => Some(s),
        _ => None,
    }
}

fn additional(schema: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &schema.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s),
        _ => None,
    }
}

fn apply_defaults(value: &mut Value, schema: &JSONSchemaProps) {
    match value {
        Value::Object(map) => {
            for (k, prop) in schema.properties.iter().flatten() {
                let Some(default) = &prop.default else {
                    continue;
                };
                match map.get(k) {
                    Some(v) if !is_non_nullable_null(v, prop) => {}
                    _ => {
                        map.insert(k.clone(), default.0.clone());
                    }
                }
            }
            for (k, v) in map.iter_mut() {
                if let Some(prop) = schema.properties.as_ref().and_then(|p| p.get(k)) {
                    apply_defaults(v, prop);
                } else if let Some(extra) = additional(schema) {
                    if is_non_nullable_null(v, extra)
                        && let Some(default) = &extra.default
                    {
                        *v = default.0.clone();
                    }
                    apply_defaults(v, extra);
                }
            }
        }
        Value::Array(list) => {
            let Some(item) = items(schema) else {
                return;
            };
            for v in list.iter_mut() {
                if is_non_nullable_null(v, item)
                    && let Some(default) = &item.default
                {
                    *v = default.0.clone();
                }
                apply_defaults(v, item);
            }
        }
        _ => {}
    }
}

fn prune_nulls(value: &mut Value, schema: &JSONSchemaProps) {
    match value {
        Value::Object(map) => {
            map.retain(|k, v| {
                let prop = schema
                    .properties
                    .as_ref()
                    .and_then(|p| p.get(k))
                    .or_else(|| additional(schema));
                !matches!(prop, Some(p) if v.is_null() && p.nullable != Some(true) && p.default.is_none())
            });
            for (k, v) in map.iter_mut() {
                if let Some(prop) = schema
                    .properties
                    .as_ref()
                    .and_then(|p| p.get(k))
                    .or_else(|| additional(schema))
                {
                    prune_nulls(v, prop);
                }
            }
        }
        Value::Array(list) => {
            if let Some(item) = items(schema) {
                for v in list.iter_mut() {
                    prune_nulls(v, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::fixtures::crontab_v1;

    fn defaulted(spec: Value) -> Value {
        let mut obj = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "x", "namespace": "default"}, "spec": spec});
        crontab_v1().default(&mut obj);
        obj["spec"].take()
    }

    #[test]
    fn absent_fields_get_their_defaults() {
        let spec = defaulted(json!({"cronSpec": "* * * * *"}));
        assert_eq!(
            spec,
            json!({"cronSpec": "* * * * *", "replicas": 1, "size": "small"})
        );
    }

    #[test]
    fn given_values_are_kept() {
        let spec = defaulted(json!({"cronSpec": "* * * * *", "replicas": 4, "size": "large"}));
        assert_eq!(spec["replicas"], 4);
        assert_eq!(spec["size"], "large");
    }

    #[test]
    fn defaults_reach_into_array_items() {
        let spec =
            defaulted(json!({"containers": [{"name": "a"}, {"name": "b", "protocol": "UDP"}]}));
        assert_eq!(
            spec["containers"],
            json!([{"name": "a", "protocol": "TCP"}, {"name": "b", "protocol": "UDP"}])
        );
    }

    #[test]
    fn defaults_reach_into_objects_that_preserve_unknown_fields() {
        let spec = defaulted(json!({"settings": {"extra": 1}}));
        assert_eq!(spec["settings"], json!({"extra": 1, "mode": "fast"}));
    }

    #[test]
    fn null_of_a_defaulted_field_is_replaced_by_the_default() {
        let spec = defaulted(json!({"replicas": null}));
        assert_eq!(spec["replicas"], 1);
    }

    #[test]
    fn null_of_a_field_without_default_is_dropped_unless_nullable() {
        let spec = defaulted(json!({"image": null, "note": null}));
        assert_eq!(spec.get("image"), None);
        assert_eq!(spec["note"], Value::Null);
    }

    #[test]
    fn defaults_are_defaulted_in_turn() {
        let schema: JSONSchemaProps = serde_json::from_value(json!({
            "type": "object",
            "properties": {"a": {"type": "object", "default": {},
                "properties": {"b": {"type": "integer", "default": 7}}}}
        }))
        .unwrap();
        let mut v = json!({});
        default(&mut v, &schema);
        assert_eq!(v, json!({"a": {"b": 7}}));
    }

    #[test]
    fn additional_properties_values_are_defaulted() {
        let schema: JSONSchemaProps = serde_json::from_value(json!({
            "type": "object",
            "additionalProperties": {"type": "object",
                "properties": {"weight": {"type": "integer", "default": 1}}}
        }))
        .unwrap();
        let mut v = json!({"x": {}, "y": {"weight": 3}});
        default(&mut v, &schema);
        assert_eq!(v, json!({"x": {"weight": 1}, "y": {"weight": 3}}));
    }
}
