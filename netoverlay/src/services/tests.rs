use super::*;
use crate::Result;
use crate::host::{Host, InNetns, Recorder, System};
use std::sync::Arc;

fn port(name: &str, ip: &str, endpoints: &[&str], node_port: Option<u16>) -> ServicePort {
    ServicePort {
        node_port,
        endpoints: addresses(endpoints),
        ..ServicePort::new(
            ("default".into(), name.into()),
            Protocol::Tcp,
            80,
            ip.parse().unwrap(),
        )
    }
}

fn addresses(endpoints: &[&str]) -> Vec<SocketAddrV4> {
    endpoints.iter().map(|e| e.parse().unwrap()).collect()
}

fn proxy() -> (ServiceProxy, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::new());
    let proxy = ServiceProxy::new(recorder.clone(), "rk8sb0", "10.244.1.0/24".parse().unwrap());
    (proxy, recorder)
}

fn last_script(r: &Recorder) -> String {
    r.commands().last().cloned().unwrap_or_default()
}

#[test]
fn the_first_sync_writes_the_whole_table_in_one_transaction() {
    let (mut p, r) = proxy();
    let web = port(
        "web",
        "10.96.0.10",
        &["10.244.1.2:8080", "10.244.2.3:8080"],
        Some(30080),
    );
    assert_eq!(p.sync(&[web]).unwrap(), 1);
    assert_eq!(r.commands().len(), 1);
    let s = last_script(&r);
    assert!(s.contains("delete table ip rk8s-services"), "{s}");
    assert!(s.contains(
        "add rule ip rk8s-services svc/default/web/tcp/80 meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.1.2 . 8080, 1 : 10.244.2.3 . 8080 }"
    ), "{s}");
    assert!(s.contains("add element ip rk8s-services service-ips { 10.96.0.10 . tcp . 80 : goto svc/default/web/tcp/80 }"), "{s}");
    assert!(
        s.contains(
            "add element ip rk8s-services node-ports { tcp . 30080 : goto ext/default/web/tcp/80 }"
        ),
        "{s}"
    );
    // Node-port traffic is masqueraded, then served as the ClusterIP's.
    assert!(
        s.contains("add rule ip rk8s-services ext/default/web/tcp/80 jump mark-for-masquerade\nadd rule ip rk8s-services ext/default/web/tcp/80 goto svc/default/web/tcp/80"),
        "{s}"
    );
    assert!(
        s.contains("ct status dnat ip saddr 10.244.1.0/24 oifname \"rk8sb0\" masquerade"),
        "{s}"
    );
}

#[test]
fn marked_packets_are_masqueraded_once_with_the_mark_cleared() {
    let (mut p, r) = proxy();
    p.sync(&[]).unwrap();
    let s = last_script(&r);
    // kube-proxy's kube-postrouting: unmarked packets pass; a marked one loses its
    // mark (an encapsulating VXLAN packet would carry it on) and is masqueraded with
    // random source ports.
    assert!(
        s.contains(
            "  chain masquerading {\n    \
             meta mark & 0x4000 == 0 return\n    \
             meta mark set meta mark ^ 0x4000\n    \
             masquerade fully-random\n  }\n"
        ),
        "{s}"
    );
    assert!(s.contains("policy accept;\n    jump masquerading\n"), "{s}");
    assert!(!s.contains("== 0x4000 masquerade"), "{s}");
}

/// A host whose next `nft` runs fail, as when the table was removed from outside or
/// the kernel refuses a transaction (recorded like the others).
struct Failing {
    recorder: Arc<Recorder>,
    failures: std::sync::atomic::AtomicUsize,
}

impl Host for Failing {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.recorder.run(program, args, stdin)?;
        let failing = self
            .failures
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok();
        if failing {
            return Err(crate::Error::Command {
                command: format!("{program} {}", args.join(" ")),
                stderr: "Error: No such file or directory".into(),
            });
        }
        Ok(out)
    }

    fn apply(&self, netns: Option<&str>, ops: &[crate::NetOp]) -> Result<()> {
        self.recorder.apply(netns, ops)
    }

    fn link_exists(&self, name: &str) -> Result<bool> {
        self.recorder.link_exists(name)
    }

    fn port_in_use(&self, port: u16, udp: bool) -> bool {
        self.recorder.port_in_use(port, udp)
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.recorder.sysctl(key, value)
    }

    fn netns_exists(&self, name: &str) -> bool {
        self.recorder.netns_exists(name)
    }
}

