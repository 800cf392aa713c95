//! The transcoder held to the encoder: for every kind of the repository's fixtures and
//! for objects that use every kind of field, JSON bytes transcoded are the bytes the
//! encoder writes for the parsed value, and wrong values fail with its errors.

use serde_json::{Value, json};

use crate::protobuf::tests::pod;
use crate::protobuf::{
    Error, MAX_DEPTH, decode_message, encode, encode_message, list_field_tags, transcode,
    transcode_message, type_meta, wire,
};

/// `json` transcodes to what the encoder writes for it, as a body and as a bare
/// message appended to a buffer.
fn agrees_on(json: &[u8]) {
    let value: Value = serde_json::from_slice(json).unwrap();
    let (api_version, kind) = type_meta(&value);
    let expected = encode(&value).unwrap();
    assert!(
        transcode(json).unwrap() == expected,
        "{api_version} {kind}: the bodies differ"
    );
    let mut buf = b"before".to_vec();
    transcode_message(api_version, kind, json, &mut buf).unwrap();
    assert_eq!(&buf[..6], b"before");
    assert!(
        buf[6..] == encode_message(api_version, kind, &value).unwrap(),
        "{api_version} {kind}: the messages differ"
    );
}

/// What the transcoder alone makes of `json`, without falling back to a `Value`.
fn streamed(json: &[u8]) -> Result<(), super::Stop> {
    let mut buf = Vec::new();
    super::run(json, &mut buf, super::top)
}

/// `value`, written by serde_json (sorted keys, as the server stores it), transcodes
/// to the encoder's bytes, without falling back to a `Value`.
fn agrees(value: &Value) {
    let json = serde_json::to_vec(value).unwrap();
    assert!(streamed(&json).is_ok(), "{json:?} fell back to a Value");
    agrees_on(&json);
    // Whitespace changes nothing.
    agrees_on(&serde_json::to_vec_pretty(value).unwrap());
}

/// `value` fails to transcode with the encoder's error, and leaves the buffer alone.
fn fails_as_the_encoder_does(value: &Value) -> String {
    let json = serde_json::to_vec(value).unwrap();
    let Err(expected) = encode(value) else {
        panic!("the encoder takes it")
    };
    // The transcoder finds the error itself, but where the encoder could have met
    // another first (in an inline struct: here a Volume's source, a Probe's handler).
    match streamed(&json) {
        Err(super::Stop::Invalid(e)) => assert_eq!(*e, expected),
        Err(super::Stop::Redo) => {
            let at = expected.to_string();
            assert!(at.contains("volumes") || at.contains("Probe."), "{at}");
        }
        _ => panic!("the transcoder takes it"),
    }
    assert_eq!(transcode(&json).unwrap_err(), expected);
    let (api_version, kind) = type_meta(value);
    let mut buf = b"before".to_vec();
    let e = transcode_message(api_version, kind, &json, &mut buf).unwrap_err();
    assert_eq!(e, encode_message(api_version, kind, value).unwrap_err());
    assert_eq!(buf, b"before");
    expected.to_string()
}

fn fixture_objects() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/every-kind.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    crate::manifest::load(path, &text)
        .unwrap()
        .into_iter()
        .map(|m| m.object.to_value())
        .collect()
}

#[test]
fn every_kind_of_the_fixtures_transcodes_to_the_encoders_bytes() {
    let mut checked = 0;
    for object in fixture_objects() {
        let (api_version, kind) = type_meta(&object);
        if crate::protobuf::has_schema(api_version, kind) {
            agrees(&object);
            checked += 1;
        }
    }
    assert!(checked >= 35, "only {checked} kinds");
}

#[test]
fn a_realistic_pod_transcodes_to_the_encoders_bytes() {
    let mut pod = pod();
    agrees(&pod);
    // Long fields (lengths of two bytes and more), escapes and non-ASCII text, nulls,
    // keys the schema does not have, integers given as strings and as whole floats.
    let long = "x".repeat(20_000);
    pod["metadata"]["annotations"]["long"] = json!(long);
    pod["metadata"]["labels"]["quote\"and\\back\nslash"] = json!("é ü 漢 \u{1}");
    pod["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"] = json!({
        "f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:n": [1, -2, 3.5, 1e300, -0.0, true, null, "é\t/"]}}
    });
    pod["metadata"]["deletionGracePeriodSeconds"] = json!(null);
    pod["metadata"]["unknownField"] = json!({"deep": [{"a": [1, 2, {"b": null}]}]});
    pod["spec"]["containers"][0]["ports"][0]["containerPort"] = json!("80");
    pod["spec"]["containers"][0]["ports"][1]["hostPort"] = json!(19090.0);
    pod["spec"]["nodeSelector"] = json!({});
    pod["spec"]["volumes"][0]["secret"] = json!(null);
    agrees(&pod);
    // The encoder's bytes are prost's: the transcoder's are too.
    use prost::Message as _;
    let bytes = transcode(&serde_json::to_vec(&pod).unwrap()).unwrap();
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown::decode(&bytes[4..]).unwrap();
    let typed = k8s_pb::api::core::v1::Pod::decode(unknown.raw.unwrap().as_slice()).unwrap();
    assert_eq!(typed.metadata.unwrap().annotations["long"], long);
}

