//! The v2 document's protobuf decoded back with the same messages: what kubectl
//! reads of it is there, and every definition is one kubectl can read.

use super::*;
use serde_json::json;

fn decode(bytes: &[u8]) -> pb::Document {
    pb::Document::decode(bytes).expect("our bytes decode as openapi.v2.Document")
}

fn definition<'a>(doc: &'a pb::Document, name: &str) -> &'a pb::Schema {
    let defs = &doc.definitions.as_ref().unwrap().additional_properties;
    let found = defs.iter().find(|d| d.name == name);
    found
        .and_then(|d| d.value.as_ref())
        .unwrap_or_else(|| panic!("no {name}"))
}

fn property<'a>(schema: &'a pb::Schema, name: &str) -> &'a pb::Schema {
    let props = &schema.properties.as_ref().unwrap().additional_properties;
    let found = props.iter().find(|p| p.name == name);
    found
        .and_then(|p| p.value.as_ref())
        .unwrap_or_else(|| panic!("no {name}"))
}

/// A vendor extension's value, read back from its YAML as kube-openapi reads it.
fn extension(all: &[pb::NamedAny], name: &str) -> Value {
    let found = all
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    let yaml = &found.value.as_ref().unwrap().yaml;
    rk8s_api::yaml::parse_documents(yaml)
        .unwrap()
        .remove(0)
        .value
}

fn path<'a>(doc: &'a pb::Document, name: &str) -> &'a pb::PathItem {
    let paths = &doc.paths.as_ref().unwrap().path;
    let found = paths.iter().find(|p| p.name == name);
    found
        .and_then(|p| p.value.as_ref())
        .unwrap_or_else(|| panic!("no {name}"))
}

fn parameter(item: &pb::ParametersItem) -> Option<&pb::parameter::Oneof> {
    match &item.oneof {
        Some(pb::parameters_item::Oneof::Parameter(p)) => p.oneof.as_ref(),
        _ => None,
    }
}

fn non_body(item: &pb::ParametersItem) -> Option<&pb::non_body_parameter::Oneof> {
    match parameter(item) {
        Some(pb::parameter::Oneof::NonBodyParameter(p)) => p.oneof.as_ref(),
        _ => None,
    }
}

