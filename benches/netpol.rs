//! NetworkPolicy benchmark (`make bench`, as root), with real nftables in network
//! namespaces of its own: a node namespace with a bridge, and two pods on it (a
//! server and a client), as a node's pods are attached.
//!
//! - 1,000 policies in 50 namespaces over 2,000 PodPeers, all selecting the server
//!   pod, each allowing a different namespace label (1,000 distinct clauses: the
//!   worst case, nothing shared): full programming time (compile, then the one `nft`
//!   transaction), and the table's size (chains, clauses, sets, elements);
//! - one change → programmed (compile + diff transaction, with the agent's kept
//!   [`Compiler`]), p50/p99 over 100 each: a policy's port, a peer pod's label (a
//!   group gains a member), a namespace's label; and a peer pod's label again with
//!   1,000 policies whose peers are `namespaceSelector: {}` + a podSelector (every
//!   group looks at every namespace);
//! - per connection: TCP connects/s and connect p50/p99 from the client pod to the
//!   server pod, with no policy and with the 1,000 (the client allowed by the
//!   clause the chain holds last, so every new connection walks all of them) —
//!   after checking that br_netfilter is on and that a client no clause allows is
//!   refused (else the figures would be of unfiltered traffic).
//!
//! Prints a table and writes `target/bench/netpol.json`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{ms, percentile, print_rows, write_json};
use rk8s_api::netpol::{self, NAMESPACE_NAME_LABEL, PodInfo, Policy, World};
use rk8s_netoverlay::host::InNetns;
use rk8s_netoverlay::netpol::rules::{Compiler, short_hash};
use rk8s_netoverlay::netpol::{PolicyProxy, Program, compile};
use serde_json::json;

const POLICIES: usize = 1000;
const NAMESPACES: usize = 50;
const PEERS: usize = 2000;
const CHANGES: usize = 100;
const CONNECT_FOR: Duration = Duration::from_secs(3);
/// Connects per measurement at most (fewer than the client's ports).
const MAX_CONNECTS: usize = 20_000;
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 3);

/// Network namespaces, removed (with their tables and links) also on failure.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The node's namespace with a bridge and the server's on it; the client's name.
fn network(tag: &str) -> (Namespaces, String, String, String) {
    let (node, server, client) = (
        format!("rk8s-npb-node-{tag}"),
        format!("rk8s-npb-srv-{tag}"),
        format!("rk8s-npb-cli-{tag}"),
    );
    let mut guard = Namespaces(Vec::new());
    for ns in [&node, &server] {
        ip(&["netns", "add", ns]);
        guard.0.push(ns.clone());
    }
    ip(&["-n", &node, "link", "add", "br0", "type", "bridge"]);
    ip(&[
        "-n",
        &node,
        "addr",
        "add",
        &format!("{GATEWAY}/24"),
        "dev",
        "br0",
    ]);
    ip(&["-n", &node, "link", "set", "br0", "up"]);
    let (ns, addr, end) = (&server, SERVER, "vsrv");
    ip(&[
        "-n", &node, "link", "add", end, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ]);
    ip(&["-n", &node, "link", "set", end, "master", "br0", "up"]);
    ip(&[
        "-n",
        ns,
        "addr",
        "add",
        &format!("{addr}/24"),
        "dev",
        "eth0",
    ]);
    ip(&["-n", ns, "link", "set", "eth0", "up"]);
    ip(&["-n", ns, "link", "set", "lo", "up"]);
    // br_netfilter sees bridged traffic (the agent sets this in its namespace);
    // without it the server's chain is never walked and the figures are void.
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node,
            "sysctl",
            "-qw",
            "net.bridge.bridge-nf-call-iptables=1",
        ])
        .status();
    let on = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node,
            "sysctl",
            "-n",
            "net.bridge.bridge-nf-call-iptables",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
        .unwrap_or(false);
    assert!(
        on,
        "net.bridge.bridge-nf-call-iptables is not 1 in the node's namespace (br_netfilter unavailable)"
    );
    (guard, node, server, client)
}

