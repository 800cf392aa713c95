use super::*;
use crate::host::{InNetns, Recorder, System};
use rk8s_api::netpol::{self as np, NAMESPACE_NAME_LABEL, PodInfo, Protocol, World, kube_dns};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);

fn policy(namespace: &str, name: &str, spec: serde_json::Value) -> np::Policy {
    let p: k8s_openapi::api::networking::v1::NetworkPolicy =
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }))
        .unwrap();
    np::compile(&p).unwrap()
}

/// x/a and x/b on this node, y/a on another, kube-dns at this node's gateway.
fn world(policies: Vec<np::Policy>) -> (World, Vec<PodInfo>) {
    let a = PodInfo::new("x", "a", "10.244.1.2".parse().unwrap())
        .with_labels(&[("pod", "a")])
        .with_port("http", Protocol::Tcp, 8080)
        .on("n1");
    let b = PodInfo::new("x", "b", "10.244.1.3".parse().unwrap())
        .with_labels(&[("pod", "b")])
        .on("n1");
    let c = PodInfo::new("y", "a", "10.244.2.2".parse().unwrap())
        .with_labels(&[("pod", "a")])
        .with_port("http", Protocol::Tcp, 9090)
        .on("n2");
    let namespaces: BTreeMap<_, _> = ["x", "y", "kube-system"]
        .into_iter()
        .map(|n| {
            (
                n.to_string(),
                BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), n.to_string())]),
            )
        })
        .collect();
    let local = vec![a.clone(), b.clone()];
    let world = World {
        policies,
        namespaces,
        pods: vec![a, b, c, kube_dns(GATEWAY, "n1")],
    };
    (world, local)
}

fn deny_all() -> np::Policy {
    policy(
        "x",
        "deny",
        serde_json::json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    )
}

fn allow_from_y() -> np::Policy {
    policy(
        "x",
        "from-y",
        serde_json::json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{
            "from": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "y"}}}],
            "ports": [{"port": 80}, {"port": 8000, "endPort": 8100}, {"port": "http"}]}]}),
    )
}

fn proxy() -> (PolicyProxy, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::new());
    (PolicyProxy::new(recorder.clone()), recorder)
}

fn last_script(r: &Recorder) -> String {
    r.commands().last().cloned().unwrap_or_default()
}

#[test]
fn the_first_sync_writes_the_whole_table_in_one_transaction() {
    let (w, local) = world(vec![deny_all(), allow_from_y()]);
    let (mut p, r) = proxy();
    let synced = p.sync(compile(&w, &local, GATEWAY)).unwrap();
    assert!(synced.full);
    assert_eq!(r.commands().len(), 1);
    let s = last_script(&r);
    assert!(s.starts_with("nft -f -"), "{s}");
    assert!(s.contains("delete table ip rk8s-netpol"), "{s}");
    assert!(
        s.contains("type filter hook forward priority -5; policy accept;"),
        "{s}"
    );
    assert!(
        s.contains("type filter hook input priority -5; policy accept;"),
        "{s}"
    );
    assert!(
        s.contains(
            "add element ip rk8s-netpol self { 10.244.1.2 . 10.244.1.2, 10.244.1.3 . 10.244.1.3 }"
        ),
        "{s}"
    );
    // x/a has two policies, x/b one: two ingress chains, one egress chain.
    let ins: Vec<&str> = s
        .lines()
        .filter(|l| l.starts_with("add chain ip rk8s-netpol in/"))
        .collect();
    let outs: Vec<&str> = s
        .lines()
        .filter(|l| l.starts_with("add chain ip rk8s-netpol out/"))
        .collect();
    assert_eq!((ins.len(), outs.len()), (2, 1), "{s}");
    // The namespace y as a set of addresses, the ports as clauses.
    let program = compile(&w, &local, GATEWAY);
    let (grp, set) = program
        .sets
        .iter()
        .find(|(n, _)| n.starts_with("grp/"))
        .unwrap();
    assert_eq!(set.elements, ["10.244.2.2".to_string()].into());
    let chain = &program.chains[&program.ingress[&"10.244.1.2".parse().unwrap()]];
    for clause in [
        format!("ip saddr @{grp} meta l4proto tcp th dport 80 accept"),
        format!("ip saddr @{grp} meta l4proto tcp th dport 8000-8100 accept"),
        format!("ip saddr @{grp} meta l4proto tcp ip daddr . th dport @np/tcp/http accept"),
    ] {
        assert!(chain.contains(&clause), "{clause}: {chain:?}");
    }
    assert!(
        chain.last().unwrap().starts_with("counter reject"),
        "{chain:?}"
    );
    // The named port's pods: the selected one (ingress) and the peers (egress).
    assert_eq!(
        program.sets["np/tcp/http"].elements,
        [
            "10.244.1.2 . 8080".to_string(),
            "10.244.2.2 . 9090".to_string()
        ]
        .into()
    );
    // Egress of a default-deny pod: the node stays reachable but for DNS.
    let out = &program.chains[&program.egress[&"10.244.1.3".parse().unwrap()]];
    assert_eq!(
        out[..3],
        [
            "ip daddr != 10.244.1.1 fib daddr type local accept".to_string(),
            "ip daddr 10.244.1.1 meta l4proto != { tcp, udp } accept".to_string(),
            "ip daddr 10.244.1.1 th dport != 53 accept".to_string(),
        ]
    );
    assert_eq!(out.len(), 4, "{out:?}");
}

