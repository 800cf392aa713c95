use super::*;
use serde_json::json;

fn pdb(spec: serde_json::Value, status: serde_json::Value) -> PodDisruptionBudget {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "generation": 2},
        "spec": spec,
        "status": status,
    }))
    .unwrap()
}

/// A pod of the ReplicaSet `rs` (uid `rs`), Ready or not.
fn pod(name: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                         "name": "rs", "uid": "rs", "controller": true}]},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    }))
    .unwrap()
}

fn now() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

/// Every controller asks for 4 replicas.
fn four(owner: &OwnerReference, _ns: &str) -> Option<(String, i32)> {
    (owner.kind == "ReplicaSet").then(|| (owner.uid.clone(), 4))
}

#[test]
fn min_available_counts_ready_pods_against_a_number() {
    let budget = pdb(
        json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
        json!({}),
    );
    let pods = [
        pod("a", true),
        pod("b", true),
        pod("c", true),
        pod("d", false),
    ];
    let chosen = selected(&budget, pods.iter());
    assert_eq!(chosen.len(), 4);
    let (s, recheck) = status(&budget, &chosen, &four, now());
    assert_eq!(
        (
            s.expected_pods,
            s.current_healthy,
            s.desired_healthy,
            s.disruptions_allowed
        ),
        (4, 3, 2, 1)
    );
    assert_eq!(s.observed_generation, Some(2));
    let c = &s.conditions.unwrap()[0];
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "SufficientPods")
    );
    assert!(recheck.is_none());
}

#[test]
fn max_unavailable_and_percentages_read_the_controllers_replicas() {
    let pods = [pod("a", true), pod("b", true), pod("c", false)];
    let refs: Vec<&Pod> = pods.iter().collect();
    // 4 replicas asked for, 25% may be unavailable: 3 must be healthy, 2 are.
    let budget = pdb(json!({"maxUnavailable": "25%", "selector": {}}), json!({}));
    let (s, _) = status(&budget, &refs, &four, now());
    assert_eq!(
        (s.expected_pods, s.desired_healthy, s.disruptions_allowed),
        (4, 3, 0)
    );
    let c = &s.conditions.unwrap()[0];
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "InsufficientPods")
    );
    let budget = pdb(json!({"minAvailable": "50%", "selector": {}}), json!({}));
    let (s, _) = status(&budget, &refs, &four, now());
    assert_eq!((s.desired_healthy, s.disruptions_allowed), (2, 0));
    // A controller without a scale: the budget cannot be computed.
    let nothing = |_: &OwnerReference, _: &str| None;
    let (s, _) = status(&budget, &refs, &nothing, now());
    let c = &s.conditions.unwrap()[0];
    assert_eq!(c.reason, "SyncFailed");
    assert_eq!(c.message, "found no controllers for pod \"a\"");
    assert_eq!(s.disruptions_allowed, 0);
}

#[test]
fn evicted_pods_count_as_disrupted_until_they_go_or_time_out() {
    let budget = pdb(
        json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}),
        json!({"disruptedPods": {"a": "2025-12-31T23:59:30Z", "b": "2025-12-31T23:50:00Z"}}),
    );
    let pods = [pod("a", true), pod("b", true), pod("c", true)];
    let refs: Vec<&Pod> = pods.iter().collect();
    let (s, recheck) = status(&budget, &refs, &four, now());
    // a was evicted 30 s ago: not healthy; b's eviction timed out: healthy again.
    assert_eq!(s.current_healthy, 2);
    assert_eq!(s.disruptions_allowed, 1);
    assert_eq!(s.disrupted_pods.unwrap().keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(recheck, Some(Duration::from_secs(90)));
    // No selector selects nothing.
    let none = pdb(json!({"minAvailable": 1}), json!({}));
    assert!(selected(&none, pods.iter()).is_empty());
}
