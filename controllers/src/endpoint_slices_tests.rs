//! Tables for [`super`]: what the slices of a Service hold, and how few writes keep them.

use super::*;
use serde_json::json;

fn service(extra: serde_json::Value) -> Service {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid",
                     "labels": {"team": "a", SERVICE_NAME: "spoofed"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ports": [
            {"name": "http", "port": 80, "targetPort": "http", "appProtocol": "http"},
            {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"}]},
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(v).unwrap()
}

fn pod(name: &str, ip: &str, ready: bool, http_port: Option<i32>) -> Pod {
    let ports: Vec<serde_json::Value> = http_port
        .map(|p| json!({"name": "http", "containerPort": p}))
        .into_iter()
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
        "status": {"phase": "Running", "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    }))
    .unwrap()
}

fn terminating(mut p: Pod) -> Pod {
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::now(),
    ));
    p
}

fn no_zone(_: &str) -> Option<String> {
    None
}

/// `n` ready pods `p000`… serving http on 8080.
fn many(n: usize) -> Vec<Pod> {
    (0..n)
        .map(|i| {
            pod(
                &format!("p{i:03}"),
                &format!("10.244.{}.{}", i / 200, i % 200 + 2),
                true,
                Some(8080),
            )
        })
        .collect()
}

/// What the API server would hold after `changes`: created slices named and given a
/// uid, updated ones replaced, deleted ones gone.
fn apply(mut slices: Vec<EndpointSlice>, changes: Changes) -> Vec<EndpointSlice> {
    let gone = |s: &EndpointSlice| {
        changes
            .delete
            .iter()
            .chain(&changes.update)
            .any(|d| d.metadata.name == s.metadata.name)
    };
    slices.retain(|s| !gone(s));
    slices.extend(changes.update);
    static NAMED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    for mut s in changes.create {
        let n = NAMED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        s.metadata.name = Some(format!("web-{n:05}"));
        s.metadata.uid = Some(format!("slice-{n}"));
        slices.push(s);
    }
    slices
}

fn step(s: &Service, pods: &[Pod], slices: Vec<EndpointSlice>) -> (Changes, Vec<EndpointSlice>) {
    let refs: Vec<&EndpointSlice> = slices.iter().collect();
    let changes = reconcile(s, pods, no_zone, &refs);
    let after = apply(slices.clone(), changes.clone());
    (changes, after)
}

fn names(slice: &EndpointSlice) -> Vec<&str> {
    slice
        .endpoints
        .iter()
        .map(|e| pod_name(e).unwrap())
        .collect()
}

fn conditions(e: &Endpoint) -> (bool, bool, bool) {
    let c = e.conditions.clone().unwrap();
    (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
}

#[test]
fn conditions_follow_readiness_and_termination() {
    let s = service(json!({}));
    let at = |p: &Pod| conditions(&endpoint(&s, p, None).unwrap());
    let ready = pod("a", "10.244.0.2", true, Some(8080));
    let not_ready = pod("b", "10.244.0.3", false, Some(8080));
    assert_eq!(at(&ready), (true, true, false));
    assert_eq!(at(&not_ready), (false, false, false));
    assert_eq!(at(&terminating(ready.clone())), (false, true, true));
    assert_eq!(at(&terminating(not_ready.clone())), (false, false, true));
    let publish = service(json!({"publishNotReadyAddresses": true}));
    let at = |p: &Pod| conditions(&endpoint(&publish, p, None).unwrap());
    assert_eq!(at(&not_ready), (true, false, false));
    assert_eq!(at(&terminating(not_ready)), (true, false, true));
}

#[test]
fn an_endpoint_names_its_pod_node_and_zone() {
    let s = service(json!({}));
    let e = endpoint(&s, &pod("a", "10.244.0.2", true, None), Some("z1".into())).unwrap();
    assert_eq!(e.addresses, ["10.244.0.2"]);
    assert_eq!(e.node_name.as_deref(), Some("n1"));
    assert_eq!(e.zone.as_deref(), Some("z1"));
    let r = e.target_ref.unwrap();
    assert_eq!(
        (
            r.kind.as_deref(),
            r.namespace.as_deref(),
            r.name.as_deref(),
            r.uid.as_deref()
        ),
        (Some("Pod"), Some("default"), Some("a"), Some("u-a"))
    );
    let zones = |node: &str| (node == "n1").then(|| "z1".to_string());
    let changes = reconcile(&s, &[pod("a", "10.244.0.2", true, Some(8080))], zones, &[]);
    assert_eq!(changes.create[0].endpoints[0].zone.as_deref(), Some("z1"));
}

#[test]
fn pods_without_ip_finished_or_unselected_are_left_out_and_terminating_kept() {
    let mut done = pod("b", "10.244.0.3", true, Some(8080));
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let mut failed = pod("c", "10.244.0.4", true, Some(8080));
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    let mut other = pod("d", "10.244.0.5", true, Some(8080));
    other.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    let pods = [
        pod("a", "", true, Some(8080)),
        pod("v6", "fd00::1", true, Some(8080)),
        done,
        failed,
        other,
        terminating(pod("e", "10.244.0.6", true, Some(8080))),
    ];
    let changes = reconcile(&service(json!({})), &pods, no_zone, &[]);
    assert_eq!(changes.create.len(), 1);
    assert_eq!(names(&changes.create[0]), ["e"]);
    assert!(
        !changes.create[0].endpoints[0]
            .conditions
            .clone()
            .unwrap()
            .ready
            .unwrap()
    );
}

#[test]
fn a_new_slice_carries_labels_name_owner_and_ports() {
    let changes = reconcile(
        &service(json!({})),
        &[pod("a", "10.244.0.2", true, Some(8080))],
        no_zone,
        &[],
    );
    let slice = &changes.create[0];
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(slice.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.clone().unwrap();
    assert_eq!(labels[SERVICE_NAME], "web");
    assert_eq!(labels[MANAGED_BY], CONTROLLER_NAME);
    assert_eq!(labels["team"], "a");
    assert!(!labels.contains_key(HEADLESS));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str()
        ),
        ("v1", "Service", "web", "svc-uid")
    );
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    let ports = serde_json::to_value(slice.ports.as_ref().unwrap()).unwrap();
    assert_eq!(
        ports,
        json!([{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"},
               {"name": "metrics", "port": 9100, "protocol": "TCP"}])
    );
    let headless = service(json!({"clusterIP": "None"}));
    assert_eq!(labels_of_first(&headless)[HEADLESS], "");
}

fn labels_of_first(s: &Service) -> BTreeMap<String, String> {
    let changes = reconcile(s, &[pod("a", "10.244.0.2", true, Some(8080))], no_zone, &[]);
    changes.create[0].metadata.labels.clone().unwrap()
}

#[test]
fn pods_resolving_different_ports_go_in_different_slices() {
    let pods = [
        pod("a", "10.244.0.2", true, Some(8080)),
        pod("b", "10.244.0.3", true, Some(8081)),
        pod("c", "10.244.0.4", true, Some(8080)),
        pod("d", "10.244.0.5", true, None),
    ];
    let changes = reconcile(&service(json!({})), &pods, no_zone, &[]);
    let mut by_ports: Vec<(Vec<i32>, Vec<&str>)> = changes
        .create
        .iter()
        .map(|s| {
            let ports = s.ports.iter().flatten().map(|p| p.port.unwrap()).collect();
            (ports, names(s))
        })
        .collect();
    by_ports.sort();
    assert_eq!(
        by_ports,
        [
            (vec![8080, 9100], vec!["a", "c"]),
            (vec![8081, 9100], vec!["b"]),
            (vec![9100], vec!["d"]),
        ]
    );
}

#[test]
fn a_slice_holds_at_most_a_hundred_endpoints_sorted_by_pod() {
    let mut pods = many(250);
    pods.reverse();
    let changes = reconcile(&service(json!({})), &pods, no_zone, &[]);
    let sizes: Vec<usize> = changes.create.iter().map(|s| s.endpoints.len()).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let first = names(&changes.create[0]);
    assert_eq!((first[0], first[99]), ("p000", "p099"));
    assert_eq!(names(&changes.create[2])[49], "p249");
}

#[test]
fn nothing_changed_writes_nothing() {
    let s = service(json!({}));
    let mut pods = many(150);
    pods.push(pod("x", "10.244.9.9", false, Some(8081)));
    let (_, slices) = step(&s, &pods, Vec::new());
    assert_eq!(slices.len(), 3);
    pods.reverse();
    let (changes, _) = step(&s, &pods, slices);
    assert!(changes.is_empty(), "{changes:#?}");
}

fn counts(c: &Changes) -> (usize, usize, usize) {
    (c.create.len(), c.update.len(), c.delete.len())
}

fn sizes(slices: &[EndpointSlice]) -> Vec<usize> {
    let mut sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    sizes.sort();
    sizes
}

#[test]
fn changes_update_slices_in_place_and_fill_before_creating() {
    let s = service(json!({}));
    let mut pods = many(150);
    let (_, slices) = step(&s, &pods, Vec::new());
    // A pod not ready any more and one gone: an update of each one's slice.
    pods[3].status.as_mut().unwrap().conditions = None;
    pods.remove(120);
    let (changes, slices) = step(&s, &pods, slices);
    assert_eq!(counts(&changes), (0, 2, 0));
    let first = changes
        .update
        .iter()
        .find(|s| names(s)[0] == "p000")
        .unwrap();
    assert_eq!(conditions(&first.endpoints[3]), (false, false, false));
    assert_eq!(sizes(&slices), [49, 100]);
    // Ten new pods fit in the slice that has room: one update, no new slice.
    pods.extend(many(160).split_off(150));
    let (changes, slices) = step(&s, &pods, slices);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(sizes(&slices), [59, 100]);
    // Sixty more fit nowhere: a new slice.
    pods.extend(many(220).split_off(160));
    let (changes, slices) = step(&s, &pods, slices);
    assert_eq!(counts(&changes), (1, 0, 0));
    assert_eq!(sizes(&slices), [59, 60, 100]);
    // The pods of one slice all gone: that slice deleted, the others untouched.
    pods.retain(|p| {
        p.metadata.name.as_deref() < Some("p100") || p.metadata.name.as_deref() >= Some("p160")
    });
    let (changes, slices) = step(&s, &pods, slices);
    assert_eq!(counts(&changes), (0, 0, 1));
    assert_eq!(sizes(&slices), [60, 100]);
    let (changes, _) = step(&s, &pods, slices);
    assert!(changes.is_empty());
}

#[test]
fn slices_of_a_port_set_no_longer_wanted_are_replaced() {
    let s = service(json!({}));
    let pods = many(3);
    let (_, slices) = step(&s, &pods, Vec::new());
    let moved = service(json!({"ports": [{"name": "http", "port": 80, "targetPort": 9090}]}));
    let (changes, slices) = step(&moved, &pods, slices);
    assert_eq!(counts(&changes), (1, 0, 1));
    assert_eq!(slices[0].ports.as_ref().unwrap()[0].port, Some(9090));
    // New labels on the Service: the slice is updated, not replaced.
    let mut relabelled = moved.clone();
    relabelled.metadata.labels = Some([("team".to_string(), "b".to_string())].into());
    let (changes, slices) = step(&relabelled, &pods, slices);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(slices[0].metadata.labels.as_ref().unwrap()["team"], "b");
}

#[test]
fn a_service_without_endpoints_keeps_one_placeholder() {
    let s = service(json!({}));
    let (changes, slices) = step(&s, &[], Vec::new());
    assert_eq!(counts(&changes), (1, 0, 0));
    assert!(slices[0].endpoints.is_empty());
    assert!(slices[0].ports.as_ref().unwrap().is_empty());
    let (changes, slices) = step(&s, &[], slices);
    assert!(changes.is_empty(), "{changes:#?}");
    // Pods come: the placeholder makes way; they go: it comes back.
    let pods = many(2);
    let (changes, slices) = step(&s, &pods, slices);
    assert_eq!(counts(&changes), (1, 0, 1));
    let (changes, slices) = step(&s, &[], slices);
    assert_eq!(counts(&changes), (1, 0, 1));
    assert!(slices[0].endpoints.is_empty());
}

#[test]
fn slices_of_another_incarnation_or_an_unmanaged_service_are_deleted() {
    let s = service(json!({}));
    let pods = many(2);
    let (_, slices) = step(&s, &pods, Vec::new());
    let mut again = s.clone();
    again.metadata.uid = Some("svc-uid-2".into());
    let (changes, _) = step(&again, &pods, slices.clone());
    assert_eq!(counts(&changes), (1, 0, 1));
    let mut unselected = s.clone();
    unselected.spec.as_mut().unwrap().selector = None;
    let (changes, after) = step(&unselected, &pods, slices.clone());
    assert_eq!(counts(&changes), (0, 0, 1));
    assert!(after.is_empty());
    let external = service(json!({"type": "ExternalName", "externalName": "example.com"}));
    assert!(!managed(&external) && managed(&s));
    assert!(ours(&slices[0]) && service_name(&slices[0]) == Some("web"));
}
