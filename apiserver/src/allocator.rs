//! Services' ClusterIPs and NodePorts, allocated as Kubernetes' Service registry does:
//! a missing one is chosen from the range, a given one is checked (in the range, not
//! held by another Service), and both are held in the store next to the Service —
//! one key per address (`/rk8s/serviceips/10.96.0.10`) and per port
//! (`/rk8s/nodeports/tcp/30080`), valued `namespace/name` — written in the same
//! transaction as the Service, so two Services never get the same one.
//!
//! Deleting a Service deletes its keys in the same transaction. A key whose owner is
//! gone by another path (a namespace deleted in one sweep) or no longer holds it is
//! taken over by the next Service that wants it, as Kubernetes' repair loop frees such
//! leftovers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use rk8s_api::net::Ipv4Net;
use rk8s_api::validation::{FieldError, Reason};
use rk8s_api::{AnyObject, FieldPath};
use rk8s_raftstore::prefix_end;
use rk8s_raftstore::proto::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    request_op,
};

use crate::status::{ApiError, ApiResult};

/// ClusterIP address → `namespace/name`.
pub const SERVICE_IPS_PREFIX: &str = "/rk8s/serviceips/";
/// `protocol/port` → `namespace/name`.
pub const NODE_PORTS_PREFIX: &str = "/rk8s/nodeports/";

/// Where Services' addresses and node ports come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceRanges {
    /// `--service-cluster-ip-range` (default 10.96.0.0/12, as kubeadm's).
    pub cluster_ips: Ipv4Net,
    /// `--service-node-port-range` (default 30000-32767).
    pub node_ports: (u16, u16),
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cluster_ips: Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 12)
                .unwrap_or(Ipv4Net::LOCAL_DEFAULT),
            node_ports: (30000, 32767),
        }
    }
}

/// One thing a Service holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Held {
    /// Its ClusterIP.
    Ip(Ipv4Addr),
    /// A node port: lower-case protocol and port.
    Port(String, u16),
}

impl Held {
    /// Its key in the store.
    pub fn key(&self) -> String {
        match self {
            Held::Ip(ip) => format!("{SERVICE_IPS_PREFIX}{ip}"),
            Held::Port(proto, port) => format!("{NODE_PORTS_PREFIX}{proto}/{port}"),
        }
    }
}

/// What `svc` holds as written: its IPv4 ClusterIP, its node ports and its
/// `healthCheckNodePort` (a TCP port from the same range, as Kubernetes allocates it).
pub fn held(svc: &Service) -> BTreeSet<Held> {
    let mut out = BTreeSet::new();
    let Some(spec) = &svc.spec else { return out };
    if let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    {
        out.insert(Held::Ip(ip));
    }
    for port in spec.ports.iter().flatten() {
        if let Some(np) = port.node_port.and_then(|n| u16::try_from(n).ok())
            && np != 0
        {
            out.insert(Held::Port(protocol(port.protocol.as_deref()), np));
        }
    }
    if let Some(hc) = spec
        .health_check_node_port
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
    {
        out.insert(Held::Port(HEALTH_CHECK_PROTOCOL.into(), hc));
    }
    out
}

/// The protocol a `healthCheckNodePort` is held under (an HTTP port).
const HEALTH_CHECK_PROTOCOL: &str = "tcp";

/// Whether a Service needs a `healthCheckNodePort`: a `LoadBalancer` with
/// `externalTrafficPolicy: Local` (Kubernetes' `NeedsHealthCheck`).
fn needs_health_check(kind: &str, external_traffic_policy: Option<&str>) -> bool {
    kind == "LoadBalancer" && external_traffic_policy == Some("Local")
}

fn protocol(p: Option<&str>) -> String {
    p.unwrap_or("TCP").to_ascii_lowercase()
}

/// `namespace/name`: how the allocation keys name their Service.
pub fn owner(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default()
    )
}

