//! The built-in service load balancer, as k3s' ServiceLB provides one: a Service of
//! `type: LoadBalancer` without a `loadBalancerClass` is given the nodes' own
//! addresses as its ingress points (`status.loadBalancer.ingress`, `ipMode: VIP`),
//! and each node's Service proxy answers on them at the Service's ports as it
//! answers on the ClusterIP. Pure: the caller passes the objects.
//!
//! - The nodes counted are those Ready, without Kubernetes' label
//!   `node.kubernetes.io/exclude-from-external-load-balancers`; cordoned ones count
//!   (k3s' svclb pods tolerate `unschedulable`). A node offers its ExternalIP
//!   addresses when it has one, else its InternalIP ones (IPv4: the proxy's family).
//!   The addresses are sorted, each once.
//! - `externalTrafficPolicy: Local`: only the nodes with a ready endpoint of the
//!   Service (its EndpointSlices' `nodeName`s, k3s' `readyNodes`), since the others
//!   drop its traffic.
//! - Two Services cannot both take a port on the nodes' addresses: as a k3s svclb pod
//!   whose host port is taken stays Pending, a Service a port of which (protocol and
//!   number) another holds gets no ingress until it is free. Node ports and
//!   health-check ports are held by the Service the API server gave them to, whatever
//!   its type (the proxy would serve the load balancer's port on the nodes' addresses
//!   first and hide them); among load balancers, one keeps the ports its ingress
//!   points list (`ports`, written with them), and a free port goes to one with
//!   ingress already, then to the older (created first, then by namespace and name).
//! - Services of another class are left to their controller; one that is no longer
//!   a load balancer loses the ingress it had. The class of a load balancer cannot
//!   change (the API server refuses it, as kube's does), so ingress written here is
//!   never left behind under another class.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Node, PortStatus, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::endpoint_slices::{ADDRESS_TYPE, SERVICE_NAME};

/// Kubernetes' label that keeps a node out of load balancers' backends.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// The ingress points' `ipMode`: traffic reaches the nodes with the load balancer's
/// address as destination, and the proxy captures it.
pub const IP_MODE: &str = "VIP";

/// Whether `node` serves load balancers: Ready and not excluded. A cordoned node
/// still does: cordoning keeps new pods off, not traffic (k3s).
pub fn serves(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let excluded = node
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(EXCLUDE_LABEL));
    ready && !excluded
}

/// The addresses of each node that serves load balancers ([`serves`]), by node name:
/// its ExternalIPs if it has any, else its InternalIPs; IPv4 only.
pub fn nodes_addresses<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
) -> BTreeMap<String, Vec<Ipv4Addr>> {
    let mut out = BTreeMap::new();
    for node in nodes.into_iter().filter(|n| serves(n)) {
        let addresses = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let of = |kind: &str| -> Vec<Ipv4Addr> {
            addresses
                .iter()
                .filter(|a| a.type_ == kind)
                .filter_map(|a| a.address.parse().ok())
                .collect()
        };
        let external = of("ExternalIP");
        let offered = if external.is_empty() {
            of("InternalIP")
        } else {
            external
        };
        let name = node.metadata.name.clone().unwrap_or_default();
        out.insert(name, offered);
    }
    out
}

/// The addresses of the nodes of `nodes` ([`nodes_addresses`]) that `on` accepts,
/// sorted, each once.
fn addresses_of(
    nodes: &BTreeMap<String, Vec<Ipv4Addr>>,
    on: impl Fn(&str) -> bool,
) -> Vec<Ipv4Addr> {
    let set: BTreeSet<Ipv4Addr> = nodes
        .iter()
        .filter(|(name, _)| on(name))
        .flat_map(|(_, addresses)| addresses.iter().copied())
        .collect();
    set.into_iter().collect()
}

/// Whether this controller balances `svc`: `type: LoadBalancer` without a class.
pub fn balanced(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none()
    })
}

/// Whether `svc` sends external traffic only to the endpoints of the node it reaches
/// (`externalTrafficPolicy: Local`, k3s' `RequestsOnlyLocalTraffic`).
pub fn local(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .is_some_and(|s| s.external_traffic_policy.as_deref() == Some("Local"))
}

/// The `namespace/name` of the Service an EndpointSlice belongs to (its label
/// `kubernetes.io/service-name`), if any.
pub fn service_of(slice: &EndpointSlice) -> Option<String> {
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME)?;
    let namespace = slice.metadata.namespace.as_deref().unwrap_or_default();
    (!name.is_empty()).then(|| format!("{namespace}/{name}"))
}

