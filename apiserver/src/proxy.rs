//! `pods/log`, `pods/exec`, `pods/attach`, `pods/portforward` and `nodes/proxy`: the
//! API server finds the node and forwards the request to the node agent's HTTPS port
//! (10250 by default), streaming the answer back or splicing the upgraded (WebSocket
//! or SPDY) connection through, as kube-apiserver does with the kubelet. Who may is RBAC's
//! (`pods/exec`, `pods/attach`, `pods/portforward`, … of the `edit` role).
//!
//! A node reports its own address and port, so the API server does not take them on
//! trust (the CVE-2022-3294 class): it dials only addresses its [`DialPolicy`] allows
//! (never link-local, multicast or its own sockets; loopback only for a cluster on one
//! host), the node must prove it is that node (a certificate of the node CA naming
//! it), and a failed dial answers one message whatever went wrong, so the proxy is no
//! port scanner.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Node, Pod};
use rk8s_api::AnyObject;
use rk8s_http::tls::LiveCert;
use rustls::pki_types::ServerName;

use crate::bootstrap::pki::PkiError;
use crate::registry::Registry;
use crate::request::{Query, ResourceRequest};
use crate::status::{ApiError, ApiResult};

/// The node agent's port when its Node does not say (kubelet's).
pub const DEFAULT_NODE_PORT: u16 = 10250;

/// Connections from this API server to node agents.
pub struct NodeDialer {
    tls: tokio_rustls::TlsConnector,
    policy: DialPolicy,
}

/// Which node addresses the API server dials.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DialPolicy {
    /// Whether nodes may be reached at loopback addresses: only when the API server
    /// itself listens on loopback, so its nodes share its host.
    pub allow_loopback: bool,
    /// This server's own sockets (its API and store ports), never dialed.
    pub own: Vec<SocketAddr>,
}

impl DialPolicy {
    /// Why `ip:port` is not dialed, if it is not.
    pub fn refuses(&self, ip: IpAddr, port: u16) -> Option<&'static str> {
        let ip = ip.to_canonical();
        let own = self.own.iter().any(|s| {
            let own_ip = s.ip().to_canonical();
            s.port() == port && (own_ip == ip || own_ip.is_unspecified() || ip.is_loopback())
        });
        if own {
            Some("this API server's own port")
        } else if ip.is_loopback() {
            (!self.allow_loopback)
                .then_some("a loopback address, and this API server does not listen on loopback")
        } else if !rk8s_api::net::is_host_address(ip) {
            Some("not an address a host is reached at (link-local, multicast or unspecified)")
        } else {
            None
        }
    }
}

/// Where a pod's container is served: its node's address and port, and the path.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// The node's name (what its serving certificate must name).
    pub node: String,
    /// The node's InternalIP.
    pub ip: IpAddr,
    /// The node agent's port.
    pub port: u16,
    /// Path and query on the node agent.
    pub path_and_query: String,
}

/// Headers that carry an upgrade and must reach the node unchanged.
const UPGRADE_HEADERS: [&str; 7] = [
    "connection",
    "upgrade",
    // SPDY's protocol negotiation (port forwarding).
    "x-stream-protocol-version",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

impl NodeDialer {
    /// A dialer presenting `client_cert` (of the cluster CA: see
    /// [`crate::bootstrap::pki::ClusterCa::issue_apiserver_client`]), trusting only the node CA
    /// (`node_ca_pem`), dialing what `policy` allows.
    pub fn new(
        client_cert: Arc<LiveCert>,
        node_ca_pem: &str,
        policy: DialPolicy,
    ) -> Result<Self, PkiError> {
        let config = rk8s_http::tls::node_client_config(node_ca_pem, client_cert)?;
        Ok(NodeDialer {
            tls: tokio_rustls::TlsConnector::from(config),
            policy,
        })
    }

    /// Sends `req` to the agent of `node` at `ip:port`; the connection serves
    /// upgrades. The agent must present a certificate of the node CA naming `node`.
    pub async fn send<B>(
        &self,
        node: &str,
        ip: IpAddr,
        port: u16,
        req: Request<B>,
    ) -> ApiResult<Response<Incoming>>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if let Some(why) = self.policy.refuses(ip, port) {
            return Err(ApiError::internal(format!(
                "error dialing backend: node {node:?} reports {}, {why}: not dialed",
                SocketAddr::new(ip, port)
            )));
        }
        // One answer for every failure (refused, closed, timed out, another TLS
        // server, a certificate for another name): the details go to the log.
        let dial = |e: String| {
            tracing::warn!(node, %ip, port, "dialing the node agent failed: {e}");
            ApiError::internal(format!(
                "error dialing backend: node {node:?} could not be reached as that node at its reported address"
            ))
        };
        let name = rustls::pki_types::DnsName::try_from(node.to_string())
            .map_err(|e| dial(format!("its name is no DNS name: {e}")))?;
        let tcp = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect((ip, port)),
        )
        .await
        .map_err(|_| dial("no answer within 5s".into()))?
        .map_err(|e| dial(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(
            Duration::from_secs(10),
            self.tls.connect(ServerName::DnsName(name), tcp),
        )
        .await
        .map_err(|_| dial("no TLS handshake within 10s".into()))?
        .map_err(|e| dial(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| dial(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("connection to node {ip}:{port}: {e}");
            }
        });
        sender
            .send_request(req)
            .await
            .map_err(|e| dial(e.to_string()))
    }
}

/// Finds the node and path serving `pods/{sub}` of the pod `r` names.
pub async fn target(registry: &Registry, r: &ResourceRequest, query: &Query) -> ApiResult<Target> {
    let ns = r.namespace.as_deref().unwrap_or("default");
    let name = r.name.as_deref().unwrap_or_default();
    let pod = match registry.get(&r.kind, Some(ns), name).await? {
        AnyObject::Pod(p) => p,
        _ => return Err(ApiError::no_route()),
    };
    let sub = r.subresource.as_deref().unwrap_or_default();
    // kube-apiserver's order: the container, then the node.
    let path_and_query = node_path(&pod, sub, query)?;
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {name} does not have a host assigned"))
        })?;
    let (ip, port) = address(&node_named(registry, &node_name).await?)?;
    Ok(Target {
        node: node_name,
        ip,
        port,
        path_and_query,
    })
}

