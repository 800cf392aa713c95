//! The Service proxy of a node, in nftables (the table `ip rk8s-services`), shaped
//! like kube-proxy's nftables mode:
//!
//! - a verdict map `service-ips` from `address . protocol . port` (ClusterIPs, and
//!   the load balancer's addresses of `type: LoadBalancer` Services) to the Service
//!   port's chain, and `node-ports` from `protocol . port` (for the node's own
//!   addresses) to the port's external chain;
//! - per Service port, chains that DNAT to an endpoint picked evenly at random
//!   (`numgen random mod N map { 0 : ip . port, … }`): every node's endpoints for
//!   `Cluster` traffic policies, this node's for `Local` ones; node-port and
//!   load-balancer traffic is masqueraded under `externalTrafficPolicy: Cluster` and
//!   keeps the client's address under `Local`; `sessionAffinity: ClientIP` keeps a
//!   client on its endpoint through per-endpoint sets with timeouts, which the packet
//!   path updates (`services/rules.rs` has the layout);
//! - `no-endpoints` and `no-endpoint-nodeports` maps, checked for new connections on
//!   the filter hooks: a Service without endpoints is rejected (host unreachable),
//!   one whose traffic policy leaves this node none is dropped, as kube-proxy does;
//! - masquerading of marked packets, as kube-proxy's `kube-postrouting` chain does it
//!   (the mark cleared first, so it does not follow the packet into a VXLAN
//!   encapsulation and get the outer packet masqueraded too; `fully-random` source
//!   ports), and of pod traffic that a Service sent back onto the bridge it came from
//!   (a pod reaching itself or a neighbour through a ClusterIP), so replies return
//!   through the node.
//!
//! The first [`ServiceProxy::sync`] writes the whole table in one transaction; every
//! later one changes only the elements, chains and sets of Service ports that
//! changed, again in one transaction, so no packet sees half an update (and the
//! affinity of clients to endpoints that stay survives it). A transaction that fails
//! leaves the table unknown: the next sync writes the whole table again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::Ipv4Net;
use crate::error::Result;
use crate::host::Host;
use crate::portmap::Protocol;

mod rules;

use rules::{Program, program};

/// The table of the proxy.
pub const TABLE: &str = "rk8s-services";
/// The packet mark that asks for masquerading (kube-proxy's).
const MASQUERADE_MARK: &str = "0x4000";
/// How long a client stays with its endpoint under `sessionAffinity: ClientIP` when
/// the Service does not say (Kubernetes' default `timeoutSeconds`, 3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;
/// The most clients an endpoint's affinity set remembers, which bounds the kernel
/// memory a load balancer open to the world can be made to spend on them. A full set
/// takes no new client; the client is still served (the set's `update` is a rule of
/// its own, before the DNAT), only not kept on its endpoint.
const AFFINITY_SET_SIZE: u32 = 65_535;

/// Which endpoints one kind of traffic may reach (Kubernetes' `internalTrafficPolicy`
/// for ClusterIP traffic, `externalTrafficPolicy` for node ports and load balancers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum TrafficPolicy {
    /// Every node's endpoints.
    #[default]
    Cluster,
    /// Only this node's; external traffic keeps the client's address.
    Local,
}

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
    /// The load balancer's addresses (`status.loadBalancer.ingress`) that answer at
    /// `port` as the ClusterIP does.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// The endpoints for `Cluster` policies, every node's: the ready ones, or while
    /// none is, the serving terminating ones (sorted, so equal sets compare equal).
    /// Empty exactly when the Service has no usable endpoint anywhere.
    pub endpoints: Vec<SocketAddrV4>,
    /// The endpoints for `Local` policies: this node's ready ones, or while none is,
    /// this node's serving terminating ones (sorted).
    pub local_endpoints: Vec<SocketAddrV4>,
    /// `internalTrafficPolicy`: which endpoints ClusterIP traffic reaches.
    pub internal_policy: TrafficPolicy,
    /// `externalTrafficPolicy`: which endpoints node-port and load-balancer traffic
    /// reaches.
    pub external_policy: TrafficPolicy,
    /// `sessionAffinity: ClientIP`: how many seconds a client stays with the endpoint
    /// it reached (`None`: no affinity).
    pub affinity_timeout: Option<u32>,
}

