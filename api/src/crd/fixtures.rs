//! Test fixtures: the `CronTab` CRD of Kubernetes' documentation, grown to use every
//! schema feature rk8s handles.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

use super::CompiledVersion;

/// The CRD as a user writes it (no status, names not defaulted).
pub(crate) fn crontab_json() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab",
                      "shortNames": ["ct"]},
            "versions": [
                {
                    "name": "v1beta1", "served": true, "storage": false,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "cronSpec": {"type": "string"},
                            "image": {"type": "string"},
                            "replicas": {"type": "integer"}
                        }}
                    }}}
                },
                {
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": v1_schema()},
                    "subresources": {
                        "status": {},
                        "scale": {"specReplicasPath": ".spec.replicas",
                                  "statusReplicasPath": ".status.replicas",
                                  "labelSelectorPath": ".status.labelSelector"}
                    },
                    "additionalPrinterColumns": [
                        {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                        {"name": "Ready", "type": "string",
                         "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                    ]
                }
            ]
        }
    })
}

/// The storage version's schema: every feature rk8s handles.
fn v1_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["cronSpec"],
                "properties": {
                    "cronSpec": {"type": "string",
                        "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                    "image": {"type": "string", "minLength": 1, "maxLength": 64},
                    "replicas": {"type": "integer", "minimum": 1,
                                 "maximum": 10, "default": 1},
                    "size": {"type": "string", "enum": ["small", "large"],
                             "default": "small"},
                    "port": {"x-kubernetes-int-or-string": true},
                    "note": {"type": "string", "nullable": true},
                    "containers": {
                        "type": "array", "maxItems": 3,
                        "items": {
                            "type": "object", "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "protocol": {"type": "string", "default": "TCP"},
                                "ports": {"type": "array",
                                    "items": {"type": "integer", "minimum": 1}}
                            }
                        }
                    },
                    "labels": {"type": "object",
                        "additionalProperties": {"type": "string"}},
                    "settings": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"mode": {"type": "string",
                                                "default": "fast"}}},
                    "template": {"type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": true}
                }
            },
            "status": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer"},
                    "labelSelector": {"type": "string"},
                    "conditions": {"type": "array", "items": {
                        "type": "object",
                        "properties": {"type": {"type": "string"},
                                       "status": {"type": "string"}}}}
                }
            }
        }
    })
}

/// The `CronTab` CRD.
pub(crate) fn crontab_crd() -> CustomResourceDefinition {
    serde_json::from_value(crontab_json()).expect("the fixture is a CRD")
}

/// Its storage version, compiled.
pub(crate) fn crontab_v1() -> CompiledVersion {
    CompiledVersion::new(&crontab_crd(), "v1").expect("the fixture compiles")
}
