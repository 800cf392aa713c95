//! Kinds served in two versions by a real `rk8s-server`, through the Debian kubectl:
//! `autoscaling/v1` HorizontalPodAutoscalers (stored in v2: a v1 manifest applied,
//! read in both versions, patched in v1 without losing what only v2 says, listed and
//! watched in v1) and `events.k8s.io/v1` Events (one store with core Events: each
//! written through one API is read through the other, field selectors of both).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::apiserver::{Server, write_manifest};

/// The API alone: no scheduler or controller writes to these objects.
const API_ONLY: &[&str] = &["--disable-scheduler", "--disable-controllers"];

/// The resource in v1, as kubectl names it (`hpa.v1.autoscaling` is expanded by
/// kubectl to the preferred version).
const V1: &str = "horizontalpodautoscalers.v1.autoscaling";

fn json_of(server: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&server.kubectl_ok(args)).unwrap()
}

#[test]
fn an_autoscaling_v1_hpa_is_a_v2_one_seen_in_v1() {
    let server = Server::start(API_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}});
    let file = write_manifest(dir.path(), "hpa-v1.json", &v1);
    let out = server.kubectl_ok(&["apply", "-f", &file]);
    assert!(
        out.contains("horizontalpodautoscaler.autoscaling/web created"),
        "{out}"
    );
    // Stored, and read, in v2 (kubectl's preferred version).
    let v2 = json_of(&server, &["get", "hpa", "web", "-o", "json"]);
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}])
    );
    let read = json_of(&server, &["get", V1, "web", "-o", "json"]);
    assert_eq!(read["apiVersion"], "autoscaling/v1");
    assert_eq!(read["spec"]["targetCPUUtilizationPercentage"], 50);

    // A second metric, set in v2, survives a v1 patch (it travels in v1's annotation).
    let pods_metric = json!({"type": "Pods", "pods": {"metric": {"name": "rps"},
        "target": {"type": "AverageValue", "averageValue": "10"}}});
    let mut v2 = v2;
    v2["spec"]["metrics"]
        .as_array_mut()
        .unwrap()
        .push(pods_metric.clone());
    let file = write_manifest(dir.path(), "hpa-v2.json", &v2);
    server.kubectl_ok(&["replace", "-f", &file]);
    let read = json_of(&server, &["get", V1, "web", "-o", "json"]);
    let note = read["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]
        .as_str()
        .unwrap();
    assert!(note.contains("rps"), "{note}");
    let out = server.kubectl_ok(&[
        "patch",
        V1,
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"targetCPUUtilizationPercentage":70,"maxReplicas":8}}"#,
    ]);
    assert!(out.contains("patched"), "{out}");
    let v2 = json_of(
        &server,
        &[
            "get",
            "horizontalpodautoscalers.v2.autoscaling",
            "web",
            "-o",
            "json",
        ],
    );
    assert_eq!(v2["spec"]["maxReplicas"], 8);
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        70
    );
    assert_eq!(v2["spec"]["metrics"][1], pods_metric);
    assert!(
        v2["metadata"]["annotations"]
            .get("autoscaling.alpha.kubernetes.io/metrics")
            .is_none()
    );

    // Lists and watches in v1 say v1.
    let list = json_of(
        &server,
        &[
            "get",
            "--raw",
            "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers",
        ],
    );
    assert_eq!(list["kind"], "HorizontalPodAutoscalerList");
    assert_eq!(list["apiVersion"], "autoscaling/v1");
    assert_eq!(
        list["items"][0]["spec"]["targetCPUUtilizationPercentage"],
        70
    );
    let watched = server.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers?watch=1&timeoutSeconds=1",
    ]);
    let event: Value = serde_json::from_str(watched.lines().next().unwrap()).unwrap();
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["apiVersion"], "autoscaling/v1");
    assert_eq!(
        event["object"]["spec"]["targetCPUUtilizationPercentage"],
        70
    );
    // kubectl's table and discovery know the version.
    let out = server.kubectl_ok(&["get", V1]);
    assert!(
        out.contains("web") && out.contains("Deployment/web"),
        "{out}"
    );
    let resources = server.kubectl_ok(&["api-resources", "--api-group=autoscaling", "-o", "wide"]);
    assert!(resources.contains("autoscaling/v2"), "{resources}");
    let out = server.kubectl_ok(&["get", "--raw", "/apis/autoscaling"]);
    let group: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(group["preferredVersion"]["version"], "v2");
    assert_eq!(group["versions"][1]["version"], "v1");
    // A v1 body that does not convert is refused in kube's words.
    let bad = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "bad", "annotations": {"autoscaling.alpha.kubernetes.io/metrics": "[{\"type\": 5}]"}},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 2}});
    let file = write_manifest(dir.path(), "bad.json", &bad);
    let (ok, out) = server.kubectl(&["create", "-f", &file]);
    assert!(
        !ok && out.contains("HorizontalPodAutoscaler in version \"v1\" cannot be handled as a HorizontalPodAutoscaler"),
        "{out}"
    );
    // A field v1 does not have: refused by kubectl's strict validation, a warning
    // under `--validate=warn`, as for any kind (it was dropped unseen).
    let mut typo = bad.clone();
    typo["metadata"] = json!({"name": "typo"});
    typo["spec"]["targetCPUUtilizationPercentag"] = json!(50);
    let file = write_manifest(dir.path(), "typo.json", &typo);
    let (ok, out) = server.kubectl(&["create", "-f", &file]);
    assert!(
        !ok && out.contains(
            "HorizontalPodAutoscaler in version \"v1\" cannot be handled as a HorizontalPodAutoscaler: strict decoding error: unknown field \"spec.targetCPUUtilizationPercentag\""
        ),
        "{out}"
    );
    let out = server.kubectl_ok(&["create", "--validate=warn", "-f", &file]);
    assert!(
        out.contains("Warning: unknown field \"spec.targetCPUUtilizationPercentag\""),
        "{out}"
    );
    server.kubectl_ok(&["delete", V1, "web"]);
    let (found, _) = server.kubectl(&["get", "hpa", "web"]);
    assert!(!found);
    server_side_apply_of_a_v1_manifest_owns_its_fields(&server, dir.path());
}