#[test]
fn a_failed_transaction_is_followed_by_a_rewrite_of_the_whole_table() {
    let recorder = Arc::new(Recorder::new());
    let host = Arc::new(Failing {
        recorder: recorder.clone(),
        failures: 0.into(),
    });
    let mut p = ServiceProxy::new(host.clone(), "rk8sb0", "10.244.1.0/24".parse().unwrap());
    let web = port("web", "10.96.0.10", &["10.244.1.2:8080"], None);
    let db = port("db", "10.96.0.11", &["10.244.1.3:5432"], None);
    p.sync(std::slice::from_ref(&web)).unwrap();
    // The table is gone (`nft flush ruleset`): the diff that adds db fails...
    host.failures.store(1, std::sync::atomic::Ordering::SeqCst);
    assert!(p.sync(&[web.clone(), db.clone()]).is_err());
    assert!(!last_script(&recorder).contains("delete table"));
    // ...and the next sync, with nothing changed since, writes everything again.
    assert_eq!(p.sync(&[web, db]).unwrap(), 2);
    let s = last_script(&recorder);
    assert_eq!(recorder.commands().len(), 3);
    assert!(s.contains("delete table ip rk8s-services"), "{s}");
    assert!(s.contains("goto svc/default/web/tcp/80"), "{s}");
    assert!(s.contains("goto svc/default/db/tcp/80"), "{s}");
}

#[test]
fn later_syncs_touch_only_what_changed() {
    let (mut p, r) = proxy();
    let web = port("web", "10.96.0.10", &["10.244.1.2:8080"], None);
    let db = port("db", "10.96.0.11", &["10.244.1.3:5432"], None);
    p.sync(&[web.clone(), db.clone()]).unwrap();
    // Nothing changed: nothing run.
    assert_eq!(p.sync(&[db.clone(), web.clone()]).unwrap(), 0);
    assert_eq!(r.commands().len(), 1);
    // One endpoint more for web: only web's chain and element.
    let web2 = port(
        "web",
        "10.96.0.10",
        &["10.244.1.2:8080", "10.244.1.4:8080"],
        None,
    );
    assert_eq!(p.sync(&[web2.clone(), db.clone()]).unwrap(), 1);
    let s = last_script(&r);
    assert!(!s.contains("db"), "{s}");
    assert!(!s.contains("delete table"), "{s}");
    assert!(s.contains("mod 2 map"), "{s}");
    // The chain is emptied and refilled in place; its element stays.
    assert!(
        s.contains("flush chain ip rk8s-services svc/default/web/tcp/80"),
        "{s}"
    );
    assert!(!s.contains("element"), "{s}");
    // No endpoints left: the address is rejected instead.
    let empty = port("web", "10.96.0.10", &[], None);
    p.sync(&[empty.clone(), db.clone()]).unwrap();
    let s = last_script(&r);
    assert!(
        s.contains("delete chain ip rk8s-services svc/default/web/tcp/80"),
        "{s}"
    );
    assert!(s.contains("add element ip rk8s-services no-endpoints { 10.96.0.10 . tcp . 80 : goto reject-no-endpoints }"), "{s}");
    // The Service goes: its element goes.
    assert_eq!(p.sync(&[db]).unwrap(), 1);
    assert!(
        last_script(&r)
            .contains("delete element ip rk8s-services no-endpoints { 10.96.0.10 . tcp . 80 }")
    );
}

/// The lines of the first sync's script after the table itself: what `ports` add.
fn added(ports: &[ServicePort]) -> Vec<String> {
    let (mut p, r) = proxy();
    p.sync(ports).unwrap();
    let script = last_script(&r);
    let (_, after) = script.split_once("\n}\n").unwrap();
    after.lines().map(str::to_string).collect()
}

