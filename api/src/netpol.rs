//! NetworkPolicy semantics, shared by the API server (which projects pods into the
//! peers nodes see) and the node (which compiles them into nftables): a
//! `networking.k8s.io/v1` NetworkPolicy compiled into selectors, peers and ports, the
//! pods as policies see them ([`PodInfo`]), and [`reachable`], the reference model
//! every enforcement is tested against.
//!
//! The rules, from kube's `staging/src/k8s.io/api/networking/v1/types.go` and the
//! e2e tests in `test/e2e/network/netpol/`:
//!
//! - a pod is isolated for a direction iff a policy of its namespace selects it with
//!   that direction in `policyTypes`; what is allowed is the union of the selecting
//!   policies' rules (no order, no deny), and a connection between pods needs the
//!   source's egress and the destination's ingress;
//! - a rule's `ports` AND its peers; absent or empty `ports`/`from`/`to` means all;
//! - `podSelector` alone selects in the policy's namespace, `namespaceSelector` alone
//!   every pod of the matching namespaces, both together their AND; `ipBlock` stands
//!   alone and matches pod addresses too, its `except` only within that peer;
//! - a named port resolves on the destination pod's `containers[].ports[].name`;
//! - traffic from the destination's own node is always allowed (kubelet probes), and
//!   a pod always reaches itself;
//! - hostNetwork, address-less and finished pods are neither targets nor peers.
//!
//! ```
//! use rk8s_api::netpol::{self, Endpoint, PodInfo, Protocol, World};
//!
//! let deny: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_str(
//!     r#"{"metadata":{"name":"deny","namespace":"x"},"spec":{"podSelector":{},"policyTypes":["Ingress"]}}"#,
//! ).unwrap();
//! let a = PodInfo::new("x", "a", "10.244.1.2".parse().unwrap());
//! let b = PodInfo::new("x", "b", "10.244.1.3".parse().unwrap());
//! let world = World {
//!     policies: vec![netpol::compile(&deny).unwrap()],
//!     pods: vec![a.clone(), b.clone()],
//!     ..World::default()
//! };
//! assert!(!netpol::reachable(&world, Endpoint::Pod(&a), Endpoint::Pod(&b), Protocol::Tcp, 80));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_core::{Expression, SelectorExt};

/// The label every Namespace carries with its own name (kube's
/// `v1.LabelMetadataName`), set by the API server on every write.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Labels of a pod or namespace.
pub type Labels = BTreeMap<String, String>;

/// A transport protocol a policy port names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP, the default.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP: never matches TCP (two e2e cases).
    Sctp,
}

impl Protocol {
    /// `TCP`, `UDP` or `SCTP` as the API writes them.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Its name in nftables (`tcp`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// Its name as the API writes it (`TCP`).
    pub fn api_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A container port with a name, which policies may name instead of a number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamedPort {
    /// `containers[].ports[].name`.
    pub name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// `containerPort`.
    pub port: u16,
}

/// A pod as NetworkPolicy sees it: only pods that may be targets or peers (not
/// hostNetwork, not finished, with an IPv4 address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// Its IPv4 addresses.
    pub ips: Vec<Ipv4Addr>,
    /// Its named container ports.
    pub ports: Vec<NamedPort>,
    /// The node it runs on.
    pub node: Option<String>,
}

impl PodInfo {
    /// Pod `namespace/name` at `ip`, without labels, ports or node.
    pub fn new(namespace: &str, name: &str, ip: Ipv4Addr) -> Self {
        PodInfo {
            namespace: namespace.to_string(),
            name: name.to_string(),
            ips: vec![ip],
            ..PodInfo::default()
        }
    }

    /// With `labels`.
    pub fn with_labels(mut self, labels: &[(&str, &str)]) -> Self {
        self.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    /// With a named port.
    pub fn with_port(mut self, name: &str, protocol: Protocol, port: u16) -> Self {
        self.ports.push(NamedPort {
            name: name.to_string(),
            protocol,
            port,
        });
        self
    }

    /// On `node`.
    pub fn on(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    /// The port named `name` for `protocol`, if the pod has one.
    pub fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name == name && p.protocol == protocol)
            .map(|p| p.port)
    }
}

