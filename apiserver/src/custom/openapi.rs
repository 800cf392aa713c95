//! OpenAPI documents of custom kinds (what `kubectl explain` reads): each served
//! version's schema under kube-apiserver's name for it (the group reversed:
//! `com.example.stable.v1.CronTab`), tagged with its group, version and kind.

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value, json};

use super::CustomKinds;

/// The definition name of `metadata` in the built-in documents.
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// kube-apiserver's definition name of a custom kind: `com.example.stable.v1.CronTab`.
pub fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').collect();
    parts.reverse();
    format!("{}.{version}.{kind}", parts.join("."))
}

/// Every served custom kind's schema, by definition name (in `group`/`version` only,
/// if given).
pub fn definitions(kinds: &CustomKinds, only: Option<(&str, &str)>) -> Map<String, Value> {
    let mut out = Map::new();
    for served in kinds.all() {
        for v in served.versions.iter().filter(|v| v.served) {
            if only.is_some_and(|(g, ver)| (g, ver) != (v.kind.group, v.kind.version)) {
                continue;
            }
            let mut schema = v
                .schema
                .as_ref()
                .and_then(|s| serde_json::to_value(&s.schema).ok())
                .unwrap_or_else(|| json!({"type": "object"}));
            if let Value::Object(map) = &mut schema {
                map.insert(
                    "x-kubernetes-group-version-kind".into(),
                    json!([{"group": v.kind.group, "version": v.kind.version, "kind": v.kind.kind}]),
                );
                // kubectl explain shows the standard fields of every object too.
                let props = map.entry("properties").or_insert_with(|| json!({}));
                if let Value::Object(props) = props {
                    props.entry("apiVersion").or_insert_with(|| json!({"type": "string",
                        "description": "APIVersion defines the versioned schema of this representation of an object."}));
                    props.entry("kind").or_insert_with(|| json!({"type": "string",
                        "description": "Kind is a string value representing the REST resource this object represents."}));
                    props.entry("metadata").or_insert_with(|| {
                        json!({"type": "object",
                        "description": "Standard object's metadata."})
                    });
                }
            }
            out.insert(
                definition_name(v.kind.group, v.kind.version, v.kind.kind),
                schema,
            );
        }
    }
    out
}