/// A `type: LoadBalancer` Service `lb` (port 80, node port 30080, the two nodes'
/// addresses as ingress) with endpoints on this node (10.244.1.x) and another.
fn load_balancer(external: TrafficPolicy, local: &[&str]) -> ServicePort {
    ServicePort {
        node_port: Some(30080),
        load_balancer_ips: vec![
            "192.168.1.12".parse().unwrap(),
            "192.168.1.11".parse().unwrap(),
        ],
        endpoints: addresses(&["10.244.1.2:8080", "10.244.2.3:8080"]),
        local_endpoints: addresses(local),
        external_policy: external,
        ..ServicePort::new(
            ("default".into(), "lb".into()),
            Protocol::Tcp,
            80,
            "10.96.0.20".parse().unwrap(),
        )
    }
}

#[test]
fn load_balancer_addresses_are_served_like_node_ports() {
    let lines = added(&[load_balancer(TrafficPolicy::Cluster, &["10.244.1.2:8080"])]);
    assert_eq!(
        lines,
        [
            "add chain ip rk8s-services ext/default/lb/tcp/80",
            "add chain ip rk8s-services svc/default/lb/tcp/80",
            "add rule ip rk8s-services ext/default/lb/tcp/80 jump mark-for-masquerade",
            "add rule ip rk8s-services ext/default/lb/tcp/80 goto svc/default/lb/tcp/80",
            "add rule ip rk8s-services svc/default/lb/tcp/80 meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.1.2 . 8080, 1 : 10.244.2.3 . 8080 }",
            "add element ip rk8s-services service-ips { 10.96.0.20 . tcp . 80 : goto svc/default/lb/tcp/80 }",
            "add element ip rk8s-services service-ips { 192.168.1.11 . tcp . 80 : goto ext/default/lb/tcp/80 }",
            "add element ip rk8s-services service-ips { 192.168.1.12 . tcp . 80 : goto ext/default/lb/tcp/80 }",
            "add element ip rk8s-services node-ports { tcp . 30080 : goto ext/default/lb/tcp/80 }",
        ]
    );
}

#[test]
fn external_traffic_policy_local_keeps_the_client_address_and_local_endpoints() {
    let lines = added(&[load_balancer(TrafficPolicy::Local, &["10.244.1.2:8080"])]);
    assert_eq!(
        lines,
        [
            "add chain ip rk8s-services ext/default/lb/tcp/80",
            "add chain ip rk8s-services local/default/lb/tcp/80",
            "add chain ip rk8s-services svc/default/lb/tcp/80",
            // This node's pods and the node itself reach it as through the ClusterIP;
            // anyone else only this node's endpoints, unmasqueraded.
            "add rule ip rk8s-services ext/default/lb/tcp/80 ip saddr 10.244.1.0/24 goto svc/default/lb/tcp/80",
            "add rule ip rk8s-services ext/default/lb/tcp/80 fib saddr type local jump mark-for-masquerade",
            "add rule ip rk8s-services ext/default/lb/tcp/80 fib saddr type local goto svc/default/lb/tcp/80",
            "add rule ip rk8s-services ext/default/lb/tcp/80 goto local/default/lb/tcp/80",
            "add rule ip rk8s-services local/default/lb/tcp/80 meta l4proto tcp dnat ip to numgen random mod 1 map { 0 : 10.244.1.2 . 8080 }",
            "add rule ip rk8s-services svc/default/lb/tcp/80 meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.1.2 . 8080, 1 : 10.244.2.3 . 8080 }",
            // ClusterIP traffic keeps every endpoint.
            "add element ip rk8s-services service-ips { 10.96.0.20 . tcp . 80 : goto svc/default/lb/tcp/80 }",
            "add element ip rk8s-services service-ips { 192.168.1.11 . tcp . 80 : goto ext/default/lb/tcp/80 }",
            "add element ip rk8s-services service-ips { 192.168.1.12 . tcp . 80 : goto ext/default/lb/tcp/80 }",
            "add element ip rk8s-services node-ports { tcp . 30080 : goto ext/default/lb/tcp/80 }",
        ]
    );
    // No endpoint on this node: external traffic is dropped (what falls through the
    // external chain), the node's own and its pods' still served.
    let lines = added(&[load_balancer(TrafficPolicy::Local, &[])]);
    assert!(!lines.iter().any(|l| l.contains("local/")), "{lines:#?}");
    for expected in [
        "add rule ip rk8s-services ext/default/lb/tcp/80 fib saddr type local goto svc/default/lb/tcp/80",
        "add element ip rk8s-services no-endpoints { 192.168.1.11 . tcp . 80 : drop }",
        "add element ip rk8s-services no-endpoints { 192.168.1.12 . tcp . 80 : drop }",
        "add element ip rk8s-services no-endpoint-nodeports { tcp . 30080 : drop }",
        "add element ip rk8s-services service-ips { 10.96.0.20 . tcp . 80 : goto svc/default/lb/tcp/80 }",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected}: {lines:#?}"
        );
    }
    // No endpoint anywhere: every address rejected, nothing else.
    let mut none = load_balancer(TrafficPolicy::Local, &[]);
    none.endpoints.clear();
    assert_eq!(
        added(&[none]),
        [
            "add element ip rk8s-services no-endpoints { 10.96.0.20 . tcp . 80 : goto reject-no-endpoints }",
            "add element ip rk8s-services no-endpoints { 192.168.1.11 . tcp . 80 : goto reject-no-endpoints }",
            "add element ip rk8s-services no-endpoints { 192.168.1.12 . tcp . 80 : goto reject-no-endpoints }",
            "add element ip rk8s-services no-endpoint-nodeports { tcp . 30080 : goto reject-no-endpoints }",
        ]
    );
}

