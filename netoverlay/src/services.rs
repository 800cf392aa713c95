//! The Service proxy of a node, in nftables (the table `ip rk8s-services`), shaped
//! like kube-proxy's nftables mode:
//!
//! - a verdict map `service-ips` from `ClusterIP . protocol . port` to the Service
//!   port's chain, and `node-ports` from `protocol . port` (for the node's own
//!   addresses) to a chain that marks the packet for masquerading first;
//! - one chain per Service port, `svc/NAMESPACE/NAME/PROTOCOL/PORT`, with one rule
//!   that DNATs to an endpoint picked evenly at random
//!   (`numgen random mod N map { 0 : ip . port, … }`);
//! - a `no-endpoints` map whose packets are rejected (host unreachable), as
//!   kube-proxy answers for a Service without ready endpoints;
//! - masquerading of marked packets (node ports) and of pod traffic that a Service
//!   sent back onto the bridge it came from (a pod reaching itself or a neighbour
//!   through a ClusterIP), so replies return through the node.
//!
//! The first [`ServiceProxy::sync`] writes the whole table in one transaction; every
//! later one changes only the chains and map elements of Service ports that changed,
//! again in one transaction, so no packet sees half an update.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::Ipv4Net;
use crate::error::Result;
use crate::host::Host;
use crate::portmap::Protocol;

/// The table of the proxy.
pub const TABLE: &str = "rk8s-services";
/// The packet mark that asks for masquerading (kube-proxy's).
const MASQUERADE_MARK: &str = "0x4000";

/// One port of a Service, as the proxy programs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServicePort {
    /// `namespace`, `name` of the Service.
    pub service: (String, String),
    /// tcp or udp.
    pub protocol: Protocol,
    /// The Service's port.
    pub port: u16,
    /// Its ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// Its node port, if it has one.
    pub node_port: Option<u16>,
    /// The ready endpoints (sorted, so equal sets compare equal).
    pub endpoints: Vec<SocketAddrV4>,
}

impl ServicePort {
    fn chain(&self) -> String {
        format!(
            "svc/{}/{}/{}/{}",
            self.service.0, self.service.1, self.protocol, self.port
        )
    }

    fn node_port_chain(&self) -> String {
        format!(
            "np/{}/{}/{}/{}",
            self.service.0, self.service.1, self.protocol, self.port
        )
    }

    /// Its key among the others: Service and port.
    fn key(&self) -> (String, String, Protocol, u16) {
        (
            self.service.0.clone(),
            self.service.1.clone(),
            self.protocol,
            self.port,
        )
    }
}

type Key = (String, String, Protocol, u16);

/// The proxy of this node: what it has programmed, and the host it programs.
pub struct ServiceProxy {
    host: Box<dyn Host>,
    bridge: String,
    pod_cidr: Ipv4Net,
    programmed: Option<BTreeMap<Key, ServicePort>>,
}

impl std::fmt::Debug for ServiceProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProxy")
            .field("bridge", &self.bridge)
            .field("pod_cidr", &self.pod_cidr)
            .finish_non_exhaustive()
    }
}

impl ServiceProxy {
    /// A proxy for pods on `bridge` with addresses in `pod_cidr`; nothing is written
    /// before the first [`sync`](Self::sync).
    pub fn new(host: impl Host + 'static, bridge: &str, pod_cidr: Ipv4Net) -> Self {
        ServiceProxy {
            host: Box::new(host),
            bridge: bridge.to_string(),
            pod_cidr,
            programmed: None,
        }
    }

    /// Programs exactly `ports`; returns how many Service ports changed.
    pub fn sync(&mut self, ports: &[ServicePort]) -> Result<usize> {
        let wanted: BTreeMap<Key, ServicePort> =
            ports.iter().map(|p| (p.key(), p.clone())).collect();
        let (script, changed) = match &self.programmed {
            None => (self.full(&wanted), wanted.len()),
            Some(old) => changes(old, &wanted),
        };
        if !script.is_empty() {
            self.host.run("nft", &["-f", "-"], Some(&script))?;
        }
        self.programmed = Some(wanted);
        Ok(changed)
    }