#[test]
fn special_and_schema_or_value_fields_transcode_to_the_encoders_bytes() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com", "creationTimestamp": "2025-03-04T05:06:07.5+02:00"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "kind": "Widget"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "size": {"type": "integer", "minimum": 1, "maximum": 10.5, "default": {"b": [1, {"a": 2}]}},
                    "free": {"type": "object", "additionalProperties": true},
                    "closed": {"type": "object", "additionalProperties": false},
                    "typed": {"type": "object", "additionalProperties": {"type": "string"}},
                    "tuple": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
                    "list": {"type": "array", "items": {"type": "string"}},
                    "deps": {"type": "object", "dependencies": {"a": ["b", "c"], "d": {"required": ["e"]}}},
                    "port": {"x-kubernetes-int-or-string": true, "enum": [80, "http", null]}
                }
            }}}]
        }
    });
    agrees(&crd);
    // RawExtension, Duration, MicroTime, Verbs-free kinds with numbers for quantities.
    let revision = json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": "r"}, "revision": 3,
        "data": {"spec": {"template": {"x": [1.25, "two", {"three": null}]}}}
    });
    agrees(&revision);
    let quota = json!({
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"cpu": 4, "memory": "1Gi", "pods": 1.5}}
    });
    agrees(&quota);
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
        "spec": {"acquireTime": "2025-03-04T05:06:07.123456Z", "renewTime": "1969-12-31T23:59:59.5Z"}
    });
    agrees(&lease);
    let webhook = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "w"},
        "webhooks": [{"name": "w.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                      "clientConfig": {"url": "https://example.com", "caBundle": "AAEC"},
                      "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                 "resources": ["pods"], "scope": "*"}],
                      "matchConditions": [{"name": "c", "expression": "true"}]}]
    });
    agrees(&webhook);
}

#[test]
fn a_list_written_from_transcoded_items_is_the_encoders_list() {
    let item = |name: &str| {
        let mut p = pod();
        p["metadata"]["name"] = json!(name);
        p
    };
    let items = [item("a"), item("b")];
    let (metadata, items_tag) = list_field_tags("v1", "PodList").unwrap();
    assert_eq!((metadata, items_tag), (1, 2));
    let mut buf = Vec::new();
    let mark = wire::begin_nested(&mut buf, metadata);
    wire::put_bytes(&mut buf, 2, b"4711"); // ListMeta's resourceVersion
    wire::end_nested(&mut buf, mark);
    for item in &items {
        let mark = wire::begin_nested(&mut buf, items_tag);
        transcode_message("v1", "Pod", &serde_json::to_vec(item).unwrap(), &mut buf).unwrap();
        wire::end_nested(&mut buf, mark);
    }
    // Go writes fields in number order, the encoder in key order (`items` first):
    // the same message.
    let list = json!({"metadata": {"resourceVersion": "4711"}, "items": items});
    assert_eq!(
        decode_message("v1", "PodList", &buf).unwrap(),
        decode_message(
            "v1",
            "PodList",
            &encode_message("v1", "PodList", &list).unwrap()
        )
        .unwrap()
    );
    assert_eq!(list_field_tags("apps/v1", "DeploymentList"), Some((1, 2)));
    assert_eq!(list_field_tags("v1", "Pod"), None);
    assert_eq!(list_field_tags("example.com/v1", "WidgetList"), None);
}

#[test]
fn keys_in_any_order_or_repeated_give_the_encoders_bytes() {
    // The kind after other fields (kept as raw JSON until the kind is known).
    let sorted = br#"{"apiVersion":"v1","binaryData":{"b":"AAEC"},"data":{"k":"v"},"kind":"ConfigMap","metadata":{"name":"a"}}"#;
    assert!(streamed(sorted).is_ok());
    agrees_on(sorted);
    // Unsorted keys, a key twice (the last wins): through a `Value`.
    for json in [
        &br#"{"metadata":{"name":"a","labels":{"z":"1","a":"2"}},"data":{"k":"v"},"kind":"ConfigMap","apiVersion":"v1"}"#[..],
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"b"}}"#,
        br#"{"apiVersion":"v1","kind":"Secret","kind":"ConfigMap","metadata":{"name":"a"}}"#,
        br#"{"apiVersion":"v1","kind":"Pod","metadata":{"managedFields":[{"fieldsV1":{"f:b":{},"f:a":{}}}]}}"#,
        br#"{"apiVersion":"v1","kind":"Pod","spec":{"volumes":[{"name":"v","emptyDir":{},"name":"w"}]}}"#,
    ] {
        assert!(matches!(streamed(json), Err(super::Stop::Redo)));
        agrees_on(json);
    }
    // A wrong value a later repeated key replaces (in a `Value`) is no error.
    agrees_on(br#"{"apiVersion":"v1","kind":"Pod","spec":{"priority":"x","priority":5}}"#);
}

