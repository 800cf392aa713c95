//! The node agent's HTTPS endpoint (kubelet's port 10250): container logs, exec,
//! attach and port forwarding for the API server, which proxies `pods/log`,
//! `pods/exec`, `pods/attach` and `pods/portforward` here. Only clients
//! with the API server's certificate from the cluster CA get through the TLS
//! handshake (see `rk8s_http::tls::node_server_config`).
//!
//! - `GET /containerLogs/{namespace}/{pod}/{container}?follow&tailLines&timestamps&previous&limitBytes&sinceSeconds&sinceTime`
//! - `GET|POST /exec/{namespace}/{pod}[/{uid}]/{container}?command=…&stdin&stdout&stderr&tty`
//!   (module `exec`) and `GET|POST /attach/{namespace}/{pod}[/{uid}]/{container}?stdin&stdout&stderr&tty`
//!   (module `attach`): a WebSocket with Kubernetes' stream protocol `v5.channel.k8s.io`
//!   (or `v4`), binary messages whose first byte is the channel (0 stdin, 1 stdout,
//!   2 stderr, 3 the final `Status`, 4 terminal resize; v5 adds 255, "close channel
//!   N"): see module `remote_command`.
//! - `GET|POST /portForward/{namespace}/{pod}[/{uid}]`: port forwarding, SPDY/3.1
//!   as kubectl speaks it (see [`super::port_forward`]).
//! - `* /podProxy/{namespace}/{pod}/{uid}/{scheme}/{ip}/{port}/{path}`: HTTP to the pod,
//!   for `pods/proxy` and `services/proxy` (module `pod_proxy`).
//! - `GET /stats/summary`: usage of the node and its pods (kubelet's Summary API).
//! - `GET /metrics`: the agent's own metrics; `GET /metrics/cadvisor`: the containers'.
//! - `GET /ingress/activity`: the Ingress traffic of Services that wake on request
//!   (see [`super::activity`]).

mod attach;
mod exec;
mod pod_proxy;
mod remote_command;

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rk8s_runtime::logs::ReadOptions;
use rk8s_runtime::pod::{PodRecord, PodRuntime};

use super::activity::Activation;
use super::stats::Stats;
use tokio::sync::mpsc;

/// The node agent's port, as kubelet's.
pub const DEFAULT_PORT: u16 = 10250;

use rk8s_http::body::{Body, channel_body, error_response};
use rk8s_http::query::Query;
use rk8s_http::status::{ApiError, ApiResult};

/// Serves `runtime`'s pods on `listener` with `tls` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    runtime: Arc<PodRuntime>,
    (stats, activation): (Arc<Stats>, Arc<Activation>),
    host_ips: Vec<String>,
) {
    // The connections to pods of `pods/proxy`, pooled; the node's addresses (a
    // `hostNetwork` pod's).
    let proxy = Arc::new(pod_proxy::PodProxy::new(host_ips));
    rk8s_http::serve::serve_tls(listener, tls, move |req| {
        let (runtime, stats, activation) = (runtime.clone(), stats.clone(), activation.clone());
        let proxy = proxy.clone();
        async move { handle(runtime, (&stats, activation), &proxy, req).await }
    })
    .await;
}