    /// The whole table, replacing whatever a previous run left.
    fn full(&self, wanted: &BTreeMap<Key, ServicePort>) -> String {
        let mut s = format!(
            "add table ip {TABLE}\n\
             delete table ip {TABLE}\n\
             table ip {TABLE} {{\n\
             \x20 map service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict; }}\n\
             \x20 map node-ports {{ type inet_proto . inet_service : verdict; }}\n\
             \x20 map no-endpoints {{ type ipv4_addr . inet_proto . inet_service : verdict; }}\n\
             \x20 chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; jump services; }}\n\
             \x20 chain output {{ type nat hook output priority -100; policy accept; jump services; }}\n\
             \x20 chain services {{\n\
             \x20   ip daddr . meta l4proto . th dport vmap @service-ips\n\
             \x20   fib daddr type local meta l4proto . th dport vmap @node-ports\n\
             \x20 }}\n\
             \x20 chain mark-for-masquerade {{ meta mark set meta mark | {MASQUERADE_MARK}; }}\n\
             \x20 chain postrouting {{\n\
             \x20   type nat hook postrouting priority srcnat; policy accept;\n\
             \x20   meta mark & {MASQUERADE_MARK} == {MASQUERADE_MARK} masquerade\n\
             \x20   ct status dnat ip saddr {cidr} oifname \"{bridge}\" masquerade\n\
             \x20 }}\n\
             \x20 chain forward {{ type filter hook forward priority -10; policy accept; ip daddr . meta l4proto . th dport vmap @no-endpoints; }}\n\
             \x20 chain output-filter {{ type filter hook output priority -10; policy accept; ip daddr . meta l4proto . th dport vmap @no-endpoints; }}\n\
             \x20 chain reject-no-endpoints {{ reject with icmp host-unreachable; }}\n\
             }}\n",
            cidr = self.pod_cidr,
            bridge = self.bridge,
        );
        for port in wanted.values() {
            add(&mut s, port);
        }
        s
    }

    /// Removes the proxy's table (the agent's `reset`).
    pub fn remove(&mut self) -> Result<()> {
        self.programmed = None;
        match self
            .host
            .run("nft", &["delete", "table", "ip", TABLE], None)
        {
            Ok(_) => Ok(()),
            Err(crate::Error::Command { stderr, .. }) if stderr.contains("No such file") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The script that turns `old` into `new`, and how many Service ports it touches.
fn changes(old: &BTreeMap<Key, ServicePort>, new: &BTreeMap<Key, ServicePort>) -> (String, usize) {
    let mut s = String::new();
    let mut changed = 0;
    for (key, port) in old {
        match new.get(key) {
            Some(p) if p == port => {}
            _ => {
                changed += 1;
                delete(&mut s, port);
            }
        }
    }
    for (key, port) in new {
        if old.get(key) != Some(port) {
            if !old.contains_key(key) {
                changed += 1;
            }
            add(&mut s, port);
        }
    }
    (s, changed)
}

/// Appends what programs `port`: its chains and map elements.
fn add(s: &mut String, port: &ServicePort) {
    let proto = port.protocol;
    let target = format!("{} . {proto} . {}", port.cluster_ip, port.port);
    if port.endpoints.is_empty() {
        let _ = writeln!(
            s,
            "add element ip {TABLE} no-endpoints {{ {target} : goto reject-no-endpoints }}"
        );
        return;
    }
    let chain = port.chain();
    let picks: Vec<String> = port
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{i} : {} . {}", e.ip(), e.port()))
        .collect();
    let _ = writeln!(s, "add chain ip {TABLE} {chain}");
    let _ = writeln!(
        s,
        "add rule ip {TABLE} {chain} meta l4proto {proto} dnat ip to numgen random mod {} map {{ {} }}",
        port.endpoints.len(),
        picks.join(", ")
    );
    let _ = writeln!(
        s,
        "add element ip {TABLE} service-ips {{ {target} : goto {chain} }}"
    );
    if let Some(np) = port.node_port {
        let np_chain = port.node_port_chain();
        let _ = writeln!(s, "add chain ip {TABLE} {np_chain}");
        let _ = writeln!(s, "add rule ip {TABLE} {np_chain} jump mark-for-masquerade");
        let _ = writeln!(s, "add rule ip {TABLE} {np_chain} goto {chain}");
        let _ = writeln!(
            s,
            "add element ip {TABLE} node-ports {{ {proto} . {np} : goto {np_chain} }}"
        );
    }
}

/// Appends what unprograms `port` (elements first: a chain in use cannot go).
fn delete(s: &mut String, port: &ServicePort) {
    let proto = port.protocol;
    let target = format!("{} . {proto} . {}", port.cluster_ip, port.port);
    if port.endpoints.is_empty() {
        let _ = writeln!(s, "delete element ip {TABLE} no-endpoints {{ {target} }}");
        return;
    }
    let _ = writeln!(s, "delete element ip {TABLE} service-ips {{ {target} }}");
    if let Some(np) = port.node_port {
        let _ = writeln!(
            s,
            "delete element ip {TABLE} node-ports {{ {proto} . {np} }}"
        );
        let _ = writeln!(s, "delete chain ip {TABLE} {}", port.node_port_chain());
    }
    let _ = writeln!(s, "delete chain ip {TABLE} {}", port.chain());
}

#[cfg(test)]
mod tests;
