//! The cluster's names, served on each node (UDP and TCP port 53 on the pods'
//! gateway) with hickory's DNS server, as CoreDNS' `kubernetes` plugin answers them:
//!
//! - `SVC.NS.svc.DOMAIN` (A) → the Service's ClusterIP, or for a headless Service
//!   the addresses of its ready endpoints;
//! - `HOST.SVC.NS.svc.DOMAIN` (A) → one endpoint of a headless Service: `HOST` is the
//!   endpoint's hostname (a StatefulSet's pod name), or else its address with dashes
//!   (`10-244-1-5`);
//! - `_PORT._PROTO.SVC.NS.svc.DOMAIN` (SRV) → for each named port, the ClusterIP
//!   Service's name and port, or every endpoint's name and port (the targets' A records
//!   in the additional section);
//! - a name that exists without records of the type asked (AAAA, or A at an SRV name)
//!   → NOERROR with no answer; any other name in `DOMAIN` → NXDOMAIN (authoritative),
//!   so resolvers walking the search list move on at once;
//! - names outside the domain → forwarded to the node's own nameservers (CoreDNS'
//!   `forward . /etc/resolv.conf`), or REFUSED when it has none.
//!
//! Pods reach `NAME` and `NAME.NAMESPACE` through the search list of their
//! resolv.conf (`NAMESPACE.svc.DOMAIN svc.DOMAIN DOMAIN`, `ndots:5`), which the
//! runtime writes.

mod records;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Message, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

pub use records::{
    Answer, Endpoint, Found, NamedPort, Records, ServiceAddresses, ServiceRecords, Srv, SrvProtocol,
};

use crate::error::{Error, Result};

