//! The names the cluster DNS answers, built from a description of each Service as the
//! Kubernetes DNS specification lays them out (github.com/kubernetes/dns,
//! docs/specification.md, schema 1.1.0) and CoreDNS' `kubernetes` plugin answers them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};

/// One Service as the cluster DNS sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecords {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service's named ports, with the Service's port numbers. Unnamed ports get no
    /// SRV record: the record's name is made of the port's name.
    pub ports: Vec<NamedPort>,
    /// What the Service's name resolves to.
    pub addresses: ServiceAddresses,
}

/// What a Service's name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAddresses {
    /// The Service's ClusterIP.
    ClusterIp(Ipv4Addr),
    /// A headless Service (`clusterIP: None`): its endpoints, as the Endpoints object's
    /// `addresses` lists them (the ready ones, and the not-ready ones too when the
    /// Service has `publishNotReadyAddresses`).
    Headless(Vec<Endpoint>),
}

/// One endpoint address of a headless Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// The address's `hostname` (a pod's `spec.hostname` when its `spec.subdomain` is
    /// the Service's name: a StatefulSet's pods get their own names).
    pub hostname: Option<String>,
    /// The endpoint's named ports, with the pod's port numbers.
    pub ports: Vec<NamedPort>,
}

impl Endpoint {
    /// The endpoint's label under the Service's name: its hostname, or else its address
    /// with dashes (`10-244-1-5`), as CoreDNS names endpoints without one.
    pub fn label(&self) -> String {
        match self.hostname.as_deref().filter(|h| !h.is_empty()) {
            Some(hostname) => hostname.to_ascii_lowercase(),
            None => self.ip.to_string().replace('.', "-"),
        }
    }
}

/// A named port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    /// The port's name (`http`).
    pub name: String,
    /// Its protocol.
    pub protocol: SrvProtocol,
    /// Its number.
    pub port: u16,
}

/// A port's protocol, as SRV names spell it (`_tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SrvProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for SrvProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SrvProtocol::Tcp => "tcp",
            SrvProtocol::Udp => "udp",
            SrvProtocol::Sctp => "sctp",
        })
    }
}

/// One SRV record's data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Srv {
    /// Always 0: every target is as good as another.
    pub priority: u16,
    /// 100 / the number of records at the name (at least 1), as CoreDNS weighs them.
    pub weight: u16,
    /// The port to connect to.
    pub port: u16,
    /// The host to connect to, fully qualified, without the trailing dot.
    pub target: String,
}

/// The records of a name that exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Its A records.
    pub addresses: Vec<Ipv4Addr>,
    /// Its SRV records.
    pub services: Vec<Srv>,
    /// The A records of the SRV records' targets (for the additional section).
    pub additional: Vec<(String, Ipv4Addr)>,
}

/// What a name resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The name exists, with these records (possibly none of the type asked: then the
    /// answer is empty, not NXDOMAIN).
    Found(Found),
    /// No such name in the cluster domain.
    NoSuchName,
    /// Not a cluster name.
    NotOurs,
}

/// The records of one name, as held.
#[derive(Debug, Default)]
struct Entry {
    addresses: Vec<Ipv4Addr>,
    services: Vec<Srv>,
}

/// The names the server answers, replaced as Services and endpoints change.
#[derive(Debug, Clone)]
pub struct Records {
    domain: String,
    names: Arc<RwLock<BTreeMap<String, Entry>>>,
    upstreams: Vec<std::net::SocketAddr>,
}

impl Records {
    /// No names yet, in `domain` (e.g. `cluster.local`).
    pub fn new(domain: &str) -> Self {
        Records {
            domain: domain.trim_matches('.').to_ascii_lowercase(),
            names: Arc::default(),
            upstreams: Vec::new(),
        }
    }

    /// Forwards names outside the domain to these servers (tried in order).
    pub fn with_upstreams(mut self, upstreams: Vec<std::net::SocketAddr>) -> Self {
        self.upstreams = upstreams;
        self
    }