/// The virtual pod that stands for the cluster DNS at a node's gateway address: the
/// node's resolver answers there, and a policy allowing egress to kube-dns (namespace
/// `kube-system`, `k8s-app: kube-dns`, CoreDNS' port names `dns` 53/UDP and `dns-tcp`
/// 53/TCP) reaches it, while a default-deny egress policy blocks it, as in Kubernetes.
pub fn kube_dns(gateway: Ipv4Addr, node: &str) -> PodInfo {
    PodInfo::new("kube-system", &format!("kube-dns@{node}"), gateway)
        .with_labels(&[("k8s-app", "kube-dns")])
        .with_port("dns", Protocol::Udp, 53)
        .with_port("dns-tcp", Protocol::Tcp, 53)
        .on(node)
}

/// What NetworkPolicy sees of `pod`: `None` for hostNetwork pods, finished ones
/// (Succeeded, Failed) and ones without an IPv4 address yet (kube-router's
/// `isNetPolActionable`).
pub fn pod_info(pod: &Pod) -> Option<PodInfo> {
    let spec = pod.spec.as_ref()?;
    if spec.host_network == Some(true) || is_terminal(pod) {
        return None;
    }
    let ips = pod_ips(pod);
    if ips.is_empty() {
        return None;
    }
    Some(PodInfo {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        ips,
        ports: named_ports(pod),
        node: spec.node_name.clone(),
    })
}

/// Whether the pod has finished (phase Succeeded or Failed).
pub fn is_terminal(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// The pod's IPv4 addresses (`status.podIPs`, or `status.podIP`).
pub fn pod_ips(pod: &Pod) -> Vec<Ipv4Addr> {
    let Some(status) = &pod.status else {
        return Vec::new();
    };
    let mut ips: Vec<Ipv4Addr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.ip.parse().ok())
        .collect();
    if ips.is_empty()
        && let Some(ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok())
    {
        ips.push(ip);
    }
    ips
}

/// The named ports of the pod's containers and of its sidecars (init containers with
/// `restartPolicy: Always`, which keep running and serve: kube's `podutil.FindPort`
/// searches them too); other init containers' ports are not served.
pub fn named_ports(pod: &Pod) -> Vec<NamedPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let mut ports: Vec<NamedPort> = spec
        .containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let name = p.name.clone().filter(|n| !n.is_empty())?;
            let protocol = Protocol::parse(p.protocol.as_deref().unwrap_or("TCP"))?;
            let port = u16::try_from(p.container_port).ok()?;
            Some(NamedPort {
                name,
                protocol,
                port,
            })
        })
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

/// A label selector in canonical form (expressions sorted and deduplicated), so
/// that equal selectors written differently compare, hash and print the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sel(Vec<Expression>);

impl Sel {
    /// The selector that selects everything.
    pub fn all() -> Self {
        Sel(Vec::new())
    }

    /// From an API `LabelSelector` (already validated by the API server).
    pub fn from_label_selector(sel: &LabelSelector) -> Result<Self, CompileError> {
        let parsed = kube_core::Selector::try_from(sel.clone())
            .map_err(|e| CompileError::Selector(e.to_string()))?;
        let mut exprs: Vec<Expression> = parsed.into_iter().collect();
        exprs.sort();
        exprs.dedup();
        Ok(Sel(exprs))
    }

    /// Whether `labels` match.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|e| e.matches(labels))
    }

    /// Whether it selects everything.
    pub fn selects_all(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Sel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// A NetworkPolicy that cannot be compiled (the API server validates them, so only a
/// policy written around validation gets here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A label selector that kube-core refuses.
    #[error("invalid label selector: {0}")]
    Selector(String),
    /// An `ipBlock` CIDR that is not one.
    #[error("invalid CIDR {0:?}")]
    Cidr(String),
    /// A port protocol other than TCP, UDP and SCTP.
    #[error("unsupported protocol {0:?}")]
    Protocol(String),
    /// A port number out of range.
    #[error("invalid port {0}")]
    Port(i32),
    /// A port name that is no IANA service name (it would be spliced into nft's
    /// script: only validated names get there).
    #[error("invalid port name {0:?}: {1}")]
    PortName(String, String),
}

/// A selector of peer pods: the pods matching `pods` in the policy's own namespace
/// (`namespace`), or in every namespace matching `namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    /// The policy's namespace when the peer has no `namespaceSelector`.
    pub namespace: Option<String>,
    /// The `namespaceSelector`, if any.
    pub namespaces: Option<Sel>,
    /// The `podSelector` (everything when absent).
    pub pods: Sel,
}

