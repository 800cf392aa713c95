//! What one Service port is in the table, laid out as kube-proxy's nftables mode lays
//! it out (`pkg/proxy/nftables/proxier.go`, `syncProxyRules`): its map elements, its
//! chains and rules, and its session-affinity sets. Pure: [`program`] is tested on
//! its text, and the proxy diffs two programs to change only what differs.
//!
//! The chains of the port `NS/NAME/PROTO/PORT`:
//!
//! - `svc/…`: the Cluster-policy endpoints (every node's), picked at random;
//! - `local/…`: the Local-policy endpoints (this node's), picked at random;
//! - `ext/…`: where node-port and load-balancer traffic enters. With
//!   `externalTrafficPolicy: Cluster` it marks the packet for masquerading and goes to
//!   `svc/…`; with `Local` it keeps the client's address and goes to `local/…`, except
//!   for this node's pods and the node itself, which go to `svc/…` as ClusterIP
//!   traffic would (kube-proxy's "short-circuit" rules);
//! - with `sessionAffinity: ClientIP`, one chain `ep/…/IP/PORT` per endpoint that
//!   records the client in the endpoint's set `aff/…/IP/PORT` (with the affinity's
//!   timeout) and DNATs; the policy chains send a client found in an endpoint's set
//!   to that endpoint before picking at random.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::{ServicePort, TrafficPolicy};
use crate::Ipv4Net;

/// The verdict maps a Service port puts elements in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Map {
    /// `address . protocol . port` → the chain that serves it.
    ServiceIps,
    /// `protocol . port` on the node's own addresses → the chain that serves it.
    NodePorts,
    /// `address . protocol . port` with nothing to serve it → reject or drop.
    NoEndpoints,
    /// `protocol . port` on the node's own addresses with nothing to serve it.
    NoEndpointNodePorts,
}

impl Map {
    /// The map's name in the table.
    pub(super) fn name(self) -> &'static str {
        match self {
            Map::ServiceIps => "service-ips",
            Map::NodePorts => "node-ports",
            Map::NoEndpoints => "no-endpoints",
            Map::NoEndpointNodePorts => "no-endpoint-nodeports",
        }
    }
}

/// One Service port's part of the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Program {
    /// Chains by name, with their rules in order.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity sets by name, with their timeout in seconds.
    pub sets: BTreeMap<String, u32>,
    /// Map elements: (map, key) → verdict.
    pub elements: BTreeMap<(Map, String), String>,
}

/// The verdict for an address of a Service port that has nothing to send it to: as
/// kube-proxy, rejected (ICMP host unreachable) while the Service has no endpoint
/// anywhere, silently dropped when it has some but the traffic policy allows none of
/// them from this node.
fn no_endpoints_verdict(has_endpoints: bool) -> &'static str {
    if has_endpoints {
        "drop"
    } else {
        "goto reject-no-endpoints"
    }
}

