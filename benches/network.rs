//! Service proxy benchmark (`make bench`, as root), in a network namespace of its own:
//!
//! - the first sync of 1,000 Services × 10 endpoints (the whole table, one `nft`
//!   transaction) and the kernel memory it costs (slab before/after, as `/proc/meminfo`
//!   reports it);
//! - one endpoint change among those 1,000 Services (one Service's chain and element,
//!   one transaction): p50/p99 over 100 changes;
//! - the same change with 10 Services (the floor: starting `nft` itself);
//! - 100 pods attached to a bridge network one after another (namespace, veth pair,
//!   address, routes: netlink) and detached again, in a namespace of their own: ms
//!   per attach and per detach (mean, p50/p99);
//!
//! and end to end, with one `rk8s-server` and two real nodes in network namespaces:
//!
//! - Service programming latency: an EndpointSlice write acknowledged by the API → the
//!   new address in the rules of both nodes (p50/p99 over 20 writes);
//! - 1,000 Services × 10 endpoints on the nodes: from the last write to all rules on
//!   both nodes, then one endpoint change among them, and the node agent's peak RSS;
//! - HTTP request latency from a pod to a pod on the same node and on the other node
//!   (a new connection per request, busybox httpd; p50/p99 over 200).
//!
//! Prints a table and writes `target/bench/network.json`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddrV4};

use futures_util::StreamExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ms, peak_rss_mib, percentile, print_rows, write_json};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use rk8s_netoverlay::Protocol;
use rk8s_netoverlay::host::InNetns;
use rk8s_netoverlay::network::netns_name;
use rk8s_netoverlay::services::{ServicePort, ServiceProxy};
use rk8s_netoverlay::{Network, NetworkConfig};
use serde_json::json;
use support::apiserver::Server;
use support::netns::{NodeNetwork, in_netns};
use support::node::{eventually, eventually_within, images, two_nodes_in_namespaces};

const CHANGES: usize = 100;
const WRITES: usize = 20;
const SERVICES: usize = 1000;
const REQUESTS: usize = 200;
const PODS: usize = 100;

/// The namespace, removed (with its table) also when the benchmark fails.
struct Netns(String);