/// (Re)makes the client pod's namespace `client` on the node's bridge, at
/// [`CLIENT`]: each measurement starts without the last one's TIME_WAIT sockets.
fn attach_client(guard: &mut Namespaces, node: &str, client: &str) {
    if guard.0.iter().any(|n| n == client) {
        ip(&["netns", "delete", client]);
        guard.0.retain(|n| n != client);
    }
    ip(&["netns", "add", client]);
    guard.0.push(client.to_string());
    ip(&[
        "-n", node, "link", "add", "vcli", "type", "veth", "peer", "name", "eth0", "netns", client,
    ]);
    ip(&["-n", node, "link", "set", "vcli", "master", "br0", "up"]);
    ip(&[
        "-n",
        client,
        "addr",
        "add",
        &format!("{CLIENT}/24"),
        "dev",
        "eth0",
    ]);
    ip(&["-n", client, "link", "set", "eth0", "up"]);
    ip(&["-n", client, "link", "set", "lo", "up"]);
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            client,
            "sysctl",
            "-qw",
            "net.ipv4.ip_local_port_range=1024 65000",
        ])
        .status();
    // Until the link is up and the server answers.
    let up = rk8s_netoverlay::netns::run_in(client, || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let to = SocketAddr::from((SERVER, 8080));
            if TcpStream::connect_timeout(&to, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    })
    .unwrap();
    assert!(up, "the server pod never answered");
}

fn policy(i: usize) -> Policy {
    let np: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": format!("p{i}"), "namespace": "srv"},
        "spec": {"podSelector": {"matchLabels": {"app": "server"}}, "ingress": [{
            "from": [{"namespaceSelector": {"matchLabels": {"team": format!("t{i}")}}}],
            "ports": [{"port": 8080}]}]}
    }))
    .unwrap();
    netpol::compile(&np).unwrap()
}

/// Policy `i` allowing pods `app: c{i}` of any namespace (`namespaceSelector: {}`).
fn any_namespace_policy(i: usize) -> Policy {
    let np: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": format!("a{i}"), "namespace": "srv"},
        "spec": {"podSelector": {"matchLabels": {"app": "server"}}, "ingress": [{
            "from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": format!("c{i}")}}}],
            "ports": [{"port": 8080}]}]}
    }))
    .unwrap();
    netpol::compile(&np).unwrap()
}

/// 1,000 policies (or none), 50 namespaces + the server's and client's, 2,000 peers
/// (the two local pods among them); the client's namespace labelled `team: t{client_team}`.
fn world(policies: usize, client_team: usize) -> (World, Vec<PodInfo>) {
    let mut namespaces = BTreeMap::new();
    for n in 0..NAMESPACES {
        namespaces.insert(
            format!("ns{n}"),
            BTreeMap::from([
                (NAMESPACE_NAME_LABEL.to_string(), format!("ns{n}")),
                ("team".to_string(), format!("t{}", n * 20)),
            ]),
        );
    }
    namespaces.insert("srv".into(), BTreeMap::new());
    namespaces.insert(
        "cli".into(),
        BTreeMap::from([("team".to_string(), format!("t{client_team}"))]),
    );
    let mut pods: Vec<PodInfo> = (0..PEERS - 2)
        .map(|i| {
            let offset = u32::try_from(i).unwrap();
            PodInfo::new(
                &format!("ns{}", i % NAMESPACES),
                &format!("pod{i}"),
                Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 251, 0, 0)) + offset),
            )
            .with_labels(&[("app", "peer")])
            .on("other")
        })
        .collect();
    let server = PodInfo::new("srv", "server", SERVER)
        .with_labels(&[("app", "server")])
        .on("node");
    let client = PodInfo::new("cli", "client", CLIENT).on("node");
    pods.push(server.clone());
    pods.push(client.clone());
    pods.push(netpol::kube_dns(GATEWAY, "node"));
    let world = World {
        policies: (0..policies).map(policy).collect(),
        namespaces,
        pods,
    };
    (world, vec![server, client])
}

/// The policy whose clause the server's chain holds last.
fn last_clause_team(program: &Program) -> usize {
    let chain = program.ingress.get(&SERVER).unwrap();
    let rules = &program.chains[chain];
    let last = &rules[rules.len() - 2];
    (0..POLICIES)
        .find(|i| {
            let group = format!("namespaces {{team=t{i}}} pods {{}}");
            last.contains(&format!("@grp/{}", short_hash(&group)))
        })
        .expect("the last clause's policy")
}

fn timed(
    proxy: &mut PolicyProxy,
    compiler: &mut Compiler,
    world: &World,
    local: &[PodInfo],
) -> (Duration, Duration) {
    let began = Instant::now();
    let program = compiler.compile(world, local, GATEWAY);
    let compiled = began.elapsed();
    proxy.sync(program).unwrap();
    (compiled, began.elapsed())
}