/// What `port` is in the table of a node whose pods have addresses in `pod_cidr`.
pub(super) fn program(port: &ServicePort, pod_cidr: Ipv4Net) -> Program {
    let mut p = Program::default();
    let base = format!(
        "{}/{}/{}/{}",
        port.service.0, port.service.1, port.protocol, port.port
    );
    let (cluster_chain, local_chain, ext_chain) = (
        format!("svc/{base}"),
        format!("local/{base}"),
        format!("ext/{base}"),
    );
    let proto = port.protocol;
    let target = |ip: Ipv4Addr| format!("{ip} . {proto} . {}", port.port);
    // kube-proxy's CategorizeEndpoints: the Cluster endpoints are non-empty exactly
    // when the Service has a usable endpoint anywhere.
    let has_endpoints = !port.endpoints.is_empty();
    let has_local = !port.local_endpoints.is_empty();
    let external = port.node_port.is_some() || !port.load_balancer_ips.is_empty();
    let internal_local = port.internal_policy == TrafficPolicy::Local;
    let external_local = port.external_policy == TrafficPolicy::Local && external;
    let (internal_chain, has_internal) = if internal_local {
        (&local_chain, has_local)
    } else {
        (&cluster_chain, has_endpoints)
    };
    let has_external = if external_local {
        has_local
    } else {
        has_endpoints
    };
    let nothing = no_endpoints_verdict(has_endpoints).to_string();

    if has_internal {
        p.elements.insert(
            (Map::ServiceIps, target(port.cluster_ip)),
            format!("goto {internal_chain}"),
        );
    } else {
        p.elements
            .insert((Map::NoEndpoints, target(port.cluster_ip)), nothing.clone());
    }
    for ip in &port.load_balancer_ips {
        if has_endpoints {
            p.elements
                .insert((Map::ServiceIps, target(*ip)), format!("goto {ext_chain}"));
        }
        if !has_external {
            p.elements
                .insert((Map::NoEndpoints, target(*ip)), nothing.clone());
        }
    }
    if let Some(np) = port.node_port {
        let key = format!("{proto} . {np}");
        if has_endpoints {
            p.elements
                .insert((Map::NodePorts, key.clone()), format!("goto {ext_chain}"));
        }
        if !has_external {
            p.elements
                .insert((Map::NoEndpointNodePorts, key), nothing.clone());
        }
    }

    // Kept even without external endpoints: this node's pods and the node itself
    // still reach the Service through its external addresses (kube-proxy).
    if has_endpoints && external {
        let rules = if external_local {
            let mut rules = vec![
                format!("ip saddr {pod_cidr} goto {cluster_chain}"),
                "fib saddr type local jump mark-for-masquerade".to_string(),
                format!("fib saddr type local goto {cluster_chain}"),
            ];
            if has_external {
                rules.push(format!("goto {local_chain}"));
            }
            rules
        } else {
            vec![
                "jump mark-for-masquerade".to_string(),
                format!("goto {cluster_chain}"),
            ]
        };
        p.chains.insert(ext_chain, rules);
    }
    let uses_cluster = has_endpoints && (!internal_local || external);
    let uses_local = has_local && (internal_local || external_local);
    if uses_cluster {
        dispatch(&mut p, port, &base, cluster_chain, &port.endpoints);
    }
    if uses_local {
        dispatch(&mut p, port, &base, local_chain, &port.local_endpoints);
    }
    p
}

/// Writes `chain`, which sends a connection to one of `endpoints` evenly at random
/// (and, with session affinity, a known client to the endpoint it had).
fn dispatch(
    p: &mut Program,
    port: &ServicePort,
    base: &str,
    chain: String,
    endpoints: &[SocketAddrV4],
) {
    let proto = port.protocol;
    let n = endpoints.len();
    let Some(timeout) = port.affinity_timeout else {
        let picks: Vec<String> = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{i} : {} . {}", e.ip(), e.port()))
            .collect();
        p.chains.insert(
            chain,
            vec![format!(
                "meta l4proto {proto} dnat ip to numgen random mod {n} map {{ {} }}",
                picks.join(", ")
            )],
        );
        return;
    };
    let mut rules = Vec::new();
    let mut picks = Vec::new();
    for (i, e) in endpoints.iter().enumerate() {
        let suffix = format!("{base}/{}/{}", e.ip(), e.port());
        let (ep_chain, set) = (format!("ep/{suffix}"), format!("aff/{suffix}"));
        rules.push(format!("ip saddr @{set} goto {ep_chain}"));
        picks.push(format!("{i} : goto {ep_chain}"));
        p.chains.insert(
            ep_chain,
            vec![
                format!("update @{set} {{ ip saddr }}"),
                format!("meta l4proto {proto} dnat ip to {e}"),
            ],
        );
        p.sets.insert(set, timeout);
    }
    rules.push(format!(
        "numgen random mod {n} vmap {{ {} }}",
        picks.join(", ")
    ));
    p.chains.insert(chain, rules);
}
