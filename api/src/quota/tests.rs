//! Table tests of quota's arithmetic and decisions against kube's behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaStatus, Service,
};
use serde_json::{Value, json};

use super::*;

fn obj<K: serde::de::DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).unwrap()
}

fn list(pairs: &[(&str, &str)]) -> ResourceList {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

fn wire(pairs: &[(&str, &str)]) -> BTreeMap<String, Wire> {
    to_wire(&list(pairs))
}

fn now() -> jiff::Timestamp {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

fn pod(spec: Value) -> AnyObject {
    AnyObject::from(obj::<Pod>(
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}),
    ))
}

fn app(requests: Value, limits: Value) -> Value {
    json!({"name": "app", "image": "i", "resources": {"requests": requests, "limits": limits}})
}

fn quota(
    name: &str,
    spec: Value,
    hard: &[(&str, &str)],
    used: Option<&[(&str, &str)]>,
) -> ResourceQuota {
    let mut q: ResourceQuota =
        obj(json!({"metadata": {"name": name, "namespace": "ns"}, "spec": spec}));
    q.status = Some(ResourceQuotaStatus {
        hard: Some(wire(hard)),
        used: used.map(wire),
    });
    q
}

#[test]
fn pod_usage_is_containers_summed_at_least_each_init_container_plus_overhead() {
    let cases: Vec<(&str, Value, ResourceList)> = vec![
        (
            "two containers",
            json!({"containers": [app(json!({"cpu": "250m", "memory": "64Mi"}), json!({"cpu": "500m"})),
                                  app(json!({"cpu": "250m", "memory": "64Mi"}), json!({"cpu": "1"}))]}),
            list(&[
                ("count/pods", "1"),
                ("pods", "1"),
                ("cpu", "500m"),
                ("requests.cpu", "500m"),
                ("limits.cpu", "1500m"),
                ("memory", "128Mi"),
                ("requests.memory", "128Mi"),
            ]),
        ),
        (
            "an init container asking more",
            json!({"containers": [app(json!({"cpu": "100m"}), json!({}))],
                   "initContainers": [app(json!({"cpu": "2"}), json!({}))]}),
            list(&[
                ("count/pods", "1"),
                ("pods", "1"),
                ("cpu", "2"),
                ("requests.cpu", "2"),
            ]),
        ),
        (
            "a sidecar adds to the sum and to later init containers",
            json!({"containers": [app(json!({"cpu": "100m"}), json!({}))],
                   "initContainers": [
                       {"name": "side", "image": "i", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                       app(json!({"cpu": "250m"}), json!({}))]}),
            list(&[
                ("count/pods", "1"),
                ("pods", "1"),
                ("cpu", "450m"),
                ("requests.cpu", "450m"),
            ]),
        ),
        (
            "overhead on requests, and on limits only where set",
            json!({"containers": [app(json!({"cpu": "1"}), json!({"cpu": "1"}))],
                   "overhead": {"cpu": "250m", "memory": "10Mi"}}),
            list(&[
                ("count/pods", "1"),
                ("pods", "1"),
                ("cpu", "1250m"),
                ("requests.cpu", "1250m"),
                ("limits.cpu", "1250m"),
                ("memory", "10Mi"),
                ("requests.memory", "10Mi"),
            ]),
        ),
        (
            "extended resources and ephemeral storage",
            json!({"containers": [app(json!({"nvidia.com/gpu": "1", "ephemeral-storage": "1Gi"}),
                                      json!({"ephemeral-storage": "2Gi"}))]}),
            list(&[
                ("count/pods", "1"),
                ("pods", "1"),
                ("requests.nvidia.com/gpu", "1"),
                ("ephemeral-storage", "1Gi"),
                ("requests.ephemeral-storage", "1Gi"),
                ("limits.ephemeral-storage", "2Gi"),
            ]),
        ),
    ];
    for (name, spec, want) in cases {
        assert_eq!(usage(&pod(spec), now()), want, "{name}");
    }
}

#[test]
fn terminal_pods_and_pods_past_their_grace_cost_only_their_count() {
    let base = json!({"containers": [app(json!({"cpu": "1"}), json!({}))]});
    let count_only = list(&[("count/pods", "1")]);
    for phase in ["Succeeded", "Failed"] {
        let mut p = pod(base.clone());
        if let AnyObject::Pod(p) = &mut p {
            p.status = Some(obj(json!({"phase": phase})));
        }
        assert_eq!(usage(&p, now()), count_only, "{phase}");
    }
    let deleting = |at: &str| {
        let mut p = pod(base.clone());
        p.metadata_mut().deletion_timestamp = Some(obj(json!(at)));
        p.metadata_mut().deletion_grace_period_seconds = Some(30);
        p
    };
    // Deleted (its deadline) 10s ago with 30s of grace: still charged.
    assert!(usage(&deleting("2024-12-31T23:59:50Z"), now()).contains_key("pods"));
    // 31s past the deadline with 30s of grace: not.
    assert_eq!(usage(&deleting("2024-12-31T23:59:29Z"), now()), count_only);
}

#[test]
fn services_claims_and_other_objects_cost_kubes_names() {
    let svc = |spec: Value| {
        AnyObject::from(obj::<Service>(
            json!({"metadata": {"name": "s"}, "spec": spec}),
        ))
    };
    let ports = json!([{"port": 80}, {"port": 443, "nodePort": 30443}]);
    let cases: Vec<(&str, AnyObject, ResourceList)> = vec![
        (
            "ClusterIP",
            svc(json!({"ports": ports})),
            list(&[
                ("count/services", "1"),
                ("services", "1"),
                ("services.nodeports", "0"),
                ("services.loadbalancers", "0"),
            ]),
        ),
        (
            "NodePort",
            svc(json!({"type": "NodePort", "ports": ports})),
            list(&[
                ("count/services", "1"),
                ("services", "1"),
                ("services.nodeports", "2"),
                ("services.loadbalancers", "0"),
            ]),
        ),
        (
            "LoadBalancer",
            svc(json!({"type": "LoadBalancer", "ports": ports})),
            list(&[
                ("count/services", "1"),
                ("services", "1"),
                ("services.nodeports", "2"),
                ("services.loadbalancers", "1"),
            ]),
        ),
        (
            "LoadBalancer without node ports allocated",
            svc(
                json!({"type": "LoadBalancer", "ports": ports, "allocateLoadBalancerNodePorts": false}),
            ),
            list(&[
                ("count/services", "1"),
                ("services", "1"),
                ("services.nodeports", "1"),
                ("services.loadbalancers", "1"),
            ]),
        ),
        (
            "claim of a class",
            AnyObject::from(obj::<PersistentVolumeClaim>(
                json!({"metadata": {"name": "c"},
             "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}}),
            )),
            list(&[
                ("count/persistentvolumeclaims", "1"),
                ("persistentvolumeclaims", "1"),
                ("requests.storage", "1Gi"),
                (
                    "fast.storageclass.storage.k8s.io/persistentvolumeclaims",
                    "1",
                ),
                ("fast.storageclass.storage.k8s.io/requests.storage", "1Gi"),
            ]),
        ),
        (
            "claim grown beyond its request",
            AnyObject::from(obj::<PersistentVolumeClaim>(
                json!({"metadata": {"name": "c"},
             "spec": {"resources": {"requests": {"storage": "1Gi"}}},
             "status": {"allocatedResources": {"storage": "2Gi"}}}),
            )),
            list(&[
                ("count/persistentvolumeclaims", "1"),
                ("persistentvolumeclaims", "1"),
                ("requests.storage", "2Gi"),
            ]),
        ),
        (
            "configmap",
            AnyObject::from(ConfigMap::default()),
            list(&[("count/configmaps", "1"), ("configmaps", "1")]),
        ),
        (
            "deployment",
            AnyObject::from(k8s_openapi::api::apps::v1::Deployment::default()),
            list(&[("count/deployments.apps", "1")]),
        ),
    ];
    for (name, o, want) in cases {
        assert_eq!(usage(&o, now()), want, "{name}");
    }
}

#[test]
fn scopes_select_pods_as_kube_does() {
    let best_effort = pod(json!({"containers": [{"name": "a", "image": "i"}]}));
    let burstable_deadline = pod(
        json!({"activeDeadlineSeconds": 60, "priorityClassName": "high",
        "containers": [app(json!({"cpu": "1"}), json!({}))]}),
    );
    let sel = |op: &str, values: Value| {
        json!({"scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": op, "values": values}]}})
    };
    let cases: Vec<(Value, bool, bool)> = vec![
        // (spec, selects best_effort, selects burstable_deadline)
        (json!({}), true, true),
        (json!({"scopes": ["BestEffort"]}), true, false),
        (json!({"scopes": ["NotBestEffort"]}), false, true),
        (json!({"scopes": ["Terminating"]}), false, true),
        (
            json!({"scopes": ["NotTerminating", "BestEffort"]}),
            true,
            false,
        ),
        (sel("In", json!(["high"])), false, true),
        (sel("NotIn", json!(["high"])), true, false),
        (sel("Exists", Value::Null), false, true),
        (sel("DoesNotExist", Value::Null), true, false),
    ];
    for (spec, a, b) in cases {
        let q = quota("q", spec.clone(), &[("pods", "1")], None);
        assert_eq!(scopes_match(&q, &best_effort), a, "{spec} on best effort");
        assert_eq!(
            scopes_match(&q, &burstable_deadline),
            b,
            "{spec} on burstable"
        );
    }
    let scoped = quota(
        "q",
        json!({"scopes": ["BestEffort"]}),
        &[("count/configmaps", "1")],
        Some(&[]),
    );
    assert!(!scopes_match(
        &scoped,
        &AnyObject::from(ConfigMap::default())
    ));
}

