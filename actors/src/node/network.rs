//! The node's part of the cluster network, kept in step with the API: the VXLAN
//! routes to every other node's podCIDR (from Node objects), the Service proxy's
//! nftables rules (from Services and their EndpointSlices, as kube-proxy reads them),
//! and the names the node's DNS server answers (from the same, as CoreDNS reads them).
//! Three reflectors feed one loop that reprograms the host at most every [`SETTLE`]
//! after a change, each part only where something changed.
//!
//! A Service's slices are those of its namespace labelled
//! `kubernetes.io/service-name: NAME` (the EndpointSlice controller's, or a user's for
//! a Service without a selector), merged. The proxy sends a Service port to the
//! endpoints whose slice has a port of the same name and protocol, at that port's
//! number: the ready ones, or, while none is ready, the serving ones that are
//! terminating. DNS lists a headless Service's ready endpoints (all of them with
//! `publishNotReadyAddresses`) under their hostnames.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use rk8s_controllers::endpoint_slices::{ADDRESS_TYPE, SERVICE_NAME};
use rk8s_netoverlay::dns::{
    self, NamedPort, Records, ServiceAddresses, ServiceRecords, SrvProtocol,
};
use rk8s_netoverlay::overlay::{Overlay, Peer};
use rk8s_netoverlay::services::{ServicePort, ServiceProxy};
use rk8s_netoverlay::{Ipv4Net, Protocol};
use tokio::sync::Mutex;

/// How long changes are gathered before the host is reprogrammed.
pub const SETTLE: Duration = Duration::from_millis(100);

/// What the keeper programs.
pub struct ClusterNetwork {
    /// This node's name (left out of the peers).
    pub node: String,
    /// The VXLAN end (`None`: the node has no InternalIP; pods stay on this node).
    pub overlay: Option<Overlay>,
    /// The Service proxy.
    pub proxy: ServiceProxy,
    /// The DNS server's names.
    pub records: Records,
}

/// Watches Nodes, Services and EndpointSlices and programs `network` until the task is
/// dropped. The Services go into `services_w`, whose readers the runtime lists for
/// the containers' service variables ([`super::services`]).
pub async fn keep(
    client: kube::Client,
    network: ClusterNetwork,
    services_w: reflector::store::Writer<Service>,
) {
    let (nodes, nodes_w) = reflector::store();
    let services = services_w.as_reader();
    let (slices, slices_w) = reflector::store();
    let config = watcher::Config::default;
    let node_events = reflector::reflector(
        nodes_w,
        watcher::watcher(Api::<Node>::all(client.clone()), config()),
    )
    .default_backoff()
    .map(|_| ());
    let service_events = reflector::reflector(
        services_w,
        watcher::watcher(Api::<Service>::all(client.clone()), config()),
    )
    .default_backoff()
    .map(|_| ());
    let slice_events = reflector::reflector(
        slices_w,
        watcher::watcher(Api::<EndpointSlice>::all(client), config()),
    )
    .default_backoff()
    .map(|_| ());
    let mut events = std::pin::pin!(futures_util::stream::select(
        node_events,
        futures_util::stream::select(service_events, slice_events),
    ));
    let me = network.node.clone();
    let network = Arc::new(Mutex::new(network));
    loop {
        if events.next().await.is_none() {
            return;
        }
        // Gather what else arrives meanwhile, then program once.
        let deadline = tokio::time::sleep(SETTLE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                e = events.next() => if e.is_none() { return },
                () = &mut deadline => break,
            }
        }
        let by_service = slices_by_service(&slices);
        let (peers, ports, names) = (
            peers(&nodes, &me),
            service_ports(&services, &by_service),
            names(&services, &by_service),
        );
        let network = network.clone();
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut n = network.blocking_lock();
            n.records.set(&names);
            let peers_changed = match n.overlay.as_mut() {
                Some(o) => o.sync(&peers)?,
                None => 0,
            };
            let ports_changed = n.proxy.sync(&ports)?;
            Ok::<_, rk8s_netoverlay::Error>((peers_changed, ports_changed))
        })
        .await;
        match outcome {
            Ok(Ok((0, 0))) => {}
            Ok(Ok((peers, ports))) => tracing::info!(
                peers,
                service_ports = ports,
                took_ms = started.elapsed().as_millis() as u64,
                "cluster network programmed"
            ),
            Ok(Err(e)) => tracing::warn!("cluster network: {e}"),
            Err(e) => tracing::warn!("cluster network: {e}"),
        }
    }
}