/// A key of the allocation space as the store has it.
#[derive(Clone, Debug)]
pub struct Taken {
    /// `namespace/name` of the holder.
    pub owner: String,
    /// The key's mod revision (to take it over only if unchanged).
    pub revision: i64,
}

/// What a write of a Service adds to its transaction.
#[derive(Debug, Default)]
pub struct Plan {
    /// Conditions: every newly held key is still free (or still the leftover it was).
    pub compares: Vec<Compare>,
    /// Puts of newly held keys and deletes of released ones.
    pub ops: Vec<RequestOp>,
}

/// Fills in `new`'s missing ClusterIP and node ports and checks the given ones against
/// `taken` (the allocation keys in the store); `old` is the Service being replaced.
/// `live(owner, held)` says whether another Service still holds something (a key
/// that fails it is a leftover and may be taken over).
pub fn plan(
    ranges: &ServiceRanges,
    new: &mut Service,
    old: Option<&Service>,
    taken: &BTreeMap<String, Taken>,
    live: &dyn Fn(&str, &Held) -> bool,
) -> ApiResult<Plan> {
    let me = owner(new);
    let before = old.map(held).unwrap_or_default();
    let mut errors = Vec::new();
    let mut chosen = BTreeSet::new();
    // Free for this Service: not taken by another of its own fields in this write (a
    // healthCheckNodePort that is one of its TCP node ports, kube's "provided port is
    // already allocated"), and it holds it already or nobody (alive) does.
    let free = |item: &Held, chosen: &BTreeSet<Held>| {
        if chosen.contains(item) {
            return false;
        }
        if before.contains(item) {
            return true;
        }
        match taken.get(&item.key()) {
            None => true,
            Some(t) => (t.owner == me && old.is_none()) || !live(&t.owner, item),
        }
    };
    let invalid = |path: &str, value: String, detail: String| FieldError {
        path: FieldPath::parse(path),
        reason: Reason::Invalid { value, detail },
    };
    let Some(spec) = new.spec.as_mut() else {
        return Ok(Plan::default());
    };
    let kind = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let given = spec.cluster_ip.clone().unwrap_or_default();
    if kind != "ExternalName" && given != "None" {
        let range = ranges.cluster_ips;
        let usable =
            |ip: Ipv4Addr| range.contains(ip) && ip != range.network() && ip != range.broadcast();
        let ip = if given.is_empty() {
            // Index n is the address network + 1 + n (network and broadcast excluded).
            let usable = range.size().saturating_sub(2);
            let found = dynamic_order(usable, ip_static_band(range.size()))
                .filter_map(|n| range.nth(u32::try_from(n + 1).ok()?))
                .find(|ip| free(&Held::Ip(*ip), &chosen));
            Some(found.ok_or_else(|| full(format!("a serviceIP: range {range}")))?)
        } else {
            match given.parse::<Ipv4Addr>() {
                Ok(ip) if !usable(ip) => {
                    errors.push(invalid(
                        "spec.clusterIPs",
                        ip.to_string(),
                        format!(
                            "failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {range}"
                        ),
                    ));
                    None
                }
                Ok(ip) if !free(&Held::Ip(ip), &chosen) => {
                    errors.push(invalid(
                        "spec.clusterIPs",
                        ip.to_string(),
                        format!("failed to allocate IP {ip}: provided IP is already allocated"),
                    ));
                    None
                }
                Ok(ip) => Some(ip),
                Err(_) => {
                    errors.push(invalid(
                        "spec.clusterIPs",
                        given.clone(),
                        "only IPv4 service addresses are supported".into(),
                    ));
                    None
                }
            }
        };
        if let Some(ip) = ip {
            chosen.insert(Held::Ip(ip));
            spec.cluster_ip = Some(ip.to_string());
            spec.cluster_ips = Some(vec![ip.to_string()]);
            spec.ip_families = Some(vec!["IPv4".into()]);
            spec.ip_family_policy
                .get_or_insert_with(|| "SingleStack".into());
        }
    } else if given == "None" {
        spec.cluster_ips = Some(vec!["None".into()]);
    }
    let (low, high) = ranges.node_ports;
    // The lowest free port of the range above its static band, then within it.
    let next_port = |proto: &str, chosen: &BTreeSet<Held>| {
        let size = u64::from(high.saturating_sub(low)) + 1;
        dynamic_order(size, port_static_band(size))
            .filter_map(|n| low.checked_add(u16::try_from(n).ok()?))
            .map(|p| Held::Port(proto.to_string(), p))
            .find(|item| free(item, chosen))
    };
    // A port given in the range and free, or the reason it cannot be had.
    let given_port = |proto: &str, np: i32, chosen: &BTreeSet<Held>| {
        let item = u16::try_from(np)
            .ok()
            .filter(|p| (low..=high).contains(p))
            .map(|p| Held::Port(proto.to_string(), p));
        match item {
            Some(item) if free(&item, chosen) => Ok(item),
            Some(_) => Err("provided port is already allocated".to_string()),
            None => Err(format!(
                "provided port is not in the valid range. The range of valid ports is {low}-{high}"
            )),
        }
    };
    // `allocateLoadBalancerNodePorts: false`: a load balancer gets only the node
    // ports it names (Kubernetes).
    let allocate = kind == "NodePort"
        || (kind == "LoadBalancer" && spec.allocate_load_balancer_node_ports != Some(false));
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
        for (i, port) in spec.ports.iter_mut().flatten().enumerate() {
            let proto = protocol(port.protocol.as_deref());
            match port.node_port.filter(|n| *n != 0) {
                Some(np) => match given_port(&proto, np, &chosen) {
                    Ok(item) => {
                        chosen.insert(item);
                    }
                    Err(problem) => errors.push(invalid(
                        &format!("spec.ports[{i}].nodePort"),
                        np.to_string(),
                        problem,
                    )),
                },
                None if !allocate => {}
                None => {
                    let Some(item) = next_port(&proto, &chosen) else {
                        return Err(full(format!("a nodePort: range {low}-{high}")));
                    };
                    if let Held::Port(_, p) = &item {
                        port.node_port = Some(i32::from(*p));
                    }
                    chosen.insert(item);
                }
            }
        }
    }
    if needs_health_check(&kind, spec.external_traffic_policy.as_deref()) {
        match spec.health_check_node_port.filter(|n| *n != 0) {
            Some(hc) => match given_port(HEALTH_CHECK_PROTOCOL, hc, &chosen) {
                Ok(item) => {
                    chosen.insert(item);
                }
                Err(problem) => {
                    errors.push(invalid("spec.healthCheckNodePort", hc.to_string(), problem))
                }
            },
            None => {
                let Some(item) = next_port(HEALTH_CHECK_PROTOCOL, &chosen) else {
                    return Err(full(format!("a healthCheckNodePort: range {low}-{high}")));
                };
                if let Held::Port(_, p) = &item {
                    spec.health_check_node_port = Some(i32::from(*p));
                }
                chosen.insert(item);
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            &AnyObject::Service(Box::new(new.clone())).kind(),
            new.metadata.name.as_deref().unwrap_or_default(),
            &errors,
        ));
    }
    let mut plan = Plan::default();
    for item in chosen.iter().filter(|i| !before.contains(i)) {
        let key = item.key();
        let (target, number) = match taken.get(&key) {
            Some(t) => (CompareTarget::Mod, t.revision),
            None => (CompareTarget::Create, 0),
        };
        plan.compares.push(Compare {
            key: key.clone().into_bytes(),
            target: target as i32,
            result: CompareResult::Equal as i32,
            number,
            value: Vec::new(),
        });
        plan.ops.push(RequestOp {
            request: Some(request_op::Request::Put(PutRequest {
                key: key.into_bytes(),
                value: me.clone().into_bytes().into(),
                ..Default::default()
            })),
        });
    }
    for item in before.difference(&chosen) {
        if taken.get(&item.key()).is_some_and(|t| t.owner == me) {
            plan.ops.push(release(item));
        }
    }
    Ok(plan)
}

