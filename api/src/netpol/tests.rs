use super::*;
use proptest::prelude::*;
use serde_json::json;

fn policy(namespace: &str, name: &str, spec: serde_json::Value) -> Policy {
    let np: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
    .unwrap();
    compile(&np).unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// x/a, x/b, y/a, y/b, z/a with labels `pod: a|b`; namespaces labelled as the API
/// server labels them, `y` also `team: blue`.
fn world(policies: Vec<Policy>) -> World {
    let mut pods = Vec::new();
    for (i, (ns, name)) in [("x", "a"), ("x", "b"), ("y", "a"), ("y", "b"), ("z", "a")]
        .into_iter()
        .enumerate()
    {
        let n = u8::try_from(i).unwrap() + 2;
        pods.push(
            PodInfo::new(ns, name, Ipv4Addr::new(10, 244, 1, n))
                .with_labels(&[("pod", name)])
                .with_port("serve-80", Protocol::Tcp, 80)
                .with_port("serve-81-udp", Protocol::Udp, 81)
                .on("n1"),
        );
    }
    pods.push(kube_dns(ip("10.244.1.1"), "n1"));
    let mut namespaces = BTreeMap::new();
    for ns in ["x", "y", "z", "kube-system"] {
        let mut labels = Labels::from([(NAMESPACE_NAME_LABEL.to_string(), ns.to_string())]);
        if ns == "y" {
            labels.insert("team".into(), "blue".into());
        }
        namespaces.insert(ns.to_string(), labels);
    }
    World {
        policies,
        namespaces,
        pods,
    }
}

fn pod<'a>(w: &'a World, ns: &str, name: &str) -> &'a PodInfo {
    w.pods
        .iter()
        .find(|p| p.namespace == ns && p.name == name)
        .unwrap()
}

fn can(w: &World, from: (&str, &str), to: (&str, &str), protocol: Protocol, port: u16) -> bool {
    reachable(
        w,
        Endpoint::Pod(pod(w, from.0, from.1)),
        Endpoint::Pod(pod(w, to.0, to.1)),
        protocol,
        port,
    )
}

#[test]
fn without_policies_every_pod_reaches_every_pod() {
    let w = world(vec![]);
    assert!(can(&w, ("x", "a"), ("y", "b"), Protocol::Tcp, 80));
    assert!(can(&w, ("z", "a"), ("x", "a"), Protocol::Udp, 81));
}

#[test]
fn default_deny_ingress_isolates_only_its_namespace_and_spares_self_and_node() {
    let w = world(vec![policy("x", "deny", json!({"podSelector": {}}))]);
    assert!(!can(&w, ("y", "a"), ("x", "a"), Protocol::Tcp, 80));
    assert!(!can(&w, ("x", "b"), ("x", "a"), Protocol::Tcp, 80));
    // Egress of x is not isolated; y is not isolated at all.
    assert!(can(&w, ("x", "a"), ("y", "a"), Protocol::Tcp, 80));
    assert!(can(&w, ("x", "a"), ("x", "a"), Protocol::Tcp, 80));
    let a = pod(&w, "x", "a");
    assert!(reachable(
        &w,
        Endpoint::OwnNode,
        Endpoint::Pod(a),
        Protocol::Tcp,
        80
    ));
    assert!(!reachable(
        &w,
        Endpoint::Outside(ip("192.168.1.9")),
        Endpoint::Pod(a),
        Protocol::Tcp,
        80
    ));
}

#[test]
fn an_empty_rule_allows_everything_and_no_rules_deny_everything() {
    let allow = policy("x", "allow", json!({"podSelector": {}, "ingress": [{}]}));
    let w = world(vec![allow]);
    assert!(can(&w, ("y", "a"), ("x", "a"), Protocol::Sctp, 9));
    let egress_deny = policy(
        "x",
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    );
    let w = world(vec![egress_deny]);
    assert!(!can(&w, ("x", "a"), ("y", "a"), Protocol::Tcp, 80));
    // Only the source is isolated: the other direction is open.
    assert!(can(&w, ("y", "a"), ("x", "a"), Protocol::Tcp, 80));
}

