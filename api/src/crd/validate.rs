//! A custom object checked against its CRD version: `apiVersion`, `kind` and `metadata`
//! as for built-in kinds, then the compiled schema, each error mapped to the field error
//! kube-apiserver reports (apiextensions-apiserver `validation.ValidateCustomResource`
//! over kube-openapi's messages), then embedded resources
//! (`x-kubernetes-embedded-resource`, apiextensions `schema/objectmeta`).

use std::collections::BTreeMap;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::{Map, Value};

use super::{CompiledVersion, schema};
use crate::names;
use crate::path::FieldPath;
use crate::validation::{FieldError, Reason};

impl CompiledVersion {
    /// Validates `obj`, a custom object of this version (pruned and defaulted first),
    /// returning every problem found (none: valid).
    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        validate(self, obj)
    }
}

/// Validates `obj` against `version`; see [`CompiledVersion::validate`].
pub fn validate(version: &CompiledVersion, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let root = FieldPath::root();
    let Some(map) = obj.as_object() else {
        errs.push(invalid(
            &root,
            json_type(obj),
            "must be an object".to_string(),
        ));
        return errs;
    };
    let expected = version.api_version();
    match map.get("apiVersion") {
        Some(Value::String(v)) if *v == expected => {}
        Some(v) => errs.push(invalid(
            &root.key("apiVersion"),
            text(v),
            format!("must be {expected}"),
        )),
        None => errs.push(required(&root.key("apiVersion"))),
    }
    match map.get("kind") {
        Some(Value::String(k)) if *k == version.kind => {}
        Some(v) => errs.push(invalid(
            &root.key("kind"),
            text(v),
            format!("must be {}", version.kind),
        )),
        None => errs.push(required(&root.key("kind"))),
    }
    object_meta(
        &mut errs,
        &root.key("metadata"),
        map.get("metadata"),
        Some(version.namespaced),
    );
    for e in version.validator.iter_errors(obj) {
        errs.extend(field_error(&e, &root));
    }
    embedded(&mut errs, &root, obj, &version.schema, true);
    errs
}

/// Renders an error in kube-apiserver's words: `spec.replicas: Invalid value: "string":
/// spec.replicas in body must be of type integer: "string"`.
///
/// A [`FieldError`] holds values as text: they are quoted unless they read as a JSON
/// number or boolean (so the string `"20"` prints as `20`; `null` is always a type name
/// here and is quoted).
pub fn kubernetes_message(err: &FieldError) -> String {
    err.kubernetes_message()
}

fn required(path: &FieldPath) -> FieldError {
    FieldError {
        path: path.clone(),
        reason: Reason::Required,
    }
}

fn invalid(path: &FieldPath, value: impl Into<String>, detail: String) -> FieldError {
    FieldError {
        path: path.clone(),
        reason: Reason::Invalid {
            value: value.into(),
            detail,
        },
    }
}

fn message(path: &FieldPath, m: String) -> FieldError {
    FieldError {
        path: path.clone(),
        reason: Reason::Message(m),
    }
}