async fn handle(
    runtime: Arc<PodRuntime>,
    (stats, activation): (&Stats, Arc<Activation>),
    proxy: &pod_proxy::PodProxy,
    req: Request<Incoming>,
) -> Response<Body> {
    let path: Vec<String> = req
        .uri()
        .path()
        .trim_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let query = Query::parse(req.uri().query());
    let result = match (req.method(), segments.as_slice()) {
        (&Method::GET, ["healthz"]) => Ok(Response::new(Full::new(Bytes::from("ok")).boxed())),
        (&Method::GET, ["stats", "summary"]) => match stats.summary() {
            Some(summary) => serde_json::to_vec(&summary)
                .map_err(|e| ApiError::internal(e.to_string()))
                .and_then(|body| text(body, "application/json")),
            None => Err(ApiError::unavailable(
                "no usage read yet: the first reading comes within the stats interval",
            )),
        },
        (&Method::GET, ["metrics"]) => {
            let (format, body) = super::metrics::exposition();
            text(body, &format)
        }
        (&Method::GET, ["ingress", "activity"]) => Ok(super::activity::stream(activation)),
        (&Method::GET, ["metrics", "cadvisor"]) => {
            text(stats.cadvisor().into_bytes(), prometheus::TEXT_FORMAT)
        }
        (&Method::GET, ["containerLogs", ns, pod, container]) => {
            logs(&runtime, ns, pod, container, &query).await
        }
        (&Method::GET | &Method::POST, ["exec", ns, pod, container]) => {
            exec::exec(runtime.clone(), req, ns, pod, None, container, &query).await
        }
        (&Method::GET | &Method::POST, ["exec", ns, pod, uid, container]) => {
            exec::exec(runtime.clone(), req, ns, pod, Some(uid), container, &query).await
        }
        (&Method::GET | &Method::POST, ["attach", ns, pod, container]) => {
            attach::attach(runtime.clone(), req, ns, pod, None, container, &query).await
        }
        (&Method::GET | &Method::POST, ["attach", ns, pod, uid, container]) => {
            attach::attach(runtime.clone(), req, ns, pod, Some(uid), container, &query).await
        }
        (_, ["podProxy", ns, pod, uid, scheme, ip, port, ..]) => {
            let path = rk8s_http::query::after_segments(req.uri().path(), 7).to_string();
            let asked = pod_proxy::Asked {
                namespace: ns,
                pod,
                uid,
                scheme,
                ip,
                port,
                path: &path,
            };
            proxy.forward(&runtime, req, asked).await
        }
        (&Method::GET | &Method::POST, ["portForward", ns, pod]) => {
            super::port_forward::port_forward(runtime.clone(), req, ns, pod, None, &query).await
        }
        (&Method::GET | &Method::POST, ["portForward", ns, pod, uid]) => {
            super::port_forward::port_forward(runtime.clone(), req, ns, pod, Some(uid), &query)
                .await
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no such endpoint: {} {}", req.method(), req.uri().path()),
        )),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

/// A 200 answer of `content_type`.
fn text(body: Vec<u8>, content_type: &str) -> ApiResult<Response<Body>> {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)).boxed())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The pod `namespace/name` (with `uid`, exactly that one) among the runtime's.
pub(super) fn find_pod(
    runtime: &PodRuntime,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
) -> ApiResult<PodRecord> {
    let pods = runtime
        .pods()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    pods.into_iter()
        .find(|r| {
            r.pod.metadata.namespace.as_deref().unwrap_or("default") == namespace
                && r.pod.metadata.name.as_deref() == Some(name)
                && uid.is_none_or(|u| u == r.uid)
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("pod {namespace}/{name} is not running on this node"),
            )
        })
}

/// A writer into a response body; fails once the client has gone (so a followed log
/// stops) or `limit` bytes are written.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    left: Option<u64>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let take = match self.left {
            Some(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Some(n) => buf.len().min(usize::try_from(n).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        self.tx
            .blocking_send(Bytes::copy_from_slice(&buf[..take]))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        if let Some(n) = self.left.as_mut() {
            *n -= take as u64;
        }
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.tx.is_closed() {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        Ok(())
    }
}

async fn logs(
    runtime: &Arc<PodRuntime>,
    namespace: &str,
    pod: &str,
    container: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let record = find_pod(runtime, namespace, pod, None)?;
    let previous = query.flag("previous");
    // Checked before the stream starts, so a bad request gets its status code.
    runtime
        .container_log(&record.uid, container, previous)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let options = ReadOptions {
        follow: query.flag("follow"),
        tail: query
            .number("tailLines")?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        timestamps: query.flag("timestamps"),
        since: since(query)?,
    };
    // Query::number only yields non-negative values.
    let left = query.number("limitBytes")?.map(i64::unsigned_abs);
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let (runtime, container) = (runtime.clone(), container.to_string());
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter { tx, left };
        if let Err(e) = runtime.write_log(&record.uid, &container, previous, &options, &mut out) {
            tracing::debug!("log of {}/{container}: {e}", record.key());
        }
    });
    let mut resp = Response::new(channel_body(rx));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

/// The time a log read starts from: `sinceSeconds` ago, or `sinceTime` (RFC 3339), as
/// kubelet reads them (at most one of the two).
fn since(query: &Query) -> ApiResult<Option<jiff::Timestamp>> {
    let seconds = query.number("sinceSeconds")?;
    let time = query.get("sinceTime");
    match (seconds, time) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "at most one of sinceTime or sinceSeconds may be specified".to_string(),
        )),
        (Some(s), None) => {
            if s < 1 {
                return Err(ApiError::bad_request(
                    "sinceSeconds: must be greater than 0".to_string(),
                ));
            }
            let ago = jiff::SignedDuration::from_secs(s);
            Ok(jiff::Timestamp::now().checked_sub(ago).ok())
        }
        (None, Some(t)) => t.parse().map(Some).map_err(|e| {
            ApiError::bad_request(format!("sinceTime: {t:?} is not an RFC 3339 time: {e}"))
        }),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followed_logs_stop_when_the_client_goes() {
        let (tx, rx) = mpsc::channel(4);
        let mut w = ChannelWriter { tx, left: Some(3) };
        assert_eq!(w.write(b"hello").unwrap(), 3);
        assert!(w.write(b"more").is_err());
        drop(rx);
        assert!(w.flush().is_err());
    }
}
