use super::*;
use serde_json::json;

fn ds(extra: serde_json::Value) -> DaemonSet {
    let mut v = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 2},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"containers": [{"name": "a", "image": "agent:1"}]}},
        },
    });
    crate::common::merge_json(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Arc<Node> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
        }))
        .unwrap(),
    )
}

/// A Running pod of `ds` for `node`, of template `hash`, created at second `at`,
/// Ready since the epoch when `ready`.
fn pod(ds: &DaemonSet, name: &str, node: &str, hash: &str, at: i64, ready: bool) -> Arc<Pod> {
    let mut t = pod_for_node(ds, node, hash);
    t.metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(HASH_LABEL.into(), hash.into());
    let status = if ready { "True" } else { "False" };
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default",
                         "labels": t.metadata.unwrap().labels,
                         "creationTimestamp": format!("2026-01-01T00:00:{at:02}Z"),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                             "name": "agent", "uid": "ds-uid", "controller": true}]},
            "spec": t.spec,
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": status,
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .unwrap(),
    )
}

fn now() -> jiff::Timestamp {
    "2026-01-01T01:00:00Z".parse().unwrap()
}

fn three_nodes() -> Vec<Arc<Node>> {
    ["n1", "n2", "n3"]
        .iter()
        .map(|n| node(n, json!({}), json!(null)))
        .collect()
}

#[test]
fn every_eligible_node_gets_one_pod() {
    let ds = ds(json!({}));
    let hash = template_hash(&ds);
    let nodes = three_nodes();
    let pods = vec![pod(&ds, "agent-a", "n1", &hash, 1, true)];
    let d = reconcile(&ds, &nodes, &pods, true, now());
    assert_eq!(d.create, ["n2", "n3"]);
    assert!(d.delete.is_empty());
    assert_eq!(d.status.desired_number_scheduled, 3);
    assert_eq!(d.status.current_number_scheduled, 1);
    assert_eq!(d.status.number_ready, 1);
    assert_eq!(d.status.updated_number_scheduled, Some(1));
    assert_eq!(d.status.number_unavailable, Some(2));
    assert_eq!(d.status.observed_generation, Some(2));
    // Creations not yet seen: nothing more is done, the status still counts.
    let d = reconcile(&ds, &nodes, &pods, false, now());
    assert!(d.create.is_empty());
    assert_eq!(d.status.desired_number_scheduled, 3);
}

