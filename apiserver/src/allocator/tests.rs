use super::*;

fn service(name: &str, yaml: &str) -> Service {
    let text = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n{yaml}\n"
    );
    match rk8s_api::manifest::load("t.yaml", &text)
        .unwrap()
        .remove(0)
        .object
    {
        AnyObject::Service(s) => *s,
        other => panic!("{other:?}"),
    }
}

fn small() -> ServiceRanges {
    ServiceRanges {
        cluster_ips: "10.96.0.0/29".parse().unwrap(),
        node_ports: (30000, 30002),
    }
}

fn taken(items: &[(&Held, &str)]) -> BTreeMap<String, Taken> {
    items
        .iter()
        .map(|(h, owner)| {
            (
                h.key(),
                Taken {
                    owner: owner.to_string(),
                    revision: 7,
                },
            )
        })
        .collect()
}

fn ip(s: &str) -> Held {
    Held::Ip(s.parse().unwrap())
}

const CLUSTER_IP: &str = "spec: {ports: [{port: 80}]}";
const NODE_PORT: &str =
    "spec: {type: NodePort, ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}]}";

#[test]
fn the_lowest_free_address_is_given_and_held_in_the_same_transaction() {
    let mut s = service("web", CLUSTER_IP);
    let t = taken(&[(&ip("10.96.0.1"), "default/other")]);
    let plan = plan(&small(), &mut s, None, &t, &|_, _| true).unwrap();
    let spec = s.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.2"));
    assert_eq!(spec.cluster_ips, Some(vec!["10.96.0.2".to_string()]));
    assert_eq!(plan.compares.len(), 1);
    assert_eq!(plan.compares[0].key, b"/rk8s/serviceips/10.96.0.2");
    assert_eq!(plan.compares[0].target, CompareTarget::Create as i32);
    assert!(matches!(
        &plan.ops[0].request,
        Some(request_op::Request::Put(p)) if p.value[..] == b"default/web"[..]
    ));
}

#[test]
fn a_given_address_must_be_in_the_range_and_free() {
    let t = taken(&[(&ip("10.96.0.3"), "default/other")]);
    let mut s = service("a", "spec: {clusterIP: 10.97.0.3, ports: [{port: 80}]}");
    let e = plan(&small(), &mut s, None, &t, &|_, _| true).unwrap_err();
    assert!(e.message.contains("spec.clusterIPs"), "{}", e.message);
    assert!(
        e.message.contains("not in the valid range"),
        "{}",
        e.message
    );
    let mut s = service("a", "spec: {clusterIP: 10.96.0.3, ports: [{port: 80}]}");
    let e = plan(&small(), &mut s, None, &t, &|_, _| true).unwrap_err();
    assert!(e.message.contains("already allocated"), "{}", e.message);
    // Its holder is gone (or holds another address now): a leftover, taken over if
    // the key is unchanged at the transaction.
    let mut s = service("a", "spec: {clusterIP: 10.96.0.3, ports: [{port: 80}]}");
    let p = plan(&small(), &mut s, None, &t, &|_, _| false).unwrap();
    assert_eq!(p.compares[0].target, CompareTarget::Mod as i32);
    assert_eq!(p.compares[0].number, 7);
    // The network and broadcast addresses are never given.
    let mut s = service("a", "spec: {clusterIP: 10.96.0.7, ports: [{port: 80}]}");
    assert!(plan(&small(), &mut s, None, &t, &|_, _| true).is_err());
}

#[test]
fn a_full_range_is_an_error_naming_it() {
    let held: Vec<Held> = (1..=6).map(|n| ip(&format!("10.96.0.{n}"))).collect();
    let t = taken(&held.iter().map(|h| (h, "default/x")).collect::<Vec<_>>());
    let mut s = service("web", CLUSTER_IP);
    let e = plan(&small(), &mut s, None, &t, &|_, _| true).unwrap_err();
    assert!(e.message.contains("10.96.0.0/29 is full"), "{}", e.message);
}

#[test]
fn headless_and_external_name_services_get_no_address() {
    let mut s = service("h", "spec: {clusterIP: None, ports: [{port: 80}]}");
    let p = plan(&small(), &mut s, None, &BTreeMap::new(), &|_, _| true).unwrap();
    assert!(p.ops.is_empty());
    assert_eq!(s.spec.unwrap().cluster_ips, Some(vec!["None".to_string()]));
    let mut s = service("e", "spec: {type: ExternalName, externalName: example.org}");
    let p = plan(&small(), &mut s, None, &BTreeMap::new(), &|_, _| true).unwrap();
    assert!(p.ops.is_empty());
}