    /// Where names outside the domain go.
    pub fn upstreams(&self) -> &[std::net::SocketAddr] {
        &self.upstreams
    }

    /// The cluster domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Replaces every Service's names with these Services' (ExternalName Services
    /// have none: leave them out).
    pub fn set(&self, services: &[ServiceRecords]) {
        let names = table(&self.domain, services);
        if let Ok(mut current) = self.names.write() {
            *current = names;
        }
    }

    /// Resolves a fully qualified name (case and a trailing dot do not matter).
    pub fn lookup(&self, name: &str) -> Answer {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let in_domain = name == self.domain || name.ends_with(&format!(".{}", self.domain));
        if !in_domain {
            return Answer::NotOurs;
        }
        let Ok(names) = self.names.read() else {
            return Answer::NoSuchName;
        };
        let Some(entry) = names.get(&name) else {
            return Answer::NoSuchName;
        };
        let additional = entry
            .services
            .iter()
            .flat_map(|s| {
                let ips = names.get(&s.target).map(|t| t.addresses.as_slice());
                ips.unwrap_or_default()
                    .iter()
                    .map(|ip| (s.target.clone(), *ip))
            })
            .collect();
        Answer::Found(Found {
            addresses: entry.addresses.clone(),
            services: entry.services.clone(),
            additional,
        })
    }
}

/// Every name of `services` in `domain` (lowercase, no trailing dot), with the names
/// above them (`svc.DOMAIN`, `NS.svc.DOMAIN`, `_tcp.SVC.NS.svc.DOMAIN`) present and
/// empty, so that they answer NOERROR rather than NXDOMAIN.
fn table(domain: &str, services: &[ServiceRecords]) -> BTreeMap<String, Entry> {
    let mut names: BTreeMap<String, Entry> = BTreeMap::new();
    for svc in services {
        let base = format!("{}.{}.svc.{domain}", svc.name, svc.namespace).to_ascii_lowercase();
        let srv_name =
            |p: &NamedPort| format!("_{}._{}.{base}", p.name, p.protocol).to_ascii_lowercase();
        // The Service's names exist whatever its endpoints (a headless Service without
        // ready endpoints answers NOERROR with no records).
        names.entry(base.clone()).or_default();
        for port in &svc.ports {
            names.entry(srv_name(port)).or_default();
        }
        match &svc.addresses {
            ServiceAddresses::ClusterIp(ip) => {
                names.entry(base.clone()).or_default().addresses.push(*ip);
                for port in &svc.ports {
                    names.entry(srv_name(port)).or_default().services.push(Srv {
                        priority: 0,
                        weight: 0,
                        port: port.port,
                        target: base.clone(),
                    });
                }
            }
            ServiceAddresses::Headless(endpoints) => {
                for endpoint in endpoints {
                    let host = format!("{}.{base}", endpoint.label());
                    names
                        .entry(base.clone())
                        .or_default()
                        .addresses
                        .push(endpoint.ip);
                    names
                        .entry(host.clone())
                        .or_default()
                        .addresses
                        .push(endpoint.ip);
                    for port in &svc.ports {
                        let Some(at) = endpoint
                            .ports
                            .iter()
                            .find(|p| p.name == port.name && p.protocol == port.protocol)
                        else {
                            continue;
                        };
                        names.entry(srv_name(port)).or_default().services.push(Srv {
                            priority: 0,
                            weight: 0,
                            port: at.port,
                            target: host.clone(),
                        });
                    }
                }
            }
        }
    }
    for entry in names.values_mut() {
        entry.addresses.sort();
        entry.addresses.dedup();
        entry.services.sort();
        entry.services.dedup();
        // CoreDNS: weight 100 / n for n records of one priority, at least 1.
        let weight = u16::try_from(100 / entry.services.len().max(1))
            .unwrap_or(1)
            .max(1);
        for srv in &mut entry.services {
            srv.weight = weight;
        }
    }
    let above: Vec<String> = names.keys().flat_map(|n| parents(n, domain)).collect();
    for name in above {
        names.entry(name).or_default();
    }
    names
}

