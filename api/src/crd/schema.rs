//! A CRD version's `openAPIV3Schema` translated to JSON Schema and compiled once by the
//! `jsonschema` crate.
//!
//! OpenAPI v3 schemas follow JSON Schema draft 4, but the translation targets draft 6:
//! there, as in kube-apiserver's validator, `3.0` is an integer. Draft 4's boolean
//! `exclusiveMaximum`/`exclusiveMinimum` become draft 6's numeric ones.
//!
//! Kubernetes' own extensions are translated here, as kube-apiserver's validator
//! understands them:
//!
//! - `nullable: true` admits `null` (added to `type`, and to `enum` when there is one);
//! - `x-kubernetes-int-or-string: true` admits an integer or a string;
//! - `x-kubernetes-preserve-unknown-fields` and `x-kubernetes-embedded-resource` need no
//!   translation for validation (unknown fields are allowed by JSON Schema; the
//!   embedded object's `apiVersion`, `kind` and `metadata` are checked in
//!   [`super::validate`]);
//! - annotations (`description`, `default`, `example`, `x-kubernetes-list-type`, ...)
//!   are dropped, and so are formats Kubernetes does not check (`int32`, `password`);
//! - `pattern` is a Go (RE2) regular expression, checked under `PATTERN_KEYWORD`:
//!   the `jsonschema` crate checks its own `pattern`s as ECMA 262 expressions first,
//!   which refuses RE2's `(?i)` (prometheus-operator's PrometheusRule CRD has one).

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    JSONSchemaPropsOrStringArray,
};
use serde_json::{Map, Value, json};

use super::{Error, Result, structural};
use crate::path::FieldPath;

/// The keyword a schema's `pattern` is checked under (a custom keyword of the
/// validator, matching with the `regex` crate, whose syntax is RE2's).
pub(super) const PATTERN_KEYWORD: &str = "x-rk8s-pattern";

/// A compiled `pattern`: strings must match it somewhere (Go's `MatchString`);
/// other values pass.
struct Pattern {
    regex: regex::Regex,
}

impl<'i> jsonschema::Keyword<'i> for Pattern {
    fn validate(&self, instance: &'i Value) -> Result<(), jsonschema::ValidationError<'i>> {
        if self.is_valid(instance) {
            Ok(())
        } else {
            // The message carries the pattern: `validate` words it as Kubernetes does.
            Err(jsonschema::ValidationError::custom(self.regex.as_str()))
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        instance.as_str().is_none_or(|s| self.regex.is_match(s))
    }
}

fn pattern_keyword<'a>(
    _parent: &'a Map<String, Value>,
    value: &'a Value,
    _path: jsonschema::paths::Location,
) -> Result<Box<dyn for<'i> jsonschema::Keyword<'i>>, jsonschema::ValidationError<'a>> {
    let source = value
        .as_str()
        .ok_or_else(|| jsonschema::ValidationError::schema("pattern must be a string"))?;
    let regex = regex::Regex::new(source).map_err(|e| {
        jsonschema::ValidationError::schema(format!(
            "{source:?} is not a valid regular expression: {e}"
        ))
    })?;
    Ok(Box::new(Pattern { regex }))
}

/// Formats whose meaning the validator shares with kube-openapi's `strfmt` registry.
const CHECKED_FORMATS: &[&str] = &["date", "date-time", "email", "ipv4", "ipv6", "uuid"];

/// A CRD version ready to serve: its schema compiled once. The API server keeps one per
/// served version and rebuilds it when the CRD changes.
#[derive(Debug)]
pub struct CompiledVersion {
    /// The version's name (`v1`).
    pub version: String,
    /// The CRD's group (`stable.example.com`).
    pub group: String,
    /// The custom kind (`CronTab`).
    pub kind: String,
    /// Whether objects live in namespaces (`scope: Namespaced`).
    pub namespaced: bool,
    /// The version's schema as written in the CRD (used by defaulting and pruning).
    pub schema: JSONSchemaProps,
    pub(super) validator: jsonschema::Validator,
}