#[test]
fn chosen_values_leave_the_static_band_to_services_that_name_one() {
    // The default ranges: 256 addresses and 86 ports are kept for given values.
    assert_eq!(ip_static_band(1 << 20), 256);
    assert_eq!(ip_static_band(256), 16);
    assert_eq!(ip_static_band(16), 0);
    assert_eq!(port_static_band(2768), 86);
    assert_eq!(port_static_band(100), 16);
    let ranges = ServiceRanges::default();
    let mut s = service("lb", "spec: {type: LoadBalancer, ports: [{port: 80}]}");
    plan(&ranges, &mut s, None, &BTreeMap::new(), &|_, _| true).unwrap();
    let spec = s.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.1.1"));
    assert_eq!(spec.ports.unwrap()[0].node_port, Some(30086));
    // A manifest naming the first port and a DNS-style address still finds them free.
    let mut named = service(
        "named",
        "spec: {type: NodePort, clusterIP: 10.96.0.10, ports: [{port: 80, nodePort: 30000}]}",
    );
    plan(&ranges, &mut named, None, &BTreeMap::new(), &|_, _| true).unwrap();
    // Once the rest is taken, the band is used too.
    let held: Vec<Held> = (30086..=32767)
        .map(|p| Held::Port("tcp".into(), p))
        .collect();
    let t = taken(
        &held
            .iter()
            .map(|h| (h, "default/other"))
            .collect::<Vec<_>>(),
    );
    let mut s = service("late", "spec: {type: NodePort, ports: [{port: 80}]}");
    plan(&ranges, &mut s, None, &t, &|_, _| true).unwrap();
    assert_eq!(s.spec.unwrap().ports.unwrap()[0].node_port, Some(30000));
}

#[test]
fn node_ports_are_given_per_protocol_and_checked_when_given() {
    let t = taken(&[(&Held::Port("tcp".into(), 30000), "default/other")]);
    let mut s = service("np", NODE_PORT);
    plan(&small(), &mut s, None, &t, &|_, _| true).unwrap();
    let ports: Vec<_> = s.spec.unwrap().ports.unwrap();
    assert_eq!(ports[0].node_port, Some(30001));
    assert_eq!(ports[1].node_port, Some(30000), "udp/30000 is free");
    let mut s = service(
        "np2",
        "spec: {type: NodePort, ports: [{port: 80, nodePort: 30000}]}",
    );
    let e = plan(&small(), &mut s, None, &t, &|_, _| true).unwrap_err();
    assert!(
        e.message.contains("spec.ports[0].nodePort"),
        "{}",
        e.message
    );
}