#[test]
fn admission_refuses_in_kubes_words() {
    let compute = quota(
        "compute",
        json!({}),
        &[("pods", "2"), ("requests.cpu", "1")],
        Some(&[("pods", "2"), ("requests.cpu", "500m")]),
    );
    let p = pod(json!({"containers": [app(json!({"cpu": "250m"}), json!({}))]}));
    let err = check(&[&compute], &p, None, now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"
    );

    let cpu = quota(
        "compute",
        json!({}),
        &[("pods", "5"), ("requests.cpu", "1"), ("limits.cpu", "1")],
        Some(&[
            ("pods", "1"),
            ("requests.cpu", "800m"),
            ("limits.cpu", "800m"),
        ]),
    );
    let p = pod(json!({"containers": [app(json!({"cpu": "500m"}), json!({"cpu": "500m"}))]}));
    let err = check(&[&cpu], &p, None, now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "exceeded quota: compute, requested: limits.cpu=500m,requests.cpu=500m, \
        used: limits.cpu=800m,requests.cpu=800m, limited: limits.cpu=1,requests.cpu=1"
    );

    let mem = quota(
        "mem",
        json!({}),
        &[("limits.memory", "1Gi"), ("requests.cpu", "2")],
        Some(&[]),
    );
    let p = pod(json!({"containers": [{"name": "app", "image": "i"}],
        "initContainers": [app(json!({"cpu": "1"}), json!({}))]}));
    let err = check(&[&mem], &p, None, now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed quota: mem: must specify limits.memory for: app; requests.cpu for: app"
    );

    let fresh = quota(
        "fresh",
        json!({}),
        &[("pods", "2"), ("count/configmaps", "1")],
        Some(&[("count/configmaps", "0")]),
    );
    let p = pod(json!({"containers": [app(json!({"cpu": "1"}), json!({}))]}));
    assert_eq!(
        check(&[&fresh], &p, None, now()).unwrap_err().to_string(),
        "status unknown for quota: fresh, resources: pods"
    );
}