/// The other nodes with a podCIDR and an InternalIP.
pub fn peers(nodes: &Store<Node>, me: &str) -> BTreeMap<String, Peer> {
    nodes
        .state()
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.clone()?;
            if name == me {
                return None;
            }
            let pod_cidr: Ipv4Net = n.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok()?;
            let node_ip: Ipv4Addr = n
                .status
                .as_ref()?
                .addresses
                .iter()
                .flatten()
                .find(|a| a.type_ == "InternalIP")?
                .address
                .parse()
                .ok()?;
            Some((name, Peer { node_ip, pod_cidr }))
        })
        .collect()
}

fn key(meta: &kube::api::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn protocol(p: Option<&str>) -> Option<Protocol> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        _ => None,
    }
}

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

/// An endpoint's conditions as the API defines their absence: `ready` unset means
/// true, `serving` unset means as `ready`, `terminating` unset means false.
struct Conditions {
    ready: bool,
    serving: bool,
    terminating: bool,
}

fn conditions(e: &Endpoint) -> Conditions {
    let c = e.conditions.as_ref();
    let ready = c.and_then(|c| c.ready).unwrap_or(true);
    Conditions {
        ready,
        serving: c.and_then(|c| c.serving).unwrap_or(ready),
        terminating: c.and_then(|c| c.terminating).unwrap_or(false),
    }
}

/// The ports of every Service with a ClusterIP, with their endpoints.
pub fn service_ports(services: &Store<Service>, by_service: &SlicesByService) -> Vec<ServicePort> {
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
        for port in spec.ports.iter().flatten() {
            let (Some(proto), Ok(number)) =
                (protocol(port.protocol.as_deref()), u16::try_from(port.port))
            else {
                continue;
            };
            out.push(ServicePort {
                service: id.clone(),
                protocol: proto,
                port: number,
                cluster_ip,
                node_port: port.node_port.and_then(|n| u16::try_from(n).ok()),
                endpoints: endpoints_of(slices, port.name.as_deref(), proto),
            });
        }
    }
    out
}

/// The endpoints of `slices` for the Service port named `name` (`None`: unnamed) of
/// protocol `proto`, at the port number of each slice's port of that name and
/// protocol, sorted and without duplicates. As kube-proxy: the ready ones, or when
/// none is ready, those still serving while terminating (so that connections drain
/// during a rollout instead of being refused); an endpoint's first address.
fn endpoints_of(
    slices: &[Arc<EndpointSlice>],
    name: Option<&str>,
    proto: Protocol,
) -> Vec<SocketAddrV4> {
    let mut ready = BTreeSet::new();
    let mut terminating = BTreeSet::new();
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
            let c = conditions(e);
            if c.ready {
                ready.insert(at);
            } else if c.serving && c.terminating {
                terminating.insert(at);
            }
        }
    }
    if ready.is_empty() { terminating } else { ready }
        .into_iter()
        .collect()
}

/// Every Service's DNS records: its ClusterIP, or (headless) its endpoints with
/// their hostnames; its named ports for SRV records. ExternalName Services have none.
pub fn names(services: &Store<Service>, by_service: &SlicesByService) -> Vec<ServiceRecords> {
    let mut out = Vec::new();
    for svc in services.state() {
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let (namespace, name) = key(&svc.metadata);
        let addresses = match spec.cluster_ip.as_deref() {
            Some("None") => ServiceAddresses::Headless(
                by_service
                    .get(&(namespace.clone(), name.clone()))
                    .map(|slices| {
                        dns_endpoints(slices, spec.publish_not_ready_addresses == Some(true))
                    })
                    .unwrap_or_default(),
            ),
            Some(ip) => match ip.parse() {
                Ok(ip) => ServiceAddresses::ClusterIp(ip),
                // Not IPv4: the name exists, with no A record.
                Err(_) => ServiceAddresses::Headless(Vec::new()),
            },
            None => continue,
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| named_port(p.name.as_deref(), p.protocol.as_deref(), p.port))
            .collect();
        out.push(ServiceRecords {
            namespace,
            name,
            ports,
            addresses,
        });
    }
    out
}

/// A port with a name and a protocol SRV records know, as DNS sees it.
fn named_port(name: Option<&str>, protocol: Option<&str>, port: i32) -> Option<NamedPort> {
    let name = name.filter(|n| !n.is_empty())?;
    let protocol = match protocol.unwrap_or("TCP") {
        "TCP" => SrvProtocol::Tcp,
        "UDP" => SrvProtocol::Udp,
        "SCTP" => SrvProtocol::Sctp,
        _ => return None,
    };
    Some(NamedPort {
        name: name.to_owned(),
        protocol,
        port: u16::try_from(port).ok()?,
    })
}

