//! The cluster's names, served on each node (UDP and TCP port 53 on the pods'
//! gateway) with hickory's DNS server, as CoreDNS' `kubernetes` plugin answers them:
//!
//! - `NAME.NAMESPACE.svc.DOMAIN` → the Service's ClusterIP, or for a headless Service
//!   the addresses of its ready endpoints;
//! - any other name in `DOMAIN` → NXDOMAIN (authoritative), so resolvers walking the
//!   search list move on at once;
//! - names outside the domain → forwarded to the node's own nameservers (CoreDNS'
//!   `forward . /etc/resolv.conf`), or REFUSED when it has none.
//!
//! Pods reach `NAME` and `NAME.NAMESPACE` through the search list of their
//! resolv.conf (`NAMESPACE.svc.DOMAIN svc.DOMAIN DOMAIN`, `ndots:5`), which the
//! runtime writes.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Message, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::error::{Error, Result};

/// The cluster domain (kubelet's `--cluster-domain` default).
pub const DEFAULT_DOMAIN: &str = "cluster.local";
/// How long answers may be cached (CoreDNS' default for the kubernetes plugin).
const TTL: u32 = 5;

/// The names the server answers, replaced as Services and endpoints change.
#[derive(Debug, Clone)]
pub struct Records {
    domain: String,
    names: Arc<RwLock<BTreeMap<String, Vec<Ipv4Addr>>>>,
    upstreams: Vec<SocketAddr>,
}

/// What a name resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// These addresses (possibly none: the name exists, with no address of that type).
    Addresses(Vec<Ipv4Addr>),
    /// No such name in the cluster domain.
    NoSuchName,
    /// Not a cluster name.
    NotOurs,
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
    pub fn with_upstreams(mut self, upstreams: Vec<SocketAddr>) -> Self {
        self.upstreams = upstreams;
        self
    }

    /// The cluster domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Replaces every Service's addresses: `(namespace, name) → addresses`.
    pub fn set(&self, services: BTreeMap<(String, String), Vec<Ipv4Addr>>) {
        let names = services
            .into_iter()
            .map(|((ns, name), ips)| (format!("{name}.{ns}.svc.{}", self.domain), ips))
            .collect();
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
        if let Some(ips) = names.get(&name) {
            return Answer::Addresses(ips.clone());
        }
        // A name above some record (`svc.cluster.local`, a namespace) exists, empty.
        let suffix = format!(".{name}");
        if names.keys().any(|k| k.ends_with(&suffix)) {
            Answer::Addresses(Vec::new())
        } else {
            Answer::NoSuchName
        }
    }
}

/// Answers queries from [`Records`].
struct Handler(Records);

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let mut meta = Metadata::response_from_request(&request.metadata);
        let mut answers = Vec::new();
        let mut authorities = Vec::new();
        let mut additionals = Vec::new();
        match request.request_info() {
            Err(_) => meta.response_code = ResponseCode::FormErr,
            Ok(info) => {
                let name: Name = info.query.name().into();
                match self.0.lookup(&name.to_ascii()) {
                    Answer::NotOurs if self.0.upstreams.is_empty() => {
                        meta.response_code = ResponseCode::Refused;
                    }
                    Answer::NotOurs => match forward(&self.0.upstreams, request.as_slice()).await {
                        Some(reply) => {
                            meta.response_code = reply.metadata.response_code;
                            meta.recursion_available = reply.metadata.recursion_available;
                            answers = reply.answers;
                            authorities = reply.authorities;
                            additionals = reply.additionals;
                        }
                        None => meta.response_code = ResponseCode::ServFail,
                    },
                    Answer::NoSuchName => {
                        meta.authoritative = true;
                        meta.response_code = ResponseCode::NXDomain;
                    }
                    Answer::Addresses(ips) => {
                        meta.authoritative = true;
                        if matches!(info.query.query_type(), RecordType::A | RecordType::ANY) {
                            answers = ips
                                .into_iter()
                                .map(|ip| Record::from_rdata(name.clone(), TTL, RData::A(A(ip))))
                                .collect();
                        }
                    }
                }
            }
        }
        let builder = MessageResponseBuilder::from_message_request(request);
        let message = builder.build(
            meta,
            answers.iter(),
            authorities.iter(),
            [],
            additionals.iter(),
        );
        match response.send_response(message).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!("dns: failed to answer {}: {e}", request.src());
                meta.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: meta,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// Sends the query as it came to each upstream in turn (UDP, 2 s each); the first
