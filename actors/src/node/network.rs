//! The node's part of the cluster network, kept in step with the API: the VXLAN
//! routes to every other node's podCIDR (from Node objects), the Service proxy's
//! nftables rules (from Services and Endpoints), and the names the node's DNS server
//! answers. Three reflectors feed one loop that reprograms the host at most every
//! [`SETTLE`] after a change, each part only where something changed.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Node, Service};
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
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

/// Watches Nodes, Services and Endpoints and programs `network` until the task is
/// dropped. The Services go into `services_w`, whose readers the runtime lists for
/// the containers' service variables ([`super::services`]).
pub async fn keep(
    client: kube::Client,
    network: ClusterNetwork,
    services_w: reflector::store::Writer<Service>,
) {
    let (nodes, nodes_w) = reflector::store();
    let services = services_w.as_reader();
    let (endpoints, endpoints_w) = reflector::store();
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
    let endpoint_events = reflector::reflector(
        endpoints_w,
        watcher::watcher(Api::<Endpoints>::all(client), config()),
    )
    .default_backoff()
    .map(|_| ());
    let mut events = std::pin::pin!(futures_util::stream::select(
        node_events,
        futures_util::stream::select(service_events, endpoint_events),
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
        let by_name = endpoints_by_name(&endpoints);
        let (peers, ports, names) = (
            peers(&nodes, &me),
            service_ports(&services, &by_name),
            names(&services, &by_name),
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

/// Every Endpoints object by `(namespace, name)`.
pub type EndpointsByName = BTreeMap<(String, String), Arc<Endpoints>>;

/// The reflector's Endpoints by `(namespace, name)`, read once per sync.
pub fn endpoints_by_name(endpoints: &Store<Endpoints>) -> EndpointsByName {
    endpoints
        .state()
        .into_iter()
        .map(|e| (key(&e.metadata), e))
        .collect()
}

/// The ports of every Service with a ClusterIP, with their ready endpoints.
pub fn service_ports(services: &Store<Service>, by_name: &EndpointsByName) -> Vec<ServicePort> {
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
        for port in spec.ports.iter().flatten() {
            let (Some(proto), Ok(number)) =
                (protocol(port.protocol.as_deref()), u16::try_from(port.port))
            else {
                continue;
            };
            let mut ready: Vec<SocketAddrV4> = by_name
                .get(&id)
                .map(|e| endpoints_of(e, port.name.as_deref(), proto))
                .unwrap_or_default();
            ready.sort();
            ready.dedup();
            out.push(ServicePort {
                service: id.clone(),
                protocol: proto,
                port: number,
                cluster_ip,
                node_port: port.node_port.and_then(|n| u16::try_from(n).ok()),
                endpoints: ready,
            });
        }
    }
    out
}

/// The ready addresses of `e` for the Service port named `name`.
fn endpoints_of(e: &Endpoints, name: Option<&str>, proto: Protocol) -> Vec<SocketAddrV4> {
    let mut out = Vec::new();
    for subset in e.subsets.iter().flatten() {
        let Some(port) = subset.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == name.unwrap_or_default()
                && protocol(p.protocol.as_deref()) == Some(proto)
        }) else {
            continue;
        };
        let Ok(number) = u16::try_from(port.port) else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            if let Ok(ip) = address.ip.parse::<Ipv4Addr>() {
                out.push(SocketAddrV4::new(ip, number));
            }
        }
    }
    out
}

/// Every Service's DNS records: its ClusterIP, or (headless) its endpoints with
/// their hostnames; its named ports for SRV records. ExternalName Services have none.
pub fn names(services: &Store<Service>, by_name: &EndpointsByName) -> Vec<ServiceRecords> {
    let mut out = Vec::new();
    for svc in services.state() {
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let (namespace, name) = key(&svc.metadata);
        let addresses = match spec.cluster_ip.as_deref() {
            Some("None") => ServiceAddresses::Headless(
                by_name
                    .get(&(namespace.clone(), name.clone()))
                    .map(|e| dns_endpoints(e))
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

/// The addresses of `e` (ready, or all with publishNotReadyAddresses: the Endpoints
/// controller decides) with their hostnames and their subset's named ports.
fn dns_endpoints(e: &Endpoints) -> Vec<dns::Endpoint> {
    let mut out = Vec::new();
    for subset in e.subsets.iter().flatten() {
        let ports: Vec<NamedPort> = subset
            .ports
            .iter()
            .flatten()
            .filter_map(|p| named_port(p.name.as_deref(), p.protocol.as_deref(), p.port))
            .collect();
        for address in subset.addresses.iter().flatten() {
            let Ok(ip) = address.ip.parse() else { continue };
            out.push(dns::Endpoint {
                ip,
                hostname: address.hostname.clone().filter(|h| !h.is_empty()),
                ports: ports.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset};
    use rk8s_netoverlay::dns::{Answer, Srv};

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
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": cluster_ip, "ports": ports},
        }))
        .unwrap()
    }

    fn address(ip: &str, hostname: Option<&str>) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            hostname: hostname.map(Into::into),
            ..Default::default()
        }
    }

    /// A StatefulSet `web` behind the headless Service `web`, and the ClusterIP
    /// Service `api`, as the Endpoints controller writes their Endpoints.
    fn cluster() -> (Store<Service>, EndpointsByName) {
        let ports = serde_json::json!([
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "metrics", "port": 9090, "protocol": "UDP"},
        ]);
        let services = store(vec![
            service("web", "None", ports.clone()),
            service("api", "10.96.0.10", ports),
            service("plain", "10.96.0.11", serde_json::json!([{"port": 80}])),
        ]);
        let web = Endpoints {
            metadata: kube::api::ObjectMeta {
                namespace: Some("default".into()),
                name: Some("web".into()),
                ..Default::default()
            },
            subsets: Some(vec![EndpointSubset {
                addresses: Some(vec![
                    address("10.244.1.5", Some("web-0")),
                    address("10.244.2.7", Some("web-1")),
                    address("10.244.1.9", None),
                ]),
                not_ready_addresses: Some(vec![address("10.244.2.8", Some("web-2"))]),
                ports: Some(vec![EndpointPort {
                    name: Some("http".into()),
                    port: 8080,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
            }]),
        };
        let by_name = BTreeMap::from([(("default".to_string(), "web".to_string()), Arc::new(web))]);
        (services, by_name)
    }

    fn records() -> Records {
        let (services, by_name) = cluster();
        let records = Records::new("cluster.local");
        records.set(&names(&services, &by_name));
        records
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
            ["10.244.1.5".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(
            found(&r, "10-244-1-9.web.default.svc.cluster.local").addresses,
            ["10.244.1.9".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(
            found(&r, "web.default.svc.cluster.local").addresses.len(),
            3
        );
        // Not ready (the controller lists it in `addresses` only with
        // publishNotReadyAddresses).
        assert_eq!(
            r.lookup("web-2.web.default.svc.cluster.local"),
            Answer::NoSuchName
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
            ["10.96.0.11".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(
            r.lookup("_tcp.plain.default.svc.cluster.local"),
            Answer::NoSuchName
        );
    }

    #[test]
    fn external_name_services_have_no_names() {
        let external: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "default", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.org"},
        }))
        .unwrap();
        assert_eq!(names(&store(vec![external]), &BTreeMap::new()), []);
    }
}