/// The nodes with a ready endpoint of each Service of `wanted` (by `namespace/name`)
/// in `slices`: IPv4 slices (the proxy's), endpoints with a `nodeName` whose `ready`
/// condition is true or unset (the API's "unknown, take as ready", as the node's
/// proxy and health check take it).
fn ready_nodes(
    slices: &[Arc<EndpointSlice>],
    wanted: &BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if wanted.is_empty() {
        return out;
    }
    for slice in slices.iter().filter(|s| s.address_type == ADDRESS_TYPE) {
        let Some(service) = service_of(slice).filter(|k| wanted.contains(k)) else {
            continue;
        };
        let nodes = out.entry(service).or_default();
        for e in &slice.endpoints {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if let Some(node) = e.node_name.as_ref().filter(|_| ready) {
                nodes.insert(node.clone());
            }
        }
    }
    out
}

/// The ports `svc` takes on the nodes' addresses: (protocol, port).
fn ports(svc: &Service) -> BTreeSet<(String, i32)> {
    svc.spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .map(|p| (protocol(p.protocol.as_deref()), p.port))
        .collect()
}

/// The ports the API server gave `svc` on every node, each with the Service whose
/// load balancer may still use it: its node ports, which `svc`'s own load balancer
/// shares (one chain serves both), and its `healthCheckNodePort` (TCP, served by the
/// node agent), which no load balancer may use, `svc`'s own included (its port would
/// hide the check).
fn node_ports(svc: &Service) -> Vec<((String, i32), Option<String>)> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let node_ports = spec.ports.iter().flatten().filter_map(|p| {
        Some((
            (protocol(p.protocol.as_deref()), p.node_port?),
            Some(key(svc)),
        ))
    });
    let health_check = spec
        .health_check_node_port
        .map(|p| (("TCP".to_string(), p), None));
    node_ports
        .chain(health_check)
        .filter(|((_, p), _)| *p != 0)
        .collect()
}

/// A port's protocol, TCP when unset.
fn protocol(p: Option<&str>) -> String {
    p.unwrap_or("TCP").to_string()
}

/// `namespace/name`.
fn key(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `svc`'s ingress points now.
fn ingress(svc: &Service) -> &[LoadBalancerIngress] {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_deref())
        .unwrap_or_default()
}

/// The ports `svc` holds now: those its ingress points list (`ports`, written with
/// them) that it still asks for.
fn holds(svc: &Service) -> BTreeSet<(String, i32)> {
    let wanted = ports(svc);
    ingress(svc)
        .iter()
        .flat_map(|i| i.ports.iter().flatten())
        .map(|p| (p.protocol.clone(), p.port))
        .filter(|p| wanted.contains(p))
        .collect()
}

/// The balanced Services (by `namespace/name`) that cannot have their ports: one of
/// them is another Service's node port or a health-check port, or another load
/// balancer holds it. A load balancer keeps the ports its ingress lists (as k3s'
/// svclb pods keep the host ports they have); the others go, each whole, to those
/// that have ingress already (written before ports were listed), then to the older.
pub fn blocked<'a>(services: impl IntoIterator<Item = &'a Service>) -> BTreeSet<String> {
    let services: Vec<&Service> = services.into_iter().collect();
    // Node port → who may use it for a load balancer as well (normally one entry).
    let mut node_held: BTreeMap<(String, i32), Vec<Option<String>>> = BTreeMap::new();
    for (port, sharer) in services.iter().flat_map(|s| node_ports(s)) {
        node_held.entry(port).or_default().push(sharer);
    }
    let mut balanced: Vec<&Service> = services.into_iter().filter(|s| balanced(s)).collect();
    balanced.sort_by_key(|s| {
        (
            ingress(s).is_empty(),
            s.metadata.creation_timestamp.as_ref().map(|t| t.0),
            key(s),
        )
    });
    let mut kept: BTreeMap<(String, i32), String> = BTreeMap::new();
    for svc in &balanced {
        for port in holds(svc) {
            kept.entry(port).or_insert_with(|| key(svc));
        }
    }
    let mut held = BTreeSet::new();
    let mut out = BTreeSet::new();
    for svc in balanced {
        let me = key(svc);
        let wanted = ports(svc);
        let taken = wanted.iter().any(|p| {
            held.contains(p)
                || kept.get(p).is_some_and(|holder| *holder != me)
                || node_held
                    .get(p)
                    .is_some_and(|sharers| sharers.iter().any(|o| o.as_ref() != Some(&me)))
        });
        if taken {
            out.insert(me);
        } else {
            held.extend(wanted);
        }
    }
    out
}