#[test]
fn internal_traffic_policy_local_sends_cluster_ip_traffic_to_this_node_only() {
    let internal = |local: &[&str]| ServicePort {
        endpoints: addresses(&["10.244.1.2:8080", "10.244.2.3:8080"]),
        local_endpoints: addresses(local),
        internal_policy: TrafficPolicy::Local,
        ..port("web", "10.96.0.10", &[], None)
    };
    assert_eq!(
        added(&[internal(&["10.244.1.2:8080"])]),
        [
            "add chain ip rk8s-services local/default/web/tcp/80",
            "add rule ip rk8s-services local/default/web/tcp/80 meta l4proto tcp dnat ip to numgen random mod 1 map { 0 : 10.244.1.2 . 8080 }",
            "add element ip rk8s-services service-ips { 10.96.0.10 . tcp . 80 : goto local/default/web/tcp/80 }",
        ]
    );
    // Endpoints elsewhere only: dropped, not rejected (kube-proxy).
    assert_eq!(
        added(&[internal(&[])]),
        ["add element ip rk8s-services no-endpoints { 10.96.0.10 . tcp . 80 : drop }"]
    );
}

fn sticky(endpoints: &[&str], timeout: u32) -> ServicePort {
    ServicePort {
        affinity_timeout: Some(timeout),
        ..port("web", "10.96.0.10", endpoints, None)
    }
}

#[test]
fn client_ip_affinity_keeps_a_client_on_its_endpoint_for_the_timeout() {
    assert_eq!(
        added(&[sticky(&["10.244.1.2:8080", "10.244.2.3:8080"], 60)]),
        [
            "add set ip rk8s-services aff/default/web/tcp/80/10.244.1.2/8080 { type ipv4_addr; flags dynamic,timeout; timeout 60s; size 65535; }",
            "add set ip rk8s-services aff/default/web/tcp/80/10.244.2.3/8080 { type ipv4_addr; flags dynamic,timeout; timeout 60s; size 65535; }",
            "add chain ip rk8s-services ep/default/web/tcp/80/10.244.1.2/8080",
            "add chain ip rk8s-services ep/default/web/tcp/80/10.244.2.3/8080",
            "add chain ip rk8s-services svc/default/web/tcp/80",
            "add rule ip rk8s-services ep/default/web/tcp/80/10.244.1.2/8080 update @aff/default/web/tcp/80/10.244.1.2/8080 { ip saddr }",
            "add rule ip rk8s-services ep/default/web/tcp/80/10.244.1.2/8080 meta l4proto tcp dnat ip to 10.244.1.2:8080",
            "add rule ip rk8s-services ep/default/web/tcp/80/10.244.2.3/8080 update @aff/default/web/tcp/80/10.244.2.3/8080 { ip saddr }",
            "add rule ip rk8s-services ep/default/web/tcp/80/10.244.2.3/8080 meta l4proto tcp dnat ip to 10.244.2.3:8080",
            "add rule ip rk8s-services svc/default/web/tcp/80 ip saddr @aff/default/web/tcp/80/10.244.1.2/8080 goto ep/default/web/tcp/80/10.244.1.2/8080",
            "add rule ip rk8s-services svc/default/web/tcp/80 ip saddr @aff/default/web/tcp/80/10.244.2.3/8080 goto ep/default/web/tcp/80/10.244.2.3/8080",
            "add rule ip rk8s-services svc/default/web/tcp/80 numgen random mod 2 vmap { 0 : goto ep/default/web/tcp/80/10.244.1.2/8080, 1 : goto ep/default/web/tcp/80/10.244.2.3/8080 }",
            "add element ip rk8s-services service-ips { 10.96.0.10 . tcp . 80 : goto svc/default/web/tcp/80 }",
        ]
    );
}

