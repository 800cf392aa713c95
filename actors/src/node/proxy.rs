//! What the node's Service proxy programs, read from Services and their EndpointSlices
//! as kube-proxy reads them: each port of each Service with a ClusterIP, its node
//! port, its load balancer's addresses (`status.loadBalancer.ingress`, `ipMode: VIP`
//! or unset), its traffic policies and session affinity, and its endpoints sorted for
//! each policy as kube-proxy's `CategorizeEndpoints` (`pkg/proxy/topology.go`) does:
//! for `Cluster`, the ready ones of every node, or while none is ready, the serving
//! ones that are terminating (so connections drain during a rollout instead of being
//! refused); for `Local`, the same choice among this node's endpoints alone (an
//! endpoint is this node's when its `nodeName` is). Also the `healthCheckNodePort`s
//! of `externalTrafficPolicy: Local` load balancers, with this node's ready
//! endpoints, for [`super::health_checks`]. A Service's slices are those of its
//! namespace labelled `kubernetes.io/service-name: NAME`, merged ([`slices_by_service`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube::runtime::reflector::Store;
use rk8s_controllers::endpoint_slices::{ADDRESS_TYPE, SERVICE_NAME};
use rk8s_netoverlay::Protocol;
use rk8s_netoverlay::services::{DEFAULT_AFFINITY_TIMEOUT, ServicePort, TrafficPolicy};

use super::health_checks::HealthCheck;

/// Every Service's IPv4 EndpointSlices by `(namespace, Service name)`, the name from
/// the slice's `kubernetes.io/service-name` label (slices without it belong to no
/// Service and are left out, as kube-proxy leaves them). Whoever wrote a slice, the
/// EndpointSlice controller or the user of a Service without a selector, it counts.
pub type SlicesByService = BTreeMap<(String, String), Vec<Arc<EndpointSlice>>>;

/// The reflector's EndpointSlices by Service, read once per sync; each Service's
/// slices in name order.
pub fn slices_by_service(slices: &Store<EndpointSlice>) -> SlicesByService {
    let mut out = SlicesByService::new();
    for slice in slices.state() {
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME))
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        if slice.address_type != ADDRESS_TYPE {
            continue;
        }
        let namespace = slice.metadata.namespace.clone().unwrap_or_default();
        out.entry((namespace, service.clone()))
            .or_default()
            .push(slice);
    }
    for slices in out.values_mut() {
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    }
    out
}

/// `namespace`, `name` of an object.
pub(super) fn key(meta: &kube::api::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// A port's protocol as the proxy knows them (TCP when unset); `None` for others.
fn protocol(p: Option<&str>) -> Option<Protocol> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        _ => None,
    }
}

/// An endpoint's conditions as the API defines their absence: `ready` unset means
/// true, `serving` unset means as `ready`, `terminating` unset means false.
pub(super) struct Conditions {
    /// Ready for new connections.
    pub ready: bool,
    /// Serving, whether terminating or not.
    pub serving: bool,
    /// Its pod is being deleted.
    pub terminating: bool,
}

/// `e`'s conditions.
pub(super) fn conditions(e: &Endpoint) -> Conditions {
    let c = e.conditions.as_ref();
    let ready = c.and_then(|c| c.ready).unwrap_or(true);
    Conditions {
        ready,
        serving: c.and_then(|c| c.serving).unwrap_or(ready),
        terminating: c.and_then(|c| c.terminating).unwrap_or(false),
    }
}

/// `Local` when the policy says so, else `Cluster` (the API's default).
fn policy(p: Option<&str>) -> TrafficPolicy {
    match p {
        Some("Local") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    }
}

/// Whether `svc` is reached through node ports (and so has an external policy).
fn externally_typed(svc: &Service) -> bool {
    matches!(
        svc.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("NodePort" | "LoadBalancer")
    )
}

/// The IPv4 addresses a `type: LoadBalancer` Service's load balancer gives, those the
/// proxy is to capture: kube-proxy leaves out `ipMode: Proxy` ones, whose load
/// balancer delivers to the nodes itself.
fn load_balancer_ips(svc: &Service) -> Vec<Ipv4Addr> {
    if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
        return Vec::new();
    }
    let mut ips: Vec<Ipv4Addr> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter(|i| i.ip_mode.as_deref().is_none_or(|m| m == "VIP"))
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// `sessionAffinity: ClientIP`'s timeout in seconds (Kubernetes' default when unset).
fn affinity_timeout(svc: &Service) -> Option<u32> {
    let spec = svc.spec.as_ref()?;
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return None;
    }
    let given = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| *t > 0);
    Some(given.unwrap_or(DEFAULT_AFFINITY_TIMEOUT))
}

