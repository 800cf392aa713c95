use serde_json::json;

use super::*;

fn alias(api_version: &str) -> &'static Alias {
    aliases()
        .iter()
        .find(|a| a.served.api_version == api_version)
        .unwrap()
}

#[test]
fn a_v2_hpa_read_and_written_back_in_v1_loses_nothing() {
    let v2 = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "d", "annotations": {"team": "a"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 9,
            "metrics": [
                {"type": "Pods", "pods": {"metric": {"name": "rps"},
                 "target": {"type": "AverageValue", "averageValue": "10"}}},
                {"type": "Resource", "resource": {"name": "cpu",
                 "target": {"type": "Utilization", "averageUtilization": 60}}}
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}
        },
        "status": {"currentReplicas": 3, "desiredReplicas": 4,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": 75}}}],
            "conditions": [{"type": "AbleToScale", "status": "True"}]}
    });
    let hpa = alias("autoscaling/v1");
    let v1 = hpa.to_served(v2.clone()).unwrap();
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
    assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 75);
    assert_eq!(v1["status"]["currentReplicas"], 3);
    let notes = &v1["metadata"]["annotations"];
    assert_eq!(notes["team"], "a");
    let others: Value = serde_json::from_str(notes[METRICS_ANNOTATION].as_str().unwrap()).unwrap();
    assert_eq!(others[0]["pods"]["metric"]["name"], "rps");
    assert!(notes[BEHAVIOR_ANNOTATION].is_string());
    assert!(notes[CONDITIONS_ANNOTATION].is_string());
    let back = hpa.from_served(v1).unwrap();
    assert_eq!(back["metadata"]["annotations"], json!({"team": "a"}));
    assert_eq!(back["spec"]["behavior"], v2["spec"]["behavior"]);
    assert_eq!(back["status"]["conditions"], v2["status"]["conditions"]);
    // The CPU target comes first, then the others, as kube converts them.
    let metrics = back["spec"]["metrics"].as_array().unwrap();
    assert_eq!(metrics[0]["resource"]["target"]["averageUtilization"], 60);
    assert_eq!(metrics[1]["pods"]["metric"]["name"], "rps");
}

#[test]
fn a_v1_hpa_becomes_a_v2_cpu_target_and_bad_annotations_are_named() {
    let hpa = alias("autoscaling/v1");
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                 "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}});
    let v2 = hpa.from_served(v1.clone()).unwrap();
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}])
    );
    // v1's current CPU utilization is v2's current metric.
    let mut with_status = v1.clone();
    with_status["status"] = json!({"currentReplicas": 2, "desiredReplicas": 2,
        "currentCPUUtilizationPercentage": 33});
    let v2 = hpa.from_served(with_status).unwrap();
    assert_eq!(
        v2["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
        33
    );
    let mut bad = v1;
    bad["metadata"]["annotations"] = json!({METRICS_ANNOTATION: "[{\"type\": 5}]"});
    let e = hpa.from_served(bad).unwrap_err();
    assert!(
        e.starts_with("metadata.annotations[autoscaling.alpha.kubernetes.io/metrics]"),
        "{e}"
    );
    let e = hpa
        .from_served(json!({"spec": {"maxReplicas": "five"}}))
        .unwrap_err();
    assert!(e.starts_with("spec.maxReplicas"), "{e}");
}

#[test]
fn events_are_one_store_seen_through_both_apis() {
    let core = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "e", "namespace": "d"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "d"},
        "reason": "Started", "message": "started", "type": "Normal",
        "source": {"component": "kubelet"}, "count": 3,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "reportingComponent": "kubelet", "reportingInstance": "node-1"});
    let events = alias("events.k8s.io/v1");
    let served = events.to_served(core.clone()).unwrap();
    assert_eq!(served["apiVersion"], "events.k8s.io/v1");
    assert_eq!(served["regarding"]["name"], "web");
    assert_eq!(served["note"], "started");
    assert_eq!(served["reportingController"], "kubelet");
    assert_eq!(served["deprecatedSource"]["component"], "kubelet");
    assert_eq!(served["deprecatedCount"], 3);
    assert_eq!(events.from_served(served).unwrap(), core);
    assert_eq!(events.field_label("regarding.name"), "involvedObject.name");
    assert_eq!(events.field_label("reason"), "reason");
    assert_eq!(
        alias_for("events.k8s.io", "v1", "events")
            .unwrap()
            .stored
            .group,
        ""
    );
    assert!(alias_for("apps", "v1", "deployments").is_none());
}

#[test]
fn an_applied_v1_configuration_owns_only_what_it_sets() {
    let hpa = alias("autoscaling/v1");
    let partial = json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "d"},
        "spec": {"minReplicas": 3, "scaleTargetRef": {"name": "web"}}
    });
    // Converted as a whole, the typed v1 form fills in what it requires.
    let whole = hpa.from_served(partial.clone()).unwrap();
    assert_eq!(whole["spec"]["maxReplicas"], 0);
    assert_eq!(whole["spec"]["scaleTargetRef"]["kind"], "");
    // Applied, only what the configuration names.
    let applied = hpa.applied(partial).unwrap();
    assert_eq!(
        applied,
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "d"},
            "spec": {"minReplicas": 3, "scaleTargetRef": {"name": "web"}}
        })
    );
    // A value set to the zero a conversion would fill in is kept: it was asked.
    let zero = json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"maxReplicas": 0, "targetCPUUtilizationPercentage": 50}
    });
    let applied = hpa.applied(zero).unwrap();
    assert_eq!(applied["spec"]["maxReplicas"], 0);
    assert_eq!(
        applied["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    assert!(applied["spec"].get("scaleTargetRef").is_none(), "{applied}");
}