#[test]
fn unisolated_pods_cost_nothing_and_no_policies_mean_an_empty_program() {
    let (w, local) = world(vec![]);
    let program = compile(&w, &local, GATEWAY);
    assert!(program.ingress.is_empty() && program.egress.is_empty());
    assert!(program.chains.is_empty() && program.sets.is_empty());
    assert_eq!(program.local.len(), 2);
}

#[test]
fn a_thousand_equal_allows_make_one_chain_with_one_clause() {
    let policies: Vec<np::Policy> = (0..1000)
        .map(|i| {
            policy(
                "x",
                &format!("p{i}"),
                serde_json::json!({"podSelector": {}, "ingress": [{
                    "from": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "y"}}}],
                    "ports": [{"port": 80}]}]}),
            )
        })
        .collect();
    let (w, local) = world(policies);
    let program = compile(&w, &local, GATEWAY);
    assert_eq!(program.chains.len(), 1);
    assert_eq!(program.clauses(), 1);
    assert_eq!(program.sets.len(), 1);
}

#[test]
fn a_peer_joining_a_group_is_one_element_not_a_chain_rewrite() {
    let (mut w, local) = world(vec![allow_from_y()]);
    let (mut p, r) = proxy();
    p.sync(compile(&w, &local, GATEWAY)).unwrap();
    w.pods.push(
        PodInfo::new("y", "b", "10.244.2.3".parse().unwrap())
            .with_port("http", Protocol::Tcp, 8081)
            .on("n2"),
    );
    let synced = p.sync(compile(&w, &local, GATEWAY)).unwrap();
    assert!(!synced.full);
    let s = last_script(&r);
    assert!(!s.contains("chain"), "{s}");
    assert!(s.contains("add element ip rk8s-netpol grp/"), "{s}");
    assert!(s.contains("{ 10.244.2.3 }"), "{s}");
    assert!(
        s.contains("add element ip rk8s-netpol np/tcp/http { 10.244.2.3 . 8081 }"),
        "{s}"
    );
    // Nothing changed: no command at all.
    let before = r.commands().len();
    assert_eq!(p.sync(compile(&w, &local, GATEWAY)).unwrap().commands, 0);
    assert_eq!(r.commands().len(), before);
}

#[test]
fn a_removed_policy_takes_its_elements_then_its_chain_then_its_sets() {
    let (w, local) = world(vec![allow_from_y()]);
    let (mut p, r) = proxy();
    p.sync(compile(&w, &local, GATEWAY)).unwrap();
    let (w, local) = world(vec![]);
    p.sync(compile(&w, &local, GATEWAY)).unwrap();
    let s = last_script(&r);
    let at = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle}: {s}"));
    assert!(at("delete element ip rk8s-netpol ingress-pods { 10.244.1.2 }") < at("flush chain"));
    assert!(at("flush chain") < at("delete chain"));
    assert!(at("delete chain") < at("delete set ip rk8s-netpol grp/"));
}