impl Netns {
    /// Makes the network namespace `name`.
    fn add(name: &str) -> Netns {
        let made = Command::new("ip").args(["netns", "add", name]).status();
        assert!(made.is_ok_and(|s| s.success()), "ip netns add {name}");
        Netns(name.to_string())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

fn services(count: u32, endpoints: u32, generation: u32) -> Vec<ServicePort> {
    (0..count)
        .map(|s| ServicePort {
            endpoints: (0..endpoints)
                .map(|e| {
                    let ip = u32::from(Ipv4Addr::new(10, 244, 0, 0)) + s * 16 + e + generation;
                    SocketAddrV4::new(Ipv4Addr::from(ip), 8080)
                })
                .collect(),
            ..ServicePort::new(
                ("bench".into(), format!("svc-{s}")),
                Protocol::Tcp,
                80,
                Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + s + 1),
            )
        })
        .collect()
}

fn slab_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// p50/p99 of `CHANGES` single-endpoint changes with `count` Services programmed.
fn changes(proxy: &mut ServiceProxy, count: u32) -> (Duration, Duration) {
    let mut ports = services(count, 10, 0);
    let mut times = Vec::new();
    for i in 0..CHANGES {
        let target = &mut ports[i % count as usize];
        let last = target.endpoints.len() - 1;
        let ip = u32::from(*target.endpoints[last].ip()) + 1000;
        target.endpoints[last] = SocketAddrV4::new(Ipv4Addr::from(ip + i as u32), 8080);
        let started = Instant::now();
        assert_eq!(proxy.sync(&ports).unwrap(), 1, "one Service port changed");
        times.push(started.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// The proxy alone in a namespace of its own.
fn micro() -> (Vec<(String, String)>, serde_json::Value) {
    let name = format!("rk8s-bench-net-{}", std::process::id());
    let _ns = Netns::add(&name);
    let cidr = "10.244.0.0/24".parse().unwrap();

    let slab_before = slab_kib();
    let mut big = ServiceProxy::new(InNetns(name.clone()), "rk8sbench0", cidr);
    let started = Instant::now();
    big.sync(&services(1000, 10, 0)).unwrap();
    let full = started.elapsed();
    let slab = slab_kib().saturating_sub(slab_before);
    let (big_p50, big_p99) = changes(&mut big, 1000);

    let mut small = ServiceProxy::new(InNetns(name.clone()), "rk8sbench0", cidr);
    small.sync(&services(10, 10, 0)).unwrap();
    let (small_p50, small_p99) = changes(&mut small, 10);

    let rows = vec![
        (
            "first sync, 1,000 Services × 10 endpoints".to_string(),
            format!("{:.1} ms", ms(full)),
        ),
        (
            "kernel slab growth for them".to_string(),
            format!("{:.1} MiB", slab as f64 / 1024.0),
        ),
        (
            "one endpoint change among 1,000 Services (p50 / p99)".to_string(),
            format!("{:.2} / {:.2} ms", ms(big_p50), ms(big_p99)),
        ),
        (
            "one endpoint change among 10 Services (p50 / p99)".to_string(),
            format!("{:.2} / {:.2} ms", ms(small_p50), ms(small_p99)),
        ),
    ];
    let json = json!({
        "full_sync_1000x10_ms": ms(full),
        "slab_growth_kib": slab,
        "change_among_1000": {"p50_ms": ms(big_p50), "p99_ms": ms(big_p99)},
        "change_among_10": {"p50_ms": ms(small_p50), "p99_ms": ms(small_p99)},
    });
    (rows, json)
}

/// The pods' namespaces, removed also when the benchmark fails.
struct PodNamespaces(Vec<String>);

impl Drop for PodNamespaces {
    fn drop(&mut self) {
        for owner in &self.0 {
            let _ = rk8s_netoverlay::netns::delete(&netns_name(owner));
        }
    }
}

/// `PODS` pods attached to a bridge network one after another and detached again; the
/// bridge and the host ends of the pairs in a namespace of their own.
fn pods() -> (Vec<(String, String)>, serde_json::Value) {
    let name = format!("rk8s-bench-pods-{}", std::process::id());
    let _ns = Netns::add(&name);
    let owners: Vec<String> = (0..PODS)
        .map(|i| format!("bench-{}-{i}", std::process::id()))
        .collect();
    let _pods = PodNamespaces(owners.clone());
    let dir = tempfile::tempdir().unwrap();
    let config = NetworkConfig {
        name: "bench".into(),
        bridge: "rk8sbench1".into(),
        subnet: "10.178.0.0/24".parse().unwrap(),
        state_dir: dir.path().to_path_buf(),
        cluster_cidr: None,
    };
    let net = Network::new(config, InNetns(name.clone())).unwrap();
    let timed = |f: &dyn Fn(&str)| -> Vec<Duration> {
        let mut times: Vec<Duration> = owners
            .iter()
            .map(|owner| {
                let started = Instant::now();
                f(owner);
                started.elapsed()
            })
            .collect();
        times.sort();
        times
    };
    let attach = timed(&|owner| {
        net.attach(owner).unwrap();
    });
    let detach = timed(&|owner| net.detach(owner).unwrap());
    net.destroy().unwrap();
    let mean = |t: &[Duration]| ms(t.iter().sum::<Duration>()) / t.len() as f64;
    let row = |what: &str, t: &[Duration]| {
        (
            format!("{what} of {PODS} pods, one after another (mean, p50 / p99)"),
            format!(
                "{:.2} ms, {:.2} / {:.2} ms",
                mean(t),
                ms(percentile(t, 0.5)),
                ms(percentile(t, 0.99))
            ),
        )
    };
    let rows = vec![
        row("network attach", &attach),
        row("network detach", &detach),
    ];
    let json = json!({
        "pods": PODS,
        "attach": {"mean_ms": mean(&attach), "p50_ms": ms(percentile(&attach, 0.5)),
            "p99_ms": ms(percentile(&attach, 0.99))},
        "detach": {"mean_ms": mean(&detach), "p50_ms": ms(percentile(&detach, 0.5)),
            "p99_ms": ms(percentile(&detach, 0.99))},
    });
    (rows, json)
}

fn main() {
    let (mut rows, micro_json) = micro();
    let (pod_rows, pods_json) = pods();
    rows.extend(pod_rows);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (cluster_rows, cluster_json) = runtime.block_on(cluster());
    rows.extend(cluster_rows);
    print_rows(&rows);
    write_json(
        "network",
        &json!({"proxy": micro_json, "pods": pods_json, "cluster": cluster_json}),
    );
}

fn chain_of(ns: &str, service: &str) -> String {
    in_netns(
        ns,
        &[
            "nft",
            "list",
            "chain",
            "ip",
            "rk8s-services",
            &format!("svc/default/{service}/tcp/80"),
        ],
    )
}

/// How long until `ip` is in `service`'s rules on every node (polled every 5 ms, each
/// node in its own thread).
async fn until_in_rules(namespaces: &[String], service: &str, ip: &str) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let waits: Vec<_> = namespaces
        .iter()
        .map(|ns| {
            let (ns, service, ip) = (ns.clone(), service.to_string(), ip.to_string());
            std::thread::spawn(move || {
                while !chain_of(&ns, &service).contains(&ip) {
                    assert!(
                        Instant::now() < deadline,
                        "{ip} never in {service}'s rules on {ns}"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                started.elapsed()
            })
        })
        .collect();
    waits
        .into_iter()
        .map(|w| w.join().unwrap())
        .max()
        .unwrap_or_default()
}

/// The slice of the Service `name` (without a selector: its user writes it).
fn endpoints(name: &str, ips: &[String]) -> EndpointSlice {
    let endpoints: Vec<_> = ips.iter().map(|ip| json!({"addresses": [ip]})).collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))
    .unwrap()
}

fn selectorless(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80}]}
    }))
    .unwrap()
}