/// Connects to the server for [`CONNECT_FOR`]: connects/s and each connect's time.
fn connects(client: &str) -> (f64, Vec<Duration>) {
    rk8s_netoverlay::netns::run_in(client, || {
        let to = SocketAddr::from((SERVER, 8080));
        let mut times = Vec::new();
        let began = Instant::now();
        while began.elapsed() < CONNECT_FOR && times.len() < MAX_CONNECTS {
            let t = Instant::now();
            match TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
                Ok(mut s) => {
                    times.push(t.elapsed());
                    // Lockstep: the client closes first, then waits for the
                    // server's close, so the server's backlog never fills.
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    let _ = std::io::Read::read(&mut s, &mut [0u8; 16]);
                }
                Err(e) => panic!(
                    "connect {} failed after {:?}: {e}",
                    times.len() + 1,
                    began.elapsed()
                ),
            }
        }
        let rate = times.len() as f64 / began.elapsed().as_secs_f64();
        times.sort();
        (rate, times)
    })
    .unwrap()
}

fn main() {
    assert!(
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")),
        "the NetworkPolicy benchmark needs root (network namespaces, nftables)"
    );
    let tag = std::process::id().to_string();
    let (mut guard, node, server, client) = network(&tag);
    // The server: accepts and closes, on its own thread in its namespace.
    let stop = Arc::new(AtomicBool::new(false));
    let listening = {
        let stop = stop.clone();
        let server = server.clone();
        std::thread::spawn(move || {
            rk8s_netoverlay::netns::run_in(&server, move || {
                let l = TcpListener::bind((SERVER, 8080)).unwrap();
                // Blocking accepts: woken by one last connect once `stop` is set.
                while !stop.load(Ordering::Relaxed) {
                    // The client closes first (its ports wait in TIME_WAIT, where
                    // it may reuse them), the server after reading its end.
                    if let Ok((mut s, _)) = l.accept() {
                        let _ = std::io::Read::read(&mut s, &mut [0u8; 16]);
                    }
                }
            })
            .unwrap();
        })
    };
    attach_client(&mut guard, &node, &client);
    let mut rows = Vec::new();
    let mut report = serde_json::Map::new();

    // No policy: the baseline connection cost.
    let mut proxy = PolicyProxy::new(InNetns(node.clone()));
    let (empty, local) = world(0, 0);
    timed(&mut proxy, &mut Compiler::default(), &empty, &local);
    let (rate0, times0) = connects(&client);

    // A client no clause allows is refused: the table is walked.
    let (denied, local) = world(POLICIES, POLICIES + 1);
    proxy.sync(compile(&denied, &local, GATEWAY)).unwrap();
    let refused = rk8s_netoverlay::netns::run_in(&client, || {
        TcpStream::connect_timeout(&SocketAddr::from((SERVER, 8080)), Duration::from_secs(1))
            .err()
            .map(|e| e.kind())
    })
    .unwrap();
    assert!(
        matches!(
            refused,
            Some(std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut)
        ),
        "a client no policy allows was not refused: {refused:?}"
    );

    // 1,000 policies, the client allowed by the last clause.
    let (w, local) = world(POLICIES, 0);
    let team = last_clause_team(&compile(&w, &local, GATEWAY));
    let (w, local) = world(POLICIES, team);
    let mut proxy = PolicyProxy::new(InNetns(node.clone()));
    let mut compiler = Compiler::default();
    let (compiled, full) = timed(&mut proxy, &mut compiler, &w, &local);
    let program = compile(&w, &local, GATEWAY);
    let elements: usize = program.sets.values().map(|s| s.elements.len()).sum();
    rows.push((
        format!("full programming, {POLICIES} policies / {PEERS} peers"),
        format!(
            "{:.1} ms (compile {:.1} ms); {} chains, {} clauses, {} sets, {} set elements",
            ms(full),
            ms(compiled),
            program.chains.len(),
            program.clauses(),
            program.sets.len(),
            elements
        ),
    ));
    report.insert(
        "full".into(),
        json!({"ms": ms(full), "compile_ms": ms(compiled), "chains": program.chains.len(),
               "clauses": program.clauses(), "sets": program.sets.len(), "elements": elements}),
    );
    attach_client(&mut guard, &node, &client);
    let (rate1, times1) = connects(&client);

    // One change, three kinds.
    for kind in ["policy port", "pod label", "namespace label"] {
        let mut samples = Vec::with_capacity(CHANGES);
        let mut w = w.clone();
        for n in 0..CHANGES {
            match kind {
                "policy port" => {
                    let mut p = policy(n % POLICIES);
                    if let Some(rules) = p.ingress.as_mut() {
                        rules[0].ports[0].ports =
                            netpol::Ports::Range(9000, 9000 + u16::try_from(n).unwrap());
                    }
                    w.policies[n % POLICIES] = p;
                }
                "pod label" => {
                    // A peer moves into a namespace another group selects.
                    let pod = &mut w.pods[n];
                    pod.namespace = format!("ns{}", (n + 1 + CHANGES) % NAMESPACES);
                }
                _ => {
                    let labels = w
                        .namespaces
                        .get_mut(&format!("ns{}", n % NAMESPACES))
                        .unwrap();
                    labels.insert("team".into(), format!("t{}", (n * 7) % POLICIES));
                }
            }
            samples.push(timed(&mut proxy, &mut compiler, &w, &local).1);
        }
        samples.sort();
        let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
        rows.push((
            format!("one {kind} change → programmed"),
            format!("p50 {:.1} ms, p99 {:.1} ms", ms(p50), ms(p99)),
        ));
        report.insert(
            format!("change_{}", kind.replace(' ', "_")),
            json!({"p50_ms": ms(p50), "p99_ms": ms(p99), "samples": CHANGES}),
        );
    }
    // Peers as `namespaceSelector: {}` + podSelector: a pod's label, with the kept
    // compiler (only the changed namespace is looked at again).
    {
        let (mut w, local) = world(0, 0);
        w.policies = (0..POLICIES).map(any_namespace_policy).collect();
        let mut proxy = PolicyProxy::new(InNetns(node.clone()));
        let mut compiler = Compiler::default();
        let (_, full) = timed(&mut proxy, &mut compiler, &w, &local);
        let mut samples = Vec::with_capacity(CHANGES);
        for n in 0..CHANGES {
            w.pods[n]
                .labels
                .insert("app".into(), format!("c{}", (n * 7) % POLICIES));
            samples.push(timed(&mut proxy, &mut compiler, &w, &local).1);
        }
        samples.sort();
        let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
        rows.push((
            format!("one pod label change → programmed, {POLICIES} namespaceSelector {{}} + podSelector peers"),
            format!("full {:.1} ms; p50 {:.1} ms, p99 {:.1} ms", ms(full), ms(p50), ms(p99)),
        ));
        // The client is no `app: c…` pod: open the server again for the last
        // connect that wakes it.
        proxy.sync(Program::default()).unwrap();
        report.insert(
            "change_pod_label_any_namespace".into(),
            json!({"full_ms": ms(full), "p50_ms": ms(p50), "p99_ms": ms(p99), "samples": CHANGES}),
        );
    }
    // Back to the measured world for the connection cost.
    for (label, rate, times) in [
        ("no policy", rate0, &times0),
        ("1,000 policies selecting the server", rate1, &times1),
    ] {
        let (p50, p99) = (percentile(times, 0.5), percentile(times, 0.99));
        rows.push((
            format!("TCP connects, {label}"),
            format!(
                "{rate:.0}/s, connect p50 {:.0} µs, p99 {:.0} µs",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            ),
        ));
    }
    report.insert(
        "connects".into(),
        json!({
            "no_policy": {"per_s": rate0, "p50_us": percentile(&times0, 0.5).as_secs_f64() * 1e6,
                          "p99_us": percentile(&times0, 0.99).as_secs_f64() * 1e6},
            "policies_1000": {"per_s": rate1, "p50_us": percentile(&times1, 0.5).as_secs_f64() * 1e6,
                              "p99_us": percentile(&times1, 0.99).as_secs_f64() * 1e6},
        }),
    );
    stop.store(true, Ordering::Relaxed);
    let _ = rk8s_netoverlay::netns::run_in(&client, || {
        TcpStream::connect_timeout(&SocketAddr::from((SERVER, 8080)), Duration::from_secs(1))
    });
    let _ = listening.join();
    println!("NetworkPolicy (real nft in network namespaces)\n");
    print_rows(&rows);
    write_json("netpol", &serde_json::Value::Object(report));
}
