//! The OpenAPI documents kubectl reads: v3 per group version (`kubectl explain`, and
//! the `fieldValidation` parameter that tells kubectl the server validates fields
//! itself) and v2, as JSON and as protobuf ([`v2_proto`]: kubectl's client-side
//! validation and `explain --output=plaintext-openapiv2` read only that). Schemas come
//! from `k8s-openapi`'s types; nothing is written by hand.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use bytes::Bytes;
use rk8s_api::ObjectKind;
use rk8s_api::object::{kinds, schemas};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

mod v2_messages;
pub mod v2_proto;
pub mod v2_schema;

/// Documents are built once per process: they depend only on the binary.
static DOCS: LazyLock<Docs> = LazyLock::new(build);

/// The protobuf encoding of the v2 document, made on its first request.
static V2_PROTOBUF: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(v2_proto::encode(&DOCS.v2)));

struct Docs {
    v2: Value,
    v3: BTreeMap<String, Value>,
}

/// `api/v1`, `apis/apps/v1`.
pub(crate) fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn gvk(kind: &ObjectKind) -> Value {
    json!([{"group": kind.group, "version": kind.version, "kind": kind.kind}])
}

fn param(name: &str, location: &str, v3: bool) -> Value {
    let mut p = json!({"name": name, "in": location, "uniqueItems": true});
    if location == "path" {
        p["required"] = json!(true);
    }
    if v3 {
        p["schema"] = json!({"type": "string"});
    } else {
        p["type"] = json!("string");
    }
    p
}

