//! Several nodes on one machine: one network namespace per node, each joined to a
//! bridge on the host by a veth pair, as separate hosts on one link would be. The
//! host side of the bridge is where the control plane listens. Everything is removed
//! on drop (also when the test fails): the namespaces (with whatever the nodes made
//! inside them) and the bridge.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// What `args` prints inside the network namespace `ns` (`ip netns exec`).
pub fn in_netns(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A host bridge and the node namespaces on it.
pub struct NodeNetwork {
    pub bridge: String,
    /// `10.(99 + K).N`: the bridge is `.1`, node `i` is `.(10 + i)`.
    prefix: String,
    pub namespaces: Vec<String>,
    tag: String,
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

impl NodeNetwork {
    /// A bridge with 10.(99 + K).N.1/24 on the host (N from the process id, so test
    /// binaries running side by side do not collide; K counts the networks of this
    /// process, so its tests running side by side do not either).
    pub fn new() -> Self {
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
        let pid = std::process::id();
        let tag = format!("{}{k}", pid % 10_000);
        let prefix = format!("10.{}.{}", 99 + k, 10 + pid % 240);
        let bridge = format!("rk8sh{tag}");
        let network = NodeNetwork {
            bridge: bridge.clone(),
            prefix,
            namespaces: Vec::new(),
            tag,
        };
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", network.host_ip()),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        network
    }

    /// The host's address on the bridge (where the API server listens).
    pub fn host_ip(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// Node `i`'s address.
    pub fn node_ip(&self, i: u32) -> String {
        format!("{}.{}", self.prefix, 10 + i)
    }

    /// Creates node `i`'s namespace, linked to the bridge; returns its name.
    pub fn add_node(&mut self, i: u32) -> String {
        let ns = format!("rk8stest-{}-{i}", self.tag);
        let host_end = format!("rk8sv{}{i}", self.tag);
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        ip(&[
            "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["link", "set", &host_end, "master", &self.bridge, "up"]);
        let address = format!("{}/24", self.node_ip(i));
        ip(&["-n", &ns, "addr", "add", &address, "dev", "eth0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for NodeNetwork {
    fn drop(&mut self) {
        // A namespace's links (veth ends, the node's pod bridge) and nftables tables
        // go with it; the host ends of the veths go with their peers.
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .status();
    }
}