#[test]
fn the_pod_definition_keeps_its_fields_references_and_kind() {
    let doc = decode(&super::super::v2_protobuf());
    assert_eq!(doc.swagger, "2.0");
    assert_eq!(doc.info.as_ref().unwrap().title, "Kubernetes");
    let pod = definition(&doc, "io.k8s.api.core.v1.Pod");
    assert!(
        pod.description
            .starts_with("Pod is a collection of containers")
    );
    assert_eq!(
        extension(&pod.vendor_extension, "x-kubernetes-group-version-kind"),
        json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
    let spec = property(pod, "spec");
    assert_eq!(spec.xref, "#/definitions/io.k8s.api.core.v1.PodSpec");
    assert!(
        spec.description
            .starts_with("Specification of the desired behavior")
    );
    assert!(spec.r#type.is_none() && spec.all_of.is_empty());

    let pod_spec = definition(&doc, "io.k8s.api.core.v1.PodSpec");
    assert!(pod_spec.required.contains(&"containers".to_string()));
    let containers = property(pod_spec, "containers");
    assert_eq!(containers.r#type.as_ref().unwrap().value, ["array"]);
    let items = &containers.items.as_ref().unwrap().schema;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].xref, "#/definitions/io.k8s.api.core.v1.Container");
    let node_selector = property(pod_spec, "nodeSelector");
    let Some(pb::additional_properties_item::Oneof::Schema(values)) =
        &node_selector.additional_properties.as_ref().unwrap().oneof
    else {
        panic!("nodeSelector is a map of strings");
    };
    assert_eq!(values.r#type.as_ref().unwrap().value, ["string"]);

    let container = definition(&doc, "io.k8s.api.core.v1.Container");
    let image = property(container, "image");
    assert_eq!(image.r#type.as_ref().unwrap().value, ["string"]);
    assert!(image.description.contains("Container image name"));
    let port = property(
        definition(&doc, "io.k8s.api.core.v1.ContainerPort"),
        "containerPort",
    );
    assert_eq!(port.format, "int32");
    let int_or_string = definition(&doc, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
    assert_eq!(
        extension(
            &int_or_string.vendor_extension,
            "x-kubernetes-int-or-string"
        ),
        json!(true)
    );
}

#[test]
fn a_path_keeps_its_operations_and_parameters() {
    use pb::non_body_parameter::Oneof as NonBody;
    let doc = decode(&super::super::v2_protobuf());
    let pods = path(&doc, "/api/v1/namespaces/{namespace}/pods");
    assert!(pods.get.is_some() && pods.delete.is_some() && pods.put.is_none());
    let Some(NonBody::PathParameterSubSchema(namespace)) = non_body(&pods.parameters[0]) else {
        panic!("the namespace is a path parameter");
    };
    assert_eq!(
        (namespace.name.as_str(), namespace.required),
        ("namespace", true)
    );

    let post = pods.post.as_ref().unwrap();
    assert_eq!(post.operation_id, "createNamespacedPod");
    assert_eq!(
        extension(&post.vendor_extension, "x-kubernetes-action"),
        json!("post")
    );
    assert_eq!(
        extension(&post.vendor_extension, "x-kubernetes-group-version-kind"),
        json!({"group": "", "kind": "Pod", "version": "v1"})
    );
    let validation = post.parameters.iter().find_map(|p| match non_body(p) {
        Some(NonBody::QueryParameterSubSchema(q)) if q.name == "fieldValidation" => Some(q),
        _ => None,
    });
    assert_eq!(validation.unwrap().r#type, "string");
    let body = post.parameters.iter().find_map(|p| match parameter(p) {
        Some(pb::parameter::Oneof::BodyParameter(b)) => Some(b),
        _ => None,
    });
    let body = body.expect("create takes a body");
    assert!(body.required);
    assert_eq!(
        body.schema.as_ref().unwrap().xref,
        "#/definitions/io.k8s.api.core.v1.Pod"
    );
    let ok = &post.responses.as_ref().unwrap().response_code[0];
    assert_eq!(ok.name, "200");
    let Some(pb::response_value::Oneof::Response(ok)) = &ok.value.as_ref().unwrap().oneof else {
        panic!("200 is a response");
    };
    let Some(pb::schema_item::Oneof::Schema(schema)) = &ok.schema.as_ref().unwrap().oneof else {
        panic!("200 has a schema");
    };
    assert_eq!(schema.xref, "#/definitions/io.k8s.api.core.v1.Pod");

    let Some(pb::security_definitions_item::Oneof::ApiKeySecurity(bearer)) = &doc
        .security_definitions
        .as_ref()
        .unwrap()
        .additional_properties[0]
        .value
        .as_ref()
        .unwrap()
        .oneof
    else {
        panic!("BearerToken is an API key");
    };
    assert_eq!(
        (bearer.name.as_str(), bearer.r#in.as_str()),
        ("authorization", "header")
    );
    assert_eq!(doc.security[0].additional_properties[0].name, "BearerToken");
}

/// kube-openapi's `pkg/util/proto` (what kubectl builds from the document) refuses
/// the whole document for one schema it cannot read.
fn kubectl_reads(s: &pb::Schema, names: &[&str], at: &str) {
    let types = s.r#type.as_ref().map_or(&[][..], |t| &t.value[..]);
    assert!(types.len() <= 1, "{at}: several types");
    if !s.xref.is_empty() {
        let name = s.xref.strip_prefix("#/definitions/").expect(at);
        assert!(names.contains(&name), "{at}: unknown {name}");
        assert!(
            types.is_empty() && s.properties.is_none(),
            "{at}: a $ref with a type"
        );
        return;
    }
    let known = ["object", "array", "string", "integer", "number", "boolean"];
    assert!(
        types.iter().all(|t| known.contains(&t.as_str())),
        "{at}: {types:?}"
    );
    if types == ["array"] {
        let items = &s.items.as_ref().expect(at).schema;
        assert_eq!(items.len(), 1, "{at}: an array has one item schema");
        kubectl_reads(&items[0], names, &format!("{at}[]"));
    }
    for p in s.properties.iter().flat_map(|p| &p.additional_properties) {
        kubectl_reads(
            p.value.as_ref().expect(at),
            names,
            &format!("{at}.{}", p.name),
        );
    }
    if let Some(pb::additional_properties_item::Oneof::Schema(values)) = s
        .additional_properties
        .as_ref()
        .and_then(|a| a.oneof.as_ref())
    {
        kubectl_reads(values, names, &format!("{at}{{}}"));
    }
}

#[test]
fn kubectl_can_read_every_definition() {
    let doc = decode(&super::super::v2_protobuf());
    let defs = &doc.definitions.as_ref().unwrap().additional_properties;
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    assert!(names.len() > 300, "{}", names.len());
    for d in defs {
        kubectl_reads(d.value.as_ref().unwrap(), &names, &d.name);
    }
}

#[test]
fn a_part_appended_reads_as_one_document_with_both() {
    let part = json!({
        "paths": {"/apis/example.com/v1/widgets": {"get": {"operationId": "listWidget"}}},
        "definitions": {"com.example.v1.Widget": {
            "type": "object",
            "properties": {},
            "x-kubernetes-group-version-kind":
                [{"group": "example.com", "version": "v1", "kind": "Widget"}],
        }},
    });
    let mut bytes = super::super::v2_protobuf().to_vec();
    bytes.extend(encode(&part));
    let doc = decode(&bytes);
    assert_eq!(doc.swagger, "2.0");
    definition(&doc, "io.k8s.api.core.v1.Pod");
    let widget = definition(&doc, "com.example.v1.Widget");
    // An object without fields is still one: `properties` is there, empty.
    assert_eq!(widget.properties, Some(pb::Properties::default()));
    path(&doc, "/api/v1/namespaces/{namespace}/pods");
    let widgets = path(&doc, "/apis/example.com/v1/widgets");
    assert_eq!(widgets.get.as_ref().unwrap().operation_id, "listWidget");
}

#[test]
fn values_of_any_shape_are_yaml_that_reads_back() {
    let s = schema(&json!({
        "type": "string",
        "enum": ["y", "on", "", "1", "a: b"],
        "default": "on",
        "additionalProperties": false,
        "x-kubernetes-validations": [{"rule": "self.size() > 0", "message": "say \"hi\"\n"}],
    }));
    let read = |a: &pb::Any| {
        rk8s_api::yaml::parse_documents(&a.yaml)
            .unwrap()
            .remove(0)
            .value
    };
    // Go's yaml.v2 reads a plain `y` as true.
    assert_eq!(s.r#enum[0].yaml, "\"y\"\n");
    let values: Vec<Value> = s.r#enum.iter().map(read).collect();
    assert_eq!(
        values,
        [
            json!("y"),
            json!("on"),
            json!(""),
            json!("1"),
            json!("a: b")
        ]
    );
    assert_eq!(read(s.default.as_ref().unwrap()), json!("on"));
    assert_eq!(
        extension(&s.vendor_extension, "x-kubernetes-validations"),
        json!([{"rule": "self.size() > 0", "message": "say \"hi\"\n"}])
    );
    assert_eq!(
        s.additional_properties.unwrap().oneof,
        Some(pb::additional_properties_item::Oneof::Boolean(false))
    );
}