#[test]
fn an_update_keeps_what_it_holds_and_releases_what_it_drops() {
    let mut old = service("np", NODE_PORT);
    plan(&small(), &mut old, None, &BTreeMap::new(), &|_, _| true).unwrap();
    let t: BTreeMap<_, _> = held(&old)
        .iter()
        .map(|h| {
            (
                h.key(),
                Taken {
                    owner: "default/np".into(),
                    revision: 3,
                },
            )
        })
        .collect();
    // A PUT that leaves out clusterIP and node ports keeps them...
    let mut new = service("np", NODE_PORT);
    keep_allocated(&mut new, &old);
    let p = plan(&small(), &mut new, Some(&old), &t, &|_, _| true).unwrap();
    assert!(p.ops.is_empty() && p.compares.is_empty());
    assert_eq!(held(&new), held(&old));
    // ...and turning it into a ClusterIP Service releases the ports, not the address.
    let mut new = service("np", CLUSTER_IP);
    keep_allocated(&mut new, &old);
    let p = plan(&small(), &mut new, Some(&old), &t, &|_, _| true).unwrap();
    let deleted: Vec<_> = p
        .ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(request_op::Request::DeleteRange(d)) => {
                Some(String::from_utf8_lossy(&d.key).into_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        deleted,
        ["/rk8s/nodeports/tcp/30000", "/rk8s/nodeports/udp/30000"]
    );
    assert_eq!(new.spec.unwrap().cluster_ip, old.spec.unwrap().cluster_ip);
}

#[test]
fn a_given_node_port_must_be_in_the_servers_range() {
    // small() offers 30000-30002: 30005 passes offline validation, not this server.
    let mut s = service(
        "np",
        "spec: {type: NodePort, ports: [{name: http, port: 80, nodePort: 30005}]}",
    );
    let e = plan(&small(), &mut s, None, &BTreeMap::new(), &|_, _| true).unwrap_err();
    assert!(
        e.message
            .contains("The range of valid ports is 30000-30002"),
        "{}",
        e.message
    );
}

const LOCAL_LB: &str =
    "spec: {type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 80}]}";

#[test]
fn a_local_load_balancer_gets_node_ports_and_a_health_check_port() {
    let mut s = service("lb", LOCAL_LB);
    let p = plan(&small(), &mut s, None, &BTreeMap::new(), &|_, _| true).unwrap();
    let spec = s.clone().spec.unwrap();
    assert_eq!(spec.ports.unwrap()[0].node_port, Some(30000));
    assert_eq!(spec.health_check_node_port, Some(30001));
    // Held like a node port, in the same transaction.
    assert!(held(&s).contains(&Held::Port("tcp".into(), 30001)));
    assert_eq!(p.compares.len(), 3);
    // A given one is checked as a node port is.
    let t = taken(&[(&Held::Port("tcp".into(), 30002), "default/other")]);
    let mut s = service(
        "lb2",
        "spec: {type: LoadBalancer, externalTrafficPolicy: Local, healthCheckNodePort: 30002, ports: [{port: 80}]}",
    );
    let e = plan(&small(), &mut s, None, &t, &|_, _| true).unwrap_err();
    assert!(
        e.message.contains("spec.healthCheckNodePort") && e.message.contains("already allocated"),
        "{}",
        e.message
    );
    // A Cluster-policy load balancer needs none.
    let mut s = service("lb3", "spec: {type: LoadBalancer, ports: [{port: 80}]}");
    plan(&small(), &mut s, None, &BTreeMap::new(), &|_, _| true).unwrap();
    assert_eq!(s.spec.unwrap().health_check_node_port, None);
}

#[test]
fn a_load_balancer_without_node_port_allocation_gets_only_the_ones_it_names() {
    let mut s = service(
        "lb",
        "spec: {type: LoadBalancer, allocateLoadBalancerNodePorts: false, ports: [{name: a, port: 80}, {name: b, port: 81, nodePort: 30002}]}",
    );
    plan(&small(), &mut s, None, &BTreeMap::new(), &|_, _| true).unwrap();
    let ports = s.spec.unwrap().ports.unwrap();
    assert_eq!(ports[0].node_port, None);
    assert_eq!(ports[1].node_port, Some(30002));
}

#[test]
fn an_update_keeps_the_health_check_port_while_it_is_needed() {
    let mut old = service("lb", LOCAL_LB);
    plan(&small(), &mut old, None, &BTreeMap::new(), &|_, _| true).unwrap();
    let mut new = service("lb", LOCAL_LB);
    keep_allocated(&mut new, &old);
    assert_eq!(
        new.spec.as_ref().unwrap().health_check_node_port,
        Some(30001)
    );
    // Turned to the Cluster policy: given back.
    let t: BTreeMap<_, _> = held(&old)
        .iter()
        .map(|h| {
            let owner = "default/lb".to_string();
            (h.key(), Taken { owner, revision: 3 })
        })
        .collect();
    let mut new = service("lb", "spec: {type: LoadBalancer, ports: [{port: 80}]}");
    keep_allocated(&mut new, &old);
    assert_eq!(new.spec.as_ref().unwrap().health_check_node_port, None);
    let p = plan(&small(), &mut new, Some(&old), &t, &|_, _| true).unwrap();
    assert!(p.ops.iter().any(|op| matches!(&op.request,
        Some(request_op::Request::DeleteRange(d)) if d.key == b"/rk8s/nodeports/tcp/30001")));
}

#[test]
fn an_update_may_not_give_one_port_to_two_of_its_fields() {
    // Held: node port 30000 (tcp), health check 30001.
    let mut old = service("lb", LOCAL_LB);
    plan(&small(), &mut old, None, &BTreeMap::new(), &|_, _| true).unwrap();
    let t: BTreeMap<_, _> = held(&old)
        .iter()
        .map(|h| {
            let owner = "default/lb".to_string();
            (h.key(), Taken { owner, revision: 3 })
        })
        .collect();
    let update = |yaml: &str| {
        let mut new = service("lb", yaml);
        plan(&small(), &mut new, Some(&old), &t, &|_, _| true)
    };
    // The health check onto its own node port...
    let e = update(
        "spec: {type: LoadBalancer, externalTrafficPolicy: Local, healthCheckNodePort: 30000, ports: [{port: 80, nodePort: 30000}]}",
    )
    .unwrap_err();
    assert!(
        e.message.contains(
            "spec.healthCheckNodePort: Invalid value: 30000: provided port is already allocated"
        ),
        "{}",
        e.message
    );
    // ...or the node port onto its own health check.
    let e = update(
        "spec: {type: LoadBalancer, externalTrafficPolicy: Local, healthCheckNodePort: 30001, ports: [{port: 80, nodePort: 30001}]}",
    )
    .unwrap_err();
    assert!(
        e.message.contains("provided port is already allocated"),
        "{}",
        e.message
    );
    // Keeping both as they are is fine.
    update(
        "spec: {type: LoadBalancer, externalTrafficPolicy: Local, healthCheckNodePort: 30001, ports: [{port: 80, nodePort: 30000}]}",
    )
    .unwrap();
}
