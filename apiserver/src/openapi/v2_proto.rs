//! `/openapi/v2` as protobuf: the Swagger 2.0 JSON document turned into gnostic's
//! `openapi.v2.Document`, key by key as gnostic's compiler (`openapi_v2.NewDocument`)
//! reads JSON, which is how kube-openapi's `ToProtoBinary` makes the bytes kubectl
//! decodes for client-side validation and `kubectl explain
//! --output=plaintext-openapiv2`.
//!
//! The message a JSON object becomes is decided as gnostic decides it: a parameter by
//! its `in`, a security scheme by its `type` (and OAuth2 `flow`), a response schema
//! of `type: file` is a `FileSchema`, an entry with a `$ref` where a parameter or a
//! response could be is a `JsonReference`. Vendor extensions (`x-…`) become
//! `NamedAny`s holding their value as YAML, as do defaults, enums and examples. Keys
//! Swagger 2.0 does not have are left out (gnostic reports them as invalid; the
//! document is made Swagger 2.0 first, see [`super::v2_schema`]).

use prost::Message;
use serde_json::{Map, Value};

use super::v2_messages as pb;

/// kube-openapi's protobuf media type of `/openapi/v2`, the one client-go's
/// `OpenAPISchema` (kubectl) asks for.
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The same media type as kube-openapi spells it now, and the `Content-Type` it
/// answers either with (Go's `mime.ParseMediaType` refuses the `@`).
pub const MEDIA_TYPE_DOTTED: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The protobuf encoding of `doc`, a Swagger 2.0 document (or part of one: protobuf
/// merges a message that appears twice, so the encoding of a document of only more
/// `paths` and `definitions`, appended to a whole document's, reads as one document
/// with both).
pub fn encode(doc: &Value) -> Vec<u8> {
    document(doc).encode_to_vec()
}

type Object = Map<String, Value>;

fn string(m: &Object, key: &str) -> String {
    m.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_default()
}

fn boolean(m: &Object, key: &str) -> bool {
    m.get(key).and_then(Value::as_bool).unwrap_or_default()
}

fn float(m: &Object, key: &str) -> f64 {
    m.get(key).and_then(Value::as_f64).unwrap_or_default()
}

fn int(m: &Object, key: &str) -> i64 {
    m.get(key)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .unwrap_or_default()
}

fn strings(m: &Object, key: &str) -> Vec<String> {
    array(m, key)
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn object<'a>(m: &'a Object, key: &str) -> Option<&'a Object> {
    m.get(key).and_then(Value::as_object)
}

fn array<'a>(m: &'a Object, key: &str) -> impl Iterator<Item = &'a Value> {
    m.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// The entries of `m[key]`, an object, each turned into a `Named…` pair by `f`.
fn named<'a, T>(m: &'a Object, key: &str, f: impl Fn(String, &'a Value) -> T) -> Vec<T> {
    object(m, key)
        .into_iter()
        .flatten()
        .map(|(k, v)| f(k.clone(), v))
        .collect()
}

/// A value of any shape, as gnostic keeps it: its YAML text (`compiler.Marshal`).
fn any(v: &Value) -> pb::Any {
    let mut yaml = String::new();
    rk8s_api::emit::write_yaml(&mut yaml, v);
    pb::Any { yaml }
}

fn anys(m: &Object, key: &str) -> Vec<pb::Any> {
    array(m, key).map(any).collect()
}

