//! Property tests: arbitrary objects against the CronTab CRD, arbitrary JSONPath text.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::fixtures::crontab_v1;
use super::jsonpath::JsonPath;
use super::validate::kubernetes_message;

/// JSON values whose keys are drawn from the CronTab schema's field names, so that the
/// walks of pruning, defaulting and validation meet known and unknown fields alike.
fn json_value() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "spec",
        "status",
        "metadata",
        "cronSpec",
        "replicas",
        "size",
        "port",
        "note",
        "containers",
        "name",
        "ports",
        "labels",
        "settings",
        "mode",
        "template",
        "apiVersion",
        "kind",
        "other",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1.0e6..1.0e6f64).prop_map(Value::from),
        "[a-z*/ 0-9]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<String, Value>>(),
                )
            }),
        ]
    })
}

proptest! {
    #[test]
    fn pruning_and_defaulting_are_idempotent_and_validation_never_panics(spec in json_value()) {
        let version = crontab_v1();
        let mut obj = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "x", "namespace": "default"}, "spec": spec});
        version.prune(&mut obj);
        prop_assert!(version.prune(&mut obj).is_empty());
        version.default(&mut obj);
        let once = obj.clone();
        version.default(&mut obj);
        prop_assert_eq!(&once, &obj);
        for e in version.validate(&obj) {
            prop_assert!(!kubernetes_message(&e).is_empty());
        }
    }

    #[test]
    fn a_pruned_and_defaulted_object_keeps_only_known_fields(spec in json_value()) {
        let version = crontab_v1();
        let mut obj = json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "x", "namespace": "default"}, "spec": spec});
        version.prune(&mut obj);
        version.default(&mut obj);
        // Defaults of a valid CRD are pruned: defaulting brings no unknown field back.
        prop_assert!(version.prune(&mut obj).is_empty());
    }

    #[test]
    fn json_path_parsing_never_panics(text in r#"[.\[\]?@()='"*a-z0-9 {}$<>!\\-]{0,24}"#) {
        if let Ok(path) = JsonPath::parse(&text) {
            let _ = path.find(&json!({"a": [{"b": 1}], "b": {"a": "x"}}));
        }
    }
}
