//! The rules a CRD version's schema must follow to be served, as kube-apiserver checks
//! them: the OpenAPI subset CRDs may use (apiextensions `validation.go`,
//! `ValidateCustomResourceDefinitionOpenAPISchema`), structural schemas (apiextensions
//! `schema/validation.go`, `ValidateStructural`: every specified field has a `type`,
//! value validations in `allOf`/`anyOf`/`oneOf`/`not` only restrict), and defaults that
//! validate against their schema and survive pruning (`schema/defaulting`).
//!
//! Kubernetes writes map keys in brackets (`properties[spec]`); rk8s' [`FieldPath`]
//! writes plain words with a dot (`properties.spec`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

use super::{prune, schema, validate};
use crate::path::FieldPath;
use crate::validation::{FieldError, Reason};

/// The types an OpenAPI v3 schema may name.
const OPENAPI_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

/// Where in the tree a schema node sits (apiextensions' `level`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// Checks the schema of one CRD version; `path` is where it is
/// (`spec.versions[0].schema.openAPIV3Schema`).
pub fn validate_schema(s: &JSONSchemaProps, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Errs::default();
    if schema::too_deep(s) {
        errs.invalid(
            path,
            "",
            format!(
                "must not be nested more than {} levels deep",
                schema::MAX_DEPTH
            ),
        );
        return errs.0;
    }
    if s.nullable == Some(true) {
        errs.forbidden(&path.key("nullable"), "nullable cannot be true at the root");
    }
    openapi(&mut errs, s, path, Context::default(), true);
    invariants(&mut errs, s, Level::Root, path);
    completeness(&mut errs, s, path);
    // Sorted as kube-apiserver sorts them: map iteration order must not show.
    errs.0.sort_by_cached_key(validate::kubernetes_message);
    if errs.0.is_empty() {
        defaults(&mut errs, s, path, true);
        if let Err(message) = schema::compile(s) {
            errs.invalid(path, "", format!("error building validator: {message}"));
        }
    }
    errs.0
}

#[derive(Default)]
struct Errs(Vec<FieldError>);

impl Errs {
    fn push(&mut self, path: &FieldPath, reason: Reason) {
        self.0.push(FieldError {
            path: path.clone(),
            reason,
        });
    }
    fn forbidden(&mut self, path: &FieldPath, detail: &str) {
        self.push(path, Reason::Forbidden(detail.to_string()));
    }
    fn required(&mut self, path: &FieldPath, detail: &str) {
        self.push(path, Reason::Message(format!("Required value: {detail}")));
    }
    fn invalid(&mut self, path: &FieldPath, value: impl Into<String>, detail: impl Into<String>) {
        self.push(
            path,
            Reason::Invalid {
                value: value.into(),
                detail: detail.into(),
            },
        );
    }
}

/// What the walk of [`openapi`] knows about where it is.
#[derive(Clone, Copy, Default)]
struct Context {
    /// Inside the `metadata`, `apiVersion` or `kind` of the root or an embedded resource.
    resource_meta: bool,
    /// Why defaults are not allowed here, if they are not.
    no_defaults: Option<&'static str>,
}

fn items_schema(s: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &s.items {
        Some(JSONSchemaPropsOrArray::Schema(i)) => Some(i),
        _ => None,
    }
}

fn additional_schema(s: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &s.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(a)) => Some(a),
        _ => None,
    }
}

