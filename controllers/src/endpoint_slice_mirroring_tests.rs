use super::*;
use serde_json::json;

fn service(selector: bool) -> Service {
    let mut s = json!({
        "metadata": {"name": "db", "namespace": "default", "uid": "svc-1"},
        "spec": {"ports": [{"name": "sql", "port": 5432}]},
    });
    if selector {
        s["spec"]["selector"] = json!({"app": "db"});
    }
    serde_json::from_value(s).unwrap()
}

fn endpoints(subsets: serde_json::Value) -> Endpoints {
    serde_json::from_value(json!({
        "metadata": {
            "name": "db", "namespace": "default", "uid": "ep-1",
            "labels": {"team": "data"},
            "annotations": {"note": "x", "endpoints.kubernetes.io/last-change-trigger-time": "t"},
        },
        "subsets": subsets,
    }))
    .unwrap()
}

fn two() -> Endpoints {
    endpoints(json!([{
        "addresses": [
            {"ip": "10.0.0.2", "hostname": "b", "nodeName": "n2",
             "targetRef": {"kind": "Pod", "name": "b", "namespace": "default"}},
            {"ip": "10.0.0.1"},
        ],
        "notReadyAddresses": [{"ip": "10.0.0.3"}],
        "ports": [{"name": "sql", "port": 5432}],
    }]))
}

/// What the API server would make of a created slice: a name, a uid, a version.
fn stored(mut slice: EndpointSlice, name: &str) -> EndpointSlice {
    slice.metadata.generate_name = None;
    slice.metadata.name = Some(name.into());
    slice.metadata.uid = Some(format!("uid-{name}"));
    slice.metadata.resource_version = Some("1".into());
    slice
}

/// Applies `changes` to `existing` as the API server would.
fn apply(existing: Vec<EndpointSlice>, changes: Changes) -> Vec<EndpointSlice> {
    let gone: Vec<_> = changes
        .delete
        .iter()
        .map(|s| s.metadata.name.clone())
        .collect();
    let updated: Vec<_> = changes
        .update
        .iter()
        .map(|s| s.metadata.name.clone())
        .collect();
    let mut out: Vec<EndpointSlice> = existing
        .into_iter()
        .filter(|s| !gone.contains(&s.metadata.name) && !updated.contains(&s.metadata.name))
        .collect();
    out.extend(changes.update);
    let n = out.len();
    for (i, s) in changes.create.into_iter().enumerate() {
        out.push(stored(s, &format!("db-{}", n + i)));
    }
    out
}

fn refs(slices: &[EndpointSlice]) -> Vec<&EndpointSlice> {
    slices.iter().collect()
}

fn ips(slice: &EndpointSlice) -> Vec<&str> {
    slice
        .endpoints
        .iter()
        .map(|e| e.addresses[0].as_str())
        .collect()
}

#[test]
fn ready_and_not_ready_addresses_are_mirrored_with_their_details() {
    let changes = reconcile(&two(), Some(&service(false)), &[]);
    assert_eq!(changes.create.len(), 1);
    assert!(changes.update.is_empty() && changes.delete.is_empty());
    let slice = &changes.create[0];
    assert_eq!(ips(slice), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    let cond = |i: usize| slice.endpoints[i].conditions.clone().unwrap();
    assert_eq!((cond(0).ready, cond(0).serving), (Some(true), Some(true)));
    assert_eq!((cond(2).ready, cond(2).serving), (Some(false), Some(false)));
    let b = &slice.endpoints[1];
    assert_eq!(b.hostname.as_deref(), Some("b"));
    assert_eq!(b.node_name.as_deref(), Some("n2"));
    assert_eq!(b.target_ref.as_ref().unwrap().name.as_deref(), Some("b"));
    assert_eq!(slice.endpoints[0].hostname, None);
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("sql"), Some(5432), Some("TCP"))
    );
    assert_eq!(slice.address_type, "IPv4");
}