/// The order in which a range of `size` values is searched for a free one when the
/// Service gives none: the values above the static band first, the band last. The
/// band is left to Services that ask for a value (`clusterIP: 10.96.0.10`,
/// `nodePort: 30080`), so a manifest that names one finds it free (Kubernetes'
/// `ServiceIPStaticSubrange` and `ServiceNodePortStaticSubrange`; Kubernetes picks at
/// random within each part, rk8s the lowest free value).
fn dynamic_order(size: u64, band: u64) -> impl Iterator<Item = u64> {
    let band = band.min(size);
    (band..size).chain(0..band)
}

/// The static band of a Service CIDR of `size` addresses: `min(max(16, size/16), 256)`,
/// none for a CIDR of at most 16 (kube-apiserver's ipallocator `calculateRangeOffset`).
fn ip_static_band(size: u64) -> u64 {
    static_band(size, 16, 256)
}

/// The static band of a node port range of `size` ports: `min(max(16, size/32), 128)`,
/// none for a range of at most 16 (kube-apiserver's portallocator
/// `calculateRangeOffset`): 30000-30085 of the default range.
fn port_static_band(size: u64) -> u64 {
    static_band(size, 32, 128)
}

fn static_band(size: u64, step: u64, max: u64) -> u64 {
    const MIN: u64 = 16;
    if size <= MIN {
        return 0;
    }
    (size / step).clamp(MIN, max)
}

