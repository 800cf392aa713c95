#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use rk8s_api::activation::{IDLE_AFTER, LineKind, WAKE_ON_REQUEST};
use serde_json::json;

fn deployment(name: &str, replicas: i32, annotations: serde_json::Value) -> Arc<Deployment> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "resourceVersion": "7",
                         "annotations": annotations},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, "tier": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}}
        }))
        .unwrap(),
    )
}

fn service(
    name: &str,
    selector: serde_json::Value,
    annotations: serde_json::Value,
) -> Arc<Service> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"selector": selector, "ports": [{"port": 80}]}
        }))
        .unwrap(),
    )
}

fn hpa(name: &str, target: &str, min: i32) -> Arc<HorizontalPodAutoscaler> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": min, "maxReplicas": 5}
        }))
        .unwrap(),
    )
}

fn key(name: &str) -> Key {
    ("default".to_string(), name.to_string())
}

fn line(
    kind: LineKind,
    service: &str,
    requests: u64,
    in_flight: u64,
    waiting: u64,
) -> ActivityLine {
    ActivityLine {
        kind,
        backends: vec![BackendActivity {
            namespace: "default".into(),
            service: service.into(),
            requests,
            in_flight,
            waiting,
        }],
    }
}

#[test]
fn wakeable_deployments_are_annotated_ones_and_targets_of_hpas_with_min_zero() {
    let deployments = [
        deployment("fn", 0, json!({WAKE_ON_REQUEST: "true", IDLE_AFTER: "10s"})),
        deployment("scaled", 0, json!({})),
        deployment("plain", 2, json!({})),
        deployment("hpa-one", 0, json!({})),
    ];
    let services = [
        service("fn", json!({"app": "fn"}), json!({})),
        service("fn-tier", json!({"tier": "web", "app": "fn"}), json!({})),
        service("other", json!({"app": "other"}), json!({})),
        service("scaled", json!({"app": "scaled"}), json!({})),
    ];
    let hpas = [hpa("s", "scaled", 0), hpa("h", "hpa-one", 1)];
    let t = targets(&deployments, &services, &hpas);
    let names: Vec<&str> = t.iter().map(|t| t.deployment.1.as_str()).collect();
    assert_eq!(names, ["fn", "scaled"]);
    assert_eq!(t[0].services, ["fn", "fn-tier"]);
    assert_eq!(t[0].settings.idle_after, Some(Duration::from_secs(10)));
    assert_eq!(t[0].hpa, None);
    assert_eq!(t[1].hpa.as_deref(), Some("s"));
    assert_eq!(t[1].services, ["scaled"]);
}

#[test]
fn services_get_the_timeout_annotation_while_they_front_a_wakeable_deployment() {
    let deployments = [deployment(
        "fn",
        0,
        json!({WAKE_ON_REQUEST: "true", ACTIVATION_TIMEOUT: "30s"}),
    )];
    let services = [
        service("fn", json!({"app": "fn"}), json!({})),
        service(
            "kept",
            json!({"app": "fn"}),
            json!({ACTIVATION_TIMEOUT: "30s"}),
        ),
        service(
            "stale",
            json!({"app": "gone"}),
            json!({ACTIVATION_TIMEOUT: "60s"}),
        ),
        service("none", json!({"app": "gone"}), json!({})),
    ];
    let t = targets(&deployments, &services, &[]);
    assert_eq!(
        service_changes(&t, &services),
        [
            ServiceChange {
                service: key("fn"),
                timeout: Some("30s".into())
            },
            ServiceChange {
                service: key("stale"),
                timeout: None
            },
        ]
    );
}

/// One annotated target at `replicas`, idle after 10 s, behind the Service `fn`.
fn target(replicas: i32) -> Vec<Target> {
    targets(
        &[deployment(
            "fn",
            replicas,
            json!({WAKE_ON_REQUEST: "true", IDLE_AFTER: "10s", "scale.rk8s.io/activation-replicas": "2"}),
        )],
        &[service("fn", json!({"app": "fn"}), json!({}))],
        &[],
    )
}

#[test]
fn a_waiting_request_wakes_a_deployment_at_zero_to_its_activation_replicas() {
    let start = Instant::now();
    let mut activity = Activity::new(start);
    let none = BTreeMap::new();
    assert_eq!(decide(&target(0), &activity, false, &none, start), []);
    activity.observe("a", &line(LineKind::Waiting, "fn", 1, 0, 1), start);
    assert_eq!(
        decide(&target(0), &activity, false, &none, start),
        [Action::Wake {
            deployment: key("fn"),
            replicas: 2,
            resource_version: Some("7".into())
        }]
    );
    // Already up (the write landed): nothing more, even with requests waiting.
    assert_eq!(decide(&target(2), &activity, false, &none, start), []);
    // A node whose stream ended holds nothing any more.
    activity.down("a");
    assert_eq!(decide(&target(0), &activity, false, &none, start), []);
}

