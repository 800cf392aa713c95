#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::node::test_objects::{at, endpoint, http, service, slice, store};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// The endpoints of the port `port`/`proto` of Service `name` in `ports`.
fn endpoints<'a>(
    ports: &'a [ServicePort],
    name: &str,
    port: u16,
    proto: Protocol,
) -> &'a [SocketAddrV4] {
    &ports
        .iter()
        .find(|p| p.service.1 == name && p.port == port && p.protocol == proto)
        .unwrap()
        .endpoints
}

#[test]
fn service_ports_reach_ready_endpoints_of_every_slice_by_port_name() {
    let services = store(vec![
        service(
            "api",
            "10.96.0.10",
            json!([
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9090, "protocol": "UDP"},
            ]),
        ),
        service("web", "None", json!([{"name": "http", "port": 80}])),
    ]);
    let slices = store(vec![
        // Pods whose `http` container port is 8080, and a not-ready one.
        slice(
            "api-1",
            "api",
            json!([http(8080), {"name": "metrics", "port": 9191, "protocol": "UDP"}]),
            json!([
                endpoint("10.244.1.20", None, true, false),
                endpoint("10.244.1.21", None, false, false),
            ]),
        ),
        // A pod whose `http` is 8081, in a slice of its own; its port `metrics`
        // is TCP, not the Service's UDP one.
        slice(
            "api-2",
            "api",
            json!([http(8081), {"name": "metrics", "port": 9191, "protocol": "TCP"}]),
            json!([
                endpoint("10.244.2.20", None, true, false),
                // The API's default: no conditions is ready.
                {"addresses": ["10.244.2.21"]},
            ]),
        ),
        // The same pod in a second slice while it moves: once.
        slice(
            "api-3",
            "api",
            json!([http(8080)]),
            json!([endpoint("10.244.1.20", None, true, false)]),
        ),
    ]);
    let ports = service_ports(&services, &slices_by_service(&slices), "n1");
    // Headless Services are not proxied.
    assert_eq!(ports.len(), 2);
    assert_eq!(
        endpoints(&ports, "api", 80, Protocol::Tcp),
        [
            at("10.244.1.20:8080"),
            at("10.244.2.20:8081"),
            at("10.244.2.21:8081")
        ]
    );
    assert_eq!(
        endpoints(&ports, "api", 9090, Protocol::Udp),
        [at("10.244.1.20:9191")]
    );
    let api = ports.iter().find(|p| p.port == 80).unwrap();
    assert_eq!(api.cluster_ip, ip("10.96.0.10"));
}

#[test]
fn terminating_endpoints_serve_only_while_none_is_ready() {
    let services = store(vec![service("roll", "10.96.0.12", json!([{"port": 80}]))]);
    let unnamed = json!([{"name": "", "port": 8080, "protocol": "TCP"}]);
    let rolling = |ready: bool| {
        let mut endpoints = vec![
            // Terminating, still serving: drains.
            endpoint("10.244.3.1", None, false, true),
            // Terminating and no longer serving.
            json!({"addresses": ["10.244.3.2"],
                "conditions": {"ready": false, "serving": false, "terminating": true}}),
            // Starting, not ready yet.
            endpoint("10.244.3.3", None, false, false),
        ];
        if ready {
            endpoints.push(endpoint("10.244.3.4", None, true, false));
        }
        store(vec![slice(
            "roll-1",
            "roll",
            unnamed.clone(),
            json!(endpoints),
        )])
    };
    let ports = service_ports(&services, &slices_by_service(&rolling(false)), "n1");
    assert_eq!(
        endpoints(&ports, "roll", 80, Protocol::Tcp),
        [at("10.244.3.1:8080")]
    );
    let ports = service_ports(&services, &slices_by_service(&rolling(true)), "n1");
    assert_eq!(
        endpoints(&ports, "roll", 80, Protocol::Tcp),
        [at("10.244.3.4:8080")]
    );
}