/// A value as a field error holds it: strings bare, anything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The JSON type of a value as kube-openapi names it in type errors.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A limit from the schema, written as Go's `%v` writes it (`10`, `0.5`).
fn limit(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
        _ => v.to_string(),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Maps one validator error to Kubernetes' field errors; `base` is where the validated
/// value sits (the root for an object, a `default` for a CRD's default values).
pub(super) fn field_error(
    e: &jsonschema::ValidationError<'_>,
    base: &FieldPath,
) -> Vec<FieldError> {
    let mut path = base.clone();
    for seg in e.instance_path().iter() {
        path = match seg {
            LocationSegment::Property(p) => path.key(p.to_string()),
            LocationSegment::Index(i) => path.index(i),
        };
    }
    let name = if path.is_root() {
        "body".to_string()
    } else {
        format!("{path} in body")
    };
    let value = e.instance();
    let shown = text(value);
    let err = match e.kind() {
        ValidationErrorKind::Required { property } => {
            return vec![required(&path.key(text(property)))];
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                jsonschema::error::TypeKind::Single(t) => t.to_string(),
                jsonschema::error::TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            };
            let actual = json_type(value);
            invalid(
                &path,
                actual,
                format!("{name} must be of type {expected}: \"{actual}\""),
            )
        }
        ValidationErrorKind::Enum { options } => FieldError {
            path,
            reason: Reason::NotSupported {
                value: shown,
                supported: options
                    .as_array()
                    .map(|a| a.iter().map(text).collect())
                    .unwrap_or_default(),
            },
        },
        ValidationErrorKind::Maximum { limit: l } => invalid(
            &path,
            shown,
            format!("{name} should be less than or equal to {}", limit(l)),
        ),
        ValidationErrorKind::ExclusiveMaximum { limit: l } => invalid(
            &path,
            shown,
            format!("{name} should be less than {}", limit(l)),
        ),
        ValidationErrorKind::Minimum { limit: l } => invalid(
            &path,
            shown,
            format!("{name} should be greater than or equal to {}", limit(l)),
        ),
        ValidationErrorKind::ExclusiveMinimum { limit: l } => invalid(
            &path,
            shown,
            format!("{name} should be greater than {}", limit(l)),
        ),
        ValidationErrorKind::MultipleOf { multiple_of } => invalid(
            &path,
            shown,
            format!(
                "{name} should be a multiple of {}",
                limit(&serde_json::json!(multiple_of))
            ),
        ),
        ValidationErrorKind::MaxLength { limit } => message(
            &path,
            format!(
                "Too long: may not be more than {}",
                plural(*limit, "byte", "bytes")
            ),
        ),
        ValidationErrorKind::MinLength { limit } => invalid(
            &path,
            shown,
            format!(
                "{name} should be at least {} long",
                plural(*limit, "char", "chars")
            ),
        ),
        ValidationErrorKind::Pattern { pattern } => {
            invalid(&path, shown, format!("{name} should match '{pattern}'"))
        }
        ValidationErrorKind::Custom { keyword, message } if keyword == schema::PATTERN_KEYWORD => {
            invalid(&path, shown, format!("{name} should match '{message}'"))
        }
        ValidationErrorKind::Format { format } => invalid(
            &path,
            shown.clone(),
            format!("{name} must be of type {format}: \"{shown}\""),
        ),
        ValidationErrorKind::MaxItems { limit } => {
            let n = value.as_array().map_or(0, Vec::len);
            message(
                &path,
                format!(
                    "Too many: {n}: must have at most {}",
                    plural(*limit, "item", "items")
                ),
            )
        }
        ValidationErrorKind::MinItems { limit } => invalid(
            &path,
            shown,
            format!(
                "{name} should have at least {}",
                plural(*limit, "item", "items")
            ),
        ),
        ValidationErrorKind::UniqueItems => {
            invalid(&path, shown, format!("{name} shouldn't contain duplicates"))
        }
        ValidationErrorKind::MaxProperties { limit } => {
            let n = value.as_object().map_or(0, Map::len);
            message(
                &path,
                format!(
                    "Too many: {n}: must have at most {}",
                    plural(*limit, "property", "properties")
                ),
            )
        }
        ValidationErrorKind::MinProperties { limit } => invalid(
            &path,
            shown,
            format!(
                "{name} should have at least {}",
                plural(*limit, "property", "properties")
            ),
        ),
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            return unexpected
                .iter()
                .map(|k| {
                    let p = path.key(k.clone());
                    let field = p.to_string();
                    let v = value.get(k).map(text).unwrap_or_default();
                    invalid(&p, v, format!("{field} in body is a forbidden property"))
                })
                .collect();
        }
        ValidationErrorKind::AnyOf { .. } => invalid(
            &path,
            shown,
            format!("{name} must validate at least one schema (anyOf)"),
        ),
        ValidationErrorKind::OneOfNotValid { .. }
        | ValidationErrorKind::OneOfMultipleValid { .. } => invalid(
            &path,
            shown,
            format!("{name} must validate one and only one schema (oneOf)"),
        ),
        ValidationErrorKind::Not { .. } => invalid(
            &path,
            shown,
            format!("{name} must not validate the schema (not)"),
        ),
        _ => invalid(&path, shown, format!("{name}: {e}")),
    };
    vec![err]
}