impl CompiledVersion {
    /// Compiles the schema of `version` of `crd`. A version without schema gets one that
    /// accepts any object (kube-apiserver refuses such CRDs; see
    /// [`super::definition::validate_crd`]).
    pub fn new(crd: &CustomResourceDefinition, version: &str) -> Result<Self> {
        let crd_name = crd.metadata.name.clone().unwrap_or_default();
        let (index, v) = crd
            .spec
            .versions
            .iter()
            .enumerate()
            .find(|(_, v)| v.name == version)
            .ok_or_else(|| Error::VersionNotFound {
                crd: crd_name,
                version: version.to_string(),
            })?;
        let schema = v
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.clone())
            .unwrap_or_else(|| JSONSchemaProps {
                type_: Some("object".to_string()),
                x_kubernetes_preserve_unknown_fields: Some(true),
                ..JSONSchemaProps::default()
            });
        let validator = compile(&schema).map_err(|message| Error::InvalidSchema {
            path: FieldPath::root()
                .key("spec")
                .key("versions")
                .index(index)
                .key("schema")
                .key("openAPIV3Schema")
                .to_string(),
            message,
        })?;
        Ok(Self {
            version: v.name.clone(),
            group: crd.spec.group.clone(),
            kind: crd.spec.names.kind.clone(),
            namespaced: crd.spec.scope == "Namespaced",
            schema,
            validator,
        })
    }

    /// The `apiVersion` objects of this version carry (`stable.example.com/v1`).
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

/// The deepest schema rk8s accepts. Every walk over a schema (translation, checks,
/// compiling) recurses once per level, so the depth is bounded before any walk starts.
pub const MAX_DEPTH: usize = 128;

/// Whether `schema` nests deeper than [`MAX_DEPTH`] (counted without recursion).
pub fn too_deep(schema: &JSONSchemaProps) -> bool {
    let mut stack = vec![(schema, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return true;
        }
        let maps = [
            &node.properties,
            &node.pattern_properties,
            &node.definitions,
        ];
        let lists = [&node.all_of, &node.any_of, &node.one_of];
        let children = maps
            .into_iter()
            .flatten()
            .flat_map(|m| m.values())
            .chain(lists.into_iter().flatten().flatten())
            .chain(node.not.as_deref())
            .chain(match &node.items {
                Some(JSONSchemaPropsOrArray::Schema(s)) => std::slice::from_ref(&**s),
                Some(JSONSchemaPropsOrArray::Schemas(list)) => list.as_slice(),
                None => &[],
            })
            .chain(
                [&node.additional_properties, &node.additional_items]
                    .into_iter()
                    .filter_map(|a| match a {
                        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(&**s),
                        _ => None,
                    }),
            )
            .chain(
                node.dependencies
                    .iter()
                    .flat_map(|d| d.values())
                    .filter_map(|d| match d {
                        JSONSchemaPropsOrStringArray::Schema(s) => Some(&**s),
                        JSONSchemaPropsOrStringArray::Strings(_) => None,
                    }),
            );
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}

/// Compiles a schema into a validator, or says why it cannot be.
pub fn compile(schema: &JSONSchemaProps) -> Result<jsonschema::Validator, String> {
    if too_deep(schema) {
        return Err(format!(
            "must not be nested more than {MAX_DEPTH} levels deep"
        ));
    }
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft6)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        .with_format("byte", is_base64)
        .with_keyword(PATTERN_KEYWORD, pattern_keyword)
        // Go's RE2, as Kubernetes uses: linear time, no backtracking to exploit.
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(&to_json_schema(schema))
        .map_err(|e| e.to_string())
}