impl Group {
    /// Whether `pod` is a member, given every namespace's labels.
    pub fn matches(&self, pod: &PodInfo, namespaces: &BTreeMap<String, Labels>) -> bool {
        let namespace_ok = match (&self.namespace, &self.namespaces) {
            (_, Some(sel)) => namespaces
                .get(&pod.namespace)
                .is_some_and(|labels| sel.matches(labels)),
            (Some(ns), None) => *ns == pod.namespace,
            (None, None) => false,
        };
        namespace_ok && self.pods.matches(&pod.labels)
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.namespace, &self.namespaces) {
            (_, Some(ns)) => write!(f, "namespaces {{{ns}}} pods {{{}}}", self.pods),
            (Some(ns), None) => write!(f, "namespace {ns} pods {{{}}}", self.pods),
            (None, None) => write!(f, "nothing"),
        }
    }
}

/// An `ipBlock`: its CIDR minus its exceptions, as disjoint inclusive ranges of
/// addresses (IPv6 blocks match no IPv4 address: empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Block {
    /// The block as the policy writes it (`10.0.0.0/8 except 10.1.0.0/16`).
    pub text: String,
    /// Sorted, disjoint, inclusive `(first, last)` address ranges.
    pub ranges: Vec<(u32, u32)>,
}

impl Block {
    /// Whether `ip` is in the block and in none of its exceptions.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        self.ranges.iter().any(|(a, b)| (*a..=*b).contains(&ip))
    }
}

/// A CIDR as an inclusive range; `Ok(None)` for IPv6.
fn cidr_range(cidr: &str) -> Result<Option<(u32, u32)>, CompileError> {
    let bad = || CompileError::Cidr(cidr.to_string());
    let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
    if addr.contains(':') {
        return Ok(None);
    }
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let prefix: u32 = prefix.parse().map_err(|_| bad())?;
    if prefix > 32 {
        return Err(bad());
    }
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    let first = u32::from(addr) & mask;
    Ok(Some((first, first | !mask)))
}

/// `ranges` minus `hole`, both inclusive.
fn subtract(ranges: Vec<(u32, u32)>, hole: (u32, u32)) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for (a, b) in ranges {
        if hole.1 < a || hole.0 > b {
            out.push((a, b));
            continue;
        }
        if hole.0 > a {
            out.push((a, hole.0 - 1));
        }
        if hole.1 < b {
            out.push((hole.1 + 1, b));
        }
    }
    out
}

/// Compiles an `ipBlock`: its CIDR minus every exception (which validation keeps
/// strict subsets; one that is not removes what it overlaps).
pub fn block(b: &IPBlock) -> Result<Block, CompileError> {
    let mut text = b.cidr.clone();
    let mut ranges: Vec<(u32, u32)> = cidr_range(&b.cidr)?.into_iter().collect();
    for e in b.except.iter().flatten() {
        text.push_str(&format!(" except {e}"));
        if let Some(hole) = cidr_range(e)? {
            ranges = subtract(ranges, hole);
        }
    }
    Ok(Block { text, ranges })
}

/// One peer of a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    /// Pods by selectors.
    Pods(Group),
    /// Addresses by `ipBlock`.
    Block(Block),
}

/// Which destination ports a rule's port entry allows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ports {
    /// Every port of the protocol (`port` absent).
    All,
    /// `port` to `endPort` (or `port` alone), inclusive.
    Range(u16, u16),
    /// The destination pod's container port of this name and protocol.
    Named(String),
}

/// One entry of a rule's `ports`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortMatch {
    /// Its protocol (TCP when the policy does not say).
    pub protocol: Protocol,
    /// Its ports.
    pub ports: Ports,
}

impl PortMatch {
    /// Whether `protocol`/`port` on the destination `to` (for a named port: its
    /// container ports; an address outside the cluster has none) is allowed.
    pub fn matches(&self, to: Option<&PodInfo>, protocol: Protocol, port: u16) -> bool {
        if self.protocol != protocol {
            return false;
        }
        match &self.ports {
            Ports::All => true,
            Ports::Range(a, b) => (*a..=*b).contains(&port),
            Ports::Named(name) => to.and_then(|p| p.named_port(name, protocol)) == Some(port),
        }
    }
}

/// One ingress or egress rule: a connection is allowed when its destination port
/// matches one of `ports` (or `ports` is empty) AND its other end one of `peers`
/// (or `peers` is `None`: every address).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    /// The ports; empty = all.
    pub ports: Vec<PortMatch>,
    /// The peers; `None` = all.
    pub peers: Option<Vec<Peer>>,
}

