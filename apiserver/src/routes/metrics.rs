//! What Prometheus reads: `GET /metrics` (this server's and the objects' series) and
//! `GET /rk8s/v1/prometheus/targets` (HTTP service discovery of pods and nodes).

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use rk8s_http::body::Body;

use crate::auth::Identity;
use crate::request::Query;
use crate::server::{ApiServer, ok};
use crate::state_metrics::{ObjectSeries, SCRAPE_PAGE};
use crate::status::{ApiError, ApiResult};

impl ApiServer {
    /// `GET /metrics`: this server's metrics and the objects' (admin only).
    pub(crate) async fn metrics(&self, identity: &Identity) -> ApiResult<Response<Body>> {
        self.handlers
            .authorize_path(identity, "get", "/metrics", false)?;
        let inflight = |sem: &tokio::sync::Semaphore, max: usize| {
            i64::try_from(max.saturating_sub(sem.available_permits())).unwrap_or(0)
        };
        crate::metrics::INFLIGHT
            .with_label_values(&["readOnly"])
            .set(inflight(&self.reads_inflight, self.max_reads));
        crate::metrics::INFLIGHT
            .with_label_values(&["mutating"])
            .set(inflight(&self.writes_inflight, self.max_writes));
        // The server's own series, then the objects', written and sent a piece at a
        // time as the connection takes them.
        let (format, own) = crate::metrics::exposition();
        let own = futures_util::stream::once(async { Bytes::from(own) });
        let series = ObjectSeries::new(self.handlers.registry.clone(), SCRAPE_PAGE);
        let frames = own
            .chain(crate::state_metrics::pieces(series))
            .map(|piece| Ok::<_, std::convert::Infallible>(Frame::data(piece)));
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, format)
            .body(BodyExt::boxed(StreamBody::new(frames)))
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// `GET /rk8s/v1/prometheus/targets`: Prometheus HTTP service discovery (admin only).
    pub(crate) async fn prometheus_targets(
        &self,
        req: Request<Incoming>,
        identity: &Identity,
        query: &Query,
    ) -> ApiResult<Response<Body>> {
        self.handlers
            .authorize_path(identity, "get", "/rk8s/v1/prometheus/targets", false)?;
        let role = query.get("role").unwrap_or("pods");
        let path = match role {
            "pods" => "",
            "nodes" => "metrics",
            "cadvisor" => "metrics/cadvisor",
            other => {
                return Err(ApiError::bad_request(format!(
                    "role {other:?}: expected pods, nodes or cadvisor"
                )));
            }
        };
        let mut targets = Vec::new();
        if role == "pods" {
            self.handlers
                .scan_kind("Pod", |kv| {
                    targets.extend(crate::metrics::pod_target(&kv.value))
                })
                .await?;
            return ok(serde_json::Value::Array(targets));
        }
        // The scraper reaches the nodes where it reached this server (HTTP/2
        // carries that in the URI, HTTP/1 in Host).
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
            .ok_or_else(|| ApiError::bad_request("the request has no Host header"))?
            .to_string();
        self.handlers
            .scan_kind("Node", |kv| {
                targets.extend(crate::metrics::node_target(&kv.value, &host, path));
            })
            .await?;
        ok(serde_json::Value::Array(targets))
    }
}