impl ServicePort {
    /// Port `port`/`protocol` of `service` at `cluster_ip`, without node port, load
    /// balancer, endpoints or affinity, with `Cluster` policies.
    pub fn new(
        service: (String, String),
        protocol: Protocol,
        port: u16,
        cluster_ip: Ipv4Addr,
    ) -> Self {
        ServicePort {
            service,
            protocol,
            port,
            cluster_ip,
            node_port: None,
            load_balancer_ips: Vec::new(),
            endpoints: Vec::new(),
            local_endpoints: Vec::new(),
            internal_policy: TrafficPolicy::Cluster,
            external_policy: TrafficPolicy::Cluster,
            affinity_timeout: None,
        }
    }

    /// Its key among the others: Service and port.
    fn key(&self) -> Key {
        (
            self.service.0.clone(),
            self.service.1.clone(),
            self.protocol,
            self.port,
        )
    }
}

type Key = (String, String, Protocol, u16);

/// Gives each address and node port to one Service port only, so that no map has two
/// elements with one key (which would fail the whole transaction): a ClusterIP is
/// its Service's; a load-balancer address or a node port already taken, by a
/// ClusterIP or by a port earlier in `(namespace, name)` order, is left out (the API
/// server gives ClusterIPs and node ports once; a load balancer's addresses are
/// whatever its status says). A port whose ClusterIP another holds is left out.
fn claim_addresses(ports: &[ServicePort]) -> BTreeMap<Key, ServicePort> {
    let mut wanted = BTreeMap::new();
    let mut addresses = BTreeSet::new();
    for p in ports {
        if wanted.contains_key(&p.key()) || !addresses.insert((p.cluster_ip, p.protocol, p.port)) {
            continue;
        }
        wanted.insert(p.key(), p.clone());
    }
    let mut node_ports = BTreeSet::new();
    for p in wanted.values_mut() {
        p.load_balancer_ips.sort();
        p.load_balancer_ips.dedup();
        let (proto, port) = (p.protocol, p.port);
        p.load_balancer_ips
            .retain(|ip| addresses.insert((*ip, proto, port)));
        if let Some(np) = p.node_port
            && !node_ports.insert((proto, np))
        {
            p.node_port = None;
        }
    }
    wanted
}

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
        let wanted = claim_addresses(ports);
        let (script, changed) = match &self.programmed {
            None => (self.full(&wanted), wanted.len()),
            Some(old) => self.changes(old, &wanted),
        };
        if !script.is_empty()
            && let Err(e) = self.host.run("nft", &["-f", "-"], Some(&script))
        {
            // What the kernel holds is unknown now (the table removed from outside, a
            // diff it refused): the next sync rewrites the whole table, as kube-proxy
            // follows a failed sync with a full one.
            self.programmed = None;
            return Err(e);
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
             \x20 map no-endpoint-nodeports {{ type inet_proto . inet_service : verdict; }}\n\
             \x20 chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; jump services; }}\n\
             \x20 chain output {{ type nat hook output priority -100; policy accept; jump services; }}\n\
             \x20 chain services {{\n\
             \x20   ip daddr . meta l4proto . th dport vmap @service-ips\n\
             \x20   fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @node-ports\n\
             \x20 }}\n\
             \x20 chain mark-for-masquerade {{ meta mark set meta mark | {MASQUERADE_MARK}; }}\n\
             \x20 chain masquerading {{\n\
             \x20   meta mark & {MASQUERADE_MARK} == 0 return\n\
             \x20   meta mark set meta mark ^ {MASQUERADE_MARK}\n\
             \x20   masquerade fully-random\n\
             \x20 }}\n\
             \x20 chain postrouting {{\n\
             \x20   type nat hook postrouting priority srcnat; policy accept;\n\
             \x20   jump masquerading\n\
             \x20   ct status dnat ip saddr {cidr} oifname \"{bridge}\" masquerade\n\
             \x20 }}\n\
             \x20 chain endpoints-check {{\n\
             \x20   ip daddr . meta l4proto . th dport vmap @no-endpoints\n\
             \x20   fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports\n\
             \x20 }}\n\
             \x20 chain forward {{ type filter hook forward priority -10; policy accept; ct state new jump endpoints-check; }}\n\
             \x20 chain input {{ type filter hook input priority -10; policy accept; ct state new jump endpoints-check; }}\n\
             \x20 chain output-filter {{ type filter hook output priority -10; policy accept; ct state new jump endpoints-check; }}\n\
             \x20 chain reject-no-endpoints {{ reject with icmp host-unreachable; }}\n\
             }}\n",
            cidr = self.pod_cidr,
            bridge = self.bridge,
        );
        let mut script = Script::default();
        let empty = Program::default();
        for port in wanted.values() {
            script.diff(&empty, &program(port, self.pod_cidr));
        }
        script.write(&mut s);
        s
    }

    /// The script that turns `old` into `new`, and how many Service ports it touches.
    fn changes(
        &self,
        old: &BTreeMap<Key, ServicePort>,
        new: &BTreeMap<Key, ServicePort>,
    ) -> (String, usize) {
        let mut script = Script::default();
        let mut changed = 0;
        let empty = Program::default();
        let keys: BTreeSet<&Key> = old.keys().chain(new.keys()).collect();
        for key in keys {
            let (before, after) = (old.get(key), new.get(key));
            if before == after {
                continue;
            }
            changed += 1;
            let program =
                |p: Option<&ServicePort>| p.map(|p| program(p, self.pod_cidr)).unwrap_or_default();
            let (was, will) = (program(before), program(after));
            let timeout = |p: Option<&ServicePort>| p.and_then(|p| p.affinity_timeout);
            if timeout(before).is_some()
                && timeout(after).is_some()
                && timeout(before) != timeout(after)
            {
                // A set's timeout cannot change in place, nor can a set in use go:
                // everything of the port goes, and comes back with the new timeout.
                script.diff(&was, &empty);
                script.diff(&empty, &will);
            } else {
                script.diff(&was, &will);
            }
        }
        let mut s = String::new();
        script.write(&mut s);
        (s, changed)
    }

    /// Removes the proxy's table (the agent's `reset`).
    pub fn remove(&mut self) -> Result<()> {
        self.programmed = None;
        crate::host::delete_nft_table(self.host.as_ref(), TABLE)
    }
}