/// 500 for a range with nothing left, as Kubernetes' allocators answer.
fn full(what: String) -> ApiError {
    ApiError::new(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        format!("failed to allocate {what} is full"),
    )
}

/// The ops that release what a deleted Service held (the keys still naming it).
pub fn release_all(svc: &Service, taken: &BTreeMap<String, Taken>) -> Vec<RequestOp> {
    let me = owner(svc);
    held(svc)
        .iter()
        .filter(|item| taken.get(&item.key()).is_some_and(|t| t.owner == me))
        .map(release)
        .collect()
}

fn release(item: &Held) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::DeleteRange(DeleteRangeRequest {
            key: item.key().into_bytes(),
            range_end: Vec::new(),
        })),
    }
}

/// The range requests that read the allocation keys.
pub fn ranges_to_read() -> [RangeRequest; 2] {
    [SERVICE_IPS_PREFIX, NODE_PORTS_PREFIX].map(|p| RangeRequest {
        key: p.as_bytes().to_vec(),
        range_end: prefix_end(p.as_bytes()),
        ..Default::default()
    })
}

/// A Service's `type`, `ClusterIP` when unset.
fn type_of(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

/// Whether traffic reaches the Service from outside the cluster (Kubernetes'
/// `service.ExternallyAccessible`).
fn externally_accessible(svc: &Service) -> bool {
    match type_of(svc) {
        "NodePort" | "LoadBalancer" => true,
        "ClusterIP" => svc
            .spec
            .as_ref()
            .and_then(|s| s.external_ips.as_ref())
            .is_some_and(|ips| !ips.is_empty()),
        _ => false,
    }
}

/// The node ports a Service gives, `0` left out.
fn node_ports(svc: &Service) -> BTreeSet<i32> {
    svc.spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|p| p.node_port.filter(|n| *n != 0))
        .collect()
}