#[test]
fn wrong_values_fail_with_the_encoders_error_and_path() {
    let long = "y".repeat(50);
    let cases: &[&[(&str, Value)]] = &[
        &[("/spec/containers/0/ports/1/containerPort", json!("eighty"))],
        &[("/metadata/creationTimestamp", json!("yesterday"))],
        &[("/metadata/labels", json!(["a"]))],
        &[("/metadata/labels/app", json!(1))],
        &[("/spec/containers", json!({"a": 1}))],
        &[("/spec/containers/0/ports/0", json!("x"))],
        &[("/spec", json!(7))],
        &[("/spec/priority", json!(1_i64 << 40))],
        &[("/spec/priority", json!(1.5))],
        &[("/spec/priority", json!(u64::MAX))],
        &[("/spec/priority", json!(long))],
        &[("/spec/hostNetwork", json!(long))],
        &[("/spec/hostNetwork", json!([]))],
        &[("/spec/activeDeadlineSeconds", json!("soon"))],
        &[("/spec/containers/0/resources/limits/cpu", json!(true))],
        &[("/spec/containers/0/resources/limits/cpu", json!(null))],
        &[("/spec/containers/0/resources/limits/cpu", json!({"a": 1}))],
        &[("/spec/containers/0/command/0", json!(null))],
        &[("/spec/containers/0/args/1", json!(7))],
        &[(
            "/spec/containers/0/readinessProbe/httpGet/port",
            json!(true),
        )],
        &[(
            "/spec/containers/0/livenessProbe/tcpSocket/port",
            json!(1_i64 << 40),
        )],
        &[(
            "/spec/containers/0/livenessProbe/timeoutSeconds",
            json!("2s"),
        )],
        &[("/metadata/managedFields/0/time", json!(5))],
        &[(
            "/status/conditions/0/lastTransitionTime",
            json!("2025-13-01T00:00:00Z"),
        )],
        &[("/spec/volumes/0/configMap", json!(5))],
        // An inline struct's error (configMap) before an own field's (name) in key
        // order: the encoder reports the own field's.
        &[
            ("/spec/volumes/0/name", json!(5)),
            ("/spec/volumes/0/configMap/defaultMode", json!("x")),
        ],
        &[(
            "/spec/containers/0/readinessProbe/periodSeconds",
            json!([1]),
        )],
    ];
    for case in cases {
        let mut bad = pod();
        for (path, value) in *case {
            *bad.pointer_mut(path).unwrap() = value.clone();
        }
        let message = fails_as_the_encoder_does(&bad);
        let field = case[0].0.split('/').nth(1).unwrap();
        assert!(message.starts_with(field), "{message}");
    }
    let mut bad = pod();
    bad["spec"]["containers"][0]["ports"][1]["containerPort"] = json!("eighty");
    assert_eq!(
        fails_as_the_encoder_does(&bad),
        "spec.containers[0].ports[1].containerPort: \"eighty\" is not an integer"
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                        "data": {"a": "!!not base64!!"}});
    assert_eq!(
        fails_as_the_encoder_does(&secret),
        "data.a: \"!!not base64!!\" is not base64"
    );
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                     "spec": {"versions": [{"schema": {"openAPIV3Schema": {
                         "properties": {"a": {"additionalProperties": 5}}}}}]}});
    assert_eq!(
        fails_as_the_encoder_does(&crd),
        "spec.versions[0].schema.openAPIV3Schema.properties.a.additionalProperties: \
         expected a schema or a boolean, found 5"
    );
}

#[test]
fn objects_without_a_known_kind_fail_as_the_encoder_does() {
    for value in [
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {}}),
        json!({"apiVersion": "v1", "metadata": {}}),
        json!({"kind": "Pod"}),
        json!({"apiVersion": 1, "kind": "Pod"}),
        json!([1, 2]),
        json!("Pod"),
    ] {
        let expected = encode(&value).unwrap_err();
        assert_eq!(
            transcode(&serde_json::to_vec(&value).unwrap()).unwrap_err(),
            expected
        );
    }
    let mut buf = Vec::new();
    assert!(matches!(
        transcode_message("example.com/v1", "Widget", b"{}", &mut buf),
        Err(Error::UnknownKind { .. })
    ));
}