#[test]
fn an_idle_deployment_sleeps_after_idle_after_and_not_while_traffic_grows() {
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let mut activity = Activity::new(start);
    let none = BTreeMap::new();
    activity.observe("a", &line(LineKind::Snapshot, "fn", 5, 0, 0), at(1));
    // A new leader counts every Service active at its start.
    assert_eq!(decide(&target(1), &activity, false, &none, at(9)), []);
    // Requests grew at 8 s: active then.
    activity.observe("a", &line(LineKind::Snapshot, "fn", 6, 0, 0), at(8));
    assert_eq!(decide(&target(1), &activity, false, &none, at(17)), []);
    let sleep = [Action::Sleep {
        deployment: key("fn"),
        resource_version: Some("7".into()),
    }];
    assert_eq!(decide(&target(1), &activity, false, &none, at(18)), sleep);
    // A recent wake holds it up.
    let woken: BTreeMap<Key, Instant> = [(key("fn"), at(15))].into();
    assert_eq!(decide(&target(1), &activity, false, &woken, at(18)), []);
    assert_eq!(decide(&target(1), &activity, false, &woken, at(25)), sleep);
}

#[test]
fn a_silent_node_counts_as_active_and_hpas_or_zero_idle_after_own_scaling_down() {
    let start = Instant::now();
    let later = start + Duration::from_secs(60);
    let activity = Activity::new(start);
    let none = BTreeMap::new();
    assert!(activity.unknown(["a"].into_iter(), later));
    assert!(!activity.unknown(std::iter::empty(), later));
    assert_eq!(decide(&target(1), &activity, true, &none, later), []);
    // Never by idleness.
    let never = targets(
        &[deployment(
            "fn",
            1,
            json!({WAKE_ON_REQUEST: "true", IDLE_AFTER: "0"}),
        )],
        &[service("fn", json!({"app": "fn"}), json!({}))],
        &[],
    );
    assert_eq!(decide(&never, &activity, false, &none, later), []);
    // An HPA with minReplicas 0 scales its target down itself; it is woken here.
    let by_hpa = targets(
        &[deployment("fn", 1, json!({}))],
        &[service("fn", json!({"app": "fn"}), json!({}))],
        &[hpa("h", "fn", 0)],
    );
    assert_eq!(decide(&by_hpa, &activity, false, &none, later), []);
    let mut waiting = Activity::new(start);
    waiting.observe("a", &line(LineKind::Waiting, "fn", 1, 0, 1), later);
    let mut at_zero = by_hpa.clone();
    at_zero[0].replicas = 0;
    assert!(matches!(
        decide(&at_zero, &waiting, false, &none, later)[..],
        [Action::Wake { replicas: 1, .. }]
    ));
}

#[test]
fn a_deployment_without_a_service_is_left_alone_and_bad_annotations_are_reported() {
    let lonely = targets(
        &[deployment(
            "fn",
            1,
            json!({WAKE_ON_REQUEST: "true", IDLE_AFTER: "soon"}),
        )],
        &[],
        &[],
    );
    assert!(lonely[0].services.is_empty());
    assert_eq!(lonely[0].problems.len(), 1);
    assert_eq!(lonely[0].problems[0].annotation, IDLE_AFTER);
    let start = Instant::now();
    let activity = Activity::new(start);
    let later = start + Duration::from_secs(3600);
    assert_eq!(
        decide(&lonely, &activity, false, &BTreeMap::new(), later),
        []
    );
}

#[test]
fn an_hpa_target_gets_a_floor_from_the_leaders_start_and_while_traffic_lasts() {
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let by_hpa = targets(
        &[deployment("fn", 1, json!({IDLE_AFTER: "30s"}))],
        &[service("fn", json!({"app": "fn"}), json!({}))],
        &[hpa("h", "fn", 0)],
    );
    let mut activity = Activity::new(start);
    let none = BTreeMap::new();
    let floor = |until| {
        vec![Floor {
            hpa: key("h"),
            replicas: 1,
            until,
        }]
    };
    // A new leader knows nothing of the traffic before it: a floor from its start.
    assert_eq!(floors(&by_hpa, &activity, &none, at(5)), floor(at(30)));
    activity.observe("a", &line(LineKind::Waiting, "fn", 1, 0, 1), at(10));
    assert_eq!(floors(&by_hpa, &activity, &none, at(12)), floor(at(42)));
    activity.observe("a", &line(LineKind::Snapshot, "fn", 1, 0, 0), at(20));
    assert_eq!(floors(&by_hpa, &activity, &none, at(25)), floor(at(40)));
    assert_eq!(floors(&by_hpa, &activity, &none, at(41)), []);
    // Annotated targets without an HPA have none.
    assert_eq!(floors(&target(1), &activity, &none, at(12)), []);
}