/// A NetworkPolicy compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Which pods of its namespace it selects.
    pub pods: Sel,
    /// Its ingress rules when it isolates for ingress (`Some(vec![])` = deny all).
    pub ingress: Option<Vec<Rule>>,
    /// Its egress rules when it isolates for egress.
    pub egress: Option<Vec<Rule>>,
}

impl Policy {
    /// Whether it selects `pod`.
    pub fn selects(&self, pod: &PodInfo) -> bool {
        self.namespace == pod.namespace && self.pods.matches(&pod.labels)
    }

    /// Its rules for `direction`, if it isolates for it.
    pub fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// Ingress (to the selected pod) or egress (from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// Connections to the pod.
    Ingress,
    /// Connections from the pod.
    Egress,
}

fn peer(namespace: &str, p: &NetworkPolicyPeer) -> Result<Peer, CompileError> {
    if let Some(b) = &p.ip_block {
        return Ok(Peer::Block(block(b)?));
    }
    let pods = match &p.pod_selector {
        Some(s) => Sel::from_label_selector(s)?,
        None => Sel::all(),
    };
    Ok(Peer::Pods(match &p.namespace_selector {
        Some(s) => Group {
            namespace: None,
            namespaces: Some(Sel::from_label_selector(s)?),
            pods,
        },
        None => Group {
            namespace: Some(namespace.to_string()),
            namespaces: None,
            pods,
        },
    }))
}

fn port_match(p: &NetworkPolicyPort) -> Result<PortMatch, CompileError> {
    let name = p.protocol.as_deref().unwrap_or("TCP");
    let protocol = Protocol::parse(name).ok_or_else(|| CompileError::Protocol(name.into()))?;
    let number = |n: i32| u16::try_from(n).map_err(|_| CompileError::Port(n));
    let ports = match &p.port {
        None => Ports::All,
        Some(IntOrString::Int(n)) => {
            let first = number(*n)?;
            let last = match p.end_port {
                Some(e) => number(e)?.max(first),
                None => first,
            };
            Ports::Range(first, last)
        }
        Some(IntOrString::String(s)) => match s.parse::<i32>() {
            Ok(n) => Ports::Range(number(n)?, number(n)?),
            Err(_) => {
                let errs = crate::names::iana_svc_name(s);
                if !errs.is_empty() {
                    return Err(CompileError::PortName(s.clone(), errs.join(", ")));
                }
                Ports::Named(s.clone())
            }
        },
    };
    Ok(PortMatch { protocol, ports })
}

fn rules<'a, R: 'a>(
    namespace: &str,
    rules: impl Iterator<Item = &'a R>,
    parts: impl Fn(
        &'a R,
    ) -> (
        Option<&'a Vec<NetworkPolicyPort>>,
        Option<&'a Vec<NetworkPolicyPeer>>,
    ),
) -> Result<Vec<Rule>, CompileError> {
    rules
        .map(|r| {
            let (ports, peers) = parts(r);
            let mut ports = ports
                .into_iter()
                .flatten()
                .map(port_match)
                .collect::<Result<Vec<_>, _>>()?;
            ports.sort();
            ports.dedup();
            let peers = match peers.filter(|p| !p.is_empty()) {
                None => None,
                Some(list) => {
                    let mut v = list
                        .iter()
                        .map(|p| peer(namespace, p))
                        .collect::<Result<Vec<_>, _>>()?;
                    v.sort();
                    v.dedup();
                    Some(v)
                }
            };
            Ok(Rule { ports, peers })
        })
        .collect()
}

/// Compiles a (defaulted) NetworkPolicy; a policy without `policyTypes` is treated
/// as the API server defaults it (Ingress, plus Egress when it has egress rules).
pub fn compile(np: &NetworkPolicy) -> Result<Policy, CompileError> {
    let namespace = np.metadata.namespace.clone().unwrap_or_default();
    let name = np.metadata.name.clone().unwrap_or_default();
    let spec = np.spec.clone().unwrap_or_default();
    let pods = match &spec.pod_selector {
        Some(s) => Sel::from_label_selector(s)?,
        None => Sel::all(),
    };
    let types: BTreeSet<String> = match spec.policy_types.as_ref().filter(|t| !t.is_empty()) {
        Some(t) => t.iter().cloned().collect(),
        None => {
            let mut t = BTreeSet::from(["Ingress".to_string()]);
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                t.insert("Egress".to_string());
            }
            t
        }
    };
    let ingress = if types.contains("Ingress") {
        Some(rules(&namespace, spec.ingress.iter().flatten(), |r| {
            (r.ports.as_ref(), r.from.as_ref())
        })?)
    } else {
        None
    };
    let egress = if types.contains("Egress") {
        Some(rules(&namespace, spec.egress.iter().flatten(), |r| {
            (r.ports.as_ref(), r.to.as_ref())
        })?)
    } else {
        None
    };
    Ok(Policy {
        namespace,
        name,
        pods,
        ingress,
        egress,
    })
}