#[test]
fn malformed_json_is_an_error_not_a_panic() {
    let json = serde_json::to_vec(&pod()).unwrap();
    let mut buf = Vec::new();
    for end in 0..json.len() {
        let e = transcode(&json[..end]).unwrap_err();
        assert!(e.to_string().contains("not JSON"), "{e}");
        assert!(transcode_message("v1", "Pod", &json[..end], &mut buf).is_err());
        assert!(buf.is_empty());
    }
    for bad in [
        &b""[..],
        b"{",
        b"{\"apiVersion\":\"v1\",\"kind\":\"Pod\"} trailing",
        b"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"\xff\"}}",
        b"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":1e999}}",
        b"\x00\x01\x02",
    ] {
        assert!(transcode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    // JSON deeper than serde_json's limit, in a field, in embedded JSON, in a key the
    // schema does not have, and as the whole body.
    let deep = |open: &str, close: &str, n: usize| format!("{}{}", open.repeat(n), close.repeat(n));
    let cases = [
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"managedFields":[{{"fieldsV1":{}}}]}}}}"#,
            deep("[", "]", 100_000)
        ),
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","spec":{}}}"#,
            deep("[", "]", 100_000)
        ),
        deep("[", "]", 100_000),
    ];
    for json in &cases {
        assert!(transcode(json.as_bytes()).is_err());
    }
    // Keys the schema does not have, too: serde_json would not parse the object.
    let skipped = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","x":{}}}"#,
        deep("[", "]", 100_000)
    );
    assert!(transcode(skipped.as_bytes()).is_err());
    // Up to serde_json's limit, any value is read.
    let limit = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"managedFields":[{{"fieldsV1":{}}}]}},"x":{}}}"#,
        deep("[", "]", 123),
        deep("[", "]", 126)
    );
    assert!(streamed(limit.as_bytes()).is_ok());
    agrees_on(limit.as_bytes());
    // Schemas nest two messages for each JSON level (a JSONSchemaPropsOrBool, then its
    // JSONSchemaProps): past MAX_DEPTH before serde_json's limit, as for the encoder.
    let mut schema = json!({"type": "string"});
    for _ in 0..MAX_DEPTH / 2 + 1 {
        schema = json!({"additionalProperties": schema});
    }
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                     "spec": {"versions": [{"schema": {"openAPIV3Schema": schema}}]}});
    let message = fails_as_the_encoder_does(&crd);
    assert!(message.contains("nested deeper than"), "{message}");
}

#[test]
fn the_reader_reads_numbers_and_strings_as_serde_json_does() {
    use super::scan::{Num, Scanner, Token};
    let numbers = [
        "0",
        "-0",
        "7",
        "-7",
        "1.5",
        "-0.0",
        "1E2",
        "1e-5",
        "123456789012345678",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "9007199254740993",
        "1e400",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "--1",
        "+1",
    ];
    for text in numbers {
        let ours = match Scanner::new(text.as_bytes(), 0).token() {
            Ok(Token::Num(Num::U64(u))) => Some(Value::from(u)),
            Ok(Token::Num(Num::I64(i))) => Some(Value::from(i)),
            Ok(Token::Num(Num::F64(f))) => Some(Value::from(f)),
            _ => None,
        };
        let mut sc = Scanner::new(text.as_bytes(), 0);
        let whole = sc.token().is_ok() && sc.end().is_ok();
        let theirs = serde_json::from_str::<Value>(text).ok();
        assert_eq!(ours.filter(|_| whole), theirs, "{text}");
    }
    let long = format!("\"{}é{}\\n\"", "a".repeat(13), "b".repeat(9));
    let strings = [
        "\"\"",
        "\"plain text\"",
        "\"é ü 漢\"",
        "\"\\\"quoted\\\"\"",
        "\"\\u00e9\\ud83d\\ude00\"",
        "\"\\ud800\"",
        "\"tab\there\"",
        "\"\\x\"",
        "\"unterminated",
        &long,
    ];
    for text in strings {
        let ours = match Scanner::new(text.as_bytes(), 0).token() {
            Ok(Token::Str(s)) => Some(s.as_str().to_string()),
            _ => None,
        };
        assert_eq!(ours, serde_json::from_str::<String>(text).ok(), "{text}");
    }
    for bad in [&b"\"\xff\""[..], b"\"a\xc3\"", b"\"\xed\xa0\x80\""] {
        assert!(Scanner::new(bad, 0).token().is_err());
        assert!(serde_json::from_slice::<String>(bad).is_err());
    }
}