#[test]
fn a_quantity_too_large_to_add_exceeds_the_quota() {
    let mem = quota(
        "mem",
        json!({}),
        &[("limits.memory", "4Gi")],
        Some(&[("limits.memory", "2Gi")]),
    );
    let huge = pod(json!({"containers": [app(json!({}), json!({"memory": "1e40"}))]}));
    let err = check(&[&mem], &huge, None, now()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("exceeded quota: mem, requested: limits.memory="),
        "{err}"
    );
}

#[test]
fn admission_charges_each_matching_quota_and_only_increases_on_update() {
    let a = quota(
        "a",
        json!({}),
        &[("pods", "3"), ("requests.cpu", "2")],
        Some(&[("pods", "1"), ("requests.cpu", "1")]),
    );
    let b = quota(
        "b",
        json!({"scopes": ["BestEffort"]}),
        &[("pods", "1")],
        Some(&[("pods", "0")]),
    );
    let objects = quota(
        "objects",
        json!({}),
        &[("configmaps", "9")],
        Some(&[("configmaps", "0")]),
    );
    let p = pod(json!({"containers": [app(json!({"cpu": "500m"}), json!({}))]}));
    let charges = check(&[&a, &b, &objects], &p, None, now()).unwrap();
    assert_eq!(
        charges,
        vec![Charge {
            quota: "a".into(),
            used: list(&[("pods", "2"), ("requests.cpu", "1500m")])
        }]
    );

    let lb = quota(
        "lb",
        json!({}),
        &[("services.loadbalancers", "1"), ("services", "5")],
        Some(&[("services.loadbalancers", "0"), ("services", "1")]),
    );
    let svc = |t: &str| {
        let mut s = AnyObject::from(obj::<Service>(
            json!({"metadata": {"name": "s"}, "spec": {"type": t}}),
        ));
        s.metadata_mut().resource_version = Some("7".into());
        s
    };
    let charges = check(&[&lb], &svc("LoadBalancer"), Some(&svc("ClusterIP")), now()).unwrap();
    assert_eq!(
        charges,
        vec![Charge {
            quota: "lb".into(),
            used: list(&[("services.loadbalancers", "1"), ("services", "1")])
        }]
    );
    // Back to ClusterIP frees nothing at admission (the controller recounts) and charges nothing.
    assert!(
        check(&[&lb], &svc("ClusterIP"), Some(&svc("LoadBalancer")), now())
            .unwrap()
            .is_empty()
    );
    // A ConfigMap's update is not looked at; its create is.
    let cm = AnyObject::from(ConfigMap::default());
    assert!(
        check(&[&objects], &cm, Some(&cm), now())
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        check(&[&objects], &cm, None, now()).unwrap()[0].used,
        list(&[("configmaps", "1")])
    );
    // A quota without status yet limits nothing.
    let mut unset = quota("unset", json!({}), &[], None);
    unset.status = None;
    assert!(check(&[&unset], &p, None, now()).unwrap().is_empty());
}