#[test]
fn slices_are_labelled_annotated_named_and_owned_by_the_endpoints() {
    let mut e = two();
    e.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(MANAGED_BY.into(), "someone".into());
    let slice = &reconcile(&e, Some(&service(false)), &[]).create[0];
    let labels = slice.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[SERVICE_NAME], "db");
    assert_eq!(labels[MANAGED_BY], CONTROLLER_NAME);
    assert_eq!(labels["team"], "data");
    let annotations = slice.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations.len(), 1);
    assert_eq!(annotations["note"], "x");
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("db-"));
    assert_eq!(slice.metadata.namespace.as_deref(), Some("default"));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.api_version.as_str()),
        ("Endpoints", "v1")
    );
    assert_eq!((owner.name.as_str(), owner.uid.as_str()), ("db", "ep-1"));
    assert_eq!(owner.controller, Some(true));
    assert!(ours(slice));
    assert!(!crate::endpoint_slices::ours(slice));
}

#[test]
fn subsets_with_the_same_ports_merge_and_other_port_sets_get_their_own_slice() {
    let e = endpoints(json!([
        {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]},
        {"addresses": [{"ip": "10.0.0.2"}], "ports": [{"name": "b", "port": 2}, {"name": "a", "port": 1}]},
        {"addresses": [{"ip": "10.0.0.3"}], "notReadyAddresses": [{"ip": "10.0.0.3"}],
         "ports": [{"name": "c", "port": 3, "protocol": "UDP"}]},
        {"addresses": [{"ip": "fd00::1"}, {"ip": "not-an-ip"}], "ports": [{"port": 4}]},
    ]));
    let mut created = reconcile(&e, Some(&service(false)), &[]).create;
    created.sort_by_key(|s| s.ports.as_ref().unwrap()[0].port);
    assert_eq!(
        created.len(),
        2,
        "IPv6 and invalid addresses are not mirrored"
    );
    assert_eq!(ips(&created[0]), ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(created[0].ports.as_ref().unwrap().len(), 2);
    // An address both ready and not ready is ready.
    assert_eq!(ips(&created[1]), ["10.0.0.3"]);
    assert_eq!(
        created[1].endpoints[0].conditions.as_ref().unwrap().ready,
        Some(true)
    );
    assert_eq!(
        created[1].ports.as_ref().unwrap()[0].protocol.as_deref(),
        Some("UDP")
    );
}

fn many(ready: usize, not_ready: usize) -> Endpoints {
    let ip = |i: usize| json!({"ip": format!("10.1.{}.{}", i / 250, i % 250 + 1)});
    endpoints(json!([{
        "addresses": (0..ready).map(ip).collect::<Vec<_>>(),
        "notReadyAddresses": (ready..ready + not_ready).map(ip).collect::<Vec<_>>(),
        "ports": [{"port": 80}],
    }]))
}

#[test]
fn at_most_a_thousand_addresses_ready_first_and_a_hundred_a_slice() {
    let created = reconcile(&many(950, 200), Some(&service(false)), &[]).create;
    assert_eq!(created.len(), 10);
    assert!(
        created
            .iter()
            .all(|s| s.endpoints.len() == MAX_ENDPOINTS_PER_SLICE)
    );
    let all: Vec<&Endpoint> = created.iter().flat_map(|s| &s.endpoints).collect();
    assert_eq!(all.len(), MAX_ENDPOINTS_PER_SUBSET);
    let ready = all
        .iter()
        .filter(|e| e.conditions.as_ref().unwrap().ready == Some(true))
        .count();
    assert_eq!(ready, 950, "every ready address, then the not-ready ones");
}

#[test]
fn nothing_is_written_when_nothing_changed() {
    let (e, s) = (two(), service(false));
    let slices = apply(Vec::new(), reconcile(&e, Some(&s), &[]));
    assert!(reconcile(&e, Some(&s), &refs(&slices)).is_empty());
    let big = many(250, 0);
    let slices = apply(Vec::new(), reconcile(&big, Some(&s), &[]));
    assert_eq!(slices.len(), 3);
    assert!(reconcile(&big, Some(&s), &refs(&slices)).is_empty());
}