/// reply that parses.
async fn forward(upstreams: &[SocketAddr], query: &[u8]) -> Option<Message> {
    for upstream in upstreams {
        let local: SocketAddr = if upstream.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let Ok(socket) = tokio::net::UdpSocket::bind(local).await else {
            continue;
        };
        if socket.send_to(query, upstream).await.is_err() {
            continue;
        }
        let mut buf = vec![0; 4096];
        let received =
            tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await;
        if let Ok(Ok((n, from))) = received
            && from == *upstream
            && let Ok(reply) = Message::from_vec(&buf[..n])
        {
            return Some(reply);
        }
    }
    None
}

/// The nameservers of a resolv.conf, as socket addresses on port 53.
pub fn nameservers_of(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// A running DNS server; stops when dropped.
pub struct DnsServer {
    server: hickory_server::Server<Handler>,
    address: SocketAddr,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl DnsServer {
    /// Serves `records` on UDP and TCP at `address` (inside a Tokio runtime).
    pub async fn start(address: SocketAddr, records: Records) -> Result<Self> {
        let io = |source| Error::Io {
            path: format!("dns {address}").into(),
            source,
        };
        let udp = tokio::net::UdpSocket::bind(address).await.map_err(io)?;
        // Port 0: TCP takes the port UDP got.
        let address = udp.local_addr().map_err(io)?;
        let tcp = tokio::net::TcpListener::bind(address).await.map_err(io)?;
        let mut server = hickory_server::Server::new(Handler(records));
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        Ok(DnsServer { server, address })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.server.shutdown_token().cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Records {
        let r = Records::new("cluster.local.");
        r.set(BTreeMap::from([
            (
                ("default".into(), "web".into()),
                vec!["10.96.0.10".parse().unwrap()],
            ),
            (("db".into(), "pg".into()), vec![]),
        ]));
        r
    }

    #[test]
    fn service_names_resolve_and_others_in_the_domain_do_not() {
        let r = records();
        assert_eq!(
            r.lookup("WEB.default.svc.cluster.local."),
            Answer::Addresses(vec!["10.96.0.10".parse().unwrap()])
        );
        assert_eq!(
            r.lookup("pg.db.svc.cluster.local"),
            Answer::Addresses(vec![])
        );
        assert_eq!(
            r.lookup("default.svc.cluster.local"),
            Answer::Addresses(vec![])
        );
        assert_eq!(
            r.lookup("nope.default.svc.cluster.local"),
            Answer::NoSuchName
        );
        // The search list's first try for `web.default` (ndots:5).
        assert_eq!(
            r.lookup("web.default.default.svc.cluster.local"),
            Answer::NoSuchName
        );
        assert_eq!(r.lookup("example.org"), Answer::NotOurs);
        assert_eq!(r.lookup("notcluster.local"), Answer::NotOurs);
    }

    /// One A query for `name` to `server` over UDP; the reply.
    async fn ask(server: SocketAddr, name: &str) -> Message {
        use hickory_server::proto::op::Query;
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        client.send_to(&m.to_vec().unwrap(), server).await.unwrap();
        let mut buf = vec![0; 512];
        let n = tokio::time::timeout(Duration::from_secs(10), client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    }

    #[tokio::test]
    async fn the_server_answers_over_udp() {
        let server = DnsServer::start("127.0.0.1:0".parse().unwrap(), records())
            .await
            .unwrap();
        let found = ask(server.address(), "web.default.svc.cluster.local.").await;
        assert_eq!(found.metadata.response_code, ResponseCode::NoError);
        let ips: Vec<String> = found.answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(ips, ["10.96.0.10"]);
        let missing = ask(server.address(), "nope.default.svc.cluster.local.").await;
        assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
        let outside = ask(server.address(), "example.org.").await;
        assert_eq!(outside.metadata.response_code, ResponseCode::Refused);
    }

    #[tokio::test]
    async fn names_outside_the_domain_go_to_the_upstreams() {
        // The upstream: a server for another domain.
        let other = Records::new("example.test");
        other.set(BTreeMap::from([(
            ("ns".into(), "db".into()),
            vec!["192.0.2.7".parse().unwrap()],
        )]));
        let upstream = DnsServer::start("127.0.0.1:0".parse().unwrap(), other)
            .await
            .unwrap();
        let dead: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let resolv = format!("search x\nnameserver {}\n", upstream.address().ip());
        assert_eq!(
            nameservers_of(&resolv),
            [SocketAddr::new(upstream.address().ip(), 53)]
        );
        let records = records().with_upstreams(vec![dead, upstream.address()]);
        let server = DnsServer::start("127.0.0.1:0".parse().unwrap(), records)
            .await
            .unwrap();
        let reply = ask(server.address(), "db.ns.svc.example.test.").await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(reply.answers[0].data.to_string(), "192.0.2.7");
    }
}
