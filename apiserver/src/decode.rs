//! The decode step of a request: a body (JSON, YAML or protobuf) into an object of the kind
//! addressed, as kube-apiserver's serializers decode it under `fieldValidation`:
//! `apiVersion`/`kind` checked, unknown fields and keys written twice warned of or,
//! under `Strict`, refused.

use rk8s_api::{AnyObject, FieldPath, ObjectKind};
use serde_json::Value;

use crate::request::Query;

/// The largest request body accepted (Kubernetes' limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;
use crate::status::{ApiError, ApiResult};

/// How unknown fields in a body are treated (`fieldValidation`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

pub(crate) fn field_validation(q: &Query) -> ApiResult<FieldValidation> {
    match q.get("fieldValidation").unwrap_or("Warn") {
        "Ignore" | "" => Ok(FieldValidation::Ignore),
        "Warn" => Ok(FieldValidation::Warn),
        "Strict" => Ok(FieldValidation::Strict),
        other => Err(ApiError::bad_request(format!(
            "fieldValidation: unsupported value {other:?}: supported values: \"Ignore\", \"Warn\", \"Strict\""
        ))),
    }
}

/// A request body, parsed, with the keys it repeated.
pub(crate) struct Parsed {
    /// The body; a repeated key holds its last value, as Go's `encoding/json` keeps it.
    pub(crate) value: Value,
    /// One strict decoding error per repeated key, worded as kube-apiserver's
    /// (`duplicate field "metadata.name"`), in the order they were met.
    pub(crate) duplicates: Vec<Duplicate>,
}

/// A key that an object of a body repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Duplicate {
    /// The key's path as `sigs.k8s.io/json` spells it: keys joined by `.`, indexes
    /// as `[n]` (`spec.containers[0].image`).
    path: String,
}

impl std::fmt::Display for Duplicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "duplicate field {:?}", self.path)
    }
}

/// Parses a request body as JSON (or YAML, for `application/yaml`, or Kubernetes'
/// protobuf, for `application/vnd.kubernetes.protobuf`: its envelope's `apiVersion`
/// and `kind` are set in the value, for [`decode_value`] to check). Under
/// `fieldValidation=Strict`, a YAML key written twice is kube-apiserver's 400
/// (`strict decoding error: yaml: unmarshal errors:` then `line N: key "k" already set
/// in map`).
pub(crate) fn parse_body(
    content_type: &str,
    body: &[u8],
    mode: FieldValidation,
) -> ApiResult<Parsed> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "application/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
            let mut docs = rk8s_api::yaml::parse_documents(text).map_err(|e| {
                match e.message.strip_prefix("duplicate key ") {
                    Some(key) if mode == FieldValidation::Strict => ApiError::bad_request(format!(
                        "strict decoding error: yaml: unmarshal errors:\n  line {}: key {key} already set in map",
                        e.location.line
                    )),
                    _ => ApiError::bad_request(format!("the body is not valid YAML: {e}")),
                }
            })?;
            docs.retain(|d| !d.value.is_null());
            match docs.len() {
                1 => Ok(Parsed {
                    value: docs.remove(0).value,
                    duplicates: Vec::new(),
                }),
                n => Err(ApiError::bad_request(format!(
                    "the body must hold one YAML document, it holds {n}"
                ))),
            }
        }
        "application/json" | "" | "*/*" => parse_json(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}"))),
        rk8s_api::protobuf::MEDIA_TYPE => rk8s_api::protobuf::decode(body)
            .map(|d| Parsed {
                value: d.object,
                duplicates: Vec::new(),
            })
            .map_err(|e| ApiError::bad_request(format!("the body is not valid protobuf: {e}"))),
        other => Err(ApiError::unsupported_media_type(
            other,
            &[
                "application/json",
                "application/yaml",
                rk8s_api::protobuf::MEDIA_TYPE,
            ],
        )),
    }
}

/// Parses JSON as `serde_json::from_slice` does, noting each key an object repeats.
/// Each key is looked up once in its object's map as it is inserted, so the cost stays
/// that of parsing (serde_json's own nesting limit applies).
fn parse_json(body: &[u8]) -> serde_json::Result<Parsed> {
    use serde::de::DeserializeSeed;
    let walk = JsonWalk::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = (&walk).deserialize(&mut de)?;
    de.end()?;
    Ok(Parsed {
        value,
        duplicates: walk.duplicates.into_inner(),
    })
}

/// One step of the path to the value being parsed.
enum Step {
    Key(String),
    Index(usize),
}

/// The state of [`parse_json`]: where it is, and what it found repeated.
#[derive(Default)]
struct JsonWalk {
    path: std::cell::RefCell<Vec<Step>>,
    duplicates: std::cell::RefCell<Vec<Duplicate>>,
}