/// Everything policies are judged against: the compiled policies, every
/// namespace's labels and every pod that may be a target or peer.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// The compiled policies.
    pub policies: Vec<Policy>,
    /// Namespace name → labels.
    pub namespaces: BTreeMap<String, Labels>,
    /// The pods (including any virtual [`kube_dns`] pods).
    pub pods: Vec<PodInfo>,
}

/// One end of a connection.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint<'a> {
    /// A pod.
    Pod(&'a PodInfo),
    /// An address outside the pods (another node's address counts as one).
    Outside(Ipv4Addr),
    /// The node of the other end (as a source: the pod's own node).
    OwnNode,
}

/// Whether `peer` covers the endpoint `other`.
pub fn peer_matches(
    peer: &Peer,
    other: Endpoint<'_>,
    namespaces: &BTreeMap<String, Labels>,
) -> bool {
    match (peer, other) {
        (Peer::Pods(g), Endpoint::Pod(p)) => g.matches(p, namespaces),
        (Peer::Block(b), Endpoint::Pod(p)) => p.ips.iter().any(|ip| b.contains(*ip)),
        (Peer::Block(b), Endpoint::Outside(ip)) => b.contains(ip),
        _ => false,
    }
}

/// Whether `rule` allows a connection whose other end is `other`, to `protocol`/
/// `port` on `destination` (the pod itself for ingress, the peer for egress).
pub fn rule_allows(
    rule: &Rule,
    other: Endpoint<'_>,
    destination: Option<&PodInfo>,
    protocol: Protocol,
    port: u16,
    namespaces: &BTreeMap<String, Labels>,
) -> bool {
    let port_ok = rule.ports.is_empty()
        || rule
            .ports
            .iter()
            .any(|p| p.matches(destination, protocol, port));
    let peer_ok = match &rule.peers {
        None => true,
        Some(peers) => peers.iter().any(|p| peer_matches(p, other, namespaces)),
    };
    port_ok && peer_ok
}

/// Whether `pod`'s policies allow the connection in `direction` with `other`: true
/// when no policy isolates it for that direction, else when a rule of one allows it.
pub fn allows(
    world: &World,
    pod: &PodInfo,
    direction: Direction,
    other: Endpoint<'_>,
    protocol: Protocol,
    port: u16,
) -> bool {
    let destination = match (direction, other) {
        (Direction::Ingress, _) => Some(pod),
        (Direction::Egress, Endpoint::Pod(p)) => Some(p),
        (Direction::Egress, _) => None,
    };
    let mut isolated = false;
    for policy in world.policies.iter().filter(|p| p.selects(pod)) {
        let Some(rules) = policy.rules(direction) else {
            continue;
        };
        isolated = true;
        if rules
            .iter()
            .any(|r| rule_allows(r, other, destination, protocol, port, &world.namespaces))
        {
            return true;
        }
    }
    !isolated
}

/// The reference model: whether a new connection from `from` to `to` on `protocol`/
/// `port` is allowed. Both ends must allow it: the source's egress (when it is a
/// pod) and the destination's ingress (when it is a pod). A pod reaches itself;
/// its own node reaches it; a pod reaches its own node (the node is no policy
/// peer, except through the virtual kube-dns pod at its gateway).
pub fn reachable(
    world: &World,
    from: Endpoint<'_>,
    to: Endpoint<'_>,
    protocol: Protocol,
    port: u16,
) -> bool {
    if let (Endpoint::Pod(a), Endpoint::Pod(b)) = (from, to)
        && a.namespace == b.namespace
        && a.name == b.name
    {
        return true;
    }
    let egress = match (from, to) {
        (Endpoint::Pod(_), Endpoint::OwnNode) => true,
        (Endpoint::Pod(p), other) => allows(world, p, Direction::Egress, other, protocol, port),
        _ => true,
    };
    let ingress = match (to, from) {
        (Endpoint::Pod(_), Endpoint::OwnNode) => true,
        (Endpoint::Pod(p), other) => allows(world, p, Direction::Ingress, other, protocol, port),
        _ => true,
    };
    egress && ingress
}

pub mod peer;

#[cfg(test)]
mod tests;