/// Translates a Kubernetes schema into a draft-6 JSON Schema.
pub fn to_json_schema(p: &JSONSchemaProps) -> Value {
    let mut out = Map::new();
    let nullable = p.nullable == Some(true);
    let mut types: Vec<&str> = Vec::new();
    if p.x_kubernetes_int_or_string == Some(true) {
        types.extend(["integer", "string"]);
    } else if let Some(t) = p.type_.as_deref().filter(|t| !t.is_empty()) {
        types.push(t);
    }
    if !types.is_empty() {
        if nullable {
            types.push("null");
        }
        out.insert(
            "type".into(),
            match types.as_slice() {
                [one] => json!(one),
                many => json!(many),
            },
        );
    }
    if let Some(f) = p.format.as_deref() {
        let f = if f == "datetime" { "date-time" } else { f };
        if CHECKED_FORMATS.contains(&f) || f == "byte" {
            out.insert("format".into(), json!(f));
        }
    }
    // OpenAPI's boolean `exclusiveMaximum: true` is draft 6's numeric form.
    for (inclusive, exclusive, limit, is_exclusive) in [
        (
            "maximum",
            "exclusiveMaximum",
            p.maximum,
            p.exclusive_maximum,
        ),
        (
            "minimum",
            "exclusiveMinimum",
            p.minimum,
            p.exclusive_minimum,
        ),
    ] {
        if let Some(limit) = limit {
            let key = if is_exclusive == Some(true) {
                exclusive
            } else {
                inclusive
            };
            out.insert(key.into(), number(limit));
        }
    }
    if let Some(m) = p.multiple_of {
        out.insert("multipleOf".into(), number(m));
    }
    if let Some(u) = p.unique_items {
        out.insert("uniqueItems".into(), json!(u));
    }
    for (key, v) in [
        ("maxLength", p.max_length),
        ("minLength", p.min_length),
        ("maxItems", p.max_items),
        ("minItems", p.min_items),
        ("maxProperties", p.max_properties),
        ("minProperties", p.min_properties),
    ] {
        if let Some(v) = v {
            out.insert(key.into(), json!(v));
        }
    }
    if let Some(pattern) = &p.pattern {
        out.insert(PATTERN_KEYWORD.into(), json!(pattern));
    }
    if let Some(required) = p.required.as_ref().filter(|r| !r.is_empty()) {
        out.insert("required".into(), json!(required));
    }
    if let Some(values) = &p.enum_ {
        let mut values: Vec<Value> = values.iter().map(|v| v.0.clone()).collect();
        if nullable && !values.contains(&Value::Null) {
            values.push(Value::Null);
        }
        out.insert("enum".into(), Value::Array(values));
    }
    // `anyOf: [{type: integer}, {type: string}]` beside `x-kubernetes-int-or-string`
    // repeats the `type` above: dropped, so a boolean gets one error, not two.
    let any_of = if p.x_kubernetes_int_or_string == Some(true)
        && structural::is_int_or_string_any_of(&p.any_of)
    {
        &None
    } else {
        &p.any_of
    };
    for (key, list) in [
        ("allOf", &p.all_of),
        ("anyOf", any_of),
        ("oneOf", &p.one_of),
    ] {
        if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
            out.insert(
                key.into(),
                Value::Array(list.iter().map(to_json_schema).collect()),
            );
        }
    }
    if let Some(not) = &p.not {
        out.insert("not".into(), to_json_schema(not));
    }
    for (key, map) in [
        ("properties", &p.properties),
        ("patternProperties", &p.pattern_properties),
    ] {
        if let Some(map) = map {
            out.insert(key.into(), schema_map(map));
        }
    }
    for (key, v) in [
        ("additionalProperties", &p.additional_properties),
        ("additionalItems", &p.additional_items),
    ] {
        match v {
            Some(JSONSchemaPropsOrBool::Bool(b)) => {
                out.insert(key.into(), json!(b));
            }
            Some(JSONSchemaPropsOrBool::Schema(s)) => {
                out.insert(key.into(), to_json_schema(s));
            }
            None => {}
        }
    }
    match &p.items {
        Some(JSONSchemaPropsOrArray::Schema(s)) => {
            out.insert("items".into(), to_json_schema(s));
        }
        Some(JSONSchemaPropsOrArray::Schemas(list)) => {
            out.insert(
                "items".into(),
                Value::Array(list.iter().map(to_json_schema).collect()),
            );
        }
        None => {}
    }
    if let Some(deps) = &p.dependencies {
        let deps: Map<String, Value> = deps
            .iter()
            .map(|(k, d)| {
                let v = match d {
                    JSONSchemaPropsOrStringArray::Schema(s) => to_json_schema(s),
                    JSONSchemaPropsOrStringArray::Strings(names) => json!(names),
                };
                (k.clone(), v)
            })
            .collect();
        out.insert("dependencies".into(), Value::Object(deps));
    }
    Value::Object(out)
}

fn schema_map(map: &BTreeMap<String, JSONSchemaProps>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), to_json_schema(v)))
            .collect(),
    )
}

/// A limit as JSON: whole numbers as integers, so messages read `10`, not `10.0`.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