impl JsonWalk {
    /// The current path, with `key` appended, as `sigs.k8s.io/json` spells it.
    fn duplicate(&self, key: &str) -> Duplicate {
        let mut path = String::new();
        for step in self.path.borrow().iter() {
            match step {
                Step::Key(k) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                }
                Step::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        Duplicate { path }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for &JsonWalk {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for &JsonWalk {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.path.borrow_mut().push(Step::Index(items.len()));
            let item = seq.next_element_seed(self);
            self.path.borrow_mut().pop();
            match item? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let duplicate = self.duplicate(&key);
                self.duplicates.borrow_mut().push(duplicate);
            }
            self.path.borrow_mut().push(Step::Key(key));
            let value = map.next_value_seed(self);
            let key = match self.path.borrow_mut().pop() {
                Some(Step::Key(k)) => k,
                _ => String::new(),
            };
            object.insert(key, value?);
        }
        Ok(Value::Object(object))
    }
}

/// Decodes a JSON value into an object of `kind`, checking `apiVersion` and `kind`
/// and collecting unknown fields and the keys the body repeated (`duplicates`): under
/// `fieldValidation=Strict` they are a 400 `strict decoding error: ...`, under `Warn`
/// one warning each. As in kube-apiserver, a repeated key that is also unknown counts
/// as unknown only.
pub(crate) fn decode_value(
    kind: &ObjectKind,
    value: &Value,
    duplicates: &[Duplicate],
    mode: FieldValidation,
) -> ApiResult<(AnyObject, Vec<String>)> {
    for (field, expected) in [("apiVersion", kind.api_version), ("kind", kind.kind)] {
        match value.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == expected => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "the {field} in the body ({other}) does not match the expected {field} ({expected:?})"
                )));
            }
        }
    }
    let obj = AnyObject::from_value_ref(kind, value)
        .ok_or_else(|| ApiError::internal(format!("kind {} is not served", kind.kind)))?
        .map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: {} at {}",
                kind.kind,
                kind.version,
                kind.kind,
                e.inner(),
                e.path()
            ))
        })?;
    let mut unknown = Vec::new();
    if mode != FieldValidation::Ignore {
        rk8s_api::path::unknown_fields(value, &obj.to_value(), &FieldPath::root(), &mut unknown);
    }
    let unknown: Vec<String> = unknown.iter().map(|(path, _)| path.to_string()).collect();
    Ok((obj, field_problems(&unknown, duplicates, mode)?))
}

/// How a request words its body's strict decoding errors, as kube-apiserver's
/// handlers do.
#[derive(Clone, Copy)]
pub(crate) enum Brought<'a> {
    /// A create or an update (`transformDecodeError`): `Pod in version "v1" cannot
    /// be handled as a Pod: strict decoding error: unknown field "restartPolicy"`.
    Body(&'a ObjectKind),
    /// A JSON, merge or strategic merge patch: a 422 on the field `patch`, whose
    /// value is the patched object (`patch: Invalid value: "{…}": strict decoding
    /// error: …`).
    Patch(&'a Value),
}

/// `e` worded as the request that `brought` the body words it, if it is a strict
/// decoding error (other errors are returned as they are).
pub(crate) fn reworded(e: ApiError, brought: Brought<'_>) -> ApiError {
    if e.code != http::StatusCode::BAD_REQUEST || !e.message.starts_with("strict decoding error: ")
    {
        return e;
    }
    match brought {
        Brought::Body(kind) => ApiError {
            message: format!(
                "{} in version {:?} cannot be handled as a {}: {}",
                kind.kind, kind.version, kind.kind, e.message
            ),
            ..e
        },
        Brought::Patch(patched) => {
            // Go's %q of the patched object's JSON.
            let quoted = serde_json::to_string(&patched.to_string()).unwrap_or_default();
            let detail = format!("Invalid value: {quoted}: {}", e.message);
            let cause = k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                field: Some("patch".into()),
                message: Some(detail.clone()),
                reason: Some("FieldValueInvalid".into()),
            };
            ApiError {
                details: Some(Box::new(
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
                        causes: Some(vec![cause]),
                        ..Default::default()
                    },
                )),
                ..ApiError::new(
                    http::StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!(" \"\" is invalid: patch: {detail}"),
                )
            }
        }
    }
}