/// The node agent's path and query serving `pods/{sub}` of `pod` (kubelet's paths).
fn node_path(pod: &Pod, sub: &str, query: &Query) -> ApiResult<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let mut params = form_urlencoded::Serializer::new(String::new());
    let path = match sub {
        "log" => {
            let container = container(pod, query.get("container"))?;
            for (k, v) in query.pairs() {
                if matches!(
                    k.as_str(),
                    "follow"
                        | "tailLines"
                        | "timestamps"
                        | "previous"
                        | "limitBytes"
                        | "sinceSeconds"
                        | "sinceTime"
                ) {
                    params.append_pair(k, v);
                }
            }
            format!("/containerLogs/{ns}/{name}/{container}")
        }
        // Port forwarding is to the pod, not one of its containers; the ports travel
        // in the query (WebSocket channels) or in the streams' headers (SPDY).
        "portforward" => {
            for (k, v) in query.pairs() {
                if k == "ports" {
                    params.append_pair(k, v);
                }
            }
            format!("/portForward/{ns}/{name}/{uid}")
        }
        // With the pod's uid, so a pod of the same name made since is not reached.
        "exec" | "attach" => {
            let container = container(pod, query.get("container"))?;
            for (k, v) in query.pairs() {
                if k != "container" {
                    params.append_pair(k, v);
                }
            }
            format!("/{sub}/{ns}/{name}/{uid}/{container}")
        }
        _ => return Err(ApiError::no_route()),
    };
    let params = params.finish();
    Ok(if params.is_empty() {
        path
    } else {
        format!("{path}?{params}")
    })
}

/// `nodes/{name}/proxy/{path}`: the node agent's `/{path}` with the same query.
pub async fn node_target(
    registry: &Registry,
    node: &str,
    path: &str,
    query: Option<&str>,
) -> ApiResult<Target> {
    let (ip, port) = address(&node_named(registry, node).await?)?;
    Ok(Target {
        node: node.to_string(),
        ip,
        port,
        path_and_query: match query.filter(|q| !q.is_empty()) {
            Some(q) => format!("/{path}?{q}"),
            None => format!("/{path}"),
        },
    })
}

async fn node_named(registry: &Registry, name: &str) -> ApiResult<Node> {
    let kind = rk8s_api::object::ObjectKind::of::<Node>();
    match registry.get(&kind, None, name).await? {
        AnyObject::Node(n) => Ok(*n),
        _ => Err(ApiError::no_route()),
    }
}

impl NodeDialer {
    /// `GET path` on `node`'s agent, its JSON body read (at most 64 MiB, 10 s).
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        node: &Node,
        path: &str,
    ) -> ApiResult<T> {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let (ip, port) = address(node)?;
        let req = Request::get(path)
            .header(header::HOST, format!("{ip}:{port}"))
            .body(Empty::<Bytes>::new())
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let read = async {
            let resp = self.send(name, ip, port, req).await?;
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), 64 << 20)
                .collect()
                .await
                .map_err(|e| ApiError::unavailable(format!("node {name}: {e}")))?
                .to_bytes();
            if !status.is_success() {
                return Err(ApiError::unavailable(format!(
                    "node {name} answered {status} to {path}: {}",
                    String::from_utf8_lossy(&body).trim()
                )));
            }
            serde_json::from_slice(&body).map_err(|e| {
                ApiError::internal(format!("node {name} answered {path} with bad JSON: {e}"))
            })
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .map_err(|_| {
                ApiError::unavailable(format!("node {name}: no answer to {path} within 10s"))
            })?
    }
}