/// The `x-…` keys of `m`, in order.
fn extensions(m: &Object) -> Vec<pb::NamedAny> {
    m.iter()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| pb::NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn document(v: &Value) -> pb::Document {
    let Some(m) = v.as_object() else {
        return pb::Document::default();
    };
    pb::Document {
        swagger: string(m, "swagger"),
        info: object(m, "info").map(info),
        host: string(m, "host"),
        base_path: string(m, "basePath"),
        schemes: strings(m, "schemes"),
        consumes: strings(m, "consumes"),
        produces: strings(m, "produces"),
        paths: object(m, "paths").map(paths),
        definitions: object(m, "definitions").map(|d| pb::Definitions {
            additional_properties: named_schemas(d),
        }),
        parameters: m.get("parameters").map(|_| pb::ParameterDefinitions {
            additional_properties: named(m, "parameters", |name, v| pb::NamedParameter {
                name,
                value: Some(parameter(v)),
            }),
        }),
        responses: m.get("responses").map(|_| pb::ResponseDefinitions {
            additional_properties: named(m, "responses", |name, v| pb::NamedResponse {
                name,
                value: Some(response(v)),
            }),
        }),
        security: array(m, "security").map(security_requirement).collect(),
        security_definitions: m
            .get("securityDefinitions")
            .map(|_| pb::SecurityDefinitions {
                additional_properties: named(m, "securityDefinitions", |name, v| {
                    pb::NamedSecurityDefinitionsItem {
                        name,
                        value: Some(security_definition(v)),
                    }
                }),
            }),
        tags: array(m, "tags").map(tag).collect(),
        external_docs: object(m, "externalDocs").map(external_docs),
        vendor_extension: extensions(m),
    }
}

fn info(m: &Object) -> pb::Info {
    pb::Info {
        title: string(m, "title"),
        version: string(m, "version"),
        description: string(m, "description"),
        terms_of_service: string(m, "termsOfService"),
        contact: object(m, "contact").map(|c| pb::Contact {
            name: string(c, "name"),
            url: string(c, "url"),
            email: string(c, "email"),
            vendor_extension: extensions(c),
        }),
        license: object(m, "license").map(|l| pb::License {
            name: string(l, "name"),
            url: string(l, "url"),
            vendor_extension: extensions(l),
        }),
        vendor_extension: extensions(m),
    }
}

fn external_docs(m: &Object) -> pb::ExternalDocs {
    pb::ExternalDocs {
        description: string(m, "description"),
        url: string(m, "url"),
        vendor_extension: extensions(m),
    }
}

fn tag(v: &Value) -> pb::Tag {
    let empty = Object::new();
    let m = v.as_object().unwrap_or(&empty);
    pb::Tag {
        name: string(m, "name"),
        description: string(m, "description"),
        external_docs: object(m, "externalDocs").map(external_docs),
        vendor_extension: extensions(m),
    }
}

/// `paths`: the keys that start with `/` are paths, `x-…` are extensions.
fn paths(m: &Object) -> pb::Paths {
    pb::Paths {
        vendor_extension: extensions(m),
        path: m
            .iter()
            .filter(|(k, _)| k.starts_with('/'))
            .map(|(k, v)| pb::NamedPathItem {
                name: k.clone(),
                value: v.as_object().map(path_item),
            })
            .collect(),
    }
}

fn path_item(m: &Object) -> pb::PathItem {
    let op = |method: &str| object(m, method).map(operation);
    pb::PathItem {
        xref: string(m, "$ref"),
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        options: op("options"),
        head: op("head"),
        patch: op("patch"),
        parameters: array(m, "parameters").map(parameters_item).collect(),
        vendor_extension: extensions(m),
    }
}

fn operation(m: &Object) -> pb::Operation {
    pb::Operation {
        tags: strings(m, "tags"),
        summary: string(m, "summary"),
        description: string(m, "description"),
        external_docs: object(m, "externalDocs").map(external_docs),
        operation_id: string(m, "operationId"),
        produces: strings(m, "produces"),
        consumes: strings(m, "consumes"),
        parameters: array(m, "parameters").map(parameters_item).collect(),
        responses: object(m, "responses").map(responses),
        schemes: strings(m, "schemes"),
        deprecated: boolean(m, "deprecated"),
        security: array(m, "security").map(security_requirement).collect(),
        vendor_extension: extensions(m),
    }
}

fn json_reference(m: &Object) -> pb::JsonReference {
    pb::JsonReference {
        xref: string(m, "$ref"),
        description: string(m, "description"),
    }
}

fn parameters_item(v: &Value) -> pb::ParametersItem {
    use pb::parameters_item::Oneof;
    let oneof = match v.as_object() {
        Some(m) if m.contains_key("$ref") => Oneof::JsonReference(json_reference(m)),
        _ => Oneof::Parameter(Box::new(parameter(v))),
    };
    pb::ParametersItem { oneof: Some(oneof) }
}

/// The fields non-body parameters, headers and primitive items share, then `extra`.
macro_rules! primitive {
    ($m:expr, $message:ident { $($extra:tt)* }) => {{
        let m: &Object = $m;
        pb::$message {
            r#type: string(m, "type"),
            format: string(m, "format"),
            items: object(m, "items").map(|i| Box::new(primitives_items(i))),
            collection_format: string(m, "collectionFormat"),
            default: m.get("default").map(any),
            maximum: float(m, "maximum"),
            exclusive_maximum: boolean(m, "exclusiveMaximum"),
            minimum: float(m, "minimum"),
            exclusive_minimum: boolean(m, "exclusiveMinimum"),
            max_length: int(m, "maxLength"),
            min_length: int(m, "minLength"),
            pattern: string(m, "pattern"),
            max_items: int(m, "maxItems"),
            min_items: int(m, "minItems"),
            unique_items: boolean(m, "uniqueItems"),
            r#enum: anys(m, "enum"),
            multiple_of: float(m, "multipleOf"),
            vendor_extension: extensions(m),
            $($extra)*
        }
    }};
}

fn primitives_items(m: &Object) -> pb::PrimitivesItems {
    primitive!(m, PrimitivesItems {})
}

fn header(m: &Object) -> pb::Header {
    primitive!(
        m,
        Header {
            description: string(m, "description")
        }
    )
}

/// A parameter: `in: body` carries a schema, the others are primitives, chosen by
/// `in` as gnostic's `NewNonBodyParameter` chooses. An unknown `in` is an empty
/// parameter (gnostic rejects the document).
fn parameter(v: &Value) -> pb::Parameter {
    use pb::non_body_parameter::Oneof as NonBody;
    use pb::parameter::Oneof;
    let Some(m) = v.as_object() else {
        return pb::Parameter::default();
    };
    let required = boolean(m, "required");
    let (location, description, name) =
        (string(m, "in"), string(m, "description"), string(m, "name"));
    let non_body = match location.as_str() {
        "body" => {
            return pb::Parameter {
                oneof: Some(Oneof::BodyParameter(Box::new(pb::BodyParameter {
                    description,
                    name,
                    r#in: location,
                    required,
                    schema: m.get("schema").map(schema),
                    vendor_extension: extensions(m),
                }))),
            };
        }
        "query" => NonBody::QueryParameterSubSchema(primitive!(
            m,
            QueryParameterSubSchema {
                required,
                r#in: location,
                description,
                name,
                allow_empty_value: boolean(m, "allowEmptyValue"),
            }
        )),
        "path" => NonBody::PathParameterSubSchema(primitive!(
            m,
            PathParameterSubSchema {
                required,
                r#in: location,
                description,
                name,
            }
        )),
        "header" => NonBody::HeaderParameterSubSchema(primitive!(
            m,
            HeaderParameterSubSchema {
                required,
                r#in: location,
                description,
                name,
            }
        )),
        "formData" => NonBody::FormDataParameterSubSchema(primitive!(
            m,
            FormDataParameterSubSchema {
                required,
                r#in: location,
                description,
                name,
                allow_empty_value: boolean(m, "allowEmptyValue"),
            }
        )),
        _ => return pb::Parameter::default(),
    };
    pb::Parameter {
        oneof: Some(Oneof::NonBodyParameter(Box::new(pb::NonBodyParameter {
            oneof: Some(non_body),
        }))),
    }
}

/// `responses`: response codes (`200`, `default`) and extensions.
fn responses(m: &Object) -> pb::Responses {
    use pb::response_value::Oneof;
    let code = |k: &str| k == "default" || (k.len() == 3 && k.bytes().all(|b| b.is_ascii_digit()));
    pb::Responses {
        response_code: m
            .iter()
            .filter(|(k, _)| code(k))
            .map(|(k, v)| pb::NamedResponseValue {
                name: k.clone(),
                value: Some(pb::ResponseValue {
                    oneof: Some(match v.as_object() {
                        Some(r) if r.contains_key("$ref") => {
                            Oneof::JsonReference(json_reference(r))
                        }
                        _ => Oneof::Response(Box::new(response(v))),
                    }),
                }),
            })
            .collect(),
        vendor_extension: extensions(m),
    }
}

fn response(v: &Value) -> pb::Response {
    use pb::schema_item::Oneof;
    let empty = Object::new();
    let m = v.as_object().unwrap_or(&empty);
    let schema_item = |s: &Value| {
        let file = s.get("type").and_then(Value::as_str) == Some("file");
        let oneof = match s.as_object() {
            Some(f) if file => Oneof::FileSchema(Box::new(pb::FileSchema {
                format: string(f, "format"),
                title: string(f, "title"),
                description: string(f, "description"),
                default: f.get("default").map(any),
                required: strings(f, "required"),
                r#type: string(f, "type"),
                read_only: boolean(f, "readOnly"),
                external_docs: object(f, "externalDocs").map(external_docs),
                example: f.get("example").map(any),
                vendor_extension: extensions(f),
            })),
            _ => Oneof::Schema(Box::new(schema(s))),
        };
        pb::SchemaItem { oneof: Some(oneof) }
    };
    pb::Response {
        description: string(m, "description"),
        schema: m.get("schema").map(schema_item),
        headers: m.get("headers").map(|_| pb::Headers {
            additional_properties: named(m, "headers", |name, h| pb::NamedHeader {
                name,
                value: h.as_object().map(header),
            }),
        }),
        examples: m.get("examples").map(|_| pb::Examples {
            additional_properties: named(m, "examples", |name, e| pb::NamedAny {
                name,
                value: Some(any(e)),
            }),
        }),
        vendor_extension: extensions(m),
    }
}

fn named_schemas(m: &Object) -> Vec<pb::NamedSchema> {
    m.iter()
        .map(|(k, v)| pb::NamedSchema {
            name: k.clone(),
            value: Some(schema(v)),
        })
        .collect()
}

/// A schema. Presence is kept where kubectl reads it: `properties: {}` is an empty
/// `Properties` (an object of no fields), not an absent one (a map of anything).
fn schema(v: &Value) -> pb::Schema {
    use pb::additional_properties_item::Oneof;
    let Some(m) = v.as_object() else {
        return pb::Schema::default();
    };
    pb::Schema {
        xref: string(m, "$ref"),
        format: string(m, "format"),
        title: string(m, "title"),
        description: string(m, "description"),
        default: m.get("default").map(any),
        multiple_of: float(m, "multipleOf"),
        maximum: float(m, "maximum"),
        exclusive_maximum: boolean(m, "exclusiveMaximum"),
        minimum: float(m, "minimum"),
        exclusive_minimum: boolean(m, "exclusiveMinimum"),
        max_length: int(m, "maxLength"),
        min_length: int(m, "minLength"),
        pattern: string(m, "pattern"),
        max_items: int(m, "maxItems"),
        min_items: int(m, "minItems"),
        unique_items: boolean(m, "uniqueItems"),
        max_properties: int(m, "maxProperties"),
        min_properties: int(m, "minProperties"),
        required: strings(m, "required"),
        r#enum: anys(m, "enum"),
        additional_properties: m.get("additionalProperties").map(|a| {
            let oneof = match a {
                Value::Bool(b) => Oneof::Boolean(*b),
                _ => Oneof::Schema(Box::new(schema(a))),
            };
            Box::new(pb::AdditionalPropertiesItem { oneof: Some(oneof) })
        }),
        r#type: m.get("type").map(|t| pb::TypeItem {
            value: match t {
                Value::Array(names) => names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                Value::String(name) => vec![name.clone()],
                _ => Vec::new(),
            },
        }),
        items: m.get("items").map(|i| pb::ItemsItem {
            schema: match i {
                Value::Array(each) => each.iter().map(schema).collect(),
                one => vec![schema(one)],
            },
        }),
        all_of: array(m, "allOf").map(schema).collect(),
        properties: object(m, "properties").map(|p| pb::Properties {
            additional_properties: named_schemas(p),
        }),
        discriminator: string(m, "discriminator"),
        read_only: boolean(m, "readOnly"),
        xml: object(m, "xml").map(|x| pb::Xml {
            name: string(x, "name"),
            namespace: string(x, "namespace"),
            prefix: string(x, "prefix"),
            attribute: boolean(x, "attribute"),
            wrapped: boolean(x, "wrapped"),
            vendor_extension: extensions(x),
        }),
        external_docs: object(m, "externalDocs").map(external_docs),
        example: m.get("example").map(any),
        vendor_extension: extensions(m),
    }
}