/// The `byte` format: standard base64 with padding (Go's `base64.StdEncoding`).
fn is_base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let body = s.trim_end_matches('=');
    s.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(v: Value) -> JSONSchemaProps {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn int_or_string_admits_both_and_null_when_nullable() {
        let s = to_json_schema(&props(
            json!({"x-kubernetes-int-or-string": true, "nullable": true}),
        ));
        assert_eq!(s, json!({"type": ["integer", "string", "null"]}));
    }

    #[test]
    fn the_int_or_string_any_of_pattern_is_folded_into_the_type() {
        let s = to_json_schema(&props(json!({"x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}]})));
        assert_eq!(s, json!({"type": ["integer", "string"]}));
    }

    #[test]
    fn nullable_enum_admits_null() {
        let s = to_json_schema(&props(
            json!({"type": "string", "enum": ["a"], "nullable": true}),
        ));
        assert_eq!(s, json!({"type": ["string", "null"], "enum": ["a", null]}));
    }

    #[test]
    fn annotations_and_unchecked_formats_are_dropped() {
        let s = to_json_schema(&props(json!({
            "type": "integer", "format": "int32", "description": "d", "default": 1,
            "x-kubernetes-list-type": "atomic", "maximum": 10.0
        })));
        assert_eq!(s, json!({"type": "integer", "maximum": 10}));
    }

    #[test]
    fn exclusive_limits_become_numeric() {
        let s = to_json_schema(&props(json!({
            "type": "number", "maximum": 1.5, "exclusiveMaximum": true,
            "minimum": 0, "exclusiveMinimum": false
        })));
        assert_eq!(
            s,
            json!({"type": "number", "exclusiveMaximum": 1.5, "minimum": 0})
        );
    }

    #[test]
    fn patterns_are_go_regular_expressions() {
        // RE2 syntax that ECMA 262 refuses: inline flags and POSIX classes.
        let v = compile(&props(json!({"type": "object", "properties": {
            "strategy": {"type": "string", "pattern": "^(?i)(abort|warn)?$"},
            "word": {"type": "string", "pattern": "^[[:alpha:]]+$"}}})))
        .unwrap();
        assert!(v.is_valid(&json!({"strategy": "WARN", "word": "abc"})));
        assert!(v.is_valid(&json!({"strategy": ""})));
        assert!(!v.is_valid(&json!({"strategy": "retry"})));
        assert!(!v.is_valid(&json!({"word": "a1"})));
        // Unanchored, as Go's `MatchString`; only strings are checked.
        let v = compile(&props(json!({"pattern": "b+"}))).unwrap();
        assert!(v.is_valid(&json!("abbc")));
        assert!(v.is_valid(&json!(7)));
        assert!(!v.is_valid(&json!("ac")));
        assert!(compile(&props(json!({"type": "string", "pattern": "(unclosed"}))).is_err());
    }

    #[test]
    fn whole_floats_are_integers_as_in_kubernetes() {
        let v = compile(&props(json!({"type": "integer"}))).unwrap();
        assert!(v.is_valid(&json!(3.0)));
        assert!(!v.is_valid(&json!(3.5)));
    }

    #[test]
    fn a_schema_nested_too_deep_is_refused_without_recursing() {
        let mut s = props(json!({"type": "string"}));
        for _ in 0..MAX_DEPTH {
            s = JSONSchemaProps {
                type_: Some("array".into()),
                items: Some(JSONSchemaPropsOrArray::Schema(Box::new(s))),
                ..JSONSchemaProps::default()
            };
        }
        assert!(too_deep(&s));
        assert_eq!(
            compile(&s).unwrap_err(),
            "must not be nested more than 128 levels deep"
        );
    }

    #[test]
    fn byte_format_checks_base64() {
        let v = compile(&props(json!({"type": "string", "format": "byte"}))).unwrap();
        assert!(v.is_valid(&json!("aGVsbG8=")));
        assert!(!v.is_valid(&json!("not base64!")));
    }

    #[test]
    fn a_missing_version_is_named_in_the_error() {
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {"group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab"},
                "versions": [{"name": "v1", "served": true, "storage": true}]}
        }))
        .unwrap();
        let err = CompiledVersion::new(&crd, "v2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "custom resource definition crontabs.stable.example.com has no version \"v2\""
        );
    }
}