#[test]
fn only_labelled_ipv4_slices_of_the_service_count() {
    let services = store(vec![service(
        "db",
        "10.96.0.13",
        json!([{"name": "pg", "port": 5432}]),
    )]);
    let pg = json!([{"name": "pg", "port": 5432}]);
    let ready = json!([endpoint("10.244.4.1", None, true, false)]);
    let mut unlabelled = slice("db-x", "db", pg.clone(), ready.clone());
    unlabelled.metadata.labels = None;
    let mut elsewhere = slice(
        "db-y",
        "db",
        pg.clone(),
        json!([endpoint("10.244.4.2", None, true, false)]),
    );
    elsewhere.metadata.namespace = Some("other".into());
    let mut v6 = slice(
        "db-z",
        "db",
        pg.clone(),
        json!([{"addresses": ["fd00::1"]}]),
    );
    v6.address_type = "IPv6".into();
    // A user's slice of a Service without a selector (no managed-by label).
    let mut users = slice(
        "db-manual",
        "db",
        pg,
        json!([endpoint("10.244.4.3", None, true, false)]),
    );
    if let Some(labels) = users.metadata.labels.as_mut() {
        labels.remove("endpointslice.kubernetes.io/managed-by");
    }
    let by_service = slices_by_service(&store(vec![unlabelled, elsewhere, v6, users]));
    assert_eq!(
        by_service.keys().collect::<Vec<_>>(),
        [
            &("default".to_string(), "db".to_string()),
            &("other".to_string(), "db".to_string())
        ]
    );
    let ports = service_ports(&services, &by_service, "n1");
    assert_eq!(
        endpoints(&ports, "db", 5432, Protocol::Tcp),
        [at("10.244.4.3:5432")]
    );
    // The placeholder slice of a Service without endpoints: no endpoints.
    let placeholder = store(vec![slice("db-p", "db", json!([]), json!([]))]);
    let ports = service_ports(&services, &slices_by_service(&placeholder), "n1");
    assert!(endpoints(&ports, "db", 5432, Protocol::Tcp).is_empty());
    let ports = service_ports(&services, &BTreeMap::new(), "n1");
    assert!(endpoints(&ports, "db", 5432, Protocol::Tcp).is_empty());
}

/// `endpoint(…)` on node `node`.
fn on(node: &str, mut e: serde_json::Value) -> serde_json::Value {
    e["nodeName"] = json!(node);
    e
}

#[test]
fn local_endpoints_are_this_nodes_with_the_terminating_fallback_among_them() {
    let services = store(vec![service(
        "web",
        "10.96.0.14",
        json!([{"name": "http", "port": 80}]),
    )]);
    let ports_with = |endpoints: serde_json::Value| {
        let slices = store(vec![slice("web-1", "web", json!([http(8080)]), endpoints)]);
        let ports = service_ports(&services, &slices_by_service(&slices), "n1");
        (ports[0].endpoints.clone(), ports[0].local_endpoints.clone())
    };
    // Ready here and there: Cluster has both, Local this node's.
    let (cluster, local) = ports_with(json!([
        endpoint("10.244.1.2", None, true, false),
        on("n2", endpoint("10.244.2.2", None, true, false)),
        endpoint("10.244.1.3", None, false, true),
    ]));
    assert_eq!(cluster, [at("10.244.1.2:8080"), at("10.244.2.2:8080")]);
    assert_eq!(local, [at("10.244.1.2:8080")]);
    // Nothing ready on this node but a draining one: Local falls back to it while
    // Cluster keeps the ready one elsewhere (kube-proxy's CategorizeEndpoints).
    let (cluster, local) = ports_with(json!([
        on("n2", endpoint("10.244.2.2", None, true, false)),
        endpoint("10.244.1.3", None, false, true),
    ]));
    assert_eq!(cluster, [at("10.244.2.2:8080")]);
    assert_eq!(local, [at("10.244.1.3:8080")]);
    // Nothing on this node at all.
    let (cluster, local) = ports_with(json!([on("n2", endpoint("10.244.2.2", None, true, false))]));
    assert_eq!(cluster, [at("10.244.2.2:8080")]);
    assert!(local.is_empty());
}

fn load_balancer(spec: serde_json::Value, status: serde_json::Value) -> Service {
    let mut spec = spec;
    spec["clusterIP"] = json!("10.96.0.20");
    spec["ports"] = json!([{"name": "http", "port": 80, "nodePort": 30080}]);
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "lb"},
        "spec": spec,
        "status": {"loadBalancer": status},
    }))
    .unwrap()
}

