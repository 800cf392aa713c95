//! What a node's NetworkPolicies are in the table: pure, tested on its text. The
//! layout (design in `docs/network.md`, "NetworkPolicy"):
//!
//! - `ingress-pods` / `egress-pods`: verdict maps from an isolated local pod's
//!   address to the chain of its direction; an unisolated direction has no element
//!   and costs one map lookup;
//! - `in/<H>` / `out/<H>`: one chain per distinct set of policies selecting local
//!   pods (`H` hashes their sorted names), holding the deduplicated union of their rules as
//!   `(peer, port)` clauses, ending in `reject`;
//! - `grp/<G>`: the addresses of the pods one peer selector selects (`G` hashes the
//!   selector; shared by every policy that names it), `ipb/<B>`: an `ipBlock` minus
//!   its exceptions as intervals, `np/<proto>/<name>`: `address . port` of every pod
//!   with a container port of that name — for ingress the selected pod's, for egress
//!   the peer's, so one set serves both (`ip daddr . th dport`);
//! - `self`: `(P . P)` for each local pod, which may always reach itself.
//!
//! Names hash user-written text (selectors, CIDRs, policy names) with SHA-256 cut to
//! 128 bits: two different texts never share a chain or set (with a short hash, a
//! namespace could forge a selector whose set is another tenant's and be allowed
//! what that tenant is). A [`Compiler`] kept across syncs remembers each peer
//! group's members per namespace, so one pod event recomputes only the groups whose
//! namespaces include that pod's, and only there.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use rk8s_api::netpol::{
    Direction, Group, Labels, Peer, PodInfo, PortMatch, Ports, Protocol, World,
};
use sha2::{Digest, Sha256};

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

/// SHA-256 cut to 128 bits, as 32 hex digits: stable names for chains and sets
/// that no one can make two texts share (nft allows 255 bytes per name).
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(32);
    for b in digest.iter().take(16) {
        let _ = write!(out, "{b:02x}");
    }
    out
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

/// A peer group's members, by namespace (only namespaces with members).
type Members = BTreeMap<String, BTreeSet<String>>;

/// Compiles programs, remembering between two compiles what a pod event cannot
/// have changed: each peer group's members per namespace. Keep one per node and
/// call [`Compiler::compile`] for every sync; [`compile`] is one without memory.
#[derive(Debug, Default)]
pub struct Compiler {
    /// The namespaces' labels at the last compile (any change forgets every group).
    namespaces: BTreeMap<String, Labels>,
    /// The pods of each namespace at the last compile, sorted.
    pods: BTreeMap<String, Vec<PodInfo>>,
    /// Each group's members at the last compile.
    groups: BTreeMap<Group, Members>,
}

/// The namespaces a group looks at.
fn scope<'w>(group: &'w Group, namespaces: &'w BTreeMap<String, Labels>) -> Vec<&'w str> {
    match (&group.namespace, &group.namespaces) {
        (_, Some(sel)) => namespaces
            .iter()
            .filter(|(_, labels)| sel.matches(labels))
            .map(|(name, _)| name.as_str())
            .collect(),
        (Some(ns), None) => vec![ns.as_str()],
        (None, None) => Vec::new(),
    }
}

/// The members of `group` among `pods` (all of one namespace).
fn members_in(
    group: &Group,
    pods: &[&PodInfo],
    namespaces: &BTreeMap<String, Labels>,
) -> BTreeSet<String> {
    pods.iter()
        .filter(|p| group.matches(p, namespaces))
        .flat_map(|p| p.ips.iter().map(ToString::to_string))
        .collect()
}

/// Builds the program: sets are made as clauses name them.
struct Builder<'a> {
    world: &'a World,
    pods: Vec<&'a PodInfo>,
    /// The pods by namespace (sorted): a group looks only at the namespaces it selects.
    by_namespace: BTreeMap<&'a str, Vec<&'a PodInfo>>,
    /// The namespaces whose pods changed since the cached groups were computed.
    changed: BTreeSet<String>,
    /// Groups' members from the last compile, taken as they are used.
    cached: BTreeMap<Group, Members>,
    /// Groups' members of this compile.
    groups: BTreeMap<Group, Members>,
    program: Program,
}