/// A security requirement: scheme names and their scopes.
fn security_requirement(v: &Value) -> pb::SecurityRequirement {
    pb::SecurityRequirement {
        additional_properties: v
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, scopes)| pb::NamedStringArray {
                name: name.clone(),
                value: Some(pb::StringArray {
                    value: scopes
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                }),
            })
            .collect(),
    }
}

/// A security scheme, by its `type` and, for OAuth2, its `flow`.
fn security_definition(v: &Value) -> pb::SecurityDefinitionsItem {
    use pb::security_definitions_item::Oneof;
    let empty = Object::new();
    let m = v.as_object().unwrap_or(&empty);
    let (kind, description) = (string(m, "type"), string(m, "description"));
    let scopes = || {
        Some(pb::Oauth2Scopes {
            additional_properties: named(m, "scopes", |name, s| pb::NamedString {
                name,
                value: s.as_str().unwrap_or_default().to_string(),
            }),
        })
    };
    let (flow, vendor_extension) = (string(m, "flow"), extensions(m));
    let (authorization_url, token_url) = (string(m, "authorizationUrl"), string(m, "tokenUrl"));
    let oneof = match (kind.as_str(), flow.as_str()) {
        ("basic", _) => Oneof::BasicAuthenticationSecurity(pb::BasicAuthenticationSecurity {
            r#type: kind,
            description,
            vendor_extension,
        }),
        ("apiKey", _) => Oneof::ApiKeySecurity(pb::ApiKeySecurity {
            r#type: kind,
            name: string(m, "name"),
            r#in: string(m, "in"),
            description,
            vendor_extension,
        }),
        ("oauth2", "implicit") => Oneof::Oauth2ImplicitSecurity(pb::Oauth2ImplicitSecurity {
            r#type: kind,
            flow,
            scopes: scopes(),
            authorization_url,
            description,
            vendor_extension,
        }),
        ("oauth2", "password") => Oneof::Oauth2PasswordSecurity(pb::Oauth2PasswordSecurity {
            r#type: kind,
            flow,
            scopes: scopes(),
            token_url,
            description,
            vendor_extension,
        }),
        ("oauth2", "application") => {
            Oneof::Oauth2ApplicationSecurity(pb::Oauth2ApplicationSecurity {
                r#type: kind,
                flow,
                scopes: scopes(),
                token_url,
                description,
                vendor_extension,
            })
        }
        ("oauth2", "accessCode") => Oneof::Oauth2AccessCodeSecurity(pb::Oauth2AccessCodeSecurity {
            r#type: kind,
            flow,
            scopes: scopes(),
            authorization_url,
            token_url,
            description,
            vendor_extension,
        }),
        _ => return pb::SecurityDefinitionsItem::default(),
    };
    pb::SecurityDefinitionsItem { oneof: Some(oneof) }
}

#[cfg(test)]
mod tests;