/// The ports of every Service with a ClusterIP, with their endpoints as seen from the
/// node `node`.
pub fn service_ports(
    services: &Store<Service>,
    by_service: &SlicesByService,
    node: &str,
) -> Vec<ServicePort> {
    let mut out = Vec::new();
    for svc in services.state() {
        let Some(spec) = &svc.spec else { continue };
        let Some(cluster_ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let id = key(&svc.metadata);
        let slices = by_service.get(&id).map(Vec::as_slice).unwrap_or_default();
        let external_policy = if externally_typed(&svc) {
            policy(spec.external_traffic_policy.as_deref())
        } else {
            TrafficPolicy::Cluster
        };
        let load_balancer_ips = load_balancer_ips(&svc);
        let affinity_timeout = affinity_timeout(&svc);
        for port in spec.ports.iter().flatten() {
            let (Some(proto), Ok(number)) =
                (protocol(port.protocol.as_deref()), u16::try_from(port.port))
            else {
                continue;
            };
            let (endpoints, local_endpoints) =
                endpoints_of(slices, port.name.as_deref(), proto, node);
            out.push(ServicePort {
                // `nodePort: 0` is none (a load balancer that allocates no node ports
                // may say so), as kube-proxy skips a zero `NodePort()`.
                node_port: port
                    .node_port
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n != 0),
                load_balancer_ips: load_balancer_ips.clone(),
                endpoints,
                local_endpoints,
                internal_policy: policy(spec.internal_traffic_policy.as_deref()),
                external_policy,
                affinity_timeout,
                ..ServicePort::new(id.clone(), proto, number, cluster_ip)
            });
        }
    }
    out
}

/// The endpoints of `slices` for the Service port named `name` (`None`: unnamed) of
/// protocol `proto`, at the port number of each slice's port of that name and
/// protocol, sorted and without duplicates, an endpoint at its first address: those
/// for the `Cluster` policy and those for the `Local` policy of the node `node`.
fn endpoints_of(
    slices: &[Arc<EndpointSlice>],
    name: Option<&str>,
    proto: Protocol,
    node: &str,
) -> (Vec<SocketAddrV4>, Vec<SocketAddrV4>) {
    // Ready, and serving terminating: everywhere, and on this node.
    let mut all = (BTreeSet::new(), BTreeSet::new());
    let mut local = (BTreeSet::new(), BTreeSet::new());
    for slice in slices {
        let Some(number) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| {
                p.name.as_deref().unwrap_or_default() == name.unwrap_or_default()
                    && protocol(p.protocol.as_deref()) == Some(proto)
            })
            .and_then(|p| u16::try_from(p.port?).ok())
        else {
            continue;
        };
        for e in &slice.endpoints {
            let Some(ip) = e.addresses.first().and_then(|a| a.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            let at = SocketAddrV4::new(ip, number);
            let here = e.node_name.as_deref() == Some(node);
            let c = conditions(e);
            for (sets, counts) in [(&mut all, true), (&mut local, here)] {
                if !counts {
                    continue;
                }
                if c.ready {
                    sets.0.insert(at);
                } else if c.serving && c.terminating {
                    sets.1.insert(at);
                }
            }
        }
    }
    let usable = |(ready, terminating): (BTreeSet<SocketAddrV4>, BTreeSet<SocketAddrV4>)| {
        if ready.is_empty() { terminating } else { ready }
            .into_iter()
            .collect()
    };
    (usable(all), usable(local))
}

/// The TCP endpoints of `slices` for the Service port named `name` (`None`:
/// unnamed) that take new connections — the ready ones, else the serving
/// terminating ones — as the Ingress proxy reaches them ([`super::ingress`]).
pub fn tcp_endpoints(slices: &[Arc<EndpointSlice>], name: Option<&str>) -> Vec<SocketAddrV4> {
    endpoints_of(slices, name, Protocol::Tcp, "").0
}

/// The health checks this node answers: one per `type: LoadBalancer` Service with
/// `externalTrafficPolicy: Local` and a `healthCheckNodePort`, with the number of its
/// ready endpoints on the node `node` (kube-proxy's `LocalReadyEndpoints`, an
/// address counted once whatever its ports).
pub fn health_checks(
    services: &Store<Service>,
    by_service: &SlicesByService,
    node: &str,
) -> Vec<HealthCheck> {
    let mut out = Vec::new();
    for svc in services.state() {
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() != Some("LoadBalancer")
            || spec.external_traffic_policy.as_deref() != Some("Local")
        {
            continue;
        }
        let Some(port) = spec
            .health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        else {
            continue;
        };
        let id = key(&svc.metadata);
        let ready: BTreeSet<&str> = by_service
            .get(&id)
            .into_iter()
            .flatten()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.node_name.as_deref() == Some(node) && conditions(e).ready)
            .filter_map(|e| e.addresses.first().map(String::as_str))
            .collect();
        out.push(HealthCheck {
            port,
            service: id,
            local_endpoints: ready.len(),
        });
    }
    out
}

#[cfg(test)]
mod tests;