/// The OpenAPI subset CRD schemas may use.
fn openapi(errs: &mut Errs, s: &JSONSchemaProps, path: &FieldPath, ctx: Context, root: bool) {
    if let Some(t) = s.type_.as_deref().filter(|t| !t.is_empty()) {
        if t == "null" {
            errs.forbidden(
                &path.key("type"),
                "type cannot be set to null, use nullable as an alternative",
            );
        } else if !OPENAPI_TYPES.contains(&t) {
            errs.push(
                &path.key("type"),
                Reason::NotSupported {
                    value: t.to_string(),
                    supported: OPENAPI_TYPES.iter().map(|s| s.to_string()).collect(),
                },
            );
        }
    }
    if s.default.is_some()
        && let Some(reason) = ctx.no_defaults
    {
        errs.forbidden(&path.key("default"), &format!("must not be set {reason}"));
    }
    let unsupported = [
        ("id", s.id.is_some()),
        ("additionalItems", s.additional_items.is_some()),
        (
            "patternProperties",
            s.pattern_properties.as_ref().is_some_and(|p| !p.is_empty()),
        ),
        (
            "definitions",
            s.definitions.as_ref().is_some_and(|d| !d.is_empty()),
        ),
        ("dependencies", s.dependencies.is_some()),
        ("$ref", s.ref_path.is_some()),
    ];
    for (field, set) in unsupported {
        if set {
            errs.forbidden(&path.key(field), &format!("{field} is not supported"));
        }
    }
    if matches!(s.items, Some(JSONSchemaPropsOrArray::Schemas(_))) {
        errs.forbidden(
            &path.key("items"),
            "items must be a schema object and not an array",
        );
    }
    if ctx.resource_meta && s.x_kubernetes_embedded_resource == Some(true) {
        errs.forbidden(
            &path.key("x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        );
    }
    if s.unique_items == Some(true) {
        errs.forbidden(
            &path.key("uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        );
    }
    if let Some(extra) = &s.additional_properties {
        let has_properties = s.properties.as_ref().is_some_and(|p| !p.is_empty());
        if has_properties && !matches!(extra, JSONSchemaPropsOrBool::Bool(true)) {
            errs.forbidden(
                &path.key("additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            );
        }
        if let JSONSchemaPropsOrBool::Schema(a) = extra {
            let mut sub = ctx;
            if ctx.resource_meta {
                sub.no_defaults = Some("inside additionalProperties applying to object metadata");
            }
            openapi(errs, a, &path.key("additionalProperties"), sub, false);
        }
    }
    let embedded = s.x_kubernetes_embedded_resource == Some(true);
    for (name, p) in s.properties.iter().flatten() {
        let mut sub = ctx;
        if (root || embedded) && matches!(name.as_str(), "metadata" | "apiVersion" | "kind") {
            sub.resource_meta = true;
            if root {
                sub.no_defaults = Some(match name.as_str() {
                    "metadata" => "in top-level metadata",
                    "apiVersion" => "in top-level apiVersion",
                    _ => "in top-level kind",
                });
            }
        }
        openapi(
            errs,
            p,
            &path.key("properties").key(name.clone()),
            sub,
            false,
        );
    }
    if let Some(not) = &s.not {
        openapi(errs, not, &path.key("not"), ctx, false);
    }
    for (key, list) in [
        ("allOf", &s.all_of),
        ("oneOf", &s.one_of),
        ("anyOf", &s.any_of),
    ] {
        for (i, sub) in list.iter().flatten().enumerate() {
            openapi(errs, sub, &path.key(key).index(i), ctx, false);
        }
    }
    if let Some(i) = items_schema(s) {
        openapi(errs, i, &path.key("items"), ctx, false);
    }
    if s.x_kubernetes_preserve_unknown_fields == Some(false) {
        errs.invalid(
            &path.key("x-kubernetes-preserve-unknown-fields"),
            "false",
            "must be true or undefined",
        );
    }
    let t = s.type_.as_deref().unwrap_or("");
    if let Some(list_type) = &s.x_kubernetes_list_type {
        if t.is_empty() {
            errs.required(
                &path.key("type"),
                "must be array if x-kubernetes-list-type is specified",
            );
        } else if t != "array" {
            errs.invalid(
                &path.key("type"),
                t,
                "must be array if x-kubernetes-list-type is specified",
            );
        }
        if !["atomic", "set", "map"].contains(&list_type.as_str()) {
            errs.push(
                &path.key("x-kubernetes-list-type"),
                Reason::NotSupported {
                    value: list_type.clone(),
                    supported: vec!["atomic".into(), "set".into(), "map".into()],
                },
            );
        }
    }
    if let Some(map_type) = &s.x_kubernetes_map_type {
        if t.is_empty() {
            errs.required(
                &path.key("type"),
                "must be object if x-kubernetes-map-type is specified",
            );
        } else if t != "object" {
            errs.invalid(
                &path.key("type"),
                t,
                "must be object if x-kubernetes-map-type is specified",
            );
        }
        if !["atomic", "granular"].contains(&map_type.as_str()) {
            errs.push(
                &path.key("x-kubernetes-map-type"),
                Reason::NotSupported {
                    value: map_type.clone(),
                    supported: vec!["atomic".into(), "granular".into()],
                },
            );
        }
    }
}

/// The structural-schema invariants (apiextensions `validateStructuralInvariants`).
fn invariants(errs: &mut Errs, s: &JSONSchemaProps, level: Level, path: &FieldPath) {
    let t = s.type_.as_deref().unwrap_or("");
    let int_or_string = s.x_kubernetes_int_or_string == Some(true);
    let preserve = s.x_kubernetes_preserve_unknown_fields == Some(true);
    let embedded = s.x_kubernetes_embedded_resource == Some(true);
    if t == "array" && s.items.is_none() {
        errs.required(&path.key("items"), "must be specified");
    }
    if let Some(i) = items_schema(s) {
        invariants(errs, i, Level::Item, &path.key("items"));
    }
    for (name, p) in s.properties.iter().flatten() {
        invariants(
            errs,
            p,
            Level::Field,
            &path.key("properties").key(name.clone()),
        );
    }
    if s.additional_properties.is_some() {
        if level == Level::Root {
            errs.forbidden(
                &path.key("additionalProperties"),
                "must not be used at the root",
            );
        }
        if let Some(a) = additional_schema(s) {
            invariants(errs, a, Level::Field, &path.key("additionalProperties"));
        }
    }
    if int_or_string && preserve {
        errs.invalid(
            &path.key("x-kubernetes-preserve-unknown-fields"),
            "true",
            "must be false if x-kubernetes-int-or-string is true",
        );
    }
    if int_or_string && embedded {
        errs.invalid(
            &path.key("x-kubernetes-embedded-resource"),
            "true",
            "must be false if x-kubernetes-int-or-string is true",
        );
    }
    value_validation(errs, s, path, is_int_or_string_any_of(&s.any_of), true);

    let check_metadata = level == Level::Root || embedded;
    if embedded && t != "object" {
        if t.is_empty() {
            errs.required(
                &path.key("type"),
                "must be object if x-kubernetes-embedded-resource is true",
            );
        } else {
            errs.invalid(
                &path.key("type"),
                t,
                "must be object if x-kubernetes-embedded-resource is true",
            );
        }
    } else if t.is_empty() && !int_or_string && !preserve {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.required(&path.key("type"), detail);
    }
    if embedded && s.additional_properties.is_some() {
        errs.forbidden(
            &path.key("additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        );
    }
    if level == Level::Root && !t.is_empty() && t != "object" {
        errs.invalid(&path.key("type"), t, "must be object at the root");
    }
    let props = s.properties.as_ref();
    if check_metadata {
        for field in ["kind", "apiVersion"] {
            if let Some(p) = props.and_then(|p| p.get(field)) {
                let ft = p.type_.as_deref().unwrap_or("");
                if ft != "string" {
                    errs.invalid(
                        &path.key("properties").key(field).key("type"),
                        ft,
                        "must be string",
                    );
                }
            }
        }
    }
    if let Some(meta) = props.and_then(|p| p.get("metadata")) {
        let mpath = path.key("properties").key("metadata");
        let mt = meta.type_.as_deref().unwrap_or("");
        if check_metadata && mt != "object" {
            errs.invalid(&mpath.key("type"), mt, "must be object");
        }
        if level == Level::Root {
            // Only `name` and `generateName` may be restricted; the rest of ObjectMeta is
            // the API server's.
            let mut rest = meta.clone();
            rest.type_ = None;
            rest.default = None;
            if let Some(p) = &rest.properties {
                let only_names = p.keys().all(|k| k == "name" || k == "generateName");
                if only_names {
                    rest.properties = None;
                }
            }
            if rest != JSONSchemaProps::default() {
                errs.forbidden(
                    &mpath,
                    "must not specify anything other than name and generateName, but metadata is implicitly specified",
                );
            }
        }
    }
    if embedded && !preserve && props.is_none_or(|p| p.is_empty()) {
        errs.required(
            &path.key("properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        );
    }
}

/// `anyOf: [{type: integer}, {type: string}]`, the one place a nested `type` is allowed.
pub(super) fn is_int_or_string_any_of(any_of: &Option<Vec<JSONSchemaProps>>) -> bool {
    let of = |t: &str| JSONSchemaProps {
        type_: Some(t.to_string()),
        ..JSONSchemaProps::default()
    };
    matches!(any_of.as_deref(), Some([a, b]) if *a == of("integer") && *b == of("string"))
}

/// The junctors of a node (`allOf`, `anyOf`, `oneOf`, `not`): value validation only.
fn value_validation(
    errs: &mut Errs,
    s: &JSONSchemaProps,
    path: &FieldPath,
    skip_any_of: bool,
    structural_node: bool,
) {
    if !skip_any_of {
        for (i, sub) in s.any_of.iter().flatten().enumerate() {
            nested(errs, sub, &path.key("anyOf").index(i), false);
        }
    }
    let skip_first = s
        .all_of
        .as_ref()
        .and_then(|a| a.first())
        .is_some_and(|first| is_int_or_string_any_of(&first.any_of));
    for (i, sub) in s.all_of.iter().flatten().enumerate() {
        nested(errs, sub, &path.key("allOf").index(i), skip_first && i == 0);
    }
    for (i, sub) in s.one_of.iter().flatten().enumerate() {
        nested(errs, sub, &path.key("oneOf").index(i), false);
    }
    if let Some(not) = &s.not {
        nested(errs, not, &path.key("not"), false);
    }
    if !structural_node {
        // A nested node's own `items`, `properties` and `additionalProperties` are value
        // validations too.
        if let Some(i) = items_schema(s) {
            nested(errs, i, &path.key("items"), false);
        }
        for (name, p) in s.properties.iter().flatten() {
            nested(errs, p, &path.key("properties").key(name.clone()), false);
        }
    }
}

/// A schema under a junctor (apiextensions `validateNestedValueValidation`).
fn nested(errs: &mut Errs, s: &JSONSchemaProps, path: &FieldPath, skip_any_of: bool) {
    value_validation(errs, s, path, skip_any_of, false);
    const STRUCTURAL: &str = "must be empty to be structural";
    const UNDEFINED: &str = "must be undefined to be structural";
    if s.type_.as_deref().is_some_and(|t| !t.is_empty()) {
        errs.forbidden(&path.key("type"), STRUCTURAL);
    }
    if s.additional_properties.is_some() {
        errs.forbidden(&path.key("additionalProperties"), UNDEFINED);
    }
    let checks = [
        ("default", s.default.is_some(), UNDEFINED),
        (
            "title",
            s.title.as_ref().is_some_and(|t| !t.is_empty()),
            STRUCTURAL,
        ),
        (
            "description",
            s.description.as_ref().is_some_and(|d| !d.is_empty()),
            STRUCTURAL,
        ),
        (
            "nullable",
            s.nullable == Some(true),
            "must be false to be structural",
        ),
        ("externalDocs", s.external_docs.is_some(), UNDEFINED),
        (
            "x-kubernetes-preserve-unknown-fields",
            s.x_kubernetes_preserve_unknown_fields == Some(true),
            "must be false to be structural",
        ),
        (
            "x-kubernetes-embedded-resource",
            s.x_kubernetes_embedded_resource == Some(true),
            "must be false to be structural",
        ),
        (
            "x-kubernetes-int-or-string",
            s.x_kubernetes_int_or_string == Some(true),
            "must be false to be structural",
        ),
        (
            "x-kubernetes-list-map-keys",
            s.x_kubernetes_list_map_keys
                .as_ref()
                .is_some_and(|k| !k.is_empty()),
            STRUCTURAL,
        ),
        (
            "x-kubernetes-list-type",
            s.x_kubernetes_list_type.is_some(),
            UNDEFINED,
        ),
        (
            "x-kubernetes-map-type",
            s.x_kubernetes_map_type.is_some(),
            UNDEFINED,
        ),
        (
            "x-kubernetes-validations",
            s.x_kubernetes_validations
                .as_ref()
                .is_some_and(|v| !v.is_empty()),
            STRUCTURAL,
        ),
    ];
    for (field, bad, detail) in checks {
        if bad {
            errs.forbidden(&path.key(field), detail);
        }
    }
    if s.properties
        .as_ref()
        .is_some_and(|p| p.contains_key("metadata"))
    {
        errs.forbidden(
            &path.key("properties").key("metadata"),
            "must not be specified in a nested context",
        );
    }
}

/// Every field a value validation names must also be specified outside of it
/// (apiextensions `validateStructuralCompleteness`): `anyOf: [{properties: {a: ...}}]`
/// needs `properties: {a: ...}` beside it.
fn completeness(errs: &mut Errs, s: &JSONSchemaProps, path: &FieldPath) {
    junctor_completeness(errs, s, s, path, path);
    if let Some(i) = items_schema(s) {
        completeness(errs, i, &path.key("items"));
    }
    for (name, p) in s.properties.iter().flatten() {
        completeness(errs, p, &path.key("properties").key(name.clone()));
    }
    if let Some(a) = additional_schema(s) {
        completeness(errs, a, &path.key("additionalProperties"));
    }
}

/// The junctors of `v` (at `vpath`) against the structural node `s` (at `spath`).
fn junctor_completeness(
    errs: &mut Errs,
    v: &JSONSchemaProps,
    s: &JSONSchemaProps,
    spath: &FieldPath,
    vpath: &FieldPath,
) {
    for (key, list) in [
        ("allOf", &v.all_of),
        ("anyOf", &v.any_of),
        ("oneOf", &v.one_of),
    ] {
        for (i, sub) in list.iter().flatten().enumerate() {
            nested_completeness(errs, sub, Some(s), spath, &vpath.key(key).index(i));
        }
    }
    if let Some(not) = &v.not {
        nested_completeness(errs, not, Some(s), spath, &vpath.key("not"));
    }
}

fn nested_completeness(
    errs: &mut Errs,
    v: &JSONSchemaProps,
    s: Option<&JSONSchemaProps>,
    spath: &FieldPath,
    vpath: &FieldPath,
) {
    let Some(s) = s else {
        errs.required(spath, &format!("because it is defined in {vpath}"));
        return;
    };
    junctor_completeness(errs, v, s, spath, vpath);
    if let Some(vi) = items_schema(v) {
        nested_completeness(
            errs,
            vi,
            items_schema(s),
            &spath.key("items"),
            &vpath.key("items"),
        );
    }
    for (k, vp) in v.properties.iter().flatten() {
        let sp = spath.key("properties").key(k.clone());
        let vp_path = vpath.key("properties").key(k.clone());
        match s.properties.as_ref().and_then(|p| p.get(k)) {
            Some(sf) => nested_completeness(errs, vp, Some(sf), &sp, &vp_path),
            None => errs.required(&sp, &format!("because it is defined in {vp_path}")),
        }
    }
}

/// Every `default` must validate against its own schema and have no unknown fields
/// (apiextensions `schema/defaulting/validation.go`).
fn defaults(errs: &mut Errs, s: &JSONSchemaProps, path: &FieldPath, root: bool) {
    if let Some(default) = &s.default {
        let dpath = path.key("default");
        match schema::compile(s) {
            Ok(v) => {
                for e in v.iter_errors(&default.0) {
                    errs.0.extend(validate::field_error(&e, &dpath));
                }
            }
            Err(message) => errs.invalid(&dpath, "", message),
        }
        let mut pruned = default.0.clone();
        if !prune::prune_node(&mut pruned, s).is_empty() {
            errs.invalid(
                &dpath,
                default.0.to_string(),
                "must not have unknown fields",
            );
        }
    }
    for (name, p) in s.properties.iter().flatten() {
        if root && name == "metadata" {
            continue;
        }
        defaults(errs, p, &path.key("properties").key(name.clone()), false);
    }
    if let Some(i) = items_schema(s) {
        defaults(errs, i, &path.key("items"), false);
    }
    if let Some(a) = additional_schema(s) {
        defaults(errs, a, &path.key("additionalProperties"), false);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::crd::kubernetes_message;

    fn check(schema: Value) -> Vec<String> {
        let s: JSONSchemaProps = serde_json::from_value(schema).unwrap();
        validate_schema(
            &s,
            &FieldPath::parse("spec.versions[0].schema.openAPIV3Schema"),
        )
        .iter()
        .map(kubernetes_message)
        .collect()
    }

    const P: &str = "spec.versions[0].schema.openAPIV3Schema";

    #[test]
    fn the_crontab_schema_is_structural() {
        let crd = crate::crd::fixtures::crontab_json();
        for v in crd["spec"]["versions"].as_array().unwrap() {
            assert_eq!(
                check(v["schema"]["openAPIV3Schema"].clone()),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn a_field_without_type_is_not_structural() {
        assert_eq!(
            check(json!({"type": "object", "properties": {"spec": {"properties": {}}}})),
            [format!(
                "{P}.properties.spec.type: Required value: must not be empty for specified object fields"
            )]
        );
    }

    #[test]
    fn int_or_string_and_preserve_unknown_fields_need_no_type() {
        assert!(
            check(json!({"type": "object", "properties": {
                "a": {"x-kubernetes-int-or-string": true},
                "b": {"x-kubernetes-preserve-unknown-fields": true},
                "c": {"x-kubernetes-int-or-string": true,
                      "anyOf": [{"type": "integer"}, {"type": "string"}]}
            }}))
            .is_empty()
        );
    }

    #[test]
    fn arrays_need_items_and_the_root_must_be_an_object() {
        assert_eq!(
            check(json!({"type": "array"})),
            [
                format!("{P}.items: Required value: must be specified"),
                format!("{P}.type: Invalid value: \"array\": must be object at the root"),
            ]
        );
    }

    #[test]
    fn types_under_junctors_are_forbidden() {
        assert_eq!(
            check(
                json!({"type": "object", "properties": {"a": {"type": "string",
                "anyOf": [{"type": "string", "description": "x"}]}}})
            ),
            [
                format!(
                    "{P}.properties.a.anyOf[0].description: Forbidden: must be empty to be structural"
                ),
                format!(
                    "{P}.properties.a.anyOf[0].type: Forbidden: must be empty to be structural"
                ),
            ]
        );
    }

    #[test]
    fn fields_named_in_value_validations_must_be_specified() {
        assert_eq!(
            check(
                json!({"type": "object", "properties": {"spec": {"type": "object",
                "properties": {"a": {"type": "string"}},
                "oneOf": [{"required": ["a"]}, {"properties": {"b": {"minLength": 1}}}]}}})
            ),
            [format!(
                "{P}.properties.spec.properties.b: Required value: because it is defined in {P}.properties.spec.oneOf[1].properties.b"
            )]
        );
    }

    #[test]
    fn root_metadata_may_only_restrict_name() {
        assert!(
            check(
                json!({"type": "object", "properties": {"metadata": {"type": "object",
                "properties": {"name": {"type": "string", "maxLength": 20}}}}})
            )
            .is_empty()
        );
        assert_eq!(
            check(
                json!({"type": "object", "properties": {"metadata": {"type": "object",
                "properties": {"labels": {"type": "object"}}}}})
            ),
            [format!(
                "{P}.properties.metadata: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            )]
        );
    }

    #[test]
    fn unsupported_openapi_features_are_refused() {
        assert_eq!(
            check(json!({"type": "object", "$ref": "#/definitions/x",
                "properties": {"l": {"type": "array", "uniqueItems": true,
                    "items": {"type": "string"}}}})),
            [
                format!(
                    "{P}.properties.l.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
                ),
                format!("{P}[$ref]: Forbidden: $ref is not supported"),
            ]
        );
    }

    #[test]
    fn properties_and_additional_properties_exclude_each_other() {
        assert_eq!(
            check(
                json!({"type": "object", "properties": {"m": {"type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"}}}})
            ),
            [format!(
                "{P}.properties.m.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
            )]
        );
    }

    #[test]
    fn a_default_must_match_its_schema() {
        assert_eq!(
            check(
                json!({"type": "object", "properties": {"spec": {"type": "object",
                "properties": {"replicas": {"type": "integer", "default": "one"}}}}})
            ),
            [format!(
                "{P}.properties.spec.properties.replicas.default: Invalid value: \"string\": {P}.properties.spec.properties.replicas.default in body must be of type integer: \"string\""
            )]
        );
    }

    #[test]
    fn a_default_must_not_carry_unknown_fields() {
        let errs = check(
            json!({"type": "object", "properties": {"spec": {"type": "object",
            "default": {"x": 1}, "properties": {"a": {"type": "string"}}}}}),
        );
        assert_eq!(
            errs,
            [format!(
                "{P}.properties.spec.default: Invalid value: \"{{\"x\":1}}\": must not have unknown fields"
            )]
        );
    }

    #[test]
    fn defaults_are_refused_in_top_level_metadata() {
        assert_eq!(
            check(
                json!({"type": "object", "properties": {"metadata": {"type": "object",
                "default": {}}}})
            ),
            [format!(
                "{P}.properties.metadata.default: Forbidden: must not be set in top-level metadata"
            )]
        );
    }

    #[test]
    fn embedded_resources_must_be_objects() {
        assert_eq!(
            check(
                json!({"type": "object", "properties": {"t": {"type": "string",
                "x-kubernetes-embedded-resource": true}}})
            ),
            [
                format!(
                    "{P}.properties.t.properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
                ),
                format!(
                    "{P}.properties.t.type: Invalid value: \"string\": must be object if x-kubernetes-embedded-resource is true"
                ),
            ]
        );
    }

    #[test]
    fn a_pattern_the_regex_engine_refuses_is_reported() {
        let errs = check(
            json!({"type": "object", "properties": {"a": {"type": "string",
            "pattern": "(unclosed"}}}),
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with(&format!(
            "{P}: Invalid value: \"\": error building validator"
        )));
    }
}