/// The pod network namespace holding `ip` (`/run/netns/rk8s-…`).
fn netns_of(ip: &str) -> String {
    std::fs::read_dir("/run/netns")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rk8s-"))
        .find(|n| {
            let out = Command::new("ip")
                .args(["-n", n, "-4", "addr"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).contains(&format!("inet {ip}/"))
        })
        .expect("the client pod's namespace")
}

/// p50/p99 of `REQUESTS` HTTP GETs to `target` from inside namespace `ns`, each on a
/// new connection.
fn requests_from(ns: &str, target: &str) -> (Duration, Duration) {
    let path = format!("/run/netns/{ns}");
    let target: std::net::SocketAddr = target.parse().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut times = Vec::new();
        for _ in 0..REQUESTS {
            let started = Instant::now();
            let mut stream = std::net::TcpStream::connect(target).unwrap();
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).unwrap();
            times.push(started.elapsed());
        }
        times.sort();
        (percentile(&times, 0.5), percentile(&times, 0.99))
    })
    .join()
    .unwrap()
}

async fn cluster() -> (Vec<(String, String)>, serde_json::Value) {
    let busybox = images().join("busybox").display().to_string();
    let mut net = NodeNetwork::new();
    let server = Server::start(&["--address", &net.host_ip()]);
    let admin = server.client().await;
    let (agents, namespaces) = two_nodes_in_namespaces(&server, &mut net, 40).await;
    let post = PostParams::default();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let services: Api<Service> = Api::namespaced(admin.clone(), "default");
    let eps: Api<EndpointSlice> = Api::namespaced(admin.clone(), "default");

    // Programming latency: an EndpointSlice write → the address on both nodes.
    services.create(&post, &selectorless("prog")).await.unwrap();
    eps.create(&post, &endpoints("prog", &["10.244.200.1".into()]))
        .await
        .unwrap();
    let mut latencies = Vec::new();
    for i in 0..WRITES {
        let ip = format!("10.244.201.{}", i + 1);
        let mut e = eps.get("prog").await.unwrap();
        e.endpoints = endpoints("prog", std::slice::from_ref(&ip)).endpoints;
        eps.replace("prog", &post, &e).await.unwrap();
        latencies.push(until_in_rules(&namespaces, "prog", &ip).await);
    }
    latencies.sort();
    let (prog_p50, prog_p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));

    // 1,000 Services × 10 endpoints.
    let started = Instant::now();
    let mut writes = futures_util::stream::iter(0..SERVICES)
        .map(|i| {
            let (services, eps) = (services.clone(), eps.clone());
            async move {
                let name = format!("s{i}");
                services
                    .create(&PostParams::default(), &selectorless(&name))
                    .await
                    .unwrap();
                let ips: Vec<String> = (0..10)
                    .map(|e| format!("10.244.{}.{}", 10 + i / 25, (i % 25) * 10 + e + 1))
                    .collect();
                eps.create(&PostParams::default(), &endpoints(&name, &ips))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16);
    while writes.next().await.is_some() {}
    let written = started.elapsed();
    let last_write = Instant::now();
    for ns in &namespaces {
        eventually_within(
            "1,000 Services in the rules",
            Duration::from_secs(120),
            async || {
                let map = in_netns(
                    ns,
                    &["nft", "list", "map", "ip", "rk8s-services", "service-ips"],
                );
                (map.matches("goto svc/").count() > SERVICES).then_some(())
            },
        )
        .await;
    }
    let all_rules = last_write.elapsed();
    let mut big = Vec::new();
    for i in 0..10 {
        let ip = format!("10.244.202.{}", i + 1);
        let mut e = eps.get("s7").await.unwrap();
        e.endpoints = endpoints("s7", std::slice::from_ref(&ip)).endpoints;
        eps.replace("s7", &post, &e).await.unwrap();
        big.push(until_in_rules(&namespaces, "s7", &ip).await);
    }
    big.sort();
    let big_p50 = percentile(&big, 0.5);
    let agent_rss = peak_rss_mib(agents[0].child.as_ref().unwrap().id());

    // Pod to pod: a client and a server on node a, a server on node b.
    let web = |name: &str, node: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "httpd", "image": busybox, "command":
                    ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]}]}
        }))
        .unwrap()
    };
    for (name, node) in [("here", "a"), ("there", "b"), ("client", "a")] {
        pods.create(&post, &web(name, node)).await.unwrap();
    }
    let mut ips = Vec::new();
    for name in ["here", "there", "client"] {
        ips.push(
            eventually("the pod running", async || {
                let status = pods.get(name).await.ok()?.status?;
                (status.phase.as_deref() == Some("Running")).then_some(status.pod_ip?)
            })
            .await,
        );
    }
    let client_ns = netns_of(&ips[2]);
    // httpd is up once it answers.
    for ip in &ips[..2] {
        let ns = client_ns.clone();
        let target = format!("{ip}:8080");
        eventually("httpd answering", async || {
            let (ns, target) = (ns.clone(), target.clone());
            let path = format!("/run/netns/{ns}");
            std::thread::spawn(move || {
                let file = std::fs::File::open(&path).ok()?;
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
                std::net::TcpStream::connect(target.parse::<std::net::SocketAddr>().ok()?).ok()
            })
            .join()
            .ok()
            .flatten()
            .map(|_| ())
        })
        .await;
    }
    let (same_p50, same_p99) = requests_from(&client_ns, &format!("{}:8080", ips[0]));
    let (across_p50, across_p99) = requests_from(&client_ns, &format!("{}:8080", ips[1]));

    let rows = vec![
        (
            "endpoint write → rules on both nodes (p50 / p99)".to_string(),
            format!("{:.0} / {:.0} ms", ms(prog_p50), ms(prog_p99)),
        ),
        (
            "1,000 Services × 10 endpoints written through the API".to_string(),
            format!("{:.1} s", written.as_secs_f64()),
        ),
        (
            "  last write → all 1,000 in both nodes' rules".to_string(),
            format!("{:.0} ms", ms(all_rules)),
        ),
        (
            "  then one endpoint change → both nodes (p50)".to_string(),
            format!("{:.0} ms", ms(big_p50)),
        ),
        (
            "  node agent peak RSS".to_string(),
            format!("{agent_rss:.0} MiB"),
        ),
        (
            "pod → pod on the same node, HTTP (p50 / p99)".to_string(),
            format!("{:.2} / {:.2} ms", ms(same_p50), ms(same_p99)),
        ),
        (
            "pod → pod on the other node (VXLAN), HTTP (p50 / p99)".to_string(),
            format!("{:.2} / {:.2} ms", ms(across_p50), ms(across_p99)),
        ),
    ];
    let json = json!({
        "programming": {"p50_ms": ms(prog_p50), "p99_ms": ms(prog_p99)},
        "services_1000x10": {"write_s": written.as_secs_f64(), "to_rules_ms": ms(all_rules),
            "change_p50_ms": ms(big_p50), "agent_peak_rss_mib": agent_rss},
        "pod_to_pod": {"same_node": {"p50_ms": ms(same_p50), "p99_ms": ms(same_p99)},
            "across_nodes": {"p50_ms": ms(across_p50), "p99_ms": ms(across_p99)}},
    });
    drop(agents);
    drop(net);
    (rows, json)
}