/// Clears, on update, the fields the old Service's type needed and the new type does
/// not, where the update left them as they were: the ClusterIP of a Service turned
/// `ExternalName`; the node ports, `externalTrafficPolicy`, `loadBalancerClass` and the
/// load balancer's status of one turned `ClusterIP` (kube-apiserver's
/// `dropTypeDependentFields`). A manifest that changes `type: LoadBalancer` to
/// `type: ClusterIP` thus applies: the patch keeps the allocated ports it never
/// named. What is cleared is released by [`plan`].
pub fn drop_type_dependent_fields(new: &mut Service, old: &Service) {
    let (old_type, new_type) = (type_of(old).to_string(), type_of(new).to_string());
    let accessible = (externally_accessible(old), externally_accessible(new));
    let same_node_ports = node_ports(old).is_superset(&node_ports(new));
    let (Some(spec), Some(old_spec)) = (new.spec.as_mut(), old.spec.as_ref()) else {
        return;
    };
    if old_type != "ExternalName" && new_type == "ExternalName" {
        if spec.cluster_ip == old_spec.cluster_ip && spec.cluster_ips == old_spec.cluster_ips {
            spec.cluster_ip = None;
            spec.cluster_ips = None;
        }
        if spec.ip_families == old_spec.ip_families {
            spec.ip_families = None;
        }
        if spec.ip_family_policy == old_spec.ip_family_policy {
            spec.ip_family_policy = None;
        }
    }
    let uses_node_ports = |t: &str| matches!(t, "NodePort" | "LoadBalancer");
    if uses_node_ports(&old_type) && !uses_node_ports(&new_type) && same_node_ports {
        for port in spec.ports.iter_mut().flatten() {
            port.node_port = None;
        }
    }
    let health_check = |t: &str, policy: Option<&String>| {
        t == "LoadBalancer" && policy.is_some_and(|p| p == "Local")
    };
    if health_check(&old_type, old_spec.external_traffic_policy.as_ref())
        && !health_check(&new_type, spec.external_traffic_policy.as_ref())
        && spec.health_check_node_port == old_spec.health_check_node_port
    {
        spec.health_check_node_port = None;
    }
    if old_type == "LoadBalancer" && new_type != "LoadBalancer" {
        if spec.allocate_load_balancer_node_ports.is_some()
            && spec.allocate_load_balancer_node_ports == old_spec.allocate_load_balancer_node_ports
        {
            spec.allocate_load_balancer_node_ports = None;
        }
        if spec.load_balancer_class == old_spec.load_balancer_class {
            spec.load_balancer_class = None;
        }
    }
    if accessible == (true, false)
        && spec.external_traffic_policy == old_spec.external_traffic_policy
    {
        spec.external_traffic_policy = None;
    }
    if new_type != "LoadBalancer"
        && let Some(status) = new.status.as_mut()
        && status.load_balancer.is_some()
    {
        status.load_balancer = Some(Default::default());
    }
}

/// Keeps, on update, what the old Service had allocated and the new one leaves out
/// (a PUT without `clusterIP`, a changed port list keeping its ports), as Kubernetes'
/// registry does; node ports only while the type still has them, the
/// `healthCheckNodePort` while the Service still needs one.
pub fn keep_allocated(new: &mut Service, old: &Service) {
    let (Some(spec), Some(old_spec)) = (new.spec.as_mut(), old.spec.as_ref()) else {
        return;
    };
    let kind = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    if kind != "ExternalName" && spec.cluster_ip.as_deref().is_none_or(str::is_empty) {
        spec.cluster_ip = old_spec.cluster_ip.clone();
        spec.cluster_ips = old_spec.cluster_ips.clone();
    }
    if needs_health_check(&kind, spec.external_traffic_policy.as_deref())
        && needs_health_check(
            old_spec.type_.as_deref().unwrap_or("ClusterIP"),
            old_spec.external_traffic_policy.as_deref(),
        )
        && spec.health_check_node_port.is_none_or(|n| n == 0)
    {
        spec.health_check_node_port = old_spec.health_check_node_port;
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
        for port in spec.ports.iter_mut().flatten() {
            if port.node_port.is_some_and(|n| n != 0) {
                continue;
            }
            port.node_port = old_spec
                .ports
                .iter()
                .flatten()
                .find(|o| {
                    o.port == port.port
                        && protocol(o.protocol.as_deref()) == protocol(port.protocol.as_deref())
                })
                .and_then(|o| o.node_port);
        }
    }
}

#[cfg(test)]
mod tests;