/// The commands of one transaction, by phase: an element goes before the chain it
/// names, a chain is emptied before what its rules name goes, and what a rule or an
/// element names exists before it is added.
#[derive(Debug, Default)]
struct Script {
    delete_elements: Vec<String>,
    flush_chains: Vec<String>,
    delete_chains: Vec<String>,
    delete_sets: Vec<String>,
    add_sets: Vec<String>,
    add_chains: Vec<String>,
    add_rules: Vec<String>,
    add_elements: Vec<String>,
}

impl Script {
    /// Adds what turns `old` into `new`: the elements, chains and sets that differ.
    fn diff(&mut self, old: &Program, new: &Program) {
        for ((map, key), verdict) in &old.elements {
            if new.elements.get(&(*map, key.clone())) != Some(verdict) {
                self.delete_elements.push(format!(
                    "delete element ip {TABLE} {} {{ {key} }}",
                    map.name()
                ));
            }
        }
        for (chain, rules) in &old.chains {
            match new.chains.get(chain) {
                Some(r) if r == rules => {}
                still => {
                    self.flush_chains
                        .push(format!("flush chain ip {TABLE} {chain}"));
                    if still.is_none() {
                        self.delete_chains
                            .push(format!("delete chain ip {TABLE} {chain}"));
                    }
                }
            }
        }
        for (set, timeout) in &old.sets {
            if new.sets.get(set) != Some(timeout) {
                self.delete_sets
                    .push(format!("delete set ip {TABLE} {set}"));
            }
        }
        for (set, timeout) in &new.sets {
            if old.sets.get(set) != Some(timeout) {
                self.add_sets.push(format!(
                    "add set ip {TABLE} {set} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; size {AFFINITY_SET_SIZE}; }}"
                ));
            }
        }
        for (chain, rules) in &new.chains {
            match old.chains.get(chain) {
                Some(r) if r == rules => {}
                before => {
                    if before.is_none() {
                        self.add_chains
                            .push(format!("add chain ip {TABLE} {chain}"));
                    }
                    for rule in rules {
                        self.add_rules
                            .push(format!("add rule ip {TABLE} {chain} {rule}"));
                    }
                }
            }
        }
        for ((map, key), verdict) in &new.elements {
            if old.elements.get(&(*map, key.clone())) != Some(verdict) {
                self.add_elements.push(format!(
                    "add element ip {TABLE} {} {{ {key} : {verdict} }}",
                    map.name()
                ));
            }
        }
    }

    /// The commands, phase after phase.
    fn write(self, s: &mut String) {
        for line in [
            self.delete_elements,
            self.flush_chains,
            self.delete_chains,
            self.delete_sets,
            self.add_sets,
            self.add_chains,
            self.add_rules,
            self.add_elements,
        ]
        .into_iter()
        .flatten()
        {
            let _ = writeln!(s, "{line}");
        }
    }
}

#[cfg(test)]
mod tests;