#[test]
fn daemon_pods_name_their_node_and_tolerate_what_daemons_do() {
    let ds = ds(
        json!({"spec": {"template": {"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]}}}}}}}),
    );
    let t = pod_for_node(&ds, "n2", "h");
    let spec = t.spec.unwrap();
    let labels = t.metadata.unwrap().labels.unwrap();
    assert_eq!(labels[HASH_LABEL], "h");
    assert_eq!(labels[GENERATION_LABEL], "2");
    let pod = Pod {
        spec: Some(spec.clone()),
        ..Default::default()
    };
    assert_eq!(target_node(&pod), Some("n2"));
    let keys: Vec<_> = spec
        .tolerations
        .iter()
        .flatten()
        .map(|t| t.key.clone().unwrap())
        .collect();
    assert!(keys.contains(&"node.kubernetes.io/unreachable".to_string()));
    assert!(keys.contains(&"node.kubernetes.io/unschedulable".to_string()));
    assert!(!keys.contains(&"node.kubernetes.io/network-unavailable".to_string()));
}

#[test]
fn selectors_and_taints_decide_where_pods_run_and_stay() {
    let ds = ds(json!({"spec": {"template": {"spec": {"nodeSelector": {"role": "edge"}}}}}));
    let edge = json!({"role": "edge"});
    assert_eq!(
        placement(&ds, &node("n", edge.clone(), json!(null))),
        (true, true)
    );
    assert_eq!(
        placement(&ds, &node("n", json!({}), json!(null))),
        (false, false)
    );
    // A NoSchedule taint keeps new pods off but lets one running stay; NoExecute not.
    let no_schedule = json!([{"key": "gpu", "effect": "NoSchedule"}]);
    assert_eq!(
        placement(&ds, &node("n", edge.clone(), no_schedule)),
        (false, true)
    );
    let no_execute = json!([{"key": "gpu", "effect": "NoExecute"}]);
    assert_eq!(
        placement(&ds, &node("n", edge.clone(), no_execute)),
        (false, false)
    );
    // The daemon tolerations: cordoned and unreachable nodes keep their daemons.
    let cordoned = json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                          {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]);
    assert_eq!(placement(&ds, &node("n", edge, cordoned)), (true, true));

    let hash = template_hash(&ds);
    let nodes = vec![
        node("n1", json!({"role": "edge"}), json!(null)),
        node("n2", json!({}), json!(null)),
    ];
    let pods = vec![
        pod(&ds, "agent-a", "n1", &hash, 1, true),
        pod(&ds, "agent-b", "n2", &hash, 1, true),
        pod(&ds, "agent-c", "gone", &hash, 1, true),
    ];
    let d = reconcile(&ds, &nodes, &pods, true, now());
    assert!(d.create.is_empty());
    assert_eq!(d.delete, ["agent-b", "agent-c"]);
    assert_eq!(d.status.number_misscheduled, 1);
    assert_eq!(d.status.desired_number_scheduled, 1);
}

#[test]
fn extra_and_failed_pods_go_the_oldest_stays() {
    let ds = ds(json!({}));
    let hash = template_hash(&ds);
    let nodes = vec![
        node("n1", json!({}), json!(null)),
        node("n2", json!({}), json!(null)),
    ];
    let failed = {
        let mut p = Pod::clone(&pod(&ds, "agent-f", "n2", &hash, 1, false));
        p.status.as_mut().unwrap().phase = Some("Failed".into());
        Arc::new(p)
    };
    let pods = vec![
        pod(&ds, "agent-new", "n1", &hash, 5, true),
        pod(&ds, "agent-old", "n1", &hash, 1, true),
        failed,
    ];
    let d = reconcile(&ds, &nodes, &pods, true, now());
    assert_eq!(d.delete, ["agent-f", "agent-new"]);
    assert!(d.create.is_empty(), "n2 waits for its failed pod to go");
}

#[test]
fn a_rolling_update_replaces_within_max_unavailable() {
    let ds = ds(json!({"spec": {"updateStrategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 2}}}}));
    let hash = template_hash(&ds);
    let nodes = three_nodes();
    let pods = vec![
        pod(&ds, "agent-1", "n1", "old", 1, true),
        pod(&ds, "agent-2", "n2", "old", 1, true),
        pod(&ds, "agent-3", "n3", "old", 1, true),
    ];
    let d = reconcile(&ds, &nodes, &pods, true, now());
    assert_eq!(d.delete, ["agent-1", "agent-2"]);
    assert_eq!(d.status.updated_number_scheduled, Some(0));
    // One new pod not yet available: one more old pod may go.
    let pods = vec![
        pod(&ds, "agent-4", "n1", &hash, 1, false),
        pod(&ds, "agent-2", "n2", "old", 1, true),
        pod(&ds, "agent-3", "n3", "old", 1, true),
    ];
    let d = reconcile(&ds, &nodes, &pods, true, now());
    assert_eq!(d.delete, ["agent-2"]);
    // An old pod that is not available is replaced whatever the budget.
    let pods = vec![
        pod(&ds, "agent-4", "n1", &hash, 1, false),
        pod(&ds, "agent-5", "n2", &hash, 1, false),
        pod(&ds, "agent-3", "n3", "old", 1, false),
    ];
    let d = reconcile(&ds, &nodes, &pods, true, now());
    assert_eq!(d.delete, ["agent-3"]);
    // OnDelete: old pods stay until someone deletes them.
    let on_delete = self::ds(json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}));
    let d = reconcile(&on_delete, &nodes, &pods, true, now());
    assert!(d.delete.is_empty());
}

#[test]
fn a_surge_update_starts_new_pods_beside_the_old() {
    let ds = ds(json!({"spec": {"updateStrategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}));
    let hash = template_hash(&ds);
    let nodes = three_nodes();
    let old = |n: &str, node: &str| pod(&ds, n, node, "old", 1, true);
    let pods = vec![
        old("agent-1", "n1"),
        old("agent-2", "n2"),
        old("agent-3", "n3"),
    ];
    let d = reconcile(&ds, &nodes, &pods, true, now());
    assert_eq!(d.create, ["n1"]);
    assert!(d.delete.is_empty());
    // The new pod not available yet: nothing more.
    let mut pods = pods;
    pods.push(pod(&ds, "agent-4", "n1", &hash, 2, false));
    let d = reconcile(&ds, &nodes, &pods, true, now());
    assert!(d.create.is_empty() && d.delete.is_empty(), "{d:?}");
    // Available: its old pod goes, and the next node surges in the same step (a
    // node whose new pod is available no longer counts against the budget).
    pods[3] = pod(&ds, "agent-4", "n1", &hash, 2, true);
    let d = reconcile(&ds, &nodes, &pods, true, now());
    assert_eq!(d.delete, ["agent-1"]);
    assert_eq!(d.create, ["n2"]);
}

#[test]
fn min_ready_seconds_asks_to_decide_again_when_a_pod_becomes_available() {
    let ds = ds(json!({"spec": {"minReadySeconds": 30}}));
    let hash = template_hash(&ds);
    let nodes = vec![node("n1", json!({}), json!(null))];
    let pods = vec![pod(&ds, "agent-1", "n1", &hash, 1, true)];
    let soon: jiff::Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
    let d = reconcile(&ds, &nodes, &pods, true, soon);
    assert_eq!(d.status.number_ready, 1);
    assert_eq!(d.status.number_available, Some(0));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(20)));
}

#[test]
fn orphans_are_adopted_and_pods_no_longer_selected_released() {
    let ds = ds(json!({}));
    let hash = template_hash(&ds);
    let nodes = vec![node("n1", json!({}), json!(null))];
    let mut orphan = Pod::clone(&pod(&ds, "stray", "n1", &hash, 1, true));
    orphan.metadata.owner_references = None;
    let mut relabelled = Pod::clone(&pod(&ds, "debug", "n1", &hash, 1, true));
    relabelled.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
    let d = reconcile(
        &ds,
        &nodes,
        &[Arc::new(orphan), Arc::new(relabelled)],
        true,
        now(),
    );
    assert_eq!(d.adopt, ["stray"]);
    assert_eq!(d.release, ["debug"]);
    assert!(d.create.is_empty(), "the adopted pod runs on n1");
}