/// The addresses of the ready endpoints of `slices` (all of them with
/// `publish_not_ready`, though the EndpointSlice controller marks them ready then
/// anyway), as CoreDNS serves them: each with its hostname and its slice's named
/// ports. An address in several slices is one endpoint, with their ports together.
fn dns_endpoints(slices: &[Arc<EndpointSlice>], publish_not_ready: bool) -> Vec<dns::Endpoint> {
    let mut by_address: BTreeMap<Ipv4Addr, (Option<String>, Vec<NamedPort>)> = BTreeMap::new();
    for slice in slices {
        let ports: Vec<NamedPort> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| named_port(p.name.as_deref(), p.protocol.as_deref(), p.port?))
            .collect();
        for e in &slice.endpoints {
            if !publish_not_ready && !conditions(e).ready {
                continue;
            }
            let hostname = e.hostname.clone().filter(|h| !h.is_empty());
            for address in &e.addresses {
                let Ok(ip) = address.parse() else { continue };
                let (known_hostname, known) = by_address.entry(ip).or_default();
                if known_hostname.is_none() {
                    known_hostname.clone_from(&hostname);
                }
                for port in &ports {
                    if !known.contains(port) {
                        known.push(port.clone());
                    }
                }
            }
        }
    }
    by_address
        .into_iter()
        .map(|(ip, (hostname, ports))| dns::Endpoint {
            ip,
            hostname,
            ports,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk8s_netoverlay::dns::{Answer, Srv};
    use serde_json::json;

    fn store<K>(objects: Vec<K>) -> Store<K>
    where
        K: kube::Resource + Clone + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let (store, mut writer) = reflector::store();
        for o in objects {
            writer.apply_watcher_event(&watcher::Event::Apply(o));
        }
        store
    }

    fn service(name: &str, cluster_ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": cluster_ip, "ports": ports},
        }))
        .unwrap()
    }

    /// A slice `name` of Service `service` in `default`, as the EndpointSlice
    /// controller labels them.
    fn slice(
        name: &str,
        service: &str,
        ports: serde_json::Value,
        endpoints: serde_json::Value,
    ) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": name, "labels": {
                SERVICE_NAME: service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            }},
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": endpoints,
        }))
        .unwrap()
    }

    /// An endpoint at `ip` with the controller's conditions and `hostname`.
    fn endpoint(
        ip: &str,
        hostname: Option<&str>,
        ready: bool,
        terminating: bool,
    ) -> serde_json::Value {
        let mut e = json!({
            "addresses": [ip],
            "conditions": {"ready": ready, "serving": ready || terminating, "terminating": terminating},
            "nodeName": "n1",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": hostname.unwrap_or(ip)},
        });
        if let Some(h) = hostname {
            e["hostname"] = json!(h);
        }
        e
    }

    fn http(port: i32) -> serde_json::Value {
        json!({"name": "http", "port": port, "protocol": "TCP"})
    }

    fn at(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// A StatefulSet `web` behind the headless Service `web`, its pods in two slices
    /// (`web-0` in both, as while the controller moves it), and the ClusterIP Services
    /// `api` and `plain`, as the EndpointSlice controller writes their slices.
    fn cluster() -> (Store<Service>, SlicesByService) {
        let ports = json!([
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "metrics", "port": 9090, "protocol": "UDP"},
        ]);
        let services = store(vec![
            service("web", "None", ports.clone()),
            service("api", "10.96.0.10", ports),
            service("plain", "10.96.0.11", json!([{"port": 80}])),
        ]);
        let slices = store(vec![
            slice(
                "web-abc",
                "web",
                json!([http(8080)]),
                json!([
                    endpoint("10.244.1.5", Some("web-0"), true, false),
                    endpoint("10.244.1.9", None, true, false),
                ]),
            ),
            slice(
                "web-def",
                "web",
                json!([http(8080)]),
                json!([
                    endpoint("10.244.1.5", Some("web-0"), true, false),
                    endpoint("10.244.2.7", Some("web-1"), true, false),
                    endpoint("10.244.2.8", Some("web-2"), false, false),
                ]),
            ),
        ]);
        (services, slices_by_service(&slices))
    }

    fn records_of(services: &Store<Service>, by_service: &SlicesByService) -> Records {
        let records = Records::new("cluster.local");
        records.set(&names(services, by_service));
        records
    }

    fn records() -> Records {
        let (services, by_service) = cluster();
        records_of(&services, &by_service)
    }

    fn found(records: &Records, name: &str) -> dns::Found {
        match records.lookup(name) {
            Answer::Found(found) => found,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn srv(weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority: 0,
            weight,
            port,
            target: target.into(),
        }
    }

    #[test]
    fn statefulset_pods_get_their_own_names() {
        let r = records();
        assert_eq!(
            found(&r, "web-0.web.default.svc.cluster.local").addresses,
            [ip("10.244.1.5")]
        );
        assert_eq!(
            found(&r, "10-244-1-9.web.default.svc.cluster.local").addresses,
            [ip("10.244.1.9")]
        );
        assert_eq!(
            found(&r, "web-1.web.default.svc.cluster.local").addresses,
            [ip("10.244.2.7")]
        );
        // Both slices merged, `web-0` once.
        assert_eq!(
            found(&r, "web.default.svc.cluster.local").addresses.len(),
            3
        );
        // Not ready (the controller marks it ready only with publishNotReadyAddresses).
        assert_eq!(
            r.lookup("web-2.web.default.svc.cluster.local"),
            Answer::NoSuchName
        );
    }

    #[test]
    fn not_ready_pods_have_names_with_publish_not_ready_addresses() {
        let (_, by_service) = cluster();
        let mut web = service("web", "None", json!([{"name": "http", "port": 80}]));
        if let Some(spec) = web.spec.as_mut() {
            spec.publish_not_ready_addresses = Some(true);
        }
        let r = records_of(&store(vec![web]), &by_service);
        assert_eq!(
            found(&r, "web-2.web.default.svc.cluster.local").addresses,
            [ip("10.244.2.8")]
        );
        assert_eq!(
            found(&r, "web.default.svc.cluster.local").addresses.len(),
            4
        );
    }

    #[test]
    fn named_ports_get_srv_records() {
        let r = records();
        assert_eq!(
            found(&r, "_http._tcp.web.default.svc.cluster.local").services,
            [
                srv(33, 8080, "10-244-1-9.web.default.svc.cluster.local"),
                srv(33, 8080, "web-0.web.default.svc.cluster.local"),
                srv(33, 8080, "web-1.web.default.svc.cluster.local"),
            ]
        );
        assert_eq!(
            found(&r, "_http._tcp.api.default.svc.cluster.local").services,
            [srv(100, 80, "api.default.svc.cluster.local")]
        );
        assert_eq!(
            found(&r, "_metrics._udp.api.default.svc.cluster.local").services,
            [srv(100, 9090, "api.default.svc.cluster.local")]
        );
        // No endpoint serves `metrics`: the name exists, empty.
        assert!(
            found(&r, "_metrics._udp.web.default.svc.cluster.local")
                .services
                .is_empty()
        );
        // An unnamed port has no SRV name.
        assert_eq!(
            found(&r, "plain.default.svc.cluster.local").addresses,
            [ip("10.96.0.11")]
        );
        assert_eq!(
            r.lookup("_tcp.plain.default.svc.cluster.local"),
            Answer::NoSuchName
        );
    }

    #[test]
    fn external_name_services_have_no_names() {
        let external: Service = serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.org"},
        }))
        .unwrap();
        assert_eq!(names(&store(vec![external]), &BTreeMap::new()), []);
    }

    /// The endpoints of the port `port`/`proto` of Service `name` in `ports`.
    fn endpoints<'a>(
        ports: &'a [ServicePort],
        name: &str,
        port: u16,
        proto: Protocol,
    ) -> &'a [SocketAddrV4] {
        &ports
            .iter()
            .find(|p| p.service.1 == name && p.port == port && p.protocol == proto)
            .unwrap()
            .endpoints
    }

    #[test]
    fn service_ports_reach_ready_endpoints_of_every_slice_by_port_name() {
        let services = store(vec![
            service(
                "api",
                "10.96.0.10",
                json!([
                    {"name": "http", "port": 80, "targetPort": "http"},
                    {"name": "metrics", "port": 9090, "protocol": "UDP"},
                ]),
            ),
            service("web", "None", json!([{"name": "http", "port": 80}])),
        ]);
        let slices = store(vec![
            // Pods whose `http` container port is 8080, and a not-ready one.
            slice(
                "api-1",
                "api",
                json!([http(8080), {"name": "metrics", "port": 9191, "protocol": "UDP"}]),
                json!([
                    endpoint("10.244.1.20", None, true, false),
                    endpoint("10.244.1.21", None, false, false),
                ]),
            ),
            // A pod whose `http` is 8081, in a slice of its own; its port `metrics`
            // is TCP, not the Service's UDP one.
            slice(
                "api-2",
                "api",
                json!([http(8081), {"name": "metrics", "port": 9191, "protocol": "TCP"}]),
                json!([
                    endpoint("10.244.2.20", None, true, false),
                    // The API's default: no conditions is ready.
                    {"addresses": ["10.244.2.21"]},
                ]),
            ),
            // The same pod in a second slice while it moves: once.
            slice(
                "api-3",
                "api",
                json!([http(8080)]),
                json!([endpoint("10.244.1.20", None, true, false)]),
            ),
        ]);
        let ports = service_ports(&services, &slices_by_service(&slices));
        // Headless Services are not proxied.
        assert_eq!(ports.len(), 2);
        assert_eq!(
            endpoints(&ports, "api", 80, Protocol::Tcp),
            [
                at("10.244.1.20:8080"),
                at("10.244.2.20:8081"),
                at("10.244.2.21:8081")
            ]
        );
        assert_eq!(
            endpoints(&ports, "api", 9090, Protocol::Udp),
            [at("10.244.1.20:9191")]
        );
        let api = ports.iter().find(|p| p.port == 80).unwrap();
        assert_eq!(api.cluster_ip, ip("10.96.0.10"));
    }

    #[test]
    fn terminating_endpoints_serve_only_while_none_is_ready() {
        let services = store(vec![service("roll", "10.96.0.12", json!([{"port": 80}]))]);
        let unnamed = json!([{"name": "", "port": 8080, "protocol": "TCP"}]);
        let rolling = |ready: bool| {
            let mut endpoints = vec![
                // Terminating, still serving: drains.
                endpoint("10.244.3.1", None, false, true),
                // Terminating and no longer serving.
                json!({"addresses": ["10.244.3.2"],
                    "conditions": {"ready": false, "serving": false, "terminating": true}}),
                // Starting, not ready yet.
                endpoint("10.244.3.3", None, false, false),
            ];
            if ready {
                endpoints.push(endpoint("10.244.3.4", None, true, false));
            }
            store(vec![slice(
                "roll-1",
                "roll",
                unnamed.clone(),
                json!(endpoints),
            )])
        };
        let ports = service_ports(&services, &slices_by_service(&rolling(false)));
        assert_eq!(
            endpoints(&ports, "roll", 80, Protocol::Tcp),
            [at("10.244.3.1:8080")]
        );
        let ports = service_ports(&services, &slices_by_service(&rolling(true)));
        assert_eq!(
            endpoints(&ports, "roll", 80, Protocol::Tcp),
            [at("10.244.3.4:8080")]
        );
    }

    #[test]
    fn only_labelled_ipv4_slices_of_the_service_count() {
        let services = store(vec![service(
            "db",
            "10.96.0.13",
            json!([{"name": "pg", "port": 5432}]),
        )]);
        let pg = json!([{"name": "pg", "port": 5432}]);
        let ready = json!([endpoint("10.244.4.1", None, true, false)]);
        let mut unlabelled = slice("db-x", "db", pg.clone(), ready.clone());
        unlabelled.metadata.labels = None;
        let mut elsewhere = slice(
            "db-y",
            "db",
            pg.clone(),
            json!([endpoint("10.244.4.2", None, true, false)]),
        );
        elsewhere.metadata.namespace = Some("other".into());
        let mut v6 = slice(
            "db-z",
            "db",
            pg.clone(),
            json!([{"addresses": ["fd00::1"]}]),
        );
        v6.address_type = "IPv6".into();
        // A user's slice of a Service without a selector (no managed-by label).
        let mut users = slice(
            "db-manual",
            "db",
            pg,
            json!([endpoint("10.244.4.3", None, true, false)]),
        );
        if let Some(labels) = users.metadata.labels.as_mut() {
            labels.remove("endpointslice.kubernetes.io/managed-by");
        }
        let by_service = slices_by_service(&store(vec![unlabelled, elsewhere, v6, users]));
        assert_eq!(
            by_service.keys().collect::<Vec<_>>(),
            [
                &("default".to_string(), "db".to_string()),
                &("other".to_string(), "db".to_string())
            ]
        );
        let ports = service_ports(&services, &by_service);
        assert_eq!(
            endpoints(&ports, "db", 5432, Protocol::Tcp),
            [at("10.244.4.3:5432")]
        );
        // The placeholder slice of a Service without endpoints: no endpoints.
        let placeholder = store(vec![slice("db-p", "db", json!([]), json!([]))]);
        let ports = service_ports(&services, &slices_by_service(&placeholder));
        assert!(endpoints(&ports, "db", 5432, Protocol::Tcp).is_empty());
        let ports = service_ports(&services, &BTreeMap::new());
        assert!(endpoints(&ports, "db", 5432, Protocol::Tcp).is_empty());
    }
}
