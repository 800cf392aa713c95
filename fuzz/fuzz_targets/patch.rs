//! Arbitrary bytes as a merge, JSON and strategic merge patch of a Deployment. A patch
//! may be refused but must never panic, and what it makes must stay within the limits:
//! no larger than the request size limit, no deeper than a JSON decoder reads back.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rk8s_api::patch::{self, Limits, PatchType};
use serde_json::{Value, json};

static DEPLOYMENT: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web"},
            "annotations": {"note": "x"},
            "finalizers": ["example.com/keep"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "Owner", "name": "o", "uid": "u1"}]
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1",
                         "args": ["-g", "daemon off;"],
                         "env": [{"name": "A", "value": "1"}],
                         "ports": [{"containerPort": 80, "name": "http"}],
                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                        {"name": "sidecar", "image": "busybox"}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }
            }
        },
        "status": {"conditions": [{"type": "Available", "status": "True"}]}
    })
});

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    for kind in [PatchType::Merge, PatchType::Json, PatchType::StrategicMerge] {
        let mut target = DEPLOYMENT.clone();
        if patch::apply(kind, &mut target, data, &limits).is_ok() {
            let text = serde_json::to_vec(&target).expect("a patched value serializes");
            assert!(
                text.len() <= limits.max_object_bytes,
                "{kind:?} made {} bytes",
                text.len()
            );
            // What a patch makes reads back: it nests no deeper than the decoder takes.
            // (Not compared for equality: without `float_roundtrip`, serde_json may read
            // a float back one unit in the last place off.)
            assert!(
                serde_json::from_slice::<Value>(&text).is_ok(),
                "{kind:?} made a value that does not parse back"
            );
        }
    }
});
