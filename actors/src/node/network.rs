//! The node's part of the cluster network, kept in step with the API: the VXLAN
//! routes to every other node's podCIDR (from Node objects), the Service proxy's
//! nftables rules (from Services and their EndpointSlices, as kube-proxy reads them:
//! [`super::proxy`]) with the health checks of `externalTrafficPolicy: Local` load
//! balancers ([`super::health_checks`]), and the names the node's DNS server answers
//! (from the same, as CoreDNS reads them). Three reflectors feed one loop that
//! reprograms the host at most every [`SETTLE`] after a change, each part only where
//! something changed.
//!
//! A Service's slices are those of its namespace labelled
//! `kubernetes.io/service-name: NAME` (the EndpointSlice controller's, or a user's for
//! a Service without a selector), merged. DNS lists a headless Service's ready
//! endpoints (all of them with `publishNotReadyAddresses`) under their hostnames.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use rk8s_netoverlay::Ipv4Net;
use rk8s_netoverlay::dns::{
    self, NamedPort, Records, ServiceAddresses, ServiceRecords, SrvProtocol,
};
use rk8s_netoverlay::overlay::{Overlay, Peer};
use rk8s_netoverlay::services::ServiceProxy;
use tokio::sync::Mutex;

use super::health_checks::HealthChecks;
pub use super::proxy::{SlicesByService, slices_by_service};
use super::proxy::{conditions, health_checks, key, service_ports};

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
/// the containers' service variables ([`super::services`]); the Services and
/// EndpointSlices (`slices_w`) are read by the Ingress proxy too
/// ([`super::ingress`]), told through `changed` after each batch.
pub async fn keep(
    client: kube::Client,
    network: ClusterNetwork,
    (services_w, slices_w): (
        reflector::store::Writer<Service>,
        reflector::store::Writer<EndpointSlice>,
    ),
    changed: Arc<tokio::sync::Notify>,
) {
    let (nodes, nodes_w) = reflector::store();
    let services = services_w.as_reader();
    let slices = slices_w.as_reader();
    let node_events = watched(&client, nodes_w);
    let service_events = watched(&client, services_w);
    let slice_events = watched(&client, slices_w);
    let mut events = std::pin::pin!(futures_util::stream::select(
        node_events,
        futures_util::stream::select(service_events, slice_events),
    ));
    let me = network.node.clone();
    let network = Arc::new(Mutex::new(network));
    let mut checks = HealthChecks::new(Ipv4Addr::UNSPECIFIED.into());
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
        changed.notify_one();
        let by_service = slices_by_service(&slices);
        let (peers, ports, names) = (
            peers(&nodes, &me),
            service_ports(&services, &by_service, &me),
            names(&services, &by_service),
        );
        checks
            .sync(&health_checks(&services, &by_service, &me))
            .await;
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

/// Every object of kind `K` in the cluster, watched into `writer` (retrying with
/// backoff); the stream yields once per event.
pub(super) fn watched<K>(
    client: &kube::Client,
    writer: reflector::store::Writer<K>,
) -> impl futures_util::Stream<Item = ()> + use<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    watched_reporting(client, writer).map(|_| ())
}

/// As [`watched`], yielding each event's outcome: an error (then retried with
/// backoff) says why the store is not filled, e.g. a 403 or 404 from a server that
/// does not serve the kind to this node.
pub(super) fn watched_reporting<K>(
    client: &kube::Client,
    writer: reflector::store::Writer<K>,
) -> impl futures_util::Stream<Item = Result<(), watcher::Error>> + use<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    reflector::reflector(
        writer,
        watcher::watcher(Api::<K>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .map(|r| r.map(|_| ()))
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
    use crate::node::test_objects::{endpoint, http, service, slice, store};
    use rk8s_netoverlay::dns::{Answer, Srv};
    use serde_json::json;

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
}