#[test]
fn an_hpa_target_behind_no_service_gets_no_floor_even_when_seen_scaled_up() {
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let alone = targets(
        &[deployment("worker", 1, json!({}))],
        &[],
        &[hpa("h", "worker", 0)],
    );
    assert_eq!(alone.len(), 1);
    let activity = Activity::new(start);
    // Seen with replicas (as a scale-up by anyone is recorded): still no floor, the
    // HPA alone takes it to zero.
    let seen = BTreeMap::from([(alone[0].deployment.clone(), start)]);
    assert_eq!(floors(&alone, &activity, &seen, at(5)), []);
}

#[test]
fn a_request_in_flight_keeps_a_deployment_up_however_long_it_lasts() {
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let mut activity = Activity::new(start);
    let none = BTreeMap::new();
    activity.observe("a", &line(LineKind::Snapshot, "fn", 1, 1, 0), at(1));
    // Reported in flight at 1 s, nothing since: still under way at 100 s.
    assert_eq!(decide(&target(1), &activity, false, &none, at(100)), []);
    // It ended after that report: active until the report that says so.
    activity.observe("a", &line(LineKind::Snapshot, "fn", 1, 0, 0), at(101));
    assert_eq!(decide(&target(1), &activity, false, &none, at(110)), []);
    assert!(matches!(
        decide(&target(1), &activity, false, &none, at(111))[..],
        [Action::Sleep { .. }]
    ));
    // A node whose stream ended is not current: its in-flight count holds nothing.
    activity.observe("a", &line(LineKind::Snapshot, "fn", 2, 1, 0), at(120));
    activity.down("a");
    assert!(!activity.busy(&key("fn")));
}

#[test]
fn a_node_no_longer_ready_holds_no_waiting_request() {
    let start = Instant::now();
    let mut activity = Activity::new(start);
    let none = BTreeMap::new();
    activity.observe("a", &line(LineKind::Waiting, "fn", 1, 0, 1), start);
    activity.observe("b", &line(LineKind::Snapshot, "fn", 0, 0, 0), start);
    assert!(activity.waiting(&key("fn")));
    activity.retain_nodes(&["b".to_string()].into());
    assert!(!activity.waiting(&key("fn")));
    assert_eq!(decide(&target(0), &activity, false, &none, start), []);
}

#[test]
fn a_node_back_after_an_outage_makes_every_service_active_then() {
    let start = Instant::now();
    let at = |s: u64| start + Duration::from_secs(s);
    let mut activity = Activity::new(start);
    let none = BTreeMap::new();
    activity.observe("a", &line(LineKind::Snapshot, "fn", 5, 0, 0), at(1));
    activity.down("a");
    // Back at 50 s with the same count: what it served meanwhile is unknown.
    activity.observe("a", &line(LineKind::Snapshot, "fn", 5, 0, 0), at(50));
    assert_eq!(decide(&target(1), &activity, false, &none, at(55)), []);
    assert!(matches!(
        decide(&target(1), &activity, false, &none, at(60))[..],
        [Action::Sleep { .. }]
    ));
    // So does a node silent for longer than STALE.
    activity.observe("a", &line(LineKind::Snapshot, "fn", 5, 0, 0), at(100));
    assert_eq!(activity.last_active(&key("fn")), at(100));
}

#[test]
fn only_the_targets_services_are_kept() {
    let start = Instant::now();
    let mut activity = Activity::new(start);
    activity.observe("a", &line(LineKind::Waiting, "other", 1, 0, 1), start);
    activity.track([key("fn")].into());
    assert!(!activity.waiting(&key("other")), "pruned");
    activity.observe("a", &line(LineKind::Waiting, "junk", 1, 0, 1), start);
    assert!(!activity.waiting(&key("junk")), "ignored");
    activity.observe("a", &line(LineKind::Waiting, "fn", 1, 0, 1), start);
    assert!(activity.waiting(&key("fn")));
}

#[test]
fn a_scale_up_from_zero_by_anyone_starts_the_idle_clock() {
    let mut seen = BTreeMap::new();
    // Created (or first seen) with replicas: counted as a start.
    assert_eq!(scaled_up(&target(1), &mut seen), [key("fn")]);
    assert_eq!(scaled_up(&target(1), &mut seen), Vec::<Key>::new());
    assert_eq!(scaled_up(&target(0), &mut seen), Vec::<Key>::new());
    // A user's 0 → 3.
    assert_eq!(scaled_up(&target(3), &mut seen), [key("fn")]);
    // Gone: forgotten.
    assert_eq!(scaled_up(&[], &mut seen), Vec::<Key>::new());
    assert!(seen.is_empty());
}
