//! Arbitrary bytes as custom resources. The first byte picks the mode: even, the rest
//! is a custom object checked against a fixed CronTab CRD; odd, the rest is a JSON CRD
//! followed by a JSON object. Nothing may panic (validation of the CRD, compiling its
//! schemas, pruning, defaulting, validating, printer columns, scale paths, status), and
//! pruning and defaulting must be idempotent.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rk8s_api::crd::{self, Columns, CompiledVersion, ScalePaths, TakenNames};
use serde_json::{Value, json};

static CRONTAB: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                        "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                        "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                        "size": {"type": "string", "enum": ["small", "large"], "default": "small"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "note": {"type": "string", "nullable": true, "maxLength": 8},
                        "items": {"type": "array", "maxItems": 4, "items": {
                            "type": "object", "properties": {
                                "name": {"type": "string", "default": "x"},
                                "when": {"type": "string", "format": "date-time"}}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                     "x-kubernetes-preserve-unknown-fields": true}
                    }},
                    "status": {"type": "object", "properties": {
                        "replicas": {"type": "integer"}, "selector": {"type": "string"}}}
                }}},
                "subresources": {"status": {}, "scale": {
                    "specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas",
                    "labelSelectorPath": ".status.selector"}},
                "additionalPrinterColumns": [
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "First", "type": "string", "jsonPath": ".spec.items[0].name"},
                    {"name": "Named", "type": "string", "jsonPath": ".spec.items[?(@.name==\"a\")].when"},
                    {"name": "When", "type": "date", "jsonPath": ".spec.items[*].when"}
                ]
            }]
        }
    })
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
    let (crd_json, object) = if mode % 2 == 0 {
        match values.next() {
            Some(Ok(object)) => (CRONTAB.clone(), object),
            _ => return,
        }
    } else {
        let Some(Ok(crd_json)) = values.next() else {
            return;
        };
        let object = match values.next() {
            Some(Ok(object)) => object,
            _ => json!({}),
        };
        (crd_json, object)
    };
    let Ok(mut crd) = serde_json::from_value(crd_json) else {
        return;
    };
    crd::default_crd(&mut crd);
    for e in crd::validate_crd(&crd) {
        let _ = crd::kubernetes_message(&e);
    }
    let Ok(now) = serde_json::from_value(json!("2026-01-01T00:00:00Z")) else {
        return;
    };
    let _ = crd::compute_status(&crd, &TakenNames::default().with_resource("ct"), &now);
    for version in &crd.spec.versions {
        if let Ok(compiled) = CompiledVersion::new(&crd, &version.name) {
            let mut obj = object.clone();
            compiled.prune(&mut obj);
            assert!(
                compiled.prune(&mut obj).is_empty(),
                "pruning twice pruned more"
            );
            compiled.default(&mut obj);
            let once = obj.clone();
            compiled.default(&mut obj);
            assert_eq!(once, obj, "defaulting twice changed the object");
            for e in compiled.validate(&obj) {
                let _ = crd::kubernetes_message(&e);
            }
        }
        if let Ok(columns) = Columns::new(version) {
            let _ = columns.cells(&object);
        }
        if let Some(scale) = version.subresources.as_ref().and_then(|s| s.scale.as_ref())
            && let Ok(paths) = ScalePaths::new(scale)
        {
            let _ = paths.spec_replicas(&object);
            let _ = paths.status_replicas(&object);
            let _ = paths.label_selector(&object);
            let mut obj = object.clone();
            if paths.set_spec_replicas(&mut obj, 3).is_ok() {
                assert_eq!(paths.spec_replicas(&obj).ok().flatten(), Some(3));
            }
        }
    }
});