#[test]
fn load_balancers_bring_their_addresses_policies_and_affinity() {
    let lb = load_balancer(
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
               "internalTrafficPolicy": "Local", "sessionAffinity": "ClientIP",
               "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
        json!({"ingress": [
            {"ip": "192.168.1.12", "ipMode": "VIP"},
            {"ip": "192.168.1.11"},
            // The load balancer delivers to the nodes itself: not captured.
            {"ip": "1.2.3.4", "ipMode": "Proxy"},
            {"hostname": "lb.example.org"},
            {"ip": "fd00::1"},
        ]}),
    );
    let ports = service_ports(&store(vec![lb]), &BTreeMap::new(), "n1");
    let p = &ports[0];
    assert_eq!(
        p.load_balancer_ips,
        [ip("192.168.1.11"), ip("192.168.1.12")]
    );
    assert_eq!(p.node_port, Some(30080));
    assert_eq!(p.external_policy, TrafficPolicy::Local);
    assert_eq!(p.internal_policy, TrafficPolicy::Local);
    assert_eq!(p.affinity_timeout, Some(60));

    // A NodePort Service has no load balancer's addresses, whatever its status says;
    // ClientIP affinity without a timeout lasts Kubernetes' default three hours.
    let np = load_balancer(
        json!({"type": "NodePort", "sessionAffinity": "ClientIP"}),
        json!({"ingress": [{"ip": "192.168.1.11"}]}),
    );
    let ports = service_ports(&store(vec![np]), &BTreeMap::new(), "n1");
    assert!(ports[0].load_balancer_ips.is_empty());
    assert_eq!(ports[0].external_policy, TrafficPolicy::Cluster);
    assert_eq!(ports[0].affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
    // An external policy means nothing to a ClusterIP Service.
    let cip = load_balancer(json!({"externalTrafficPolicy": "Local"}), json!({}));
    let ports = service_ports(&store(vec![cip]), &BTreeMap::new(), "n1");
    assert_eq!(ports[0].external_policy, TrafficPolicy::Cluster);
    assert_eq!(ports[0].affinity_timeout, None);
}

#[test]
fn a_node_port_of_zero_is_no_node_port() {
    let mut lb = load_balancer(
        json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false}),
        json!({"ingress": [{"ip": "192.168.1.11"}]}),
    );
    if let Some(ports) = lb.spec.as_mut().and_then(|s| s.ports.as_mut()) {
        ports[0].node_port = Some(0);
    }
    let ports = service_ports(&store(vec![lb]), &BTreeMap::new(), "n1");
    assert_eq!(ports[0].node_port, None);
    assert_eq!(ports[0].load_balancer_ips, [ip("192.168.1.11")]);
}

#[test]
fn health_checks_count_this_nodes_ready_endpoints() {
    let lb = load_balancer(
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30100}),
        json!({}),
    );
    let cluster = load_balancer(json!({"type": "LoadBalancer"}), json!({}));
    let mut other = cluster.clone();
    other.metadata.name = Some("other".into());
    let slices = store(vec![
        slice(
            "lb-1",
            "lb",
            json!([http(8080)]),
            json!([
                endpoint("10.244.1.2", None, true, false),
                endpoint("10.244.1.3", None, false, true),
                on("n2", endpoint("10.244.2.2", None, true, false)),
            ]),
        ),
        // The same pod in a second slice: once.
        slice(
            "lb-2",
            "lb",
            json!([http(8080)]),
            json!([endpoint("10.244.1.2", None, true, false)]),
        ),
    ]);
    let checks = health_checks(&store(vec![lb, other]), &slices_by_service(&slices), "n1");
    assert_eq!(
        checks,
        [HealthCheck {
            port: 30100,
            service: ("default".into(), "lb".into()),
            local_endpoints: 1,
        }]
    );
    let checks = health_checks(
        &store(vec![load_balancer(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 30100}),
            json!({}),
        )]),
        &slices_by_service(&slices),
        "n3",
    );
    assert_eq!(checks[0].local_endpoints, 0);
}