#[test]
fn the_controller_sums_a_namespaces_objects_under_the_quotas_names() {
    let kinds = [
        crate::ObjectKind::of::<Pod>(),
        crate::ObjectKind::of::<ConfigMap>(),
        crate::ObjectKind::of::<Service>(),
    ];
    let running = pod(json!({"containers": [app(json!({"cpu": "500m"}), json!({}))]}));
    let mut done = running.clone();
    if let AnyObject::Pod(p) = &mut done {
        p.status = Some(obj(json!({"phase": "Succeeded"})));
    }
    let cm = AnyObject::from(ConfigMap::default());
    let mut q: ResourceQuota = obj(json!({"metadata": {"name": "q"}, "spec": {"hard": {
        "pods": "5", "requests.cpu": "2", "count/pods": "9", "count/configmaps": "3",
        "services": "1", "count/deployments.apps": "2"}}}));
    let objects = [running.clone(), done, cm.clone(), cm];
    let used = calculate_usage(&q, &kinds, &objects, now());
    assert_eq!(
        used,
        list(&[
            ("pods", "1"),
            ("requests.cpu", "500m"),
            ("count/pods", "2"),
            ("count/configmaps", "2"),
            ("services", "0")
        ])
    );
    // Deployments were not gathered: their count keeps its old value.
    q.status = Some(ResourceQuotaStatus {
        hard: None,
        used: Some(wire(&[("count/deployments.apps", "1"), ("gone", "4")])),
    });
    let status = desired_status(&q, &used);
    assert_eq!(
        parse_list(status.used.as_ref()),
        list(&[
            ("pods", "1"),
            ("requests.cpu", "500m"),
            ("count/pods", "2"),
            ("count/configmaps", "2"),
            ("services", "0"),
            ("count/deployments.apps", "1")
        ])
    );
    assert!(!same_status(q.status.as_ref(), &status));
    assert!(same_status(Some(&status), &status));
}
