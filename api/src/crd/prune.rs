//! Pruning of unknown fields, as apiextensions-apiserver's `schema/pruning` does it:
//! object fields that the schema does not specify (in `properties`, or through
//! `additionalProperties`) are removed, unless the schema says
//! `x-kubernetes-preserve-unknown-fields: true`. `apiVersion`, `kind` and `metadata` are
//! kept at the root and in embedded resources.
//!
//! The removed fields are returned, so the API server can warn as kube-apiserver does:
//! `unknown field "spec.foo"`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use super::CompiledVersion;
use crate::path::FieldPath;

const META_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

impl CompiledVersion {
    /// Removes the fields of `obj` that this version's schema does not know, returning
    /// their paths (see [`prune`]).
    pub fn prune(&self, obj: &mut Value) -> Vec<FieldPath> {
        prune(obj, &self.schema)
    }
}

/// Removes from `obj`, a whole object (its root keeps `apiVersion`, `kind` and
/// `metadata`), the fields `schema` does not specify; returns their paths, sorted.
pub fn prune(obj: &mut Value, schema: &JSONSchemaProps) -> Vec<FieldPath> {
    let mut pruned = Vec::new();
    let node = Node {
        schema: Some(schema),
        embedded: true,
    };
    walk(obj, node, &FieldPath::root(), &mut pruned);
    pruned.sort();
    pruned
}

/// Removes from `value`, a value inside an object (not a whole object: `apiVersion`,
/// `kind` and `metadata` get no special care), the fields `schema` does not specify.
pub fn prune_node(value: &mut Value, schema: &JSONSchemaProps) -> Vec<FieldPath> {
    let mut pruned = Vec::new();
    walk(
        value,
        Node::of(Some(schema)),
        &FieldPath::root(),
        &mut pruned,
    );
    pruned.sort();
    pruned
}

/// How unknown fields are warned about: `unknown field "spec.foo"`.
pub fn warning(path: &FieldPath) -> String {
    format!("unknown field \"{path}\"")
}

/// A schema node, with the root counted as an embedded resource.
#[derive(Clone, Copy)]
struct Node<'a> {
    schema: Option<&'a JSONSchemaProps>,
    embedded: bool,
}

impl<'a> Node<'a> {
    fn of(schema: Option<&'a JSONSchemaProps>) -> Self {
        Self {
            schema,
            embedded: schema.is_some_and(|s| s.x_kubernetes_embedded_resource == Some(true)),
        }
    }

    fn preserves(&self) -> bool {
        self.schema
            .is_some_and(|s| s.x_kubernetes_preserve_unknown_fields == Some(true))
    }

    /// The schema of field `k`: `Some(node)` when specified (a node whose schema is
    /// `None` when `additionalProperties` is a bare boolean), `None` when unknown.
    fn field(&self, k: &str) -> Option<Node<'a>> {
        let s = self.schema?;
        if let Some(p) = s.properties.as_ref().and_then(|p| p.get(k)) {
            return Some(Node::of(Some(p)));
        }
        match &s.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(p)) => Some(Node::of(Some(p))),
            Some(JSONSchemaPropsOrBool::Bool(_)) => Some(Node::of(None)),
            None => None,
        }
    }

    fn items(&self) -> Node<'a> {
        match self.schema.and_then(|s| s.items.as_ref()) {
            Some(JSONSchemaPropsOrArray::Schema(s)) => Node::of(Some(s)),
            _ => Node::of(None),
        }
    }
}

fn walk(value: &mut Value, node: Node<'_>, path: &FieldPath, pruned: &mut Vec<FieldPath>) {
    if node.preserves() {
        skip(value, node, path, pruned);
        return;
    }
    match value {
        Value::Object(map) => {
            map.retain(|k, _| {
                let keep =
                    (node.embedded && META_FIELDS.contains(&k.as_str())) || node.field(k).is_some();
                if !keep {
                    pruned.push(path.key(k.clone()));
                }
                keep
            });
            for (k, v) in map.iter_mut() {
                if node.embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(child) = node.field(k) {
                    walk(v, child, &path.key(k.clone()), pruned);
                }
            }
        }
        Value::Array(list) => {
            let item = node.items();
            for (i, v) in list.iter_mut().enumerate() {
                walk(v, item, &path.index(i), pruned);
            }
        }
        _ => {}
    }
}