#[test]
fn a_change_updates_in_place_and_touches_only_the_slice_concerned() {
    let s = service(false);
    let slices = apply(Vec::new(), reconcile(&many(250, 0), Some(&s), &[]));
    // One address fewer: only its slice is rewritten.
    let changes = reconcile(&many(249, 0), Some(&s), &refs(&slices));
    assert!(changes.create.is_empty() && changes.delete.is_empty());
    assert_eq!(changes.update.len(), 1);
    let slices = apply(slices, changes);
    // One address more goes into the slice with room (no new slice).
    let changes = reconcile(&many(250, 0), Some(&s), &refs(&slices));
    assert!(changes.create.is_empty() && changes.delete.is_empty());
    assert_eq!(changes.update.len(), 1);
    let slices = apply(slices, changes);
    assert_eq!(slices.iter().map(|s| s.endpoints.len()).sum::<usize>(), 250);
    // An address replaced by another: the same slice, updated, not deleted and created.
    let single =
        |ip: &str| endpoints(json!([{"addresses": [{"ip": ip}], "ports": [{"port": 80}]}]));
    let slices = apply(Vec::new(), reconcile(&single("10.0.0.1"), Some(&s), &[]));
    let changes = reconcile(&single("10.0.0.9"), Some(&s), &refs(&slices));
    assert!(changes.create.is_empty() && changes.delete.is_empty());
    assert_eq!(ips(&changes.update[0]), ["10.0.0.9"]);
    // A label change rewrites the labels.
    let mut relabelled = single("10.0.0.1");
    relabelled.metadata.labels = Some([("team".to_string(), "web".to_string())].into());
    let changes = reconcile(&relabelled, Some(&s), &refs(&slices));
    assert_eq!(changes.update.len(), 1);
    assert_eq!(
        changes.update[0].metadata.labels.as_ref().unwrap()["team"],
        "web"
    );
    // A port change: the old port set's slice goes, the new one's comes.
    let moved = endpoints(json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 81}]}]));
    let changes = reconcile(&moved, Some(&s), &refs(&slices));
    assert_eq!((changes.create.len(), changes.delete.len()), (1, 1));
}

#[test]
fn mirrored_slices_go_when_mirroring_stops() {
    let (e, s) = (two(), service(false));
    let slices = apply(Vec::new(), reconcile(&e, Some(&s), &[]));
    let all_deleted =
        |c: Changes| c.create.is_empty() && c.update.is_empty() && c.delete.len() == 1;
    // The Service is gone.
    assert!(all_deleted(reconcile(&e, None, &refs(&slices))));
    // The Service got a selector.
    assert!(all_deleted(reconcile(
        &e,
        Some(&service(true)),
        &refs(&slices)
    )));
    // The Endpoints is marked skip-mirror.
    let mut skipped = e.clone();
    skipped
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(SKIP_MIRROR.into(), "true".into());
    assert!(!mirrored(&skipped, Some(&s)));
    assert!(all_deleted(reconcile(&skipped, Some(&s), &refs(&slices))));
    // A leader-election record.
    let mut leader = e.clone();
    leader
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(LEADER.into(), "{}".into());
    assert!(all_deleted(reconcile(&leader, Some(&s), &refs(&slices))));
    // No address left.
    assert!(all_deleted(reconcile(
        &endpoints(json!([])),
        Some(&s),
        &refs(&slices)
    )));
    // Recreated (another uid): the old incarnation's slice goes, a new one comes.
    let mut again = e.clone();
    again.metadata.uid = Some("ep-2".into());
    let changes = reconcile(&again, Some(&s), &refs(&slices));
    assert_eq!((changes.create.len(), changes.delete.len()), (1, 1));
    // Nothing to mirror and nothing mirrored: nothing to do.
    assert!(reconcile(&e, Some(&service(true)), &[]).is_empty());
}