impl Builder<'_> {
    /// `group`'s members: the cached ones, redone in the namespaces that changed.
    fn members(&mut self, group: &Group) -> Members {
        let world = self.world;
        let in_scope = scope(group, &world.namespaces);
        let found = |ns: &str, by_namespace: &BTreeMap<&str, Vec<&PodInfo>>| {
            by_namespace
                .get(ns)
                .map(|pods| members_in(group, pods, &world.namespaces))
                .unwrap_or_default()
        };
        let mut members = match self.cached.remove(group) {
            Some(mut m) => {
                for ns in &self.changed {
                    m.remove(ns);
                    if in_scope.contains(&ns.as_str()) {
                        let now = found(ns, &self.by_namespace);
                        if !now.is_empty() {
                            m.insert(ns.clone(), now);
                        }
                    }
                }
                m
            }
            None => in_scope
                .iter()
                .map(|ns| (ns.to_string(), found(ns, &self.by_namespace)))
                .filter(|(_, m)| !m.is_empty())
                .collect(),
        };
        members.retain(|_, m| !m.is_empty());
        members
    }

    fn peer(&mut self, peer: &Peer) -> PeerPart {
        match peer {
            Peer::Pods(group) => {
                let text = group.to_string();
                let name = format!("grp/{}", short_hash(&text));
                if !self.program.sets.contains_key(&name) {
                    let members = self.members(group);
                    let elements = members.values().flatten().cloned().collect();
                    self.groups.insert(group.clone(), members);
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
        // Sorted: the name must not depend on the order the policies came in (a
        // store's iteration order changes at a relist).
        let mut names: Vec<String> = keys
            .iter()
            .map(|i| {
                format!(
                    "{}/{}",
                    world.policies[*i].namespace, world.policies[*i].name
                )
            })
            .collect();
        names.sort();
        names.dedup();
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
/// (by name and addresses: a pod made again under its old name is another pod)
/// count as peers too.
pub fn compile(world: &World, local: &[PodInfo], gateway: Ipv4Addr) -> Program {
    Compiler::default().compile(world, local, gateway)
}

impl Compiler {
    /// As [`compile`], reusing what the last compile found of every peer group in
    /// the namespaces whose pods did not change since.
    pub fn compile(&mut self, world: &World, local: &[PodInfo], gateway: Ipv4Addr) -> Program {
        let mut pods: Vec<&PodInfo> = world.pods.iter().collect();
        for p in local {
            if !world
                .pods
                .iter()
                .any(|q| q.namespace == p.namespace && q.name == p.name && q.ips == p.ips)
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
        for list in by_namespace.values_mut() {
            list.sort_by(|a, b| (&a.name, &a.ips).cmp(&(&b.name, &b.ips)));
        }
        let cached = if self.namespaces == world.namespaces {
            std::mem::take(&mut self.groups)
        } else {
            self.namespaces = world.namespaces.clone();
            self.groups.clear();
            BTreeMap::new()
        };
        let mut changed: BTreeSet<String> = self
            .pods
            .keys()
            .filter(|ns| !by_namespace.contains_key(ns.as_str()))
            .cloned()
            .collect();
        for (ns, list) in &by_namespace {
            let same = self.pods.get(*ns).is_some_and(|old| {
                old.len() == list.len() && old.iter().zip(list).all(|(a, b)| a == *b)
            });
            if !same {
                changed.insert(ns.to_string());
                self.pods
                    .insert(ns.to_string(), list.iter().map(|p| (*p).clone()).collect());
            }
        }
        self.pods
            .retain(|ns, _| by_namespace.contains_key(ns.as_str()));
        let mut b = Builder {
            world,
            pods,
            by_namespace,
            changed,
            cached,
            groups: BTreeMap::new(),
            program: Program::default(),
        };
        let program = build(&mut b, local, gateway);
        self.groups = std::mem::take(&mut b.groups);
        program
    }
}

/// The chains and map elements of the `local` pods.
fn build(b: &mut Builder<'_>, local: &[PodInfo], gateway: Ipv4Addr) -> Program {
    let world = b.world;
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
    std::mem::take(&mut b.program)
}
