//! `GET|POST|… /podProxy/{namespace}/{pod}/{uid}/{scheme}/{ip}/{port}/{path}`: what
//! the API server's `pods/proxy` and `services/proxy` pass to this node — the request
//! sent on to the pod's address on that port, over HTTP or over TLS without verifying
//! the pod's certificate (as kube-apiserver's proxy), and the pod's answer back; an
//! upgrade (a WebSocket) joins both sides. The pod must be this node's, with that uid,
//! and the address its own (its network's, or for a `hostNetwork` pod one of the
//! node's): never loopback, never another pod's.

use std::time::Duration;

use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rk8s_http::body::Body;
use rk8s_http::status::{ApiError, ApiResult};
use rk8s_ingress::annotations::Protocol;
use rk8s_ingress::clients::{BoxError, Clients};
use rk8s_ingress::headers;
use rk8s_runtime::pod::PodRuntime;

use super::find_pod;

/// How long dialing the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an upgraded connection may be quiet before it is closed (kubelet's
/// streaming idle timeout).
const TUNNEL_IDLE: Duration = Duration::from_secs(4 * 60 * 60);

/// The connections to pods (pooled) and what a `hostNetwork` pod's address may be.
pub struct PodProxy {
    clients: Clients,
    host_ips: Vec<String>,
}

/// Where the request goes: the pod `namespace/pod` with `uid` on this node.
pub struct Asked<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's name.
    pub pod: &'a str,
    /// The pod's uid.
    pub uid: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The pod's address, as the API server found it.
    pub ip: &'a str,
    /// The pod's port.
    pub port: &'a str,
    /// The path on the pod, from its `/` (empty: `/`).
    pub path: &'a str,
}

impl PodProxy {
    /// A proxy for a node whose addresses are `host_ips`.
    pub fn new(host_ips: Vec<String>) -> Self {
        PodProxy {
            clients: Clients::default(),
            host_ips,
        }
    }

    /// Passes `req` to the pod `asked` names.
    pub async fn forward(
        &self,
        runtime: &PodRuntime,
        req: Request<Incoming>,
        asked: Asked<'_>,
    ) -> ApiResult<Response<Body>> {
        let record = find_pod(runtime, asked.namespace, asked.pod, Some(asked.uid))?;
        let own = match &record.attachment {
            Some(a) => a.address.to_string() == asked.ip,
            None => record.host_network() && self.host_ips.iter().any(|h| h == asked.ip),
        };
        if !own {
            return Err(ApiError::bad_request("address not allowed"));
        }
        proxy(&self.clients, req, &asked).await
    }
}

/// Passes `req` to `asked.ip` (the pod's own address).
async fn proxy(
    clients: &Clients,
    mut req: Request<Incoming>,
    asked: &Asked<'_>,
) -> ApiResult<Response<Body>> {
    let ip = asked.ip;
    let protocol = match asked.scheme {
        "http" => Protocol::Http,
        "https" => Protocol::Https,
        other => return Err(ApiError::bad_request(format!("unknown scheme {other:?}"))),
    };
    let port: u16 = asked
        .port
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid port {:?}", asked.port)))?;
    let path = if asked.path.is_empty() {
        "/"
    } else {
        asked.path
    };
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    let uri: Uri = format!("{}://{host}:{port}{path}{query}", asked.scheme)
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid path {path:?}")))?;
    let upgrade = headers::upgrade(req.headers());
    let client_side = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    if let Some(u) = upgrade {
        parts.headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        parts.headers.insert(http::header::UPGRADE, u);
    }
    parts.headers.remove(http::header::HOST);
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    let body = body.map_err(BoxError::from).boxed_unsync();
    let sent = clients.request(protocol, CONNECT_TIMEOUT, Request::from_parts(parts, body));
    // kube-apiserver's words for a pod it could not reach.
    let mut response = sent.await.map_err(|e| {
        let why = std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
        ApiError::unavailable(format!("error trying to reach service: {why}"))
    })?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_side) = client_side else {
            return Err(ApiError::unavailable(
                "error trying to reach service: an upgrade nobody asked for",
            ));
        };
        let pod_side = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            if let (Ok(c), Ok(p)) = tokio::join!(client_side, pod_side) {
                rk8s_ingress::idle::tunnel(TokioIo::new(c), TokioIo::new(p), TUNNEL_IDLE).await;
            }
        });
        let (parts, _) = response.into_parts();
        return Ok(Response::from_parts(parts, Body::default()));
    }
    headers::strip_hop_by_hop(response.headers_mut(), false);
    // A read error of the pod's ends the body there.
    Ok(response.map(rk8s_http::body::relayed))
}
