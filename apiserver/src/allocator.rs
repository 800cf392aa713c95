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

/// What `svc` holds as written: its IPv4 ClusterIP and its node ports.
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
    out
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
    // Free for this Service: it holds it already, or nobody (alive) does.
    let free = |item: &Held, chosen: &BTreeSet<Held>| {
        if before.contains(item) {
            return true;
        }
        if chosen.contains(item) {
            return false;
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
            let found = (1..range.size().saturating_sub(1))
                .filter_map(|n| range.nth(u32::try_from(n).ok()?))
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
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
        let (low, high) = ranges.node_ports;
        for (i, port) in spec.ports.iter_mut().flatten().enumerate() {
            let proto = protocol(port.protocol.as_deref());
            match port.node_port.filter(|n| *n != 0) {
                Some(np) => {
                    let item = u16::try_from(np)
                        .ok()
                        .filter(|p| (low..=high).contains(p))
                        .map(|p| Held::Port(proto, p));
                    let problem = match item {
                        Some(item) if free(&item, &chosen) => {
                            chosen.insert(item);
                            continue;
                        }
                        Some(_) => "provided port is already allocated".to_string(),
                        None => format!(
                            "provided port is not in the valid range. The range of valid ports is {low}-{high}"
                        ),
                    };
                    errors.push(invalid(
                        &format!("spec.ports[{i}].nodePort"),
                        np.to_string(),
                        problem,
                    ));
                }
                None => {
                    let found = (low..=high)
                        .map(|p| Held::Port(proto.clone(), p))
                        .find(|item| free(item, &chosen));
                    let Some(item) = found else {
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
                value: me.clone().into_bytes(),
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

/// Keeps, on update, what the old Service had allocated and the new one leaves out
/// (a PUT without `clusterIP`, a changed port list keeping its ports), as Kubernetes'
/// registry does; node ports only while the type still has them.
pub fn keep_allocated(new: &mut Service, old: &Service) {
    let (Some(spec), Some(old_spec)) = (new.spec.as_mut(), old.spec.as_ref()) else {
        return;
    };
    let kind = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    if kind != "ExternalName" && spec.cluster_ip.as_deref().is_none_or(str::is_empty) {
        spec.cluster_ip = old_spec.cluster_ip.clone();
        spec.cluster_ips = old_spec.cluster_ips.clone();
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