/// The load balancer status `svc` should have, when this controller decides it and
/// it differs from the current one (`None`: nothing to write). `addresses` are those
/// of the nodes that serve it ([`nodes_addresses`], for `Local` only those with a
/// ready endpoint), `blocked` whether another Service holds one of its ports
/// ([`blocked`]).
pub fn status(svc: &Service, addresses: &[Ipv4Addr], blocked: bool) -> Option<LoadBalancerStatus> {
    let current = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.clone())
        .unwrap_or_default();
    let wanted = if balanced(svc) {
        // The ports it is given, recorded with each point: what it holds from now on.
        let given: Vec<PortStatus> = ports(svc)
            .into_iter()
            .map(|(protocol, port)| PortStatus {
                port,
                protocol,
                error: None,
            })
            .collect();
        let ingress: Vec<LoadBalancerIngress> = if blocked {
            Vec::new()
        } else {
            addresses
                .iter()
                .map(|ip| LoadBalancerIngress {
                    ip: Some(ip.to_string()),
                    ip_mode: Some(IP_MODE.to_string()),
                    ports: Some(given.clone()),
                    ..Default::default()
                })
                .collect()
        };
        LoadBalancerStatus {
            ingress: (!ingress.is_empty()).then_some(ingress),
        }
    } else if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer")
        && !ingress(svc).is_empty()
    {
        // No longer a load balancer: what it had goes (kube's service controller).
        LoadBalancerStatus::default()
    } else {
        // Another class's: its controller's to write. It was never ours: a load
        // balancer's class cannot change, and leaving the type clears the ingress.
        return None;
    };
    let same = wanted.ingress.as_deref().unwrap_or_default()
        == current.ingress.as_deref().unwrap_or_default();
    (!same).then_some(wanted)
}