#[test]
fn egress_rules_without_policy_types_make_an_egress_policy() {
    let p = policy(
        "x",
        "p",
        json!({"podSelector": {}, "egress": [{"to": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    );
    assert!(p.ingress.is_some() && p.egress.is_some());
    let w = world(vec![p]);
    // x/a may send to x/b, but x/b is ingress-isolated with no rules.
    assert!(!can(&w, ("x", "a"), ("x", "b"), Protocol::Tcp, 80));
    // x/a may not send to y/a, which allows everything.
    assert!(!can(&w, ("x", "a"), ("y", "a"), Protocol::Tcp, 80));
}

#[test]
fn denying_egress_on_the_client_blocks_what_the_server_allows() {
    // e2e "should enforce egress policy allowing traffic to a server in a different
    // namespace based on PodSelector and NamespaceSelector" and the client-side deny.
    let allow_all_in = policy("y", "open", json!({"podSelector": {}, "ingress": [{}]}));
    let deny_out = policy(
        "x",
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    );
    let w = world(vec![allow_all_in, deny_out]);
    assert!(!can(&w, ("x", "a"), ("y", "a"), Protocol::Tcp, 80));
    assert!(can(&w, ("z", "a"), ("y", "a"), Protocol::Tcp, 80));
}

#[test]
fn a_pod_selector_alone_selects_in_the_policys_namespace() {
    let p = policy(
        "x",
        "p",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    );
    let w = world(vec![p]);
    assert!(can(&w, ("x", "b"), ("x", "a"), Protocol::Tcp, 80));
    assert!(!can(&w, ("y", "b"), ("x", "a"), Protocol::Tcp, 80));
    // x/b is not selected: open.
    assert!(can(&w, ("y", "b"), ("x", "b"), Protocol::Tcp, 80));
}

#[test]
fn a_namespace_selector_by_the_name_label_selects_every_pod_there() {
    let p = policy(
        "x",
        "p",
        json!({"podSelector": {},
               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "y"}}}]}]}),
    );
    let w = world(vec![p]);
    assert!(can(&w, ("y", "a"), ("x", "a"), Protocol::Tcp, 80));
    assert!(can(&w, ("y", "b"), ("x", "a"), Protocol::Tcp, 80));
    assert!(!can(&w, ("z", "a"), ("x", "a"), Protocol::Tcp, 80));
    // The policy's own namespace is not implied.
    assert!(!can(&w, ("x", "b"), ("x", "a"), Protocol::Tcp, 80));
}

#[test]
fn pod_and_namespace_selectors_in_one_peer_are_anded_in_two_peers_ored() {
    let and = policy(
        "x",
        "and",
        json!({"podSelector": {},
               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}},
                                      "podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    );
    let w = world(vec![and]);
    assert!(can(&w, ("y", "b"), ("x", "a"), Protocol::Tcp, 80));
    assert!(!can(&w, ("y", "a"), ("x", "a"), Protocol::Tcp, 80));
    assert!(!can(&w, ("x", "b"), ("x", "a"), Protocol::Tcp, 80));
    let or = policy(
        "x",
        "or",
        json!({"podSelector": {},
               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}},
                                     {"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    );
    let w = world(vec![or]);
    assert!(can(&w, ("y", "a"), ("x", "a"), Protocol::Tcp, 80));
    assert!(can(&w, ("x", "b"), ("x", "a"), Protocol::Tcp, 80));
    assert!(!can(&w, ("z", "a"), ("x", "a"), Protocol::Tcp, 80));
}

#[test]
fn an_ip_block_matches_pod_addresses_and_its_except_only_within_its_peer() {
    // y/a is 10.244.1.4.
    let p = policy(
        "x",
        "p",
        json!({"podSelector": {},
               "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.1.0/24", "except": ["10.244.1.4/32"]}}]}]}),
    );
    let w = world(vec![p.clone()]);
    assert!(can(&w, ("y", "b"), ("x", "a"), Protocol::Tcp, 80));
    assert!(!can(&w, ("y", "a"), ("x", "a"), Protocol::Tcp, 80));
    let a = pod(&w, "x", "a");
    assert!(reachable(
        &w,
        Endpoint::Outside(ip("10.244.1.200")),
        Endpoint::Pod(a),
        Protocol::Tcp,
        1
    ));
    assert!(!reachable(
        &w,
        Endpoint::Outside(ip("10.244.2.1")),
        Endpoint::Pod(a),
        Protocol::Tcp,
        1
    ));
    // e2e "IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed": another
    // peer may allow what an except removed.
    let again = policy(
        "x",
        "again",
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}]}),
    );
    let w = world(vec![p, again]);
    assert!(can(&w, ("y", "a"), ("x", "a"), Protocol::Tcp, 80));
}