/// `metadata` of a custom object or of an embedded resource. `namespaced` is `None` for
/// embedded resources, whose namespace may or may not be set.
fn object_meta(
    errs: &mut Vec<FieldError>,
    path: &FieldPath,
    meta: Option<&Value>,
    namespaced: Option<bool>,
) {
    let empty = Map::new();
    let meta = match meta {
        None => &empty,
        Some(Value::Object(m)) => m,
        Some(other) => {
            errs.push(invalid(path, text(other), "must be an object".to_string()));
            return;
        }
    };
    let string = |key: &str| {
        meta.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let name = string("name");
    match (name, string("generateName")) {
        (Some(name), _) => {
            for problem in names::dns1123_subdomain(name) {
                errs.push(invalid(&path.key("name"), name, problem));
            }
        }
        (None, Some(_)) => {}
        // Embedded resources need no name (kube-apiserver fills in a fake one).
        (None, None) if namespaced.is_none() => {}
        (None, None) => errs.push(message(
            &path.key("name"),
            "Required value: name or generateName is required".to_string(),
        )),
    }
    match (string("namespace"), namespaced) {
        (Some(ns), Some(true) | None) => {
            for problem in names::dns1123_label(ns) {
                errs.push(invalid(&path.key("namespace"), ns, problem));
            }
        }
        (None, Some(true)) => errs.push(required(&path.key("namespace"))),
        (Some(_), Some(false)) => errs.push(FieldError {
            path: path.key("namespace"),
            reason: Reason::Forbidden("not allowed on this type".to_string()),
        }),
        _ => {}
    }
    for (field, check_values) in [("labels", true), ("annotations", false)] {
        let p = path.key(field);
        match meta.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let key_path = p.key(k.clone());
                    let key = if check_values {
                        k.clone()
                    } else {
                        k.to_lowercase()
                    };
                    for problem in names::qualified_name(&key) {
                        errs.push(invalid(&key_path, k.as_str(), problem));
                    }
                    match v.as_str() {
                        Some(v) if check_values => {
                            for problem in names::label_value(v) {
                                errs.push(invalid(&key_path, v, problem));
                            }
                        }
                        Some(_) => {}
                        None => errs.push(invalid(&key_path, text(v), "must be a string".into())),
                    }
                }
            }
            Some(other) => errs.push(invalid(&p, text(other), "must be an object".to_string())),
        }
    }
}