#[test]
fn a_failed_transaction_makes_the_next_sync_full() {
    struct Failing;
    impl Host for Failing {
        fn run(&self, _: &str, _: &[&str], _: Option<&str>) -> Result<String> {
            Err(crate::Error::Command {
                command: "nft -f -".into(),
                stderr: "refused".into(),
            })
        }
        fn apply(&self, _: Option<&str>, _: &[crate::NetOp]) -> Result<()> {
            Ok(())
        }
        fn link_exists(&self, _: &str) -> Result<bool> {
            Ok(false)
        }
        fn port_in_use(&self, _: u16, _: bool) -> bool {
            false
        }
        fn sysctl(&self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        fn netns_exists(&self, _: &str) -> bool {
            false
        }
    }
    let (w, local) = world(vec![deny_all()]);
    let mut p = PolicyProxy::new(Failing);
    assert!(p.sync(compile(&w, &local, GATEWAY)).is_err());
    assert!(p.programmed.is_none());
}

#[test]
fn the_compiled_program_agrees_with_the_reference_model_on_who_is_isolated() {
    let (w, local) = world(vec![deny_all(), allow_from_y()]);
    let program = compile(&w, &local, GATEWAY);
    for pod in &local {
        for ip in &pod.ips {
            let isolated_in = w
                .policies
                .iter()
                .any(|p| p.ingress.is_some() && p.selects(pod));
            let isolated_out = w
                .policies
                .iter()
                .any(|p| p.egress.is_some() && p.selects(pod));
            assert_eq!(program.ingress.contains_key(ip), isolated_in);
            assert_eq!(program.egress.contains_key(ip), isolated_out);
        }
    }
}

/// Removes the namespace (and its table) also when the test fails.
struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = System.run("ip", &["netns", "delete", &self.0], None);
    }
}

#[test]
fn the_scripts_are_what_nft_accepts() {
    // A root test, like the Service proxy's: it fails rather than passing silently.
    assert!(
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")),
        "this test needs root: a network namespace and nftables"
    );
    let name = format!("rk8s-netpoltest-{}", std::process::id());
    System.run("ip", &["netns", "add", &name], None).unwrap();
    let _ns = Netns(name.clone());
    // Every feature: a full table checked by `nft -c`, then applied.
    let block = policy(
        "x",
        "block",
        serde_json::json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16", "10.1.2.3/32"]}}],
             "ports": [{"protocol": "UDP"}, {"protocol": "SCTP", "port": 7}]},
            {"to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: "kube-system"}},
                     "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
             "ports": [{"protocol": "UDP", "port": "dns"}, {"protocol": "TCP", "port": "dns-tcp"}]}]}),
    );
    let (w, local) = world(vec![deny_all(), allow_from_y(), block.clone()]);
    let host = InNetns(name.clone());
    let mut full = String::new();
    let _ = writeln!(full, "add table ip {TABLE}\ndelete table ip {TABLE}");
    full.push_str(&base());
    let mut script = Script::default();
    script.diff(&Program::default(), &compile(&w, &local, GATEWAY));
    script.write(&mut full);
    host.run("nft", &["-c", "-f", "-"], Some(&full)).unwrap();
    let mut p = PolicyProxy::new(InNetns(name.clone()));
    p.sync(compile(&w, &local, GATEWAY)).unwrap();
    let listing = host
        .run("nft", &["list", "table", "ip", TABLE], None)
        .unwrap();
    for expected in [
        "10.0.0.0-10.1.2.2, 10.1.2.4-10.243.255.255",
        "10.244.1.2 . 8080",
        "ip daddr . udp dport @np/udp/dns accept",
        "10.244.1.1 . 53",
        "sctp dport 7 accept",
        "ip saddr . ip daddr @self accept",
    ] {
        assert!(listing.contains(expected), "{expected}: {listing}");
    }
    // Every kind of change: members, a policy's rules, a policy gone, all gone.
    let (mut w2, local2) = world(vec![deny_all(), allow_from_y(), block]);
    w2.pods
        .push(PodInfo::new("y", "b", "10.244.2.3".parse().unwrap()).on("n2"));
    w2.namespaces
        .get_mut("y")
        .unwrap()
        .insert("team".into(), "red".into());
    p.sync(compile(&w2, &local2, GATEWAY)).unwrap();
    let (w3, local3) = world(vec![allow_from_y()]);
    p.sync(compile(&w3, &local3, GATEWAY)).unwrap();
    let (w4, mut local4) = world(vec![deny_all()]);
    local4.pop();
    p.sync(compile(&w4, &local4, GATEWAY)).unwrap();
    let listing = host
        .run("nft", &["list", "table", "ip", TABLE], None)
        .unwrap();
    assert!(!listing.contains("grp/"), "{listing}");
    assert!(!listing.contains("10.244.1.3"), "{listing}");
    let (w5, local5) = world(vec![]);
    p.sync(compile(&w5, &local5, GATEWAY)).unwrap();
    let listing = host
        .run("nft", &["list", "table", "ip", TABLE], None)
        .unwrap();
    assert!(
        !listing.contains("chain in/") && !listing.contains("chain out/"),
        "{listing}"
    );
    // A restarted agent replaces the table in one transaction.
    let mut again = PolicyProxy::new(InNetns(name.clone()));
    again.sync(compile(&w, &local, GATEWAY)).unwrap();
    again.remove().unwrap();
    again.remove().unwrap();
}