#[test]
fn ports_default_to_tcp_and_sctp_never_matches_tcp() {
    let p = policy(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}),
    );
    let w = world(vec![p]);
    assert!(can(&w, ("y", "a"), ("x", "a"), Protocol::Tcp, 80));
    assert!(!can(&w, ("y", "a"), ("x", "a"), Protocol::Udp, 80));
    assert!(!can(&w, ("y", "a"), ("x", "a"), Protocol::Tcp, 81));
    let sctp = policy(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"ports": [{"protocol": "SCTP", "port": 80}]}]}),
    );
    let w = world(vec![sctp]);
    assert!(!can(&w, ("y", "a"), ("x", "a"), Protocol::Tcp, 80));
    assert!(can(&w, ("y", "a"), ("x", "a"), Protocol::Sctp, 80));
}

#[test]
fn end_port_makes_a_range_and_a_protocol_alone_allows_all_its_ports() {
    let p = policy(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 8000, "endPort": 8080}, {"protocol": "UDP"}]}]}),
    );
    let w = world(vec![p]);
    for (proto, port, allowed) in [
        (Protocol::Tcp, 7999, false),
        (Protocol::Tcp, 8000, true),
        (Protocol::Tcp, 8080, true),
        (Protocol::Tcp, 8081, false),
        (Protocol::Udp, 1, true),
    ] {
        assert_eq!(
            can(&w, ("y", "a"), ("x", "a"), proto, port),
            allowed,
            "{proto} {port}"
        );
    }
}

#[test]
fn a_named_port_resolves_on_the_destination_pod() {
    let mut w = world(vec![policy(
        "x",
        "in",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": "serve-80"}]}]}),
    )]);
    assert!(can(&w, ("y", "a"), ("x", "a"), Protocol::Tcp, 80));
    assert!(!can(&w, ("y", "a"), ("x", "a"), Protocol::Tcp, 81));
    // The protocol is part of the name's match.
    w.policies = vec![policy(
        "x",
        "in",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-udp"}]}]}),
    )];
    assert!(!can(&w, ("y", "a"), ("x", "a"), Protocol::Udp, 81));
    // Egress: the peer's ports, in any namespace when `to` is empty.
    w.policies = vec![policy(
        "x",
        "out",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"ports": [{"protocol": "UDP", "port": "serve-81-udp"}]}]}),
    )];
    assert!(can(&w, ("x", "a"), ("z", "a"), Protocol::Udp, 81));
    assert!(!can(&w, ("x", "a"), ("z", "a"), Protocol::Udp, 80));
    let a = pod(&w, "x", "a");
    assert!(!reachable(
        &w,
        Endpoint::Pod(a),
        Endpoint::Outside(ip("1.1.1.1")),
        Protocol::Udp,
        81
    ));
}

#[test]
fn a_port_name_that_is_no_iana_service_name_does_not_compile() {
    for bad in [
        "x; flush ruleset",
        "Http",
        "a--b",
        "sixteen-chars-xx",
        "-http",
        "80-",
    ] {
        let np: NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": "in", "namespace": "x"},
            "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": bad}]}]},
        }))
        .unwrap();
        assert!(
            matches!(compile(&np), Err(CompileError::PortName(..))),
            "{bad:?} compiled"
        );
    }
    let np: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "in", "namespace": "x"},
        "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": "dns-tcp"}]}]},
    }))
    .unwrap();
    assert!(compile(&np).is_ok());
}

#[test]
fn named_ports_include_sidecars_but_not_other_init_containers() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "a", "namespace": "x"},
        "spec": {
            "initContainers": [
                {"name": "proxy", "image": "i", "restartPolicy": "Always",
                 "ports": [{"name": "metrics", "containerPort": 9090}]},
                {"name": "setup", "image": "i",
                 "ports": [{"name": "setup", "containerPort": 9091}]},
            ],
            "containers": [{"name": "app", "image": "i",
                            "ports": [{"name": "http", "containerPort": 80}]}],
        },
    }))
    .unwrap();
    let names: Vec<(String, u16)> = named_ports(&pod)
        .into_iter()
        .map(|p| (p.name, p.port))
        .collect();
    assert_eq!(
        names,
        vec![("http".to_string(), 80), ("metrics".to_string(), 9090)]
    );
}