/// `kubectl apply --server-side` of an `autoscaling/v1` manifest (what Flux and Argo
/// CD send): created, changed by a second apply, a field of another manager's a
/// conflict unless forced; no `behavior` made up where the manifest gives none.
fn server_side_apply_of_a_v1_manifest_owns_its_fields(server: &Server, dir: &std::path::Path) {
    let mut v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "ssa"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}});
    let file = write_manifest(dir, "ssa.json", &v1);
    let out = server.kubectl_ok(&["apply", "--server-side", "-f", &file]);
    assert!(out.contains("serverside-applied"), "{out}");
    v1["spec"]["maxReplicas"] = json!(7);
    let file = write_manifest(dir, "ssa.json", &v1);
    server.kubectl_ok(&["apply", "--server-side", "-f", &file]);
    let read = json_of(server, &["get", V1, "ssa", "-o", "json"]);
    assert_eq!(read["spec"]["maxReplicas"], 7);
    assert_eq!(read["spec"]["targetCPUUtilizationPercentage"], 50);
    let annotations = read["metadata"]["annotations"].as_object();
    assert!(
        annotations.is_none_or(|a| !a.contains_key("autoscaling.alpha.kubernetes.io/behavior")),
        "{read}"
    );
    let (ok, out) = server.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &write_manifest(dir, "other.json", &{
            let mut other = v1.clone();
            other["spec"]["maxReplicas"] = json!(9);
            other
        }),
    ]);
    assert!(!ok && out.contains("conflict with \"kubectl\""), "{out}");
    server.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=other",
        "-f",
        &dir.join("other.json").to_string_lossy(),
    ]);
    let v2 = json_of(server, &["get", "hpa", "ssa", "-o", "json"]);
    assert_eq!(v2["spec"]["maxReplicas"], 9);
    assert!(v2["spec"].get("behavior").is_none(), "{v2}");
    // A third manager applies one field: it owns that field alone (the fields a v1
    // object requires are not made up for it), so nobody's conflicts with it.
    let partial = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "ssa"}, "spec": {"minReplicas": 2}});
    let file = write_manifest(dir, "partial.json", &partial);
    server.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=third",
        "-f",
        &file,
    ]);
    let v2 = json_of(
        server,
        &["get", "hpa", "ssa", "-o", "json", "--show-managed-fields"],
    );
    assert_eq!(v2["spec"]["minReplicas"], 2);
    assert_eq!(v2["spec"]["maxReplicas"], 9);
    assert_eq!(v2["spec"]["scaleTargetRef"]["name"], "web");
    let third = v2["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "third")
        .unwrap();
    assert_eq!(
        third["fieldsV1"],
        json!({"f:spec": {"f:minReplicas": {}}}),
        "{third}"
    );
}

