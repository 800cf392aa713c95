//! What a node's NetworkPolicies are in the table: pure, tested on its text. The
//! layout (design in `docs/network.md`, "NetworkPolicy"):
//!
//! - `ingress-pods` / `egress-pods`: verdict maps from an isolated local pod's
//!   address to the chain of its direction; an unisolated direction has no element
//!   and costs one map lookup;
//! - `in/<H>` / `out/<H>`: one chain per distinct set of policies selecting local
//!   pods (`H` hashes their names), holding the deduplicated union of their rules as
//!   `(peer, port)` clauses, ending in `reject`;
//! - `grp/<G>`: the addresses of the pods one peer selector selects (`G` hashes the
//!   selector; shared by every policy that names it), `ipb/<B>`: an `ipBlock` minus
//!   its exceptions as intervals, `np/<proto>/<name>`: `address . port` of every pod
//!   with a container port of that name — for ingress the selected pod's, for egress
//!   the peer's, so one set serves both (`ip daddr . th dport`);
//! - `self`: `(P . P)` for each local pod, which may always reach itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use rk8s_api::netpol::{Direction, Peer, PodInfo, PortMatch, Ports, Protocol, World};

/// The kind of a named set, which fixes its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SetKind {
    /// `ipv4_addr`: a peer selector's members.
    Addresses,
    /// `ipv4_addr` with intervals: an `ipBlock`.
    Intervals,
    /// `ipv4_addr . inet_service`: a named port's pods.
    AddressPorts,
}

impl SetKind {
    /// The body of the set's declaration.
    pub fn declaration(self) -> &'static str {
        match self {
            SetKind::Addresses => "type ipv4_addr;",
            SetKind::Intervals => "type ipv4_addr; flags interval;",
            SetKind::AddressPorts => "type ipv4_addr . inet_service;",
        }
    }
}

/// A named set: its kind, what it stands for (a comment) and its elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// Its type.
    pub kind: SetKind,
    /// What it is (`namespace x pods {pod=a}`), for people reading `nft list`.
    pub comment: String,
    /// Its elements as nft writes them.
    pub elements: BTreeSet<String>,
}

/// Everything the table holds beyond its fixed base chains and maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Program {
    /// Isolated local pod address → the `in/…` chain of its policies.
    pub ingress: BTreeMap<Ipv4Addr, String>,
    /// Isolated local pod address → the `out/…` chain of its policies.
    pub egress: BTreeMap<Ipv4Addr, String>,
    /// Every local pod's addresses.
    pub local: BTreeSet<Ipv4Addr>,
    /// Chains by name, with their rules in order.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Named sets.
    pub sets: BTreeMap<String, Set>,
}

impl Program {
    /// How many clauses (accepting rules) its chains hold, in all.
    pub fn clauses(&self) -> usize {
        self.chains
            .values()
            .map(|r| r.len().saturating_sub(1))
            .sum()
    }
}

/// FNV-1a, 64 bits, as 12 hex digits: short stable names for chains and sets.
pub fn short_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", h >> 16)
}

/// The peer half of a clause.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PeerPart {
    Any,
    Set(String),
}

/// The port half of a clause.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PortPart {
    Any,
    Protocol(Protocol),
    Range(Protocol, u16, u16),
    Named(Protocol, String),
}

impl PortPart {
    fn text(&self) -> String {
        match self {
            PortPart::Any => String::new(),
            PortPart::Protocol(p) => format!("meta l4proto {p} "),
            PortPart::Range(p, a, b) if a == b => format!("meta l4proto {p} th dport {a} "),
            PortPart::Range(p, a, b) => format!("meta l4proto {p} th dport {a}-{b} "),
            PortPart::Named(p, name) => {
                format!(
                    "meta l4proto {p} ip daddr . th dport @{} ",
                    named_set(*p, name)
                )
            }
        }
    }
}

fn named_set(protocol: Protocol, name: &str) -> String {
    format!("np/{protocol}/{name}")
}

/// The text of an address range of an interval set.
fn range_text((a, b): (u32, u32)) -> String {
    if a == b {
        Ipv4Addr::from(a).to_string()
    } else {
        format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b))
    }
}

/// Builds the program: sets are made as clauses name them.
struct Builder<'a> {
    world: &'a World,
    pods: Vec<&'a PodInfo>,
    /// The pods by namespace: a group looks only at the namespaces it selects.
    by_namespace: BTreeMap<&'a str, Vec<&'a PodInfo>>,
    program: Program,
}