/// Walks `value` with `schema`, checking every embedded resource
/// (`x-kubernetes-embedded-resource: true`) as apiextensions `objectmeta` does.
fn embedded(
    errs: &mut Vec<FieldError>,
    path: &FieldPath,
    value: &Value,
    schema: &JSONSchemaProps,
    root: bool,
) {
    match value {
        Value::Object(map) => {
            if !root && schema.x_kubernetes_embedded_resource == Some(true) {
                embedded_resource(errs, path, map);
            }
            let props: Option<&BTreeMap<String, JSONSchemaProps>> = schema.properties.as_ref();
            for (k, v) in map {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    embedded(errs, &path.key(k.clone()), v, s, false);
                } else if let Some(JSONSchemaPropsOrBool::Schema(s)) = &schema.additional_properties
                {
                    embedded(errs, &path.key(k.clone()), v, s, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(JSONSchemaPropsOrArray::Schema(s)) = &schema.items {
                for (i, v) in items.iter().enumerate() {
                    embedded(errs, &path.index(i), v, s, false);
                }
            }
        }
        _ => {}
    }
}

fn embedded_resource(errs: &mut Vec<FieldError>, path: &FieldPath, map: &Map<String, Value>) {
    for field in ["apiVersion", "kind"] {
        let p = path.key(field);
        match map.get(field) {
            None => errs.push(message(&p, "Required value: must not be empty".to_string())),
            Some(Value::String(s)) if s.is_empty() => {
                errs.push(invalid(&p, "", "must not be empty".to_string()));
            }
            Some(Value::String(s)) if field == "apiVersion" && s.matches('/').count() > 1 => {
                errs.push(invalid(
                    &p,
                    s.as_str(),
                    format!("unexpected GroupVersion string: {s}"),
                ));
            }
            Some(Value::String(_)) => {}
            Some(other) => errs.push(invalid(&p, text(other), "must be a string".to_string())),
        }
    }
    if let Some(meta) = map.get("metadata") {
        object_meta(errs, &path.key("metadata"), Some(meta), None);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::fixtures::{crontab_crd, crontab_v1};

    fn messages(obj: Value) -> Vec<String> {
        crontab_v1()
            .validate(&obj)
            .iter()
            .map(kubernetes_message)
            .collect()
    }

    fn crontab(spec: Value) -> Value {
        json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "nightly", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn a_valid_crontab_has_no_errors() {
        let errs = messages(crontab(json!({
            "cronSpec": "*/5 * * * *", "image": "busybox", "replicas": 3, "size": "small",
            "port": "http", "containers": [{"name": "a", "ports": [80, 443]}]
        })));
        assert_eq!(errs, Vec::<String>::new());
    }

    #[test]
    fn a_string_where_an_integer_belongs_is_a_type_error() {
        let errs = messages(crontab(
            json!({"cronSpec": "* * * * *", "replicas": "three"}),
        ));
        assert_eq!(
            errs,
            [
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
            ]
        );
    }

    #[test]
    fn a_value_outside_the_enum_lists_the_supported_ones() {
        let errs = messages(crontab(json!({"cronSpec": "* * * * *", "size": "huge"})));
        assert_eq!(
            errs,
            [r#"spec.size: Unsupported value: "huge": supported values: "small", "large""#]
        );
    }

    #[test]
    fn a_missing_required_field_is_reported_at_its_path() {
        let errs = messages(crontab(json!({"image": "busybox"})));
        assert_eq!(errs, ["spec.cronSpec: Required value"]);
    }

    #[test]
    fn limits_are_worded_as_kube_openapi_words_them() {
        let errs = messages(crontab(json!({
            "cronSpec": "* * * * *", "replicas": 20, "image": "",
            "containers": [{"name": "a", "ports": [0]}]
        })));
        assert_eq!(
            errs,
            [
                "spec.containers[0].ports[0]: Invalid value: 0: spec.containers[0].ports[0] in body should be greater than or equal to 1",
                "spec.image: Invalid value: \"\": spec.image in body should be at least 1 char long",
                "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10",
            ]
        );
    }

    #[test]
    fn patterns_and_lengths_are_checked() {
        let errs = messages(crontab(
            json!({"cronSpec": "every minute", "image": "a".repeat(70)}),
        ));
        assert_eq!(
            errs,
            [
                r#"spec.cronSpec: Invalid value: "every minute": spec.cronSpec in body should match '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'"#,
                "spec.image: Too long: may not be more than 64 bytes",
            ]
        );
    }

    #[test]
    fn int_or_string_refuses_other_types() {
        let errs = messages(crontab(json!({"cronSpec": "* * * * *", "port": true})));
        assert_eq!(
            errs,
            [
                r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#
            ]
        );
    }

    #[test]
    fn nullable_fields_accept_null_and_others_do_not() {
        let errs = messages(crontab(
            json!({"cronSpec": "* * * * *", "note": null, "image": null}),
        ));
        assert_eq!(
            errs,
            [
                r#"spec.image: Invalid value: "null": spec.image in body must be of type string: "null""#
            ]
        );
    }

    #[test]
    fn too_many_items_are_counted() {
        let errs = messages(crontab(json!({"cronSpec": "* * * * *",
            "containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]})));
        assert_eq!(
            errs,
            ["spec.containers: Too many: 4: must have at most 3 items"]
        );
    }

    #[test]
    fn metadata_name_must_be_a_dns_subdomain() {
        let mut obj = crontab(json!({"cronSpec": "* * * * *"}));
        obj["metadata"]["name"] = json!("Nightly_Job");
        let errs = messages(obj);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with(
                r#"metadata.name: Invalid value: "Nightly_Job": a lowercase RFC 1123 subdomain"#
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn a_namespaced_object_needs_a_namespace_and_the_right_kind() {
        let obj = json!({"apiVersion": "stable.example.com/v1beta1", "kind": "CronJob",
            "metadata": {"name": "x"}, "spec": {"cronSpec": "* * * * *"}});
        assert_eq!(
            messages(obj),
            [
                r#"apiVersion: Invalid value: "stable.example.com/v1beta1": must be stable.example.com/v1"#,
                r#"kind: Invalid value: "CronJob": must be CronTab"#,
                "metadata.namespace: Required value",
            ]
        );
    }

    #[test]
    fn embedded_resources_need_api_version_and_kind() {
        let errs = messages(crontab(json!({"cronSpec": "* * * * *",
            "template": {"metadata": {"name": "Bad Name"}, "spec": {}}})));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(
            errs[0],
            "spec.template.apiVersion: Required value: must not be empty"
        );
        assert_eq!(
            errs[1],
            "spec.template.kind: Required value: must not be empty"
        );
        assert!(errs[2].starts_with(r#"spec.template.metadata.name: Invalid value: "Bad Name""#));
    }

    #[test]
    fn the_served_beta_version_has_its_own_schema() {
        let crd = crontab_crd();
        let beta = CompiledVersion::new(&crd, "v1beta1").unwrap();
        let obj = json!({"apiVersion": "stable.example.com/v1beta1", "kind": "CronTab",
            "metadata": {"name": "x", "namespace": "default"}, "spec": {"cronSpec": 5}});
        let errs: Vec<String> = beta.validate(&obj).iter().map(kubernetes_message).collect();
        assert_eq!(
            errs,
            [
                r#"spec.cronSpec: Invalid value: "integer": spec.cronSpec in body must be of type string: "integer""#
            ]
        );
    }

    #[test]
    fn quoting_follows_the_value_type() {
        let err = FieldError {
            path: FieldPath::parse("spec.count"),
            reason: Reason::Invalid {
                value: "20".into(),
                detail: "too big".into(),
            },
        };
        assert_eq!(
            kubernetes_message(&err),
            "spec.count: Invalid value: 20: too big"
        );
    }
}