/// What `fieldValidation` makes of a body's `unknown` fields and `duplicates` keys:
/// the warnings (`Warn`), a 400 (`Strict`), nothing (`Ignore`).
pub(crate) fn field_problems(
    unknown: &[String],
    duplicates: &[Duplicate],
    mode: FieldValidation,
) -> ApiResult<Vec<String>> {
    let within_unknown = |d: &Duplicate| {
        unknown.iter().any(|u| {
            d.path
                .strip_prefix(u.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    };
    let mut problems: Vec<String> = Vec::new();
    if mode != FieldValidation::Ignore {
        problems.extend(
            duplicates
                .iter()
                .filter(|d| !within_unknown(d))
                .map(Duplicate::to_string),
        );
        problems.extend(unknown.iter().map(|u| format!("unknown field {u:?}")));
    }
    if mode == FieldValidation::Strict && !problems.is_empty() {
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            problems.join(", ")
        )));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk8s_api::object::kind_named;
    use serde_json::json;

    #[test]
    fn unknown_fields_warn_or_fail() {
        let pods = kind_named("Pod").unwrap();
        let v = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": {"containers": [{"name": "a", "image": "x", "imagee": "y"}]}});
        let (_, warnings) = decode_value(&pods, &v.clone(), &[], FieldValidation::Warn).unwrap();
        assert_eq!(
            warnings,
            vec!["unknown field \"spec.containers[0].imagee\"".to_string()]
        );
        let e = decode_value(&pods, &v, &[], FieldValidation::Strict).unwrap_err();
        assert_eq!(e.code.as_u16(), 400);
        assert!(e.message.contains("strict decoding error"), "{}", e.message);
        let wrong = json!({"apiVersion": "apps/v1", "kind": "Pod"});
        assert_eq!(
            decode_value(&pods, &wrong, &[], FieldValidation::Ignore)
                .unwrap_err()
                .code
                .as_u16(),
            400
        );
        let bad_type = json!({"metadata": {"name": 5}});
        let e = decode_value(&pods, &bad_type, &[], FieldValidation::Ignore).unwrap_err();
        assert!(e.message.contains("metadata.name"), "{}", e.message);
    }

    #[test]
    fn repeated_json_keys_are_found_with_their_paths() {
        let body = br#"{"metadata": {"name": "a", "name": "b", "labels": {"x": "1", "x": "2"}},
                        "spec": {"containers": [{"name": "c", "image": "i", "image": "j"}]},
                        "n": [1, 2.5, -3, 18446744073709551615, null, true]}"#;
        let parsed = parse_json(body).unwrap();
        let paths: Vec<&str> = parsed.duplicates.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "metadata.name",
                "metadata.labels.x",
                "spec.containers[0].image"
            ]
        );
        // The rest is what serde_json makes of the body (the last value wins).
        let plain: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(parsed.value, plain);
        assert_eq!(parsed.value["metadata"]["name"], "b");
        assert!(parse_json(b"{\"a\": 1} x").is_err());
        assert!(parse_json(b"{\"a\": 1, \"a\"").is_err());
    }

    #[test]
    fn repeated_keys_fail_strict_decoding_and_warn_otherwise() {
        let pods = kind_named("Pod").unwrap();
        let body = br#"{"metadata": {"name": "p", "name": "p"},
                        "spec": {"containers": [{"name": "a", "image": "x"}],
                                 "bogus": 1, "bogus": 2}}"#;
        let parsed = parse_body("application/json", body, FieldValidation::Strict).unwrap();
        let e = decode_value(
            &pods,
            &parsed.value.clone(),
            &parsed.duplicates,
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!(e.code.as_u16(), 400);
        // A key both repeated and unknown counts as unknown only, as in kube-apiserver.
        assert_eq!(
            e.message,
            r#"strict decoding error: duplicate field "metadata.name", unknown field "spec.bogus""#
        );
        let (_, warnings) = decode_value(
            &pods,
            &parsed.value.clone(),
            &parsed.duplicates,
            FieldValidation::Warn,
        )
        .unwrap();
        assert_eq!(
            warnings,
            [
                r#"duplicate field "metadata.name""#,
                r#"unknown field "spec.bogus""#
            ]
        );
        let (_, warnings) = decode_value(
            &pods,
            &parsed.value,
            &parsed.duplicates,
            FieldValidation::Ignore,
        )
        .unwrap();
        assert!(warnings.is_empty());
    }

    #[test]
    fn a_protobuf_body_decodes_to_the_object_it_encodes() {
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "c"}, "data": {"a": "b"}});
        let body = rk8s_api::protobuf::encode(&cm).unwrap();
        let parsed = parse_body(
            "application/vnd.kubernetes.protobuf",
            &body,
            FieldValidation::Strict,
        )
        .unwrap();
        assert_eq!(parsed.value, cm);
        let kind = kind_named("ConfigMap").unwrap();
        let (obj, warnings) =
            decode_value(&kind, &parsed.value, &[], FieldValidation::Strict).unwrap();
        assert_eq!(obj.name(), "c");
        assert!(warnings.is_empty());
        let e = parse_body(
            "application/vnd.kubernetes.protobuf",
            b"k8s\0\x0a\xff",
            FieldValidation::Strict,
        )
        .err()
        .unwrap();
        assert_eq!(e.code.as_u16(), 400);
        assert_eq!(
            e.message,
            "the body is not valid protobuf: <root>: the message is truncated"
        );
    }

    #[test]
    fn a_repeated_yaml_key_under_strict_validation_is_a_strict_decoding_error() {
        let body = b"metadata:\n  name: a\n  name: b\n";
        let e = parse_body("application/yaml", body, FieldValidation::Strict)
            .err()
            .unwrap();
        assert_eq!(e.code.as_u16(), 400);
        assert_eq!(
            e.message,
            "strict decoding error: yaml: unmarshal errors:\n  line 3: key \"name\" already set in map"
        );
    }
}