#[test]
fn affinity_sets_of_endpoints_that_stay_survive_a_change() {
    let (mut p, r) = proxy();
    p.sync(&[sticky(&["10.244.1.2:8080", "10.244.2.3:8080"], 60)])
        .unwrap();
    // 10.244.2.3 goes, 10.244.1.4 comes: only their sets and chains change.
    p.sync(&[sticky(&["10.244.1.2:8080", "10.244.1.4:8080"], 60)])
        .unwrap();
    let s = last_script(&r);
    assert!(
        !s.contains("aff/default/web/tcp/80/10.244.1.2/8080 {"),
        "{s}"
    );
    assert!(
        !s.contains("ep/default/web/tcp/80/10.244.1.2/8080 update"),
        "{s}"
    );
    for expected in [
        "flush chain ip rk8s-services svc/default/web/tcp/80",
        "flush chain ip rk8s-services ep/default/web/tcp/80/10.244.2.3/8080",
        "delete chain ip rk8s-services ep/default/web/tcp/80/10.244.2.3/8080",
        "delete set ip rk8s-services aff/default/web/tcp/80/10.244.2.3/8080",
        "add set ip rk8s-services aff/default/web/tcp/80/10.244.1.4/8080 { type ipv4_addr; flags dynamic,timeout; timeout 60s; size 65535; }",
    ] {
        assert!(s.contains(expected), "{expected}: {s}");
    }
    // Ordered so that nothing in use goes: the chain that names a set is emptied
    // before the set goes.
    let at = |line: &str| s.find(line).unwrap();
    assert!(
        at("flush chain ip rk8s-services svc/") < at("delete set"),
        "{s}"
    );
    // A new timeout: the port's sets (and what names them) go and come back.
    p.sync(&[sticky(&["10.244.1.2:8080", "10.244.1.4:8080"], 30)])
        .unwrap();
    let s = last_script(&r);
    assert!(
        s.contains("delete set ip rk8s-services aff/default/web/tcp/80/10.244.1.2/8080"),
        "{s}"
    );
    assert!(s.contains("timeout 30s"), "{s}");
    assert!(
        s.find("delete chain ip rk8s-services svc/").unwrap() < s.find("delete set").unwrap(),
        "{s}"
    );
}