/// Inside `x-kubernetes-preserve-unknown-fields`: unknown fields stay, known ones are
/// pruned by their own schema.
fn skip(value: &mut Value, node: Node<'_>, path: &FieldPath, pruned: &mut Vec<FieldPath>) {
    if node.schema.is_none() {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if node.embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(child) = node.field(k) {
                    walk(v, child, &path.key(k.clone()), pruned);
                }
            }
        }
        Value::Array(list) => {
            let item = node.items();
            for (i, v) in list.iter_mut().enumerate() {
                skip(v, item, &path.index(i), pruned);
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

    fn pruned(obj: &mut Value) -> Vec<String> {
        crontab_v1().prune(obj).iter().map(warning).collect()
    }

    #[test]
    fn unknown_fields_are_removed_and_reported() {
        let mut obj = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "x", "anything": 1},
            "spec": {"cronSpec": "* * * * *", "foo": 1,
                     "containers": [{"name": "a", "bar": true}]},
            "extra": {}});
        assert_eq!(
            pruned(&mut obj),
            [
                r#"unknown field "extra""#,
                r#"unknown field "spec.containers[0].bar""#,
                r#"unknown field "spec.foo""#,
            ]
        );
        assert_eq!(
            obj,
            json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
                "metadata": {"name": "x", "anything": 1},
                "spec": {"cronSpec": "* * * * *", "containers": [{"name": "a"}]}})
        );
    }

    #[test]
    fn preserve_unknown_fields_keeps_unknown_but_prunes_known_children() {
        let schema: JSONSchemaProps = serde_json::from_value(json!({
            "type": "object",
            "properties": {"spec": {"type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"known": {"type": "object",
                    "properties": {"a": {"type": "string"}}}}}}
        }))
        .unwrap();
        let mut obj = json!({"spec": {"free": {"x": 1}, "known": {"a": "y", "b": 2}}});
        let paths: Vec<String> = prune(&mut obj, &schema).iter().map(warning).collect();
        assert_eq!(paths, [r#"unknown field "spec.known.b""#]);
        assert_eq!(
            obj,
            json!({"spec": {"free": {"x": 1}, "known": {"a": "y"}}})
        );
    }

    #[test]
    fn embedded_resources_keep_type_and_object_meta() {
        let mut obj = json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p"}, "spec": {"containers": []}}}});
        assert_eq!(pruned(&mut obj), Vec::<String>::new());
        assert_eq!(obj["spec"]["template"]["kind"], "Pod");
    }

    #[test]
    fn embedded_resources_without_preserve_prune_their_other_fields() {
        let schema: JSONSchemaProps = serde_json::from_value(json!({
            "type": "object",
            "properties": {"t": {"type": "object", "x-kubernetes-embedded-resource": true,
                "properties": {"spec": {"type": "object"}}}}
        }))
        .unwrap();
        let mut obj = json!({"t": {"apiVersion": "v1", "kind": "Pod", "metadata": {},
            "spec": {"x": 1}, "status": {}}});
        let paths: Vec<String> = prune(&mut obj, &schema).iter().map(warning).collect();
        assert_eq!(
            paths,
            [r#"unknown field "t.spec.x""#, r#"unknown field "t.status""#]
        );
    }

    #[test]
    fn additional_properties_keep_every_key_and_prune_inside_values() {
        let schema: JSONSchemaProps = serde_json::from_value(json!({
            "type": "object",
            "properties": {"m": {"type": "object", "additionalProperties": {
                "type": "object", "properties": {"w": {"type": "integer"}}}}}
        }))
        .unwrap();
        let mut obj = json!({"m": {"a": {"w": 1, "z": 2}, "b": {}}});
        let paths: Vec<String> = prune(&mut obj, &schema).iter().map(warning).collect();
        assert_eq!(paths, [r#"unknown field "m.a.z""#]);
    }

    #[test]
    fn labels_with_string_values_are_all_kept() {
        let mut obj = json!({"spec": {"labels": {"team": "a", "tier": "b"}}});
        assert!(pruned(&mut obj).is_empty());
    }
}