/// The operations on a kind's collection and item paths.
pub(crate) fn paths(
    kind: &ObjectKind,
    schema_ref: &Value,
    prefix: &str,
    v3: bool,
) -> Vec<(String, Value)> {
    let ns = kind.is_namespaced().then(|| "{namespace}".to_string());
    let collection = format!(
        "/{}",
        kind.collection_path(ns.as_deref()).trim_start_matches('/')
    );
    let item = format!("{collection}/{{name}}");
    let body = |required: bool| {
        if v3 {
            json!({"requestBody": {"required": required, "content": {"*/*": {"schema": schema_ref}}}})
        } else {
            json!({"parameters": [{"name": "body", "in": "body", "required": required, "schema": schema_ref}]})
        }
    };
    let response = if v3 {
        json!({"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref}}}})
    } else {
        json!({"200": {"description": "OK", "schema": schema_ref}})
    };
    let op = |action: &str, id: &str, query: &[&str], with_body: Option<bool>| {
        let mut o = json!({
            "operationId": format!("{id}{}{}", if kind.is_namespaced() { "Namespaced" } else { "" }, kind.kind),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk(kind)[0].clone(),
            "responses": response.clone(),
            "tags": [prefix],
        });
        let mut params: Vec<Value> = query.iter().map(|q| param(q, "query", v3)).collect();
        if let Some(required) = with_body {
            let b = body(required);
            if let Some(p) = b.get("parameters").and_then(Value::as_array) {
                params.extend(p.iter().cloned());
            }
            if let Some(rb) = b.get("requestBody") {
                o["requestBody"] = rb.clone();
            }
        }
        o["parameters"] = Value::Array(params);
        o
    };
    let write_params = ["dryRun", "fieldManager", "fieldValidation"];
    let mut path_params = Vec::new();
    if kind.is_namespaced() {
        path_params.push(param("namespace", "path", v3));
    }
    let mut item_params = path_params.clone();
    item_params.push(param("name", "path", v3));
    vec![
        (
            collection,
            json!({
                "get": op("list", "list", &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"], None),
                "post": op("post", "create", &write_params, Some(true)),
                "delete": op("deletecollection", "deleteCollection", &["labelSelector", "fieldSelector", "gracePeriodSeconds", "propagationPolicy"], None),
                "parameters": path_params,
            }),
        ),
        (
            item,
            json!({
                "get": op("get", "read", &[], None),
                "put": op("put", "replace", &write_params, Some(true)),
                "patch": op("patch", "patch", &write_params, Some(true)),
                "delete": op("delete", "delete", &["gracePeriodSeconds", "propagationPolicy"], None),
                "parameters": item_params,
            }),
        ),
    ]
}

fn document(v3: bool, only: Option<(&str, &str)>) -> Value {
    let settings = if v3 {
        SchemaSettings::openapi3()
    } else {
        let mut s = SchemaSettings::draft07();
        s.definitions_path = "#/definitions/".into();
        s
    };
    let mut generator = settings.into_generator();
    let mut refs = schemas(&mut generator);
    refs.extend(rk8s_api::versions::schemas(&mut generator));
    let mut definitions = generator.take_definitions(true);
    definitions.values_mut().for_each(metadata_optional);
    if !v3 {
        definitions.values_mut().for_each(v2_schema::to_v2);
    }
    let mut all_paths = Map::new();
    for (kind, schema) in &refs {
        let schema_ref = schema.as_value().clone();
        let name = schema_ref
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        if let Some(Value::Object(def)) = definitions.get_mut(&name) {
            def.insert("x-kubernetes-group-version-kind".into(), gvk(kind));
        }
        if only.is_some_and(|(g, v)| (g, v) != (kind.group, kind.version)) {
            continue;
        }
        let tag = gv_path(kind.group, kind.version).replace('/', "_");
        for (path, item) in paths(kind, &schema_ref, &tag, v3) {
            all_paths.insert(path, item);
        }
    }
    let info = json!({"title": "Kubernetes", "version": format!("v1.{}.0", crate::discovery::KUBERNETES_MINOR)});
    if v3 {
        json!({"openapi": "3.0.0", "info": info, "paths": all_paths, "components": {"schemas": definitions}})
    } else {
        // kube-apiserver's: a bearer token in the `authorization` header.
        json!({
            "swagger": "2.0",
            "info": info,
            "paths": all_paths,
            "definitions": definitions,
            "securityDefinitions": {"BearerToken": {
                "type": "apiKey", "name": "authorization", "in": "header",
                "description": "Bearer Token authentication",
            }},
            "security": [{"BearerToken": []}],
        })
    }
}

/// An object's `metadata` is never required in kube's schemas (k8s-openapi's types
/// hold it unconditionally, so the generated schema lists it; `kubectl explain`
/// showed `metadata <ObjectMeta> -required-`).
fn metadata_optional(def: &mut Value) {
    let Some(Value::Array(required)) = def.get_mut("required") else {
        return;
    };
    required.retain(|r| r != "metadata");
    if required.is_empty()
        && let Value::Object(map) = def
    {
        map.remove("required");
    }
}

fn build() -> Docs {
    let mut v3 = BTreeMap::new();
    let served = rk8s_api::versions::aliases().iter().map(|a| a.served);
    for k in kinds().into_iter().chain(served) {
        let key = gv_path(k.group, k.version);
        v3.entry(key)
            .or_insert_with(|| document(true, Some((k.group, k.version))));
    }
    Docs {
        v2: document(false, None),
        v3,
    }
}

/// `/openapi/v2` (JSON).
pub fn v2() -> Value {
    DOCS.v2.clone()
}

/// `/openapi/v2` as protobuf (gnostic's `openapi.v2.Document`), encoded once.
pub fn v2_protobuf() -> Bytes {
    V2_PROTOBUF.clone()
}

/// `/openapi/v3`: where each group version's document is.
pub fn v3_index() -> Value {
    let paths: Map<String, Value> = DOCS
        .v3
        .keys()
        .map(|k| {
            (
                k.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={}", env!("CARGO_PKG_VERSION"))}),
            )
        })
        .collect();
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`.
pub fn v3(group: &str, version: &str) -> Option<Value> {
    DOCS.v3.get(&gv_path(group, version)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_documents_say_patch_takes_field_validation() {
        let apps = v3("apps", "v1").unwrap();
        let patch =
            &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        let schema = &apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            schema["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        assert!(schema["properties"]["spec"].is_object());
        assert!(v3_index()["paths"]["apis/autoscaling/v2"]["serverRelativeURL"].is_string());
        // A version served by conversion has its document too.
        let v1 = v3("autoscaling", "v1").unwrap();
        let hpa = &v1["components"]["schemas"]["io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler"];
        assert!(hpa["properties"]["spec"].is_object());
        assert!(v3("apps", "v9").is_none());
        let v2 = v2();
        assert!(v2["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
        assert!(v2["paths"]["/api/v1/nodes/{name}"]["get"].is_object());
        // No object's metadata is required; the fields that are stay so.
        let pod = &v2["definitions"]["io.k8s.api.core.v1.Pod"];
        assert!(pod.get("required").is_none(), "{pod}");
        let container = &v2["definitions"]["io.k8s.api.core.v1.Container"]["required"];
        assert_eq!(container, &json!(["name"]));
    }
}