#[test]
fn core_and_events_k8s_io_events_are_one_store() {
    let server = Server::start(API_ONLY);
    let dir = tempfile::tempdir().unwrap();
    let core = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "old-style"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Pulled", "message": "pulled the image", "type": "Normal",
        "source": {"component": "kubelet", "host": "n1"}, "count": 2,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z"});
    let file = write_manifest(dir.path(), "core.json", &core);
    server.kubectl_ok(&["create", "-f", &file]);
    let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "new-style"},
        "eventTime": "2026-01-01T00:02:00.000000Z",
        "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api",
                      "namespace": "default"},
        "reason": "Tested", "note": "written through events.k8s.io", "type": "Warning",
        "action": "Test", "reportingController": "example.com/tester",
        "reportingInstance": "tester-1"});
    let file = write_manifest(dir.path(), "new.json", &new);
    server.kubectl_ok(&["create", "-f", &file]);

    // Each API lists both, in its own fields.
    let seen = json_of(&server, &["get", "events.v1.events.k8s.io", "-o", "json"]);
    let items = seen["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{seen}");
    let old = items
        .iter()
        .find(|e| e["metadata"]["name"] == "old-style")
        .unwrap();
    assert_eq!(old["apiVersion"], "events.k8s.io/v1");
    assert_eq!(old["regarding"]["name"], "web");
    assert_eq!(old["note"], "pulled the image");
    assert_eq!(old["deprecatedCount"], 2);
    let seen = json_of(&server, &["get", "events", "-o", "json"]);
    let made = seen["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["metadata"]["name"] == "new-style")
        .unwrap()
        .clone();
    assert_eq!(made["apiVersion"], "v1");
    assert_eq!(made["involvedObject"]["name"], "api");
    assert_eq!(made["message"], "written through events.k8s.io");
    assert_eq!(made["reportingComponent"], "example.com/tester");
    // `kubectl events` and field selectors of both versions.
    let out = server.kubectl_ok(&["events", "--for", "deployment/api"]);
    assert!(out.contains("written through events.k8s.io"), "{out}");
    let out = server.kubectl_ok(&[
        "get",
        "events.v1.events.k8s.io",
        "--field-selector",
        "regarding.name=web,reason=Pulled",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "event.events.k8s.io/old-style");
    let out = server.kubectl_ok(&[
        "get",
        "events.v1.events.k8s.io",
        "--field-selector",
        "reportingController=example.com/tester",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "event.events.k8s.io/new-style");
    // A patch through events.k8s.io changes the one object.
    server.kubectl_ok(&[
        "patch",
        "events.v1.events.k8s.io",
        "old-style",
        "--type=merge",
        "-p",
        r#"{"note":"patched through events.k8s.io"}"#,
    ]);
    let out = server.kubectl_ok(&["get", "event", "old-style", "-o", "jsonpath={.message}"]);
    assert_eq!(out, "patched through events.k8s.io");
}
