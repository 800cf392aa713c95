//! Service proxy benchmark (`make bench`, as root), in a network namespace of its own:
//!
//! - the first sync of 1,000 Services × 10 endpoints (the whole table, one `nft`
//!   transaction) and the kernel memory it costs (slab before/after, as `/proc/meminfo`
//!   reports it);
//! - one endpoint change among those 1,000 Services (one Service's chain and element,
//!   one transaction): p50/p99 over 100 changes;
//! - the same change with 10 Services (the floor: starting `nft` itself).
//!
//! Prints a table and writes `target/bench/network.json`. The end-to-end latencies
//! (endpoint change → rules on every node, pod-to-pod across nodes) are not measured
//! here yet (docs/network.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ms, percentile, print_rows, write_json};
use rk8s_netoverlay::host::{Host, System};
use rk8s_netoverlay::services::{ServicePort, ServiceProxy};
use rk8s_netoverlay::{Protocol, Result};
use serde_json::json;

const CHANGES: usize = 100;

/// Runs commands inside the benchmark's namespace.
struct InNetns(String);

impl Host for InNetns {
    fn run(&self, p: &str, a: &[&str], s: Option<&str>) -> Result<String> {
        let mut args = vec!["netns", "exec", self.0.as_str(), p];
        args.extend_from_slice(a);
        System.run("ip", &args, s)
    }
    fn port_in_use(&self, _: u16, _: bool) -> bool {
        false
    }
    fn sysctl(&self, _: &str, _: &str) -> Result<()> {
        Ok(())
    }
    fn netns_exists(&self, _: &str) -> bool {
        true
    }
}

/// The namespace, removed (with its table) also when the benchmark fails.
struct Netns(String);

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
            service: ("bench".into(), format!("svc-{s}")),
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + s + 1),
            node_port: None,
            endpoints: (0..endpoints)
                .map(|e| {
                    let ip = u32::from(Ipv4Addr::new(10, 244, 0, 0)) + s * 16 + e + generation;
                    SocketAddrV4::new(Ipv4Addr::from(ip), 8080)
                })
                .collect(),
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
        assert_eq!(
            proxy.sync(&ports).unwrap(),
            0,
            "a changed port is no new one"
        );
        times.push(started.elapsed());
    }
    times.sort();
    (percentile(&times, 50.0), percentile(&times, 99.0))
}

fn main() {
    let name = format!("rk8s-bench-net-{}", std::process::id());
    assert!(
        Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success()
    );
    let _ns = Netns(name.clone());
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
    print_rows(&rows);
    write_json(
        "network",
        &json!({
            "full_sync_1000x10_ms": ms(full),
            "slab_growth_kib": slab,
            "change_among_1000": {"p50_ms": ms(big_p50), "p99_ms": ms(big_p99)},
            "change_among_10": {"p50_ms": ms(small_p50), "p99_ms": ms(small_p99)},
        }),
    );
}