#[test]
fn an_address_taken_by_another_service_is_left_out() {
    let mut first = load_balancer(TrafficPolicy::Cluster, &[]);
    first.service.1 = "a".into();
    let mut second = load_balancer(TrafficPolicy::Cluster, &[]);
    second.service.1 = "b".into();
    second.cluster_ip = "10.96.0.21".parse().unwrap();
    // A load-balancer address that is another Service's ClusterIP.
    second.load_balancer_ips.push("10.96.0.20".parse().unwrap());
    let lines = added(&[second, first]).join("\n");
    assert!(
        lines.contains("192.168.1.11 . tcp . 80 : goto ext/default/a/tcp/80"),
        "{lines}"
    );
    assert!(
        !lines.contains("192.168.1.11 . tcp . 80 : goto ext/default/b"),
        "{lines}"
    );
    assert!(
        !lines.contains("10.96.0.20 . tcp . 80 : goto ext"),
        "{lines}"
    );
    // Its node port too.
    assert_eq!(lines.matches("tcp . 30080 :").count(), 1, "{lines}");
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
    // A root test, like the integration tests: it fails rather than passing silently
    // when it cannot check anything.
    assert!(
        is_root(),
        "this test needs root: a network namespace and nftables"
    );
    let name = format!("rk8s-proxytest-{}", std::process::id());
    System.run("ip", &["netns", "add", &name], None).unwrap();
    let _ns = Netns(name.clone());
    let mut p = ServiceProxy::new(
        InNetns(name.clone()),
        "rk8sb0",
        "10.244.1.0/24".parse().unwrap(),
    );
    let web = port("web", "10.96.0.10", &["10.244.1.2:8080"], Some(30080));
    let db = port("db", "10.96.0.11", &[], None);
    p.sync(&[web, db.clone()]).unwrap();
    let web2 = port(
        "web",
        "10.96.0.10",
        &["10.244.1.2:8080", "10.244.2.2:8080"],
        Some(30081),
    );
    p.sync(&[web2, db.clone()]).unwrap();
    let listing = InNetns(name.clone())
        .run("nft", &["list", "table", "ip", TABLE], None)
        .unwrap();
    assert!(
        listing.contains("mod 2 map { 0 : 10.244.1.2 . 8080, 1 : 10.244.2.2 . 8080 }"),
        "{listing}"
    );
    assert!(
        listing.contains("tcp . 30081 : goto ext/default/web/tcp/80"),
        "{listing}"
    );
    assert!(!listing.contains("30080"), "{listing}");
    p.sync(std::slice::from_ref(&db)).unwrap();
    let listing = InNetns(name.clone())
        .run("nft", &["list", "table", "ip", TABLE], None)
        .unwrap();
    assert!(!listing.contains("svc/default/web"), "{listing}");
    // Every feature, then every kind of change to it.
    let mut lb = load_balancer(TrafficPolicy::Local, &["10.244.1.2:8080"]);
    lb.affinity_timeout = Some(60);
    let internal = ServicePort {
        local_endpoints: addresses(&["10.244.1.7:8080"]),
        internal_policy: TrafficPolicy::Local,
        ..port(
            "int",
            "10.96.0.12",
            &["10.244.1.7:8080", "10.244.2.7:8080"],
            None,
        )
    };
    p.sync(&[lb.clone(), internal.clone(), db.clone()]).unwrap();
    let listing = InNetns(name.clone())
        .run("nft", &["list", "table", "ip", TABLE], None)
        .unwrap();
    for expected in [
        "192.168.1.11 . tcp . 80 : goto ext/default/lb/tcp/80",
        "update @aff/default/lb/tcp/80/10.244.1.2/8080 { ip saddr }",
        "timeout 1m",
        "size 65535",
        "meta mark set meta mark ^ 0x00004000",
        "masquerade fully-random",
        "goto local/default/lb/tcp/80",
        "10.96.0.12 . tcp . 80 : goto local/default/int/tcp/80",
    ] {
        assert!(listing.contains(expected), "{expected}: {listing}");
    }
    lb.endpoints = addresses(&["10.244.1.2:8080", "10.244.2.9:8080"]);
    p.sync(&[lb.clone(), internal.clone(), db.clone()]).unwrap();
    lb.affinity_timeout = Some(30);
    p.sync(&[lb.clone(), internal.clone(), db.clone()]).unwrap();
    lb.local_endpoints.clear();
    lb.affinity_timeout = None;
    p.sync(&[lb.clone(), db.clone()]).unwrap();
    let listing = InNetns(name.clone())
        .run("nft", &["list", "table", "ip", TABLE], None)
        .unwrap();
    assert!(listing.contains("tcp . 30080 : drop"), "{listing}");
    assert!(!listing.contains("aff/"), "{listing}");
    p.sync(std::slice::from_ref(&db)).unwrap();
    let listing = InNetns(name.clone())
        .run("nft", &["list", "table", "ip", TABLE], None)
        .unwrap();
    assert!(!listing.contains("/lb/"), "{listing}");
    // A restarted agent starts from a clean table again.
    let mut again = ServiceProxy::new(
        InNetns(name.clone()),
        "rk8sb0",
        "10.244.1.0/24".parse().unwrap(),
    );
    again.sync(&[]).unwrap();
    again.remove().unwrap();
    again.remove().unwrap();
}

/// Whether this process runs as root (its effective uid, the second on `Uid:`; the
/// crate links no libc binding to ask `geteuid` directly).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}