#[test]
fn names_are_128_bit_hashes_and_differ_for_different_texts() {
    let a = rules::short_hash("namespace x pods {pod=a}");
    let b = rules::short_hash("namespace x pods {pod=b}");
    assert_eq!(a.len(), 32);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
    // Two groups never share a set: every distinct selector has its own.
    let (w, local) = world(vec![
        policy(
            "x",
            "p1",
            serde_json::json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "a"}}}]}]}),
        ),
        policy(
            "x",
            "p2",
            serde_json::json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
        ),
    ]);
    let program = compile(&w, &local, GATEWAY);
    let groups: Vec<&rules::Set> = program
        .sets
        .iter()
        .filter(|(n, _)| n.starts_with("grp/"))
        .map(|(_, s)| s)
        .collect();
    assert_eq!(groups.len(), 2);
    assert_ne!(groups[0].elements, groups[1].elements);
}

#[test]
fn chain_names_do_not_depend_on_the_order_policies_come_in() {
    let (w, local) = world(vec![deny_all(), allow_from_y()]);
    let (swapped, _) = world(vec![allow_from_y(), deny_all()]);
    let one = compile(&w, &local, GATEWAY);
    assert!(one.chains.keys().any(|c| c.starts_with("in/")));
    assert_eq!(one, compile(&swapped, &local, GATEWAY));
}

#[test]
fn a_local_pod_made_again_under_its_name_is_a_peer_at_its_new_address() {
    let (mut w, mut local) = world(vec![policy(
        "x",
        "from-b",
        serde_json::json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    )]);
    // x/b made again at .9 on this node while its old PodPeer (.3) is still known.
    let again = PodInfo::new("x", "b", "10.244.1.9".parse().unwrap())
        .with_labels(&[("pod", "b")])
        .on("n1");
    local.push(again);
    w.pods.retain(|p| p.name != "kube-dns@n1");
    let program = compile(&w, &local, GATEWAY);
    let group = program
        .sets
        .iter()
        .find(|(n, _)| n.starts_with("grp/"))
        .map(|(_, s)| s.elements.clone())
        .unwrap();
    assert!(group.contains("10.244.1.9"), "{group:?}");
    assert!(program.local.contains(&"10.244.1.9".parse().unwrap()));
}

#[test]
fn a_kept_compiler_gives_what_a_fresh_compile_gives_after_any_change() {
    let policies = vec![
        deny_all(),
        allow_from_y(),
        policy(
            "x",
            "all-ns",
            serde_json::json!({"podSelector": {}, "ingress": [{"from": [
                {"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "a"}}}]}]}),
        ),
    ];
    let (mut w, mut local) = world(policies);
    let mut kept = rules::Compiler::default();
    let check = |kept: &mut rules::Compiler, w: &World, local: &[PodInfo]| {
        assert_eq!(kept.compile(w, local, GATEWAY), compile(w, local, GATEWAY));
    };
    check(&mut kept, &w, &local);
    // A pod joins another namespace.
    w.pods.push(
        PodInfo::new("y", "b", "10.244.2.3".parse().unwrap())
            .with_labels(&[("pod", "a")])
            .on("n2"),
    );
    check(&mut kept, &w, &local);
    // A pod is relabelled.
    if let Some(p) = w
        .pods
        .iter_mut()
        .find(|p| p.namespace == "y" && p.name == "a")
    {
        p.labels.insert("pod".into(), "c".into());
    }
    check(&mut kept, &w, &local);
    // A new namespace with a pod, then a namespace relabelled.
    w.namespaces.insert(
        "z".into(),
        BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), "z".to_string())]),
    );
    w.pods
        .push(PodInfo::new("z", "a", "10.244.3.2".parse().unwrap()).with_labels(&[("pod", "a")]));
    check(&mut kept, &w, &local);
    if let Some(l) = w.namespaces.get_mut("y") {
        l.insert(NAMESPACE_NAME_LABEL.into(), "not-y".into());
    }
    check(&mut kept, &w, &local);
    // The pods of a namespace go; the order pods come in changes.
    w.pods.retain(|p| p.namespace != "z");
    w.pods.reverse();
    check(&mut kept, &w, &local);
    local.pop();
    check(&mut kept, &w, &local);
}