/// The container a request means: the one named, or the pod's only one.
fn container(pod: &Pod, asked: Option<&str>) -> ApiResult<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let names: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(rk8s_api::containers::names)
        .collect();
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => {
            let main: Vec<&str> = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter().map(|c| c.name.as_str()))
                .collect();
            match main.as_slice() {
                [only] => Ok(only.to_string()),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    main.join(" ")
                ))),
            }
        }
    }
}

/// A node's InternalIP and agent port, from its status. A simulated node has no
/// agent and made-up addresses: it is never dialed.
fn address(node: &Node) -> ApiResult<(IpAddr, u16)> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if rk8s_api::net::is_simulated_node(node.metadata.labels.as_ref()) {
        return Err(ApiError::unavailable(format!(
            "node {name} is simulated ({}=true): it has no agent to reach",
            rk8s_api::net::SIMULATED_NODE_LABEL
        )));
    }
    let status = node.status.as_ref();
    let ip = status
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .and_then(|a| a.address.parse().ok())
        .ok_or_else(|| {
            ApiError::unavailable(format!("node {name} has reported no InternalIP address"))
        })?;
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .and_then(|e| u16::try_from(e.port).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_NODE_PORT);
    Ok((ip, port))
}

/// The request to send the node for `target`, carrying the client's upgrade headers.
pub fn node_request(
    method: &http::Method,
    headers: &HeaderMap,
    target: &Target,
) -> ApiResult<Request<Empty<Bytes>>> {
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(&target.path_and_query)
        .header(header::HOST, format!("{}:{}", target.ip, target.port));
    for name in UPGRADE_HEADERS {
        for value in headers.get_all(name) {
            builder = builder.header(name, value.clone());
        }
    }
    builder
        .body(Empty::new())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Headers of the client's request not passed on to a pod: its credentials (kube's
/// authentication filter removes them once read) and what concerns one connection.
const NOT_FORWARDED: [&str; 9] = [
    "authorization",
    "proxy-authorization",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "host",
    "content-length",
    "proxy-connection",
];

/// The request `parts` with `body` as it goes to `target` (a node agent's
/// `podProxy` path): its method and headers but the credentials (`Authorization`,
/// `Impersonate-*`) and the connection's own; an upgrade's headers kept.
pub fn forwarded_request<B>(
    parts: &http::request::Parts,
    target: &Target,
    body: B,
) -> ApiResult<Request<B>> {
    let mut builder = Request::builder()
        .method(parts.method.clone())
        .uri(&target.path_and_query)
        .header(header::HOST, format!("{}:{}", target.ip, target.port));
    let upgrading = parts.headers.contains_key(header::UPGRADE);
    for (name, value) in &parts.headers {
        let n = name.as_str();
        let connection = n == "connection" || n == "upgrade";
        if NOT_FORWARDED.contains(&n) || n.starts_with("impersonate-") || (connection && !upgrading)
        {
            continue;
        }
        builder = builder.header(name, value.clone());
    }
    if let Some(length) = parts.headers.get(header::CONTENT_LENGTH)
        && !parts.headers.contains_key(header::TRANSFER_ENCODING)
    {
        builder = builder.header(header::CONTENT_LENGTH, length.clone());
    }
    builder
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// A pod's redirect to one of its own paths (`Location: /login`) made a path under
/// the proxy's `prefix`, as kube's proxy transport rewrites it.
pub fn relocate(headers: &mut HeaderMap, prefix: &str) {
    let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    // Not another host's (`//host/…`), nor already under the proxy (an application
    // that knows where it is served).
    if !location.starts_with('/') || location.starts_with("//") || location.starts_with(prefix) {
        return;
    }
    if let Ok(v) = http::HeaderValue::from_str(&format!("{prefix}{location}")) {
        headers.insert(header::LOCATION, v);
    }
}

/// The answer to the client: the node's status and headers; an upgrade is spliced
/// through (both ends upgraded, bytes copied both ways until either closes).
pub fn relay(
    client: Option<hyper::upgrade::OnUpgrade>,
    mut resp: Response<Incoming>,
) -> Response<rk8s_http::body::Body> {
    let status = resp.status();
    let mut headers = resp.headers().clone();
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::TRANSFER_ENCODING);
    let body = if status == StatusCode::SWITCHING_PROTOCOLS {
        let node = hyper::upgrade::on(&mut resp);
        if let Some(client) = client {
            tokio::spawn(async move {
                match tokio::try_join!(client, node) {
                    Ok((client, node)) => {
                        let mut client = TokioIo::new(client);
                        let mut node = TokioIo::new(node);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
                    }
                    Err(e) => tracing::debug!("upgrade through to the node failed: {e}"),
                }
            });
        }
        Empty::new().boxed()
    } else {
        rk8s_http::body::relayed(resp.into_body())
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: &[&str]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": containers.iter().map(|c| serde_json::json!({"name": c})).collect::<Vec<_>>()},
        }))
        .unwrap()
    }

    #[test]
    fn the_container_is_the_named_one_or_the_only_one() {
        assert_eq!(container(&pod(&["a"]), None).unwrap(), "a");
        assert_eq!(container(&pod(&["a", "b"]), Some("b")).unwrap(), "b");
        let e = container(&pod(&["a", "b"]), None).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod web, choose one of: [a b]"
        );
        let e = container(&pod(&["a"]), Some("x")).unwrap_err();
        assert_eq!(e.message, "container x is not valid for pod web");
    }

    #[test]
    fn each_subresource_goes_to_kubelets_path_with_its_own_options() {
        let mut pod = pod(&["a", "b"]);
        pod.metadata.uid = Some("u1".into());
        let path = |sub: &str, q: &str| node_path(&pod, sub, &Query::parse(Some(q)));
        assert_eq!(
            path("attach", "container=b&stdin=true&stdout=true&tty=true").unwrap(),
            "/attach/default/web/u1/b?stdin=true&stdout=true&tty=true"
        );
        assert_eq!(
            path("exec", "container=a&command=ls&command=-l").unwrap(),
            "/exec/default/web/u1/a?command=ls&command=-l"
        );
        assert_eq!(
            path("log", "container=a&follow=true&bogus=1").unwrap(),
            "/containerLogs/default/web/a?follow=true"
        );
        assert_eq!(
            path("portforward", "ports=80&container=a").unwrap(),
            "/portForward/default/web/u1?ports=80"
        );
        // Two containers and none named: kube-apiserver's question back.
        assert!(path("attach", "stdout=true").is_err());
        assert!(path("binding", "").is_err());
    }

    #[test]
    fn the_node_address_comes_from_its_status() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "status": {
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.99.0.11"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 11250}},
            },
        }))
        .unwrap();
        assert_eq!(
            address(&node).unwrap(),
            ("10.99.0.11".parse().unwrap(), 11250)
        );
        let bare: Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "n2"}})).unwrap();
        assert_eq!(
            address(&bare).unwrap_err().code,
            StatusCode::SERVICE_UNAVAILABLE
        );
        // A simulated node's made-up address is never dialed.
        let mut simulated = node.clone();
        simulated.metadata.labels =
            Some([("rk8s.io/simulated".to_string(), "true".to_string())].into());
        let refused = address(&simulated).unwrap_err();
        assert_eq!(refused.code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.message.contains("simulated"), "{}", refused.message);
    }

    #[test]
    fn the_dial_policy_keeps_off_special_addresses_and_this_servers_ports() {
        let api: SocketAddr = "10.0.0.1:6443".parse().unwrap();
        let peer: SocketAddr = "0.0.0.0:2380".parse().unwrap();
        let policy = DialPolicy {
            allow_loopback: false,
            own: vec![api, peer],
        };
        let refuses = |ip: &str, port| policy.refuses(ip.parse().unwrap(), port);
        assert_eq!(refuses("10.0.0.2", 10250), None);
        assert_eq!(refuses("10.0.0.2", 6443), None);
        for (ip, port) in [
            ("10.0.0.1", 6443),
            ("127.0.0.1", 6443),
            ("10.0.0.9", 2380),
            ("::ffff:10.0.0.1", 6443),
        ] {
            assert_eq!(
                refuses(ip, port),
                Some("this API server's own port"),
                "{ip}:{port}"
            );
        }
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(refuses(ip, 10250).unwrap().contains("loopback"), "{ip}");
        }
        for ip in [
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(refuses(ip, 10250).is_some(), "{ip}");
        }
        let one_host = DialPolicy {
            allow_loopback: true,
            own: vec!["127.0.0.1:6443".parse().unwrap()],
        };
        assert_eq!(one_host.refuses("127.0.0.1".parse().unwrap(), 10250), None);
        assert!(
            one_host
                .refuses("127.0.0.1".parse().unwrap(), 6443)
                .is_some()
        );
    }
}