#[test]
fn default_deny_egress_blocks_dns_until_egress_to_kube_dns_is_allowed() {
    let deny = policy(
        "x",
        "deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    );
    let w = world(vec![deny.clone()]);
    assert!(!can(
        &w,
        ("x", "a"),
        ("kube-system", "kube-dns@n1"),
        Protocol::Udp,
        53
    ));
    // The node itself stays reachable.
    let a = pod(&w, "x", "a");
    assert!(reachable(
        &w,
        Endpoint::Pod(a),
        Endpoint::OwnNode,
        Protocol::Tcp,
        10250
    ));
    let dns = policy(
        "x",
        "dns",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": "dns-tcp"}]}]}),
    );
    let w = world(vec![deny, dns]);
    assert!(can(
        &w,
        ("x", "a"),
        ("kube-system", "kube-dns@n1"),
        Protocol::Udp,
        53
    ));
    assert!(can(
        &w,
        ("x", "a"),
        ("kube-system", "kube-dns@n1"),
        Protocol::Tcp,
        53
    ));
    assert!(!can(&w, ("x", "a"), ("y", "a"), Protocol::Udp, 53));
}

#[test]
fn pods_that_cannot_be_peers_are_not_projected() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "x", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
            {"name": "http", "containerPort": 8080}, {"containerPort": 9}]}]},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.244.1.9"}, {"ip": "fd00::9"}]},
    }))
    .unwrap();
    let info = pod_info(&pod).unwrap();
    assert_eq!(info.ips, vec![ip("10.244.1.9")]);
    assert_eq!(info.named_port("http", Protocol::Tcp), Some(8080));
    assert_eq!(info.ports.len(), 1);
    assert_eq!(info.node.as_deref(), Some("n1"));
    let mut done = pod.clone();
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    assert!(pod_info(&done).is_none());
    let mut host = pod.clone();
    host.spec.as_mut().unwrap().host_network = Some(true);
    assert!(pod_info(&host).is_none());
    let mut pending = pod;
    pending.status = None;
    assert!(pod_info(&pending).is_none());
}

#[test]
fn equal_selectors_written_differently_are_one_group() {
    let a = policy(
        "x",
        "a",
        json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {
            "matchLabels": {"pod": "a"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}}]}]}),
    );
    let b = policy(
        "x",
        "b",
        json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {
            "matchExpressions": [{"key": "tier", "operator": "Exists"}, {"key": "pod", "operator": "In", "values": ["a"]}]}}]}]}),
    );
    let group = |p: &Policy| p.ingress.as_ref().unwrap()[0].peers.clone().unwrap();
    // `pod=a` and `pod in (a)` are different expressions with equal meaning; the
    // canonical form only sorts, so these differ, but the same text always agrees.
    assert_ne!(group(&a), group(&b));
    assert_eq!(group(&a), group(&a.clone()));
}

proptest! {
    #[test]
    fn an_ip_block_contains_exactly_the_cidr_minus_its_exceptions(
        prefix in 8u32..=30,
        holes in proptest::collection::vec((0u32..4096, 0u32..=8), 0..4),
        probes in proptest::collection::vec(0u32..u32::MAX, 32),
    ) {
        let base = u32::from(ip("10.0.0.0"));
        let cidr = format!("{}/{prefix}", Ipv4Addr::from(base));
        let size = 1u64 << (32 - prefix);
        let except: Vec<String> = holes
            .iter()
            .map(|(n, extra)| {
                let len = (prefix + 1 + extra).min(32);
                let offset = u32::try_from(u64::from(*n) * 256 % size).unwrap();
                format!("{}/{len}", Ipv4Addr::from(base + offset))
            })
            .collect();
        let b = block(&IPBlock { cidr: cidr.clone(), except: Some(except.clone()) }).unwrap();
        let within = |c: &str, x: u32| {
            let (a, z) = cidr_range(c).unwrap().unwrap();
            (a..=z).contains(&x)
        };
        let near: Vec<u32> = probes.iter().map(|p| base.wrapping_add(p % u32::try_from(size * 2).unwrap_or(u32::MAX))).collect();
        for x in probes.iter().copied().chain(near) {
            let expected = within(&cidr, x) && !except.iter().any(|e| within(e, x));
            prop_assert_eq!(b.contains(Ipv4Addr::from(x)), expected);
        }
        for w in b.ranges.windows(2) {
            prop_assert!(w[0].1 < w[1].0);
        }
    }
}