/// The cluster domain (kubelet's `--cluster-domain` default).
pub const DEFAULT_DOMAIN: &str = "cluster.local";
/// How long answers may be cached (CoreDNS' default for the kubernetes plugin).
const TTL: u32 = 5;

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
                    Answer::NotOurs if self.0.upstreams().is_empty() => {
                        meta.response_code = ResponseCode::Refused;
                    }
                    Answer::NotOurs => {
                        match forward(self.0.upstreams(), request.as_slice()).await {
                            Some(reply) => {
                                meta.response_code = reply.metadata.response_code;
                                meta.recursion_available = reply.metadata.recursion_available;
                                answers = reply.answers;
                                authorities = reply.authorities;
                                additionals = reply.additionals;
                            }
                            None => meta.response_code = ResponseCode::ServFail,
                        }
                    }
                    Answer::NoSuchName => {
                        meta.authoritative = true;
                        meta.response_code = ResponseCode::NXDomain;
                    }
                    Answer::Found(found) => {
                        meta.authoritative = true;
                        (answers, additionals) = records_of(&name, info.query.query_type(), found);
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

/// The answer and additional records of `found` for a query of `name` and `kind`: A,
/// SRV (with the targets' addresses) or both for ANY; none for any other type.
fn records_of(name: &Name, kind: RecordType, found: Found) -> (Vec<Record>, Vec<Record>) {
    let mut answers = Vec::new();
    let mut additionals = Vec::new();
    if matches!(kind, RecordType::A | RecordType::ANY) {
        answers.extend(
            found
                .addresses
                .into_iter()
                .map(|ip| Record::from_rdata(name.clone(), TTL, RData::A(A(ip)))),
        );
    }
    if matches!(kind, RecordType::SRV | RecordType::ANY) {
        for srv in found.services {
            let Some(target) = absolute(&srv.target) else {
                continue;
            };
            let data = SRV::new(srv.priority, srv.weight, srv.port, target);
            answers.push(Record::from_rdata(name.clone(), TTL, RData::SRV(data)));
        }
        for (target, ip) in found.additional {
            if let Some(target) = absolute(&target) {
                additionals.push(Record::from_rdata(target, TTL, RData::A(A(ip))));
            }
        }
    }
    (answers, additionals)
}

/// `name` (without the trailing dot) as an absolute DNS name; `None` when a label is
/// not a valid one (a hostname the API let through).
fn absolute(name: &str) -> Option<Name> {
    Name::from_ascii(format!("{name}.")).ok()
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
        r.set(&records::tests::services());
        r
    }

    /// One query for `name` and `kind` to `server` over UDP; the reply.
    async fn ask(server: SocketAddr, name: &str, kind: RecordType) -> Message {
        use hickory_server::proto::op::Query;
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        client.send_to(&m.to_vec().unwrap(), server).await.unwrap();
        let mut buf = vec![0; 512];
        let n = tokio::time::timeout(Duration::from_secs(10), client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    }

    fn data(records: &[Record]) -> Vec<String> {
        records.iter().map(|r| r.data.to_string()).collect()
    }

    #[tokio::test]
    async fn the_server_answers_over_udp() {
        let server = DnsServer::start("127.0.0.1:0".parse().unwrap(), records())
            .await
            .unwrap();
        let found = ask(
            server.address(),
            "api.default.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(found.metadata.response_code, ResponseCode::NoError);
        assert!(found.metadata.authoritative);
        assert_eq!(data(&found.answers), ["10.96.0.10"]);
        let missing = ask(
            server.address(),
            "nope.default.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
        let outside = ask(server.address(), "example.org.", RecordType::A).await;
        assert_eq!(outside.metadata.response_code, ResponseCode::Refused);
    }

    #[tokio::test]
    async fn a_statefulset_pod_has_a_name_and_its_service_srv_records() {
        let server = DnsServer::start("127.0.0.1:0".parse().unwrap(), records())
            .await
            .unwrap();
        let pod = ask(
            server.address(),
            "web-0.web.default.svc.cluster.local.",
            RecordType::A,
        )
        .await;
        assert_eq!(pod.metadata.response_code, ResponseCode::NoError);
        assert_eq!(data(&pod.answers), ["10.244.1.5"]);

        let srv = ask(
            server.address(),
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
        assert_eq!(srv.metadata.response_code, ResponseCode::NoError);
        assert!(srv.metadata.authoritative);
        assert!(
            srv.answers
                .iter()
                .all(|r| r.name.to_ascii() == "_http._tcp.web.default.svc.cluster.local.")
        );
        assert_eq!(
            data(&srv.answers),
            [
                "0 33 8080 10-244-1-9.web.default.svc.cluster.local.",
                "0 33 8080 web-0.web.default.svc.cluster.local.",
                "0 33 8080 web-1.web.default.svc.cluster.local.",
            ]
        );
        let additional: Vec<String> = srv
            .additionals
            .iter()
            .filter(|r| r.record_type() == RecordType::A)
            .map(|r| format!("{} {}", r.name, r.data))
            .collect();
        assert_eq!(
            additional,
            [
                "10-244-1-9.web.default.svc.cluster.local. 10.244.1.9",
                "web-0.web.default.svc.cluster.local. 10.244.1.5",
                "web-1.web.default.svc.cluster.local. 10.244.2.7",
            ]
        );

        let cluster_ip = ask(
            server.address(),
            "_http._tcp.api.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
        assert_eq!(
            data(&cluster_ip.answers),
            ["0 100 80 api.default.svc.cluster.local."]
        );
    }

    #[tokio::test]
    async fn a_name_without_records_of_the_type_asked_answers_empty_not_nxdomain() {
        let server = DnsServer::start("127.0.0.1:0".parse().unwrap(), records())
            .await
            .unwrap();
        for (name, kind) in [
            ("_http._tcp.web.default.svc.cluster.local.", RecordType::A),
            ("web-0.web.default.svc.cluster.local.", RecordType::AAAA),
            ("web-0.web.default.svc.cluster.local.", RecordType::SRV),
            ("api.default.svc.cluster.local.", RecordType::SRV),
            ("_postgres._tcp.pg.db.svc.cluster.local.", RecordType::SRV),
        ] {
            let reply = ask(server.address(), name, kind).await;
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::NoError,
                "{name} {kind}"
            );
            assert!(reply.metadata.authoritative, "{name} {kind}");
            assert_eq!(reply.answers, [], "{name} {kind}");
        }
        let missing = ask(
            server.address(),
            "_http._udp.web.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await;
        assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    }

    #[tokio::test]
    async fn names_outside_the_domain_go_to_the_upstreams() {
        // The upstream: a server for another domain.
        let other = Records::new("example.test");
        other.set(&[ServiceRecords {
            namespace: "ns".into(),
            name: "db".into(),
            ports: vec![],
            addresses: ServiceAddresses::ClusterIp("192.0.2.7".parse().unwrap()),
        }]);
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
        let reply = ask(server.address(), "db.ns.svc.example.test.", RecordType::A).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(reply.answers[0].data.to_string(), "192.0.2.7");
    }
}