/// The group versions custom kinds are served in (`apis/stable.example.com/v1`).
pub fn group_versions(kinds: &CustomKinds) -> Vec<String> {
    let mut out: Vec<String> = kinds
        .all()
        .iter()
        .flat_map(|s| {
            s.versions
                .iter()
                .filter(|v| v.served)
                .map(|v| format!("apis/{}/{}", v.kind.group, v.kind.version))
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `/openapi/v3/apis/<group>/<version>` of a custom group version, if served: the
/// schemas, and the paths with their operations (kubectl reads from the PATCH
/// operation's parameters that the server validates fields itself).
pub fn v3(kinds: &CustomKinds, group: &str, version: &str) -> Option<Value> {
    let schemas = definitions(kinds, Some((group, version)));
    if schemas.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for served in kinds.all() {
        let Some(v) = served.version(version).filter(|_| served.group() == group) else {
            continue;
        };
        let name = definition_name(v.kind.group, v.kind.version, v.kind.kind);
        let schema_ref = json!({"$ref": format!("#/components/schemas/{name}")});
        let tag = crate::openapi::gv_path(group, version).replace('/', "_");
        paths.extend(crate::openapi::paths(&v.kind, &schema_ref, &tag, true));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// The custom kinds' part of `/openapi/v2`: the paths and the definitions (in
/// Swagger 2.0's words) of every served version.
fn v2_part(kinds: &CustomKinds) -> (Map<String, Value>, Map<String, Value>) {
    let mut defs = definitions(kinds, None);
    for def in defs.values_mut() {
        crate::openapi::v2_schema::to_v2(def);
        // As kube-apiserver publishes custom kinds in v2: `metadata` is the built-in
        // ObjectMeta, which this document defines (kubectl explains and checks it).
        if let Some(Value::Object(props)) = def.get_mut("properties") {
            props.insert(
                "metadata".into(),
                json!({"$ref": format!("#/definitions/{OBJECT_META}"),
                       "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
            );
        }
    }
    let mut paths = Map::new();
    for served in kinds.all() {
        for v in served.versions.iter().filter(|v| v.served) {
            let name = definition_name(v.kind.group, v.kind.version, v.kind.kind);
            let schema_ref = json!({"$ref": format!("#/definitions/{name}")});
            let tag = crate::openapi::gv_path(v.kind.group, v.kind.version).replace('/', "_");
            paths.extend(crate::openapi::paths(&v.kind, &schema_ref, &tag, false));
        }
    }
    (paths, defs)
}

/// `/openapi/v2` with the paths and schemas of the custom kinds served now.
pub fn v2_with(custom: &CustomKinds) -> Value {
    let mut doc = crate::openapi::v2();
    let (paths, defs) = v2_part(custom);
    if let Some(Value::Object(all)) = doc.get_mut("paths") {
        all.extend(paths);
    }
    if let Some(Value::Object(all)) = doc.get_mut("definitions") {
        all.extend(defs);
    }
    doc
}

/// [`v2_with`] as protobuf: the built-in document's bytes (encoded once), then a
/// document of only the custom kinds' paths and definitions. Protobuf reads a message
/// field that appears twice as one message with both fields' entries, so this is the
/// encoding of the whole document.
pub fn v2_protobuf_with(custom: &CustomKinds) -> Bytes {
    let built_in = crate::openapi::v2_protobuf();
    let (paths, definitions) = v2_part(custom);
    if paths.is_empty() && definitions.is_empty() {
        return built_in;
    }
    let part =
        crate::openapi::v2_proto::encode(&json!({"paths": paths, "definitions": definitions}));
    let mut whole = BytesMut::with_capacity(built_in.len() + part.len());
    whole.extend_from_slice(&built_in);
    whole.extend_from_slice(&part);
    whole.freeze()
}

/// `/openapi/v3` with the group versions of the custom kinds served now.
pub fn v3_index_with(custom: &CustomKinds) -> Value {
    let mut index = crate::openapi::v3_index();
    if let Some(Value::Object(paths)) = index.get_mut("paths") {
        for gv in group_versions(custom) {
            let url = format!("/openapi/v3/{gv}?hash={}", custom.generation());
            paths.insert(gv, json!({"serverRelativeURL": url}));
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_named_with_the_group_reversed() {
        assert_eq!(
            definition_name("stable.example.com", "v1", "CronTab"),
            "com.example.stable.v1.CronTab"
        );
        let kinds = CustomKinds::default();
        kinds.upsert(super::super::tests::crontab_crd(true));
        let doc = v3(&kinds, "stable.example.com", "v1").unwrap();
        let schema = &doc["components"]["schemas"]["com.example.stable.v1.CronTab"];
        assert_eq!(
            schema["x-kubernetes-group-version-kind"][0]["kind"],
            "CronTab"
        );
        assert_eq!(
            schema["properties"]["spec"]["properties"]["replicas"]["type"],
            "integer"
        );
        let patch = &doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]
            ["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "CronTab");
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(v3(&kinds, "stable.example.com", "v1beta1").is_none());
        assert_eq!(group_versions(&kinds), ["apis/stable.example.com/v1"]);
    }

    #[test]
    fn v2_has_the_served_custom_kinds_in_json_and_protobuf() {
        let kinds = CustomKinds::default();
        let built_in = crate::openapi::v2_protobuf();
        assert_eq!(v2_protobuf_with(&kinds), built_in);
        kinds.upsert(super::super::tests::crontab_crd(true));
        let doc = v2_with(&kinds);
        let crontab = &doc["definitions"]["com.example.stable.v1.CronTab"];
        assert_eq!(
            crontab["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert_eq!(
            crontab["properties"]["spec"]["properties"]["replicas"]["type"],
            "integer"
        );
        let item =
            &doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"];
        assert_eq!(
            item["patch"]["parameters"][3]["schema"]["$ref"],
            "#/definitions/com.example.stable.v1.CronTab"
        );
        assert!(doc["definitions"]["com.example.stable.v1beta1.CronTab"].is_null());
        // The built-in bytes, then the custom kinds' part.
        let whole = v2_protobuf_with(&kinds);
        assert!(whole.starts_with(&built_in) && whole.len() > built_in.len());
    }
}