impl Builder<'_> {
    fn peer(&mut self, peer: &Peer) -> PeerPart {
        match peer {
            Peer::Pods(group) => {
                let text = group.to_string();
                let name = format!("grp/{}", short_hash(&text));
                if !self.program.sets.contains_key(&name) {
                    let namespaces: Vec<&str> = match (&group.namespace, &group.namespaces) {
                        (_, Some(sel)) => self
                            .world
                            .namespaces
                            .iter()
                            .filter(|(_, labels)| sel.matches(labels))
                            .map(|(name, _)| name.as_str())
                            .collect(),
                        (Some(ns), None) => vec![ns.as_str()],
                        (None, None) => Vec::new(),
                    };
                    let elements = namespaces
                        .iter()
                        .filter_map(|ns| self.by_namespace.get(ns))
                        .flatten()
                        .filter(|p| group.matches(p, &self.world.namespaces))
                        .flat_map(|p| p.ips.iter().map(ToString::to_string))
                        .collect();
                    self.program.sets.insert(
                        name.clone(),
                        Set {
                            kind: SetKind::Addresses,
                            comment: text,
                            elements,
                        },
                    );
                }
                PeerPart::Set(name)
            }
            Peer::Block(block) => {
                let name = format!("ipb/{}", short_hash(&block.text));
                self.program
                    .sets
                    .entry(name.clone())
                    .or_insert_with(|| Set {
                        kind: SetKind::Intervals,
                        comment: block.text.clone(),
                        elements: block.ranges.iter().copied().map(range_text).collect(),
                    });
                PeerPart::Set(name)
            }
        }
    }

    fn port(&mut self, port: &PortMatch) -> PortPart {
        match &port.ports {
            Ports::All => PortPart::Protocol(port.protocol),
            Ports::Range(a, b) => PortPart::Range(port.protocol, *a, *b),
            Ports::Named(name) => {
                let set = named_set(port.protocol, name);
                if !self.program.sets.contains_key(&set) {
                    let elements = self
                        .pods
                        .iter()
                        .flat_map(|p| {
                            let number = p.named_port(name, port.protocol);
                            p.ips
                                .iter()
                                .filter_map(move |ip| number.map(|n| format!("{ip} . {n}")))
                        })
                        .collect();
                    self.program.sets.insert(
                        set,
                        Set {
                            kind: SetKind::AddressPorts,
                            comment: format!("port {name}/{}", port.protocol.api_name()),
                            elements,
                        },
                    );
                }
                PortPart::Named(port.protocol, name.clone())
            }
        }
    }

    /// The chain of `direction` for the policies `keys` (indexes into the world's
    /// policies), made if new; returns its name.
    fn chain(&mut self, direction: Direction, gateway: Ipv4Addr, keys: &[usize]) -> String {
        let world = self.world;
        let names: Vec<String> = keys
            .iter()
            .map(|i| {
                format!(
                    "{}/{}",
                    world.policies[*i].namespace, world.policies[*i].name
                )
            })
            .collect();
        let (prefix, addr) = match direction {
            Direction::Ingress => ("in", "saddr"),
            Direction::Egress => ("out", "daddr"),
        };
        let name = format!("{prefix}/{}", short_hash(&names.join(",")));
        if self.program.chains.contains_key(&name) {
            return name;
        }
        let mut clauses = BTreeSet::new();
        for i in keys {
            for rule in world.policies[*i].rules(direction).into_iter().flatten() {
                let peers: Vec<PeerPart> = match &rule.peers {
                    None => vec![PeerPart::Any],
                    Some(peers) => peers.iter().map(|p| self.peer(p)).collect(),
                };
                let ports: Vec<PortPart> = if rule.ports.is_empty() {
                    vec![PortPart::Any]
                } else {
                    rule.ports.iter().map(|p| self.port(p)).collect()
                };
                for peer in &peers {
                    for port in &ports {
                        clauses.insert((peer.clone(), port.clone()));
                    }
                }
            }
        }
        let mut rules = Vec::with_capacity(clauses.len() + 4);
        if direction == Direction::Egress {
            // The node itself stays reachable (kube leaves it to the plugin); its
            // resolver at the gateway is the virtual kube-dns pod, judged below.
            rules.push(format!("ip daddr != {gateway} fib daddr type local accept"));
            rules.push(format!(
                "ip daddr {gateway} meta l4proto != {{ tcp, udp }} accept"
            ));
            rules.push(format!("ip daddr {gateway} th dport != 53 accept"));
        }
        for (peer, port) in clauses {
            let mut r = String::new();
            if let PeerPart::Set(set) = &peer {
                let _ = write!(r, "ip {addr} @{set} ");
            }
            r.push_str(&port.text());
            r.push_str("accept");
            rules.push(r);
        }
        rules.push(format!(
            "counter reject comment \"{}\"",
            super::comment(&names.join(" "))
        ));
        self.program.chains.insert(name.clone(), rules);
        name
    }
}

/// The program enforcing `world`'s policies on the `local` pods of a node whose pod
/// gateway (where its DNS answers) is `gateway`. `world.pods` are every pod that may
/// be a peer (with the virtual kube-dns pod of this node); local pods missing there
/// count as peers too.
pub fn compile(world: &World, local: &[PodInfo], gateway: Ipv4Addr) -> Program {
    let mut pods: Vec<&PodInfo> = world.pods.iter().collect();
    for p in local {
        if !world
            .pods
            .iter()
            .any(|q| q.namespace == p.namespace && q.name == p.name)
        {
            pods.push(p);
        }
    }
    let mut by_namespace: BTreeMap<&str, Vec<&PodInfo>> = BTreeMap::new();
    for p in &pods {
        by_namespace
            .entry(p.namespace.as_str())
            .or_default()
            .push(p);
    }
    let mut b = Builder {
        world,
        pods,
        by_namespace,
        program: Program::default(),
    };
    for pod in local {
        b.program.local.extend(pod.ips.iter().copied());
        for direction in [Direction::Ingress, Direction::Egress] {
            let keys: Vec<usize> = world
                .policies
                .iter()
                .enumerate()
                .filter(|(_, p)| p.rules(direction).is_some() && p.selects(pod))
                .map(|(i, _)| i)
                .collect();
            if keys.is_empty() {
                continue;
            }
            let chain = b.chain(direction, gateway, &keys);
            let map = match direction {
                Direction::Ingress => &mut b.program.ingress,
                Direction::Egress => &mut b.program.egress,
            };
            for ip in &pod.ips {
                map.insert(*ip, chain.clone());
            }
        }
    }
    b.program
}