/// The names between `name` and `domain` (`domain` included, `name` not).
fn parents<'a>(name: &'a str, domain: &'a str) -> impl Iterator<Item = String> + 'a {
    std::iter::successors(Some(name), |n| n.split_once('.').map(|(_, parent)| parent))
        .skip(1)
        .take_while(move |n| n.len() >= domain.len())
        .map(str::to_owned)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn port(name: &str, protocol: SrvProtocol, port: u16) -> NamedPort {
        NamedPort {
            name: name.into(),
            protocol,
            port,
        }
    }

    fn endpoint(address: &str, hostname: Option<&str>) -> Endpoint {
        Endpoint {
            ip: ip(address),
            hostname: hostname.map(Into::into),
            ports: vec![
                port("http", SrvProtocol::Tcp, 8080),
                port("dns", SrvProtocol::Udp, 5353),
            ],
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

    /// `api` (ClusterIP), `web` (headless, a StatefulSet's two pods and one pod
    /// without a hostname) in `default`; `pg` (headless, no endpoints yet) in `db`.
    pub(in crate::dns) fn services() -> Vec<ServiceRecords> {
        vec![
            ServiceRecords {
                namespace: "default".into(),
                name: "api".into(),
                ports: vec![port("http", SrvProtocol::Tcp, 80)],
                addresses: ServiceAddresses::ClusterIp(ip("10.96.0.10")),
            },
            ServiceRecords {
                namespace: "default".into(),
                name: "web".into(),
                ports: vec![
                    port("http", SrvProtocol::Tcp, 80),
                    port("dns", SrvProtocol::Udp, 53),
                    port("admin", SrvProtocol::Tcp, 9000),
                ],
                addresses: ServiceAddresses::Headless(vec![
                    endpoint("10.244.2.7", Some("web-1")),
                    endpoint("10.244.1.5", Some("web-0")),
                    endpoint("10.244.1.9", None),
                ]),
            },
            ServiceRecords {
                namespace: "db".into(),
                name: "pg".into(),
                ports: vec![port("postgres", SrvProtocol::Tcp, 5432)],
                addresses: ServiceAddresses::Headless(vec![]),
            },
        ]
    }

    fn records() -> Records {
        let r = Records::new("cluster.local.");
        r.set(&services());
        r
    }

    fn found(r: &Records, name: &str) -> Found {
        match r.lookup(name) {
            Answer::Found(found) => found,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn service_names_resolve_and_others_in_the_domain_do_not() {
        let r = records();
        assert_eq!(
            found(&r, "API.default.svc.cluster.local.").addresses,
            [ip("10.96.0.10")]
        );
        assert_eq!(found(&r, "pg.db.svc.cluster.local"), Found::default());
        assert_eq!(found(&r, "default.svc.cluster.local"), Found::default());
        assert_eq!(found(&r, "svc.cluster.local"), Found::default());
        assert_eq!(found(&r, "cluster.local"), Found::default());
        assert_eq!(
            r.lookup("nope.default.svc.cluster.local"),
            Answer::NoSuchName
        );
        // The search list's first try for `api.default` (ndots:5).
        assert_eq!(
            r.lookup("api.default.default.svc.cluster.local"),
            Answer::NoSuchName
        );
        assert_eq!(r.lookup("example.org"), Answer::NotOurs);
        assert_eq!(r.lookup("notcluster.local"), Answer::NotOurs);
    }

    #[test]
    fn a_headless_service_names_every_endpoint_and_resolves_to_them_all() {
        let r = records();
        assert_eq!(
            found(&r, "web.default.svc.cluster.local").addresses,
            [ip("10.244.1.5"), ip("10.244.1.9"), ip("10.244.2.7")]
        );
        assert_eq!(
            found(&r, "web-0.web.default.svc.cluster.local").addresses,
            [ip("10.244.1.5")]
        );
        assert_eq!(
            found(&r, "web-1.web.default.svc.cluster.local").addresses,
            [ip("10.244.2.7")]
        );
        // No hostname: named after its address, as CoreDNS does.
        assert_eq!(
            found(&r, "10-244-1-9.web.default.svc.cluster.local").addresses,
            [ip("10.244.1.9")]
        );
        // With a hostname, only that name.
        assert_eq!(
            r.lookup("10-244-1-5.web.default.svc.cluster.local"),
            Answer::NoSuchName
        );
        assert_eq!(
            r.lookup("web-2.web.default.svc.cluster.local"),
            Answer::NoSuchName
        );
        // A ClusterIP Service's endpoints have no names.
        assert_eq!(
            r.lookup("web-0.api.default.svc.cluster.local"),
            Answer::NoSuchName
        );
    }

    #[test]
    fn a_cluster_ip_service_has_one_srv_record_per_named_port() {
        let r = records();
        let http = found(&r, "_http._tcp.api.default.svc.cluster.local");
        assert!(http.addresses.is_empty());
        assert_eq!(
            http.services,
            [srv(100, 80, "api.default.svc.cluster.local")]
        );
        assert_eq!(
            http.additional,
            [("api.default.svc.cluster.local".into(), ip("10.96.0.10"))]
        );
        // The protocol is part of the name.
        assert_eq!(
            r.lookup("_http._udp.api.default.svc.cluster.local"),
            Answer::NoSuchName
        );
        // Above a record: exists, empty.
        assert_eq!(
            found(&r, "_tcp.api.default.svc.cluster.local"),
            Found::default()
        );
    }

    #[test]
    fn a_headless_service_has_one_srv_record_per_endpoint_at_its_port() {
        let r = records();
        let http = found(&r, "_http._tcp.web.default.svc.cluster.local");
        assert_eq!(
            http.services,
            [
                srv(33, 8080, "10-244-1-9.web.default.svc.cluster.local"),
                srv(33, 8080, "web-0.web.default.svc.cluster.local"),
                srv(33, 8080, "web-1.web.default.svc.cluster.local"),
            ]
        );
        assert_eq!(
            http.additional,
            [
                (
                    "10-244-1-9.web.default.svc.cluster.local".into(),
                    ip("10.244.1.9")
                ),
                (
                    "web-0.web.default.svc.cluster.local".into(),
                    ip("10.244.1.5")
                ),
                (
                    "web-1.web.default.svc.cluster.local".into(),
                    ip("10.244.2.7")
                ),
            ]
        );
        let dns = found(&r, "_dns._udp.web.default.svc.cluster.local");
        assert_eq!(dns.services.len(), 3);
        assert!(dns.services.iter().all(|s| s.port == 5353));
        // A Service port no endpoint serves: the name exists, with no records; so does
        // a headless Service's port before it has endpoints.
        assert_eq!(
            found(&r, "_admin._tcp.web.default.svc.cluster.local"),
            Found::default()
        );
        assert_eq!(
            found(&r, "_postgres._tcp.pg.db.svc.cluster.local"),
            Found::default()
        );
    }

    #[test]
    fn weights_split_100_among_a_names_records_and_stay_positive() {
        let many: Vec<Endpoint> = (0..150u8)
            .map(|i| endpoint(&format!("10.244.3.{i}"), None))
            .collect();
        let r = Records::new("cluster.local");
        r.set(&[ServiceRecords {
            namespace: "ns".into(),
            name: "big".into(),
            ports: vec![port("http", SrvProtocol::Tcp, 80)],
            addresses: ServiceAddresses::Headless(many),
        }]);
        let http = found(&r, "_http._tcp.big.ns.svc.cluster.local");
        assert_eq!(http.services.len(), 150);
        assert!(http.services.iter().all(|s| s.weight == 1));
    }

    #[test]
    fn set_replaces_every_name() {
        let r = records();
        r.set(&[]);
        assert_eq!(
            r.lookup("web-0.web.default.svc.cluster.local"),
            Answer::NoSuchName
        );
        assert_eq!(r.lookup("default.svc.cluster.local"), Answer::NoSuchName);
    }
}