/// Every status to write: each Service of `services` whose load balancer status
/// should change, with that status in it. `slices` are the EndpointSlices, read for
/// `externalTrafficPolicy: Local` load balancers.
pub fn decide(
    services: &[Arc<Service>],
    nodes: &[Arc<Node>],
    slices: &[Arc<EndpointSlice>],
) -> Vec<Service> {
    let by_node = nodes_addresses(nodes.iter().map(|n| n.as_ref()));
    let everywhere = addresses_of(&by_node, |_| true);
    let blocked = blocked(services.iter().map(|s| s.as_ref()));
    let locals: BTreeSet<String> = services
        .iter()
        .filter(|s| balanced(s) && local(s))
        .map(|s| key(s))
        .collect();
    let ready = ready_nodes(slices, &locals);
    let none = BTreeSet::new();
    services
        .iter()
        .filter_map(|svc| {
            let me = key(svc);
            let local_addresses;
            let addresses = if locals.contains(&me) {
                let with_endpoints = ready.get(&me).unwrap_or(&none);
                local_addresses = addresses_of(&by_node, |n| with_endpoints.contains(n));
                &local_addresses
            } else {
                &everywhere
            };
            let lb = status(svc, addresses, blocked.contains(&me))?;
            let mut new = Service::clone(svc);
            new.status
                .get_or_insert_with(Default::default)
                .load_balancer = Some(lb);
            Some(new)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: bool, addresses: serde_json::Value) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "status": {
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                    "addresses": addresses,
                },
            }))
            .unwrap(),
        )
    }

    fn internal(ip: &str) -> serde_json::Value {
        json!([{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": "h"}])
    }

    fn service(name: &str, created: &str, spec: serde_json::Value) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"namespace": "default", "name": name, "creationTimestamp": created},
                "spec": spec,
            }))
            .unwrap(),
        )
    }

    fn lb(port: i32) -> serde_json::Value {
        json!({"type": "LoadBalancer", "ports": [{"port": port, "protocol": "TCP"}]})
    }

    fn ingress(svc: &Service) -> Vec<(String, String)> {
        svc.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|i| (i.ip.unwrap_or_default(), i.ip_mode.unwrap_or_default()))
            .collect()
    }

    fn vip(ip: &str) -> (String, String) {
        (ip.to_string(), "VIP".to_string())
    }

    #[test]
    fn a_load_balancer_gets_the_ready_nodes_addresses_sorted() {
        let nodes = [
            node("b", true, internal("10.0.0.12")),
            node("a", true, internal("10.0.0.9")),
            // Not Ready, excluded: not counted.
            node("c", false, internal("10.0.0.13")),
            // Cordoned: counted (cordoning keeps new pods off, not traffic).
            {
                let mut n = Node::clone(&node("d", true, internal("10.0.0.14")));
                n.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
                Arc::new(n)
            },
            {
                let mut n = Node::clone(&node("e", true, internal("10.0.0.15")));
                n.metadata.labels = Some([(EXCLUDE_LABEL.to_string(), String::new())].into());
                Arc::new(n)
            },
            // An ExternalIP is offered instead of the node's InternalIP.
            node(
                "f",
                true,
                json!([{"type": "InternalIP", "address": "10.0.0.16"},
                       {"type": "ExternalIP", "address": "203.0.113.7"}]),
            ),
        ];
        let services = [service("web", "2024-01-01T00:00:00Z", lb(80))];
        let written = decide(&services, &nodes, &[]);
        assert_eq!(written.len(), 1);
        assert_eq!(
            ingress(&written[0]),
            [
                vip("10.0.0.9"),
                vip("10.0.0.12"),
                vip("10.0.0.14"),
                vip("203.0.113.7")
            ]
        );
        // Each point lists the ports the Service holds.
        let points = written[0].status.clone().unwrap().load_balancer.unwrap();
        let ports = points.ingress.unwrap()[0].ports.clone().unwrap();
        assert_eq!(
            ports,
            [PortStatus {
                port: 80,
                protocol: "TCP".into(),
                error: None
            }]
        );
        // Written once: with the status in place, nothing more to do.
        assert!(decide(&[Arc::new(written[0].clone())], &nodes, &[]).is_empty());
    }

    #[test]
    fn the_ingress_follows_the_nodes() {
        let svc = service("web", "2024-01-01T00:00:00Z", lb(80));
        let both = [
            node("a", true, internal("10.0.0.11")),
            node("b", true, internal("10.0.0.12")),
        ];
        let written = decide(&[svc], &both, &[]).remove(0);
        assert_eq!(ingress(&written), [vip("10.0.0.11"), vip("10.0.0.12")]);
        // b stops being Ready: its address goes.
        let one = [
            node("a", true, internal("10.0.0.11")),
            node("b", false, internal("10.0.0.12")),
        ];
        let written = decide(&[Arc::new(written)], &one, &[]).remove(0);
        assert_eq!(ingress(&written), [vip("10.0.0.11")]);
        // No node left: no ingress (pending).
        let written = decide(&[Arc::new(written)], &[], &[]).remove(0);
        assert!(ingress(&written).is_empty());
        assert_eq!(
            written.status.unwrap().load_balancer.unwrap(),
            LoadBalancerStatus { ingress: None }
        );
    }

    #[test]
    fn other_classes_and_types_are_left_alone_and_former_load_balancers_cleared() {
        let nodes = [node("a", true, internal("10.0.0.11"))];
        let mut classed = lb(80);
        classed["loadBalancerClass"] = json!("example.com/lb");
        let node_port = json!({"type": "NodePort", "ports": [{"port": 80}]});
        assert!(
            decide(
                &[
                    service("other", "2024-01-01T00:00:00Z", classed.clone()),
                    service("np", "2024-01-01T00:00:00Z", node_port.clone()),
                ],
                &nodes,
                &[]
            )
            .is_empty()
        );
        // Another controller's status stays.
        let mut theirs = Service::clone(&service("other", "2024-01-01T00:00:00Z", classed));
        theirs.status = Some(
            serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}))
                .unwrap(),
        );
        assert!(decide(&[Arc::new(theirs.clone())], &nodes, &[]).is_empty());
        // A former load balancer that kept its status loses it.
        let mut former = theirs;
        former.spec = Some(serde_json::from_value(node_port).unwrap());
        let written = decide(&[Arc::new(former)], &nodes, &[]);
        assert_eq!(written.len(), 1);
        assert!(ingress(&written[0]).is_empty());
    }

    #[test]
    fn a_port_held_by_an_older_load_balancer_leaves_the_newer_pending() {
        let nodes = [node("a", true, internal("10.0.0.11"))];
        let old = service("b-old", "2024-01-01T00:00:00Z", lb(80));
        let new = service("a-new", "2024-02-01T00:00:00Z", lb(80));
        let udp = service(
            "udp",
            "2024-03-01T00:00:00Z",
            json!({"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "UDP"}]}),
        );
        let written = decide(&[new.clone(), old.clone(), udp], &nodes, &[]);
        let names: Vec<_> = written
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect();
        // The same number over UDP is another port.
        assert_eq!(names, ["b-old", "udp"]);
        // The older one goes: the newer gets the port.
        let written = decide(&[new], &nodes, &[]);
        assert_eq!(ingress(&written[0]), [vip("10.0.0.11")]);
    }

    /// `svc` as written by [`decide`] with `nodes`.
    fn written(svc: &Arc<Service>, nodes: &[Arc<Node>]) -> Arc<Service> {
        Arc::new(decide(std::slice::from_ref(svc), nodes, &[]).remove(0))
    }

    #[test]
    fn a_load_balancer_keeps_the_ports_it_holds() {
        let nodes = [node("a", true, internal("10.0.0.11"))];
        // The newer one holds port 80; the older one holds 81, then asks for 80.
        let newer = written(&service("newer", "2024-02-01T00:00:00Z", lb(80)), &nodes);
        let older = written(&service("older", "2024-01-01T00:00:00Z", lb(81)), &nodes);
        let mut moved = Service::clone(&older);
        moved.spec = Some(serde_json::from_value(lb(80)).unwrap());
        let written = decide(&[Arc::new(moved), newer.clone()], &nodes, &[]);
        // The older one loses its ingress (pending); the holder keeps it.
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].metadata.name.as_deref(), Some("older"));
        assert!(ingress(&written[0]).is_empty());
        // Once the holder lets go, the port is the older one's.
        let pending = Arc::new(written[0].clone());
        let written = decide(&[pending], &nodes, &[]);
        assert_eq!(ingress(&written[0]), [vip("10.0.0.11")]);
    }

    #[test]
    fn node_ports_and_health_check_ports_are_held_by_their_services() {
        let node_port = service(
            "np",
            "2024-02-01T00:00:00Z",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        );
        let local = service(
            "local",
            "2024-02-01T00:00:00Z",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                   "healthCheckNodePort": 30100, "ports": [{"port": 443, "nodePort": 30443}]}),
        );
        // Older load balancers on those ports: they would hide them on the nodes.
        let on_node_port = service("a", "2024-01-01T00:00:00Z", lb(30080));
        let on_health_check = service("b", "2024-01-01T00:00:00Z", lb(30100));
        let services = [node_port, local, on_node_port, on_health_check];
        assert_eq!(
            blocked(services.iter().map(|s| s.as_ref())),
            BTreeSet::from(["default/a".to_string(), "default/b".to_string()])
        );
        // Its own node port at its own port is no conflict; another protocol neither.
        let own = service(
            "own",
            "2024-01-01T00:00:00Z",
            json!({"type": "LoadBalancer", "ports": [{"port": 30081, "nodePort": 30081},
                   {"name": "u", "port": 30080, "protocol": "UDP"}]}),
        );
        let np = service(
            "np",
            "2024-02-01T00:00:00Z",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        );
        assert!(blocked([own.as_ref(), np.as_ref()]).is_empty());
    }

    fn slice(service: &str, endpoints: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"namespace": "default", "name": format!("{service}-x"),
                             "labels": {SERVICE_NAME: service}},
                "addressType": "IPv4",
                "endpoints": endpoints,
            }))
            .unwrap(),
        )
    }

    fn endpoint(node: &str, ready: bool) -> serde_json::Value {
        json!({"addresses": ["10.244.0.5"], "nodeName": node, "conditions": {"ready": ready}})
    }

    #[test]
    fn a_local_load_balancer_lists_only_nodes_with_a_ready_endpoint() {
        let nodes = [
            node("a", true, internal("10.0.0.11")),
            node("b", true, internal("10.0.0.12")),
            node("c", true, internal("10.0.0.13")),
        ];
        let mut spec = lb(80);
        spec["externalTrafficPolicy"] = json!("Local");
        let svc = service("web", "2024-01-01T00:00:00Z", spec);
        // Ready on b; not ready on c; an unlabelled slice with a ready one on a.
        let mut other = EndpointSlice::clone(&slice("web", json!([endpoint("a", true)])));
        other.metadata.labels = None;
        let slices = [
            slice("web", json!([endpoint("b", true), endpoint("c", false)])),
            Arc::new(other),
        ];
        let written = decide(std::slice::from_ref(&svc), &nodes, &slices).remove(0);
        assert_eq!(ingress(&written), [vip("10.0.0.12")]);
        // The endpoint on c gets ready: c joins.
        let slices = [slice(
            "web",
            json!([endpoint("b", true), endpoint("c", true)]),
        )];
        let written = decide(&[Arc::new(written)], &nodes, &slices).remove(0);
        assert_eq!(ingress(&written), [vip("10.0.0.12"), vip("10.0.0.13")]);
        // No endpoint anywhere: pending. The Cluster policy lists every node.
        let written = decide(&[Arc::new(written)], &nodes, &[]).remove(0);
        assert!(ingress(&written).is_empty());
        let cluster = service("web", "2024-01-01T00:00:00Z", lb(80));
        let written = decide(&[cluster], &nodes, &[]).remove(0);
        assert_eq!(ingress(&written).len(), 3);
    }
}
